"""Reverse-mode semantics a user can see (DESIGN.md): adjoints of Active scalars, shadows
that accumulate, cotangents seeded into mutated arrays, the Duplicated-return error, and
the gradient / ReverseWithPrimal entry points."""

import math

import numpy as np
import pytest

import enzpy as ez


@ez.enzyme_jit
def weighted_sq(a, x):
    s = 0.0
    for i in range(x.size):
        s += a * x[i] * x[i]
    return s


@ez.enzyme_jit
def sq_into(x, out):
    s = 0.0
    for i in range(x.size):
        s += x[i] * x[i]
    out[0] = s
    out[1] = math.sin(out[1]) * s


@ez.enzyme_jit
def make_array(x):
    return np.sin(x) * 2.0


@ez.enzyme_jit
def xy_sum(x, y):
    s = 0.0
    for i in range(x.size):
        s += x[i] * x[i] * y[i]
    return s


def test_active_scalar_and_duplicated_array():
    a, x = 1.7, np.array([0.5, -1.0, 2.0])
    dx = np.zeros_like(x)
    res = ez.autodiff(ez.Reverse, weighted_sq, ez.Active, ez.Active(a), ez.Duplicated(x, dx))
    assert isinstance(res, tuple) and len(res) == 2
    abar, none = res
    assert none is None
    assert abar == pytest.approx(np.sum(x * x), rel=1e-12)
    np.testing.assert_allclose(dx, 2.0 * a * x, rtol=1e-12)


def test_return_activity_defaults_to_active_for_float_return():
    a, x = 1.7, np.array([0.5, -1.0, 2.0])
    dx = np.zeros_like(x)
    abar, _ = ez.autodiff(ez.Reverse, weighted_sq, ez.Active(a), ez.Duplicated(x, dx))
    assert abar == pytest.approx(np.sum(x * x), rel=1e-12)
    np.testing.assert_allclose(dx, 2.0 * a * x, rtol=1e-12)


def test_reverse_with_primal():
    a, x = 1.7, np.array([0.5, -1.0, 2.0])
    dx = np.zeros_like(x)
    (abar, none), z = ez.autodiff(
        ez.ReverseWithPrimal, weighted_sq, ez.Active, ez.Active(a), ez.Duplicated(x, dx)
    )
    assert none is None
    assert z == pytest.approx(a * np.sum(x * x), rel=1e-12)
    assert abar == pytest.approx(np.sum(x * x), rel=1e-12)


def test_gradients_accumulate_into_shadows():
    """Two calls without re-zeroing the shadow: x is not overwritten, so the seed in dx
    passes through and the second call adds another gradient."""
    x = np.array([0.5, -1.0, 2.0])
    dx = np.zeros_like(x)
    ez.autodiff(ez.Reverse, weighted_sq, ez.Active, ez.Const(1.0), ez.Duplicated(x, dx))
    ez.autodiff(ez.Reverse, weighted_sq, ez.Active, ez.Const(1.0), ez.Duplicated(x, dx))
    np.testing.assert_allclose(dx, 4.0 * x, rtol=1e-12)


def test_seeded_output_array_return_by_reference():
    """out[0] = |x|^2, out[1] = sin(out[1]) |x|^2.  Seeding dout with the cotangent of out
    after execution propagates it to x; the overwritten out[0] gets adjoint 0, out[1] the
    chain rule through sin."""
    x = np.array([0.3, -0.4, 0.8])
    out = np.array([5.0, 0.7])
    dx = np.zeros_like(x)
    dout = np.array([1.5, -2.0])
    s = float(np.sum(x * x))
    res = ez.autodiff(ez.Reverse, sq_into, ez.Const, ez.Duplicated(x, dx), ez.Duplicated(out, dout))
    assert res == (None, None)
    np.testing.assert_allclose(out, [s, math.sin(0.7) * s], rtol=1e-12)
    expected_dx = (1.5 + (-2.0) * math.sin(0.7)) * 2.0 * x
    np.testing.assert_allclose(dx, expected_dx, rtol=1e-12)
    np.testing.assert_allclose(dout, [0.0, -2.0 * math.cos(0.7) * s], rtol=1e-12, atol=1e-15)


def test_duplicated_return_rejected_in_combined_reverse():
    x = np.array([0.3, -0.4, 0.8])
    dx = np.zeros_like(x)
    with pytest.raises(ez.EnzpyError) as ei:
        ez.autodiff(ez.Reverse, make_array, ez.Duplicated, ez.Duplicated(x, dx))
    msg = str(ei.value).lower()
    assert "split" in msg
    assert "reference" in msg
    np.testing.assert_array_equal(dx, 0.0)


def test_const_return_of_array_is_accepted():
    x = np.array([0.3, -0.4, 0.8])
    dx = np.ones_like(x)
    res = ez.autodiff(ez.Reverse, make_array, ez.Const, ez.Duplicated(x, dx))
    assert res == (None,)
    np.testing.assert_allclose(dx, 1.0)  # x is not written: its seed passes through


def test_gradient_entry_point():
    x = np.array([0.3, -0.4, 0.8])
    y = np.array([1.0, 2.0, -0.5])
    gx, gy = ez.gradient(ez.Reverse, xy_sum, x, ez.Const(y))
    assert gy is None
    np.testing.assert_allclose(gx, 2.0 * x * y, rtol=1e-12)
    np.testing.assert_array_equal(x, [0.3, -0.4, 0.8])


@ez.enzyme_jit
def write_twice(x, out):
    out[0] = 3.0 * x[0]  # overwritten below: its cotangent must not reach x[0] through out
    out[0] = x[1] * x[1]
    return out[0] + x[0]


def test_memory_written_twice_passes_on_only_the_last_write():
    x, out = np.array([0.5, 2.0]), np.zeros(1)
    dx, dout = np.zeros(2), np.array([10.0])  # seed: cotangent of out after the call
    ez.autodiff(ez.Reverse, write_twice, ez.Active, ez.Duplicated(x, dx), ez.Duplicated(out, dout))
    # z = x1^2 + x0 and out_a = x1^2: d/dx0 = 1, d/dx1 = (1 + 10) * 2 x1
    np.testing.assert_allclose(dx, [1.0, 11.0 * 2 * 2.0], rtol=1e-14)
    assert dout[0] == 0.0  # the overwritten memory's cotangent was consumed


def test_const_array_is_untouched_and_gets_nothing():
    x, y = np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.0, 2.0])
    y0 = y.copy()
    dx = np.zeros(3)
    adj = ez.autodiff(ez.Reverse, xy_sum, ez.Active, ez.Duplicated(x, dx), ez.Const(y))
    assert adj == (None, None)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_allclose(dx, 2 * x * y, rtol=1e-14)


def test_const_return_propagates_only_shadow_seeds():
    x, out = np.array([1.0, 2.0]), np.array([0.0, 0.3])
    dx, dout = np.zeros(2), np.array([1.0, 0.0])  # seed only out[0] = sum x^2
    ez.autodiff(ez.Reverse, sq_into, ez.Const, ez.Duplicated(x, dx), ez.Duplicated(out, dout))
    np.testing.assert_allclose(dx, 2 * x, rtol=1e-14)


@ez.enzyme_jit
def _scaled_copy(x, s):
    t = s.copy()  # a copy of memory without derivative into memory that gets one
    for i in range(t.shape[0]):
        t[i] = t[i] * x[0]
    return t.sum() * x[1]


def test_copy_of_a_const_array_into_active_memory():
    from harness import check_reverse, dot_test

    x, s = np.array([2.0, 0.5]), np.arange(1.0, 4.0)
    check_reverse(_scaled_copy, (x, s), (0,))
    dot_test(_scaled_copy, (x, s), (0,))
