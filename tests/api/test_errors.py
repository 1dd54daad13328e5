"""Error paths of the public API (DESIGN.md): bad annotations and mismatched shadows raise
an ``ez.EnzpyError`` that is also a TypeError/ValueError *before* native code runs; code the
engine cannot differentiate raises an EnzpyError naming the callee and the Python source
line; exceptions raised by the primal propagate unchanged."""

import contextlib
import inspect
import math
import os

import numpy as np
import pytest

import enzpy as ez


@ez.enzyme_jit
def square(a):
    return a * a


@ez.enzyme_jit
def scale_inplace(x):
    s = 0.0
    for i in range(x.size):
        x[i] = x[i] * 2.0
        s += x[i]
    return s


@ez.enzyme_jit
def scale_inplace_2d(A):
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            A[i, j] = A[i, j] * 2.0


@ez.enzyme_jit
def gather(x, idx):
    s = 0.0
    for i in range(idx.size):
        s += x[idx[i]]
    return s


@ez.enzyme_jit
def uses_gamma(x):
    s = 0.0
    for i in range(x.size):
        s += math.nextafter(x[i], 9.0) * x[i]  # the unsupported call
    return s


@ez.enzyme_jit
def uses_gamma_on_const(x, c):
    s = 0.0
    for i in range(x.size):
        s += math.gamma(c[i]) * x[i]
    return s


@ez.enzyme_jit
def checked_sqrt(x):
    s = 0.0
    for i in range(x.size):
        if x[i] < 0.0:
            raise ValueError("negative")
        s += math.sqrt(x[i])
    return s


def _x():
    return np.array([0.5, 1.5, 2.5, 3.5])


@contextlib.contextmanager
def _raises(kind):
    """pytest.raises for an EnzpyError that is also ``kind`` (a class or a tuple)."""
    with pytest.raises(ez.EnzpyError) as ei:
        yield ei
    assert isinstance(ei.value, kind), f"{type(ei.value).__mro__} is not a {kind}"


def test_error_hierarchy():
    assert issubclass(ez.EnzpyError, Exception)


# ----------------------------------------------------------------------------- annotations


def test_active_in_forward_mode_is_a_type_error_naming_duplicated():
    with _raises(TypeError) as ei:
        ez.autodiff(ez.Forward, square, ez.Active(1.5))
    assert "Duplicated" in str(ei.value)


def test_active_array_in_forward_mode():
    x = _x()
    with _raises(TypeError) as ei:
        ez.autodiff(ez.Forward, scale_inplace, ez.Active(x))
    assert "Duplicated" in str(ei.value)
    np.testing.assert_array_equal(x, _x())


@pytest.mark.parametrize(
    "shadow",
    [np.zeros(3), np.zeros(5), np.zeros((4, 1)), np.zeros(4, dtype=np.float32)],
    ids=["short", "long", "2d", "float32"],
)
def test_mismatched_shadow_is_value_error_before_running(shadow):
    x = _x()
    before = shadow.copy()
    for mode in (ez.Forward, ez.ForwardWithPrimal):
        with _raises(ValueError):
            ez.autodiff(mode, scale_inplace, ez.Duplicated(x, shadow))
        np.testing.assert_array_equal(x, _x())  # the primal did not run
        np.testing.assert_array_equal(shadow, before)


def test_transposed_shape_shadow_2d():
    A = np.arange(12.0).reshape(3, 4)
    with _raises(ValueError):
        ez.autodiff(ez.Forward, scale_inplace_2d, ez.Duplicated(A, np.zeros((4, 3))))
    np.testing.assert_array_equal(A, np.arange(12.0).reshape(3, 4))


def test_float64_shadow_for_float32_primal():
    x = _x().astype(np.float32)
    with _raises(ValueError):
        ez.autodiff(ez.Forward, scale_inplace, ez.Duplicated(x, np.zeros(4)))
    np.testing.assert_array_equal(x, _x().astype(np.float32))


def test_shadow_aliasing_primal():
    x = _x()
    with _raises((TypeError, ValueError)):
        ez.autodiff(ez.Forward, scale_inplace, ez.Duplicated(x, x))
    np.testing.assert_array_equal(x, _x())


def test_shadow_overlapping_primal_view():
    base = np.concatenate([_x(), _x()])
    with _raises((TypeError, ValueError)):
        ez.autodiff(ez.Forward, scale_inplace, ez.Duplicated(base[:4], base[2:6]))
    np.testing.assert_array_equal(base, np.concatenate([_x(), _x()]))


def test_integer_array_cannot_be_active():
    x = _x()
    idx = np.arange(3)
    with _raises((TypeError, ValueError)):
        ez.autodiff(
            ez.Forward, gather, ez.Duplicated(x, np.ones(4)), ez.Duplicated(idx, np.zeros(3))
        )


@pytest.mark.parametrize(
    ("mode", "arg"),
    [
        ("Reverse", lambda: ez.Active(np.float16(1.5))),
        ("Reverse", lambda: ez.Active(np.longdouble(1.5))),
        ("Reverse", lambda: ez.Active(1.5 + 1j)),
        ("Forward", lambda: ez.Duplicated(np.float16(1.5), 1.0)),
        ("Forward", lambda: ez.Duplicated(np.complex64(1.5), 1.0)),
        ("Reverse", lambda: ez.Duplicated(_x().astype(np.float16), np.zeros(4, np.float16))),
        ("Forward", lambda: ez.Duplicated(_x().astype(np.longdouble), np.zeros(4, np.longdouble))),
        ("Reverse", lambda: ez.Duplicated(_x().astype(complex), np.zeros(4, complex))),
    ],
    ids=[
        "active-f16",
        "active-longdouble",
        "active-complex",
        "dup-f16",
        "dup-c64",
        "array-f16",
        "array-longdouble",
        "array-complex",
    ],
)
def test_unsupported_float_precision_is_refused_naming_the_supported_ones(mode, arg):
    a = arg()
    before = np.copy(a.val)
    f = square if np.ndim(a.val) == 0 else scale_inplace
    with _raises(TypeError) as ei:
        ez.autodiff(getattr(ez, mode), f, a)
    assert f"{np.asarray(a.val).dtype} data is not supported" in str(ei.value)
    assert "float32 and float64" in str(ei.value)
    np.testing.assert_array_equal(a.val, before)


def test_integer_scalar_cannot_be_duplicated():
    with _raises((TypeError, ValueError)):
        ez.autodiff(ez.Forward, square, ez.Duplicated(3, 1))


def test_non_annotation_in_return_activity_slot():
    x = _x()
    with _raises(TypeError):
        ez.autodiff(ez.Forward, scale_inplace, "Duplicated", ez.Duplicated(x, np.ones(4)))
    with _raises(TypeError):
        ez.autodiff(ez.Forward, scale_inplace, object(), ez.Duplicated(x, np.ones(4)))
    np.testing.assert_array_equal(x, _x())


def test_wrong_number_of_arguments():
    x = _x()
    with _raises(TypeError):
        ez.autodiff(ez.Forward, scale_inplace)
    with _raises(TypeError):
        ez.autodiff(ez.Forward, scale_inplace, ez.Duplicated(x, np.ones(4)), ez.Const(np.ones(4)))
    np.testing.assert_array_equal(x, _x())


@pytest.mark.parametrize("mode", ["Forward", None, 1, "duplicated_class"])
def test_wrong_mode_object(mode):
    if mode == "duplicated_class":
        mode = ez.Duplicated
    x = _x()
    with _raises(TypeError):
        ez.autodiff(mode, scale_inplace, ez.Duplicated(x, np.ones(4)))
    np.testing.assert_array_equal(x, _x())


# ----------------------------------------------------------------------------- engine errors


def _line_of(fn, needle):
    lines, first = inspect.getsourcelines(fn.py_func)
    for k, line in enumerate(lines):
        if needle in line:
            return first + k
    raise AssertionError(needle)


def test_unsupported_call_names_callee_file_and_line():
    x = _x()
    with pytest.raises(ez.EnzpyError) as ei:
        ez.autodiff(ez.Forward, uses_gamma, ez.Duplicated(x, np.ones(4)))
    msg = str(ei.value)
    assert "gamma" in msg
    assert os.path.basename(__file__) in msg
    assert str(_line_of(uses_gamma, "the unsupported call")) in msg
    np.testing.assert_array_equal(x, _x())


def test_unsupported_call_on_inactive_data_is_fine():
    """Activity analysis: a call with no derivative rule whose inputs are Const needs none."""
    x = _x()
    c = np.array([1.5, 2.5, 3.5, 4.5])
    dx = np.array([1.0, -1.0, 0.5, 2.0])
    dz = ez.autodiff(ez.Forward, uses_gamma_on_const, ez.Duplicated(x, dx), ez.Const(c))
    expected = sum(math.gamma(ci) * di for ci, di in zip(c, [1.0, -1.0, 0.5, 2.0], strict=True))
    assert dz == pytest.approx(expected, rel=1e-12)


# ----------------------------------------------------------------------------- primal errors


@pytest.mark.parametrize("mode", ["Forward", "ForwardWithPrimal", "Reverse", "ReverseWithPrimal"])
def test_primal_exception_propagates(mode):
    x = np.array([1.0, 4.0, -1.0])
    with pytest.raises(ValueError, match="negative"):
        ez.autodiff(getattr(ez, mode), checked_sqrt, ez.Duplicated(x, np.ones(3)))


def test_primal_with_raise_path_differentiates_normally():
    x = np.array([1.0, 4.0, 9.0])
    dx = np.array([1.0, 2.0, -3.0])
    dz, z = ez.autodiff(ez.ForwardWithPrimal, checked_sqrt, ez.Duplicated(x, dx))
    assert z == pytest.approx(6.0)
    assert dz == pytest.approx(0.5 * 1.0 + 0.25 * 2.0 - 3.0 / 6.0, rel=1e-12)


@ez.enzyme_jit
def _uses_lapack(a):
    return np.linalg.cond(a)


@pytest.mark.parametrize("mode", ["Forward", "Reverse"])
def test_library_call_without_rule_is_named(mode):
    """A LAPACK call inside Numba's own helpers: refused, naming the callee and the helper."""
    a = np.eye(3) + 0.1
    annotated = ez.Duplicated(a, np.zeros((3, 3)))
    with pytest.raises(ez.NoDerivativeError) as ei:
        if mode == "Forward":
            ez.autodiff(ez.Forward, _uses_lapack, annotated)
        else:
            ez.autodiff(ez.Reverse, _uses_lapack, ez.Active, annotated)
    msg = str(ei.value)
    assert "numba_ez_gesdd" in msg and "cond_impl" in msg and "_uses_lapack" in msg


@ez.enzyme_jit
def _two_arrays(a, b):
    s = 0.0
    for i in range(a.size):
        s += a[i] * b[i]
    return s


def test_same_memory_with_different_shadows_is_refused():
    x = np.array([1.0, 2.0])
    with pytest.raises(ez.ShadowError, match="share memory"):
        ez.autodiff(
            ez.Forward, _two_arrays, ez.Duplicated(x, np.ones(2)), ez.Duplicated(x, np.ones(2))
        )


def test_same_memory_with_the_same_shadow_differentiates():
    x, dx = np.array([1.0, 2.0]), np.zeros(2)
    ez.autodiff(ez.Reverse, _two_arrays, ez.Active, ez.Duplicated(x, dx), ez.Duplicated(x, dx))
    np.testing.assert_allclose(dx, 2 * x, rtol=1e-14)  # d(x·x)/dx through both arguments


def test_ir_llvm_rejects_is_an_enzpy_error_that_says_what_to_report():
    """A derivative LLVM would not parse (a bug of enzpy's) raises EnzpyError, not
    llvmlite's RuntimeError."""
    from enzpy.bridge import link

    with pytest.raises(ez.EnzpyError, match="ENZPY_DUMP_IR"):
        link._renamed("define void @f() {\n  %a = getelementptr\n}\n", {})
