"""Calls that used to give a zero or wrong derivative without a word: each now raises a
clear error, returns the right structure, or warns."""

from __future__ import annotations

import inspect
import warnings

import numba
import numpy as np
import pytest
from harness import check_reverse, fd_jvp, whole_map

import enzpy as ez


@ez.enzyme_jit
def filled(x):
    return np.full(4, x)


@ez.enzyme_jit
def pair(x):
    s = x * x
    return s, 2.0 * s


@pytest.mark.parametrize("f", [filled, pair])
def test_reverse_without_return_activity_refuses_a_non_float_return(f):
    with pytest.raises(ez.AnnotationError, match="Const.*return by reference.*split mode"):
        ez.autodiff(ez.Reverse, f, ez.Active(2.1))


@pytest.mark.parametrize("f", [filled, pair])
def test_a_const_return_is_what_the_caller_asked_for(f):
    assert ez.autodiff(ez.Reverse, f, ez.Const, ez.Active(2.1)) == (0.0,)


@numba.njit
def _reverse_in_jit(x):
    return ez.autodiff(ez.Reverse, pair, ez.Active(x))


def test_refused_inside_jitted_code_too():
    with pytest.raises(ez.AnnotationError, match="return by reference"):
        _reverse_in_jit(2.1)


@ez.enzyme_jit
def with_count(x):
    return (x * x).sum(), x.shape[0], (2.0 * x, np.arange(3))


@numba.njit
def _forward_in_jit(x, dx):
    return ez.autodiff(ez.Forward, with_count, ez.Duplicated(x, dx))


def test_forward_tuple_return_has_no_tangent_for_its_integer_parts():
    x, dx = np.array([1.0, -2.0]), np.array([0.5, 3.0])
    _, fd_ret = fd_jvp(whole_map(with_count, (x,), (0,)), None, None, {0: dx})
    expected_sum, expected_array = fd_ret[0], fd_ret[2][0]
    calls = [lambda: ez.autodiff(ez.Forward, with_count, ez.Duplicated(x.copy(), dx.copy()))]
    calls *= 6  # the Python path, then the compiled entry of the hot path
    calls.append(lambda: _forward_in_jit(x.copy(), dx.copy()))
    for call in calls:
        t_sum, t_count, (t_array, t_range) = call()
        assert t_count is None and t_range is None
        np.testing.assert_allclose(t_sum, expected_sum, rtol=1e-8)
        np.testing.assert_allclose(t_array, expected_array, rtol=1e-8)


@ez.enzyme_jit
def sum_of_squares(x):
    s = 0.0
    for v in x:
        s += v * v
    return s


@numba.njit
def _gradient_in_jit(x):
    return ez.gradient(ez.Reverse, sum_of_squares, x)


def test_gradient_of_a_list_names_np_asarray():
    with pytest.raises(ez.AnnotationError, match=r"np\.asarray"):
        ez.gradient(ez.Reverse, sum_of_squares, [1.0, 2.0])
    with pytest.raises(ez.AnnotationError, match=r"np\.asarray"):
        _gradient_in_jit((1.0, 2.0))
    with pytest.raises(ez.AnnotationError, match=r"np\.asarray"):
        ez.autodiff(ez.Forward, sum_of_squares, ez.Duplicated([1.0], [1.0]))


@ez.enzyme_jit
def scaled_square(x):
    return 1.5 * x * x


@numba.njit
def _gradient_of_an_int_in_jit(n):
    return ez.gradient(ez.Reverse, scaled_square, n)


def test_nothing_to_differentiate_is_refused():
    """(An integer given for a float: every gradient was None.)"""
    calls = [
        lambda: ez.gradient(ez.Reverse, scaled_square, 3),
        lambda: ez.gradient(ez.Forward, scaled_square, 3),
        lambda: ez.gradient(ez.Reverse, scaled_square, ez.Const(3.0)),
        lambda: ez.vjp(scaled_square, (3,), 1.0),
        lambda: _gradient_of_an_int_in_jit(3),
    ]
    for call in calls:
        with pytest.raises(ez.AnnotationError, match=r"no float .* \(3\.0, not 3\)"):
            call()
    assert ez.gradient(ez.Reverse, scaled_square, 3.0) == (9.0,)


def test_a_wrong_argument_count_is_named_before_compiling():
    """(Numba's `TypeError: Signature mismatch` came out of `gradient`, `vjp` and `jvp`.)"""
    calls = [
        lambda: ez.gradient(ez.Reverse, scaled_square, 3.0, 2.0),
        lambda: ez.vjp(scaled_square, (3.0, 2.0), 1.0),
        lambda: ez.jvp(scaled_square, (3.0, 2.0), (1.0, None)),
    ]
    for call in calls:
        with pytest.raises(ez.AnnotationError, match="scaled_square takes 1 arguments, got 2"):
            call()


def test_half_precision_is_refused_before_compiling():
    """(Numba's own NotImplementedError came out of the primal's compilation.)"""
    for x in (np.ones(2, np.float16), np.float16(2.0)):
        with pytest.raises(ez.AnnotationError, match="float16 data is not supported"):
            ez.gradient(ez.Reverse, sum_of_squares, x)


@ez.enzyme_jit
def tuple_of_arrays(p):
    x, y = p
    return np.sum(x * y)


def test_gradient_of_a_tuple_of_arrays_names_separate_arguments():
    with pytest.raises(ez.AnnotationError, match="the arrays it holds as arguments"):
        ez.gradient(ez.Reverse, tuple_of_arrays, (np.ones(2), np.ones(2)))


_RECORD = np.dtype([("a", np.float64), ("b", np.float64)])


@ez.enzyme_jit
def of_records(r):
    s = 0.0
    for i in range(r.shape[0]):
        s += r[i].a * r[i].b ** 2
    return s


@numba.njit
def _gradient_of_records_in_jit(r):
    return ez.gradient(ez.Reverse, of_records, r)


def test_arrays_of_records_holding_floats_are_refused():
    """(`gradient` returned None for them: a zero derivative without a word.)"""
    r = np.zeros(3, dtype=_RECORD)
    r["a"], r["b"] = [1.0, 2.0, 3.0], [0.5, 1.5, 2.5]
    calls = [
        lambda: ez.gradient(ez.Reverse, of_records, r),
        lambda: ez.autodiff(ez.Reverse, of_records, ez.Active, ez.Duplicated(r, np.zeros_like(r))),
        lambda: ez.autodiff(ez.Forward, of_records, ez.Duplicated(r, np.zeros_like(r))),
        lambda: ez.jacobian(ez.Forward, of_records, r),
        lambda: _gradient_of_records_in_jit(r),
    ]
    for call in calls:
        with pytest.raises(ez.AnnotationError, match=r"records \(fields a, b\) holding floats"):
            call()
    with pytest.raises(ez.AnnotationError, match="no float or float-array argument"):
        ez.gradient(ez.Reverse, of_records, ez.Const(r))  # (as Const: nothing to differentiate)


@ez.enzyme_jit
def through_scratch(x, scratch):
    for i in range(x.shape[0]):
        scratch[i] = x[i] * 2.0  # the line the warning names
    s = 0.0
    for i in range(x.shape[0]):
        s += scratch[(i + 1) % x.shape[0]] * x[i]
    return s


_WRITE_LINE = inspect.getsourcelines(through_scratch.py_func)[1] + 3  # decorator, def, for


def gradient_from_python(mode, x, scratch):
    return ez.gradient(mode, through_scratch, x, ez.Const(scratch))


scratch_inside = ez.enzyme_jit(through_scratch.py_func)  # (its own derivatives: it warns)


@numba.njit
def gradient_inside(mode, x, scratch):
    return ez.gradient(mode, scratch_inside, x, ez.Const(scratch))


@pytest.mark.parametrize("gradient", [gradient_from_python, gradient_inside])
@pytest.mark.parametrize("mode", [ez.Reverse, ez.Forward])
def test_active_data_read_back_from_const_memory_warns(mode, gradient):
    x = np.array([1.0, 2.0, 0.5])
    with pytest.warns(ez.DroppedDerivativeWarning) as record:
        gradient(mode, x, np.zeros(3))
    (w,) = [r for r in record if r.category is ez.DroppedDerivativeWarning]
    assert "`scratch`" in str(w.message) and f":{_WRITE_LINE} " in str(w.message)
    assert w.filename == __file__  # points at the caller (past Numba's compiler, in jit)


def test_duplicated_scratch_keeps_the_derivative_without_warning():
    x = np.array([1.0, 2.0, 0.5])
    with warnings.catch_warnings():
        warnings.simplefilter("error", ez.DroppedDerivativeWarning)
        check_reverse(through_scratch, (x, np.zeros(3)), (0, 1))
