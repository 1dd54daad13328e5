"""`gradient`, `jvp`, `vjp` and `jacobian` run on copies of the arrays the function may write
and on the caller's own arrays otherwise: whatever way a function writes an argument, the
caller's arrays are unchanged afterwards, and the derivatives agree with central finite
differences of the function run on copies."""

import math

import numba
import numpy as np
import pytest
from numba import prange

import enzpy as ez


@numba.njit
def _scale_into(x, c):
    for i in range(x.shape[0]):
        x[i] *= c


@ez.enzyme_jit
def stores(x, y):
    x[0] = y[0] * x[1]
    return (x * y).sum()


@ez.enzyme_jit
def slice_assignment(x, y):
    x[1:] = y[:-1]
    return (x * x).sum() + y[0]


@ez.enzyme_jit
def in_place_operator(x, y):
    x += y
    return (x * x).sum()


@ez.enzyme_jit
def through_a_helper(x, y):
    _scale_into(x, 2.0)
    return (x * y).sum()


@ez.enzyme_jit
def through_a_view(x, y):
    v = x.reshape((2, 2))
    v[1, :] = v[0, :] * y[:2]
    return (x * y).sum()


@ez.enzyme_jit
def sorted_in_place(x, y):
    x.sort()
    return (x * y).sum()


@ez.enzyme_jit
def ufunc_out(x, y):
    np.multiply(x, y, x)
    return (x * x).sum()


@ez.enzyme_jit(parallel=True)
def in_a_parallel_loop(x, y):
    for i in prange(x.shape[0]):
        x[i] = math.sin(x[i]) * y[i]
    return (x * x).sum()


@ez.enzyme_jit
def reads_only(x, y):
    return (np.sin(x) * y).sum()


FUNCTIONS = [
    stores,
    slice_assignment,
    in_place_operator,
    through_a_helper,
    through_a_view,
    sorted_in_place,
    ufunc_out,
    in_a_parallel_loop,
    reads_only,
]
X = np.array([0.3, -1.2, 0.8, 2.0])
Y = np.array([1.1, 0.4, -0.7, 0.9])


def _value(f, x, y):
    return f(x.copy(), y.copy())


def _fd(f, u, w, h=1e-6):
    return (_value(f, X + h * u, Y + h * w) - _value(f, X - h * u, Y - h * w)) / (2 * h)


@pytest.mark.parametrize("f", FUNCTIONS, ids=lambda f: f.py_func.__name__)
def test_the_callers_arrays_are_unchanged(f):
    u, w = np.array([1.0, -0.5, 0.25, 2.0]), np.array([0.3, 0.1, -1.0, 0.5])
    x, y = X.copy(), Y.copy()
    gx, gy = ez.gradient(ez.Reverse, f, x, y)
    assert gx @ u + gy @ w == pytest.approx(_fd(f, u, w), rel=1e-6)
    fx, fy = ez.gradient(ez.Forward, f, x, y)
    np.testing.assert_allclose(fx, gx, rtol=1e-12)
    np.testing.assert_allclose(fy, gy, rtol=1e-12)
    value, tangent = ez.jvp(f, (x, y), (u, w))
    assert value == pytest.approx(_value(f, X, Y), rel=1e-14)
    assert tangent == pytest.approx(_fd(f, u, w), rel=1e-6)
    _, (vx, vy) = ez.vjp(f, (x, y), 2.0)
    np.testing.assert_allclose(vx, 2 * gx, rtol=1e-12)
    jx, _ = ez.jacobian(ez.Reverse, f, x, y)
    np.testing.assert_allclose(jx, gx, rtol=1e-12)
    np.testing.assert_array_equal(x, X)
    np.testing.assert_array_equal(y, Y)


@numba.njit
def _gradient_inside(f, x, y):
    return ez.gradient(ez.Reverse, f, x, y)


@pytest.mark.parametrize(
    "f", [stores, through_a_helper, reads_only], ids=lambda f: f.py_func.__name__
)
def test_the_callers_arrays_are_unchanged_inside_numba_code(f):
    x, y = X.copy(), Y.copy()
    gx, gy = _gradient_inside(f, x, y)
    np.testing.assert_allclose(gx, ez.gradient(ez.Reverse, f, X, Y)[0], rtol=1e-12)
    np.testing.assert_array_equal(x, X)
    np.testing.assert_array_equal(y, Y)


def test_written_arguments_are_found():
    from enzpy.derivatives import may_write

    types = (numba.typeof(X), numba.typeof(Y))
    for f in FUNCTIONS[:-1]:
        assert may_write(f, types)[0], f
    assert may_write(reads_only, types) == (False, False)
