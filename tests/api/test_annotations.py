"""Annotations, modes and return activities of ``ez.autodiff`` in forward mode (DESIGN.md)."""

import math

import numba
import numpy as np
import pytest

import enzpy as ez


@ez.enzyme_jit
def sin_sum(x):
    s = 0.0
    for i in range(x.size):
        s += math.sin(x[i])
    return s


@ez.enzyme_jit
def square_inplace_sum(x):
    s = 0.0
    for i in range(x.size):
        x[i] = x[i] * x[i]
        s += x[i]
    return s


@ez.enzyme_jit
def scaled_sum(x, c, n):
    s = 0.0
    for i in range(n):
        s += c * x[i] * x[i]
    return s


@ez.enzyme_jit
def scalar_poly(a, b):
    return a * a * b + math.exp(b)


@ez.enzyme_jit
def exp_array(x):
    return np.exp(x)


@ez.enzyme_jit
def pair(x):
    s = 0.0
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = x[i] * x[i]
        s += out[i]
    return s, out


@ez.enzyme_jit
def mutate_2d(A):
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            A[i, j] = math.sin(A[i, j]) * (i + 1) + j * A[i, j] ** 2


X = np.array([0.3, -0.7, 1.1, 0.25])
DX = np.array([1.0, 0.5, -2.0, 0.75])


def test_enzyme_jit_runs_the_primal_like_numba():
    assert sin_sum(X) == pytest.approx(numba.njit(sin_sum.py_func)(X), rel=1e-12)
    assert sin_sum.py_func(X) == pytest.approx(np.sum(np.sin(X)), rel=1e-12)


def test_enzyme_jit_accepts_njit_options():
    @ez.enzyme_jit(fastmath=True, boundscheck=False)
    def g(x):
        return x * 2.0

    assert g(1.5) == 3.0


def test_forward_returns_tangent():
    dz = ez.autodiff(ez.Forward, sin_sum, ez.Duplicated(X.copy(), DX.copy()))
    assert isinstance(dz, float | np.floating)
    assert dz == pytest.approx(np.sum(np.cos(X) * DX), rel=1e-12)


def test_forward_with_primal_returns_tangent_and_primal():
    res = ez.autodiff(ez.ForwardWithPrimal, sin_sum, ez.Duplicated(X.copy(), DX.copy()))
    assert isinstance(res, tuple) and len(res) == 2
    dz, z = res
    assert dz == pytest.approx(np.sum(np.cos(X) * DX), rel=1e-12)
    assert z == pytest.approx(np.sum(np.sin(X)), rel=1e-12)


@pytest.mark.parametrize("ret", ["default", "Duplicated"])
def test_float_return_duplicated_by_default(ret):
    ann = () if ret == "default" else (ez.Duplicated,)
    dz = ez.autodiff(ez.Forward, sin_sum, *ann, ez.Duplicated(X.copy(), DX.copy()))
    assert dz == pytest.approx(np.sum(np.cos(X) * DX), rel=1e-12)


def test_duplicated_noneed_return_gives_only_the_tangent():
    dz = ez.autodiff(ez.Forward, sin_sum, ez.DuplicatedNoNeed, ez.Duplicated(X.copy(), DX.copy()))
    assert isinstance(dz, float | np.floating)
    assert dz == pytest.approx(np.sum(np.cos(X) * DX), rel=1e-12)


def test_const_return_gives_no_tangent_but_updates_shadows():
    x, dx = X.copy(), DX.copy()
    res = ez.autodiff(ez.Forward, square_inplace_sum, ez.Const, ez.Duplicated(x, dx))
    assert res is None
    np.testing.assert_allclose(x, X * X, rtol=1e-12)
    np.testing.assert_allclose(dx, 2.0 * X * DX, rtol=1e-12)


def test_shadow_holds_tangent_after_execution():
    x, dx = X.copy(), DX.copy()
    dz = ez.autodiff(ez.Forward, square_inplace_sum, ez.Duplicated(x, dx))
    np.testing.assert_allclose(x, X * X, rtol=1e-12)
    np.testing.assert_allclose(dx, 2.0 * X * DX, rtol=1e-12)
    assert dz == pytest.approx(np.sum(2.0 * X * DX), rel=1e-12)


def test_duplicated_noneed_argument_shadows_like_duplicated():
    x1, dx1 = X.copy(), DX.copy()
    x2, dx2 = X.copy(), DX.copy()
    dz1 = ez.autodiff(ez.Forward, square_inplace_sum, ez.Duplicated(x1, dx1))
    dz2 = ez.autodiff(ez.Forward, square_inplace_sum, ez.DuplicatedNoNeed(x2, dx2))
    np.testing.assert_allclose(dx2, dx1, rtol=1e-12)
    assert dz2 == pytest.approx(dz1, rel=1e-12)


def test_plain_int_is_const():
    a = ez.autodiff(ez.Forward, scaled_sum, ez.Duplicated(X.copy(), DX.copy()), ez.Const(1.5), 3)
    b = ez.autodiff(
        ez.Forward, scaled_sum, ez.Duplicated(X.copy(), DX.copy()), ez.Const(1.5), ez.Const(3)
    )
    assert a == pytest.approx(np.sum(3.0 * X[:3] * DX[:3]), rel=1e-12)
    assert a == b


def test_const_float_scalar_has_zero_tangent():
    dz = ez.autodiff(ez.Forward, scalar_poly, ez.Duplicated(1.5, 1.0), ez.Const(0.5))
    assert dz == pytest.approx(2.0 * 1.5 * 0.5, rel=1e-12)
    dz = ez.autodiff(ez.Forward, scalar_poly, ez.Const(1.5), ez.Duplicated(0.5, 1.0))
    assert dz == pytest.approx(1.5**2 + math.exp(0.5), rel=1e-12)


@pytest.mark.parametrize("kind", [float, np.float64])
def test_duplicated_float_scalars(kind):
    a, b, da, db = kind(1.5), kind(0.5), kind(0.25), kind(-2.0)
    dz, z = ez.autodiff(
        ez.ForwardWithPrimal, scalar_poly, ez.Duplicated(a, da), ez.Duplicated(b, db)
    )
    assert z == pytest.approx(1.5**2 * 0.5 + math.exp(0.5), rel=1e-12)
    expected = 2 * 1.5 * 0.5 * 0.25 + (1.5**2 + math.exp(0.5)) * -2.0
    assert dz == pytest.approx(expected, rel=1e-12)


def test_array_return_tangent_is_an_array():
    dz, z = ez.autodiff(ez.ForwardWithPrimal, exp_array, ez.Duplicated(X.copy(), DX.copy()))
    assert isinstance(dz, np.ndarray) and dz.shape == X.shape and dz.dtype == np.float64
    np.testing.assert_allclose(z, np.exp(X), rtol=1e-12)
    np.testing.assert_allclose(dz, np.exp(X) * DX, rtol=1e-12)


def test_tuple_return_tangent_is_a_tuple():
    dz, z = ez.autodiff(ez.ForwardWithPrimal, pair, ez.Duplicated(X.copy(), DX.copy()))
    assert isinstance(dz, tuple) and len(dz) == 2
    ds, dout = dz
    assert ds == pytest.approx(np.sum(2 * X * DX), rel=1e-12)
    np.testing.assert_allclose(dout, 2 * X * DX, rtol=1e-12)
    assert z[0] == pytest.approx(np.sum(X * X), rel=1e-12)


def test_shadow_with_other_memory_layout():
    """A shadow has the primal's shape and dtype; its layout may differ (DESIGN.md).  The
    caller's F-ordered shadow is updated in place with the same values as a C-ordered one."""
    A = np.linspace(-1.0, 1.0, 12).reshape(3, 4)
    dA = np.cos(np.arange(12.0)).reshape(3, 4)
    A1, dA1 = A.copy(), dA.copy()
    ez.autodiff(ez.Forward, mutate_2d, ez.Duplicated(A1, dA1))
    A2, dA2 = A.copy(), np.asfortranarray(dA)
    ez.autodiff(ez.Forward, mutate_2d, ez.Duplicated(A2, dA2))
    assert dA2.flags.f_contiguous
    np.testing.assert_array_equal(A2, A1)
    np.testing.assert_allclose(dA2, dA1, rtol=1e-12)
    i = np.arange(3)[:, None] + 1.0
    j = np.arange(4)[None, :]
    np.testing.assert_allclose(dA1, (np.cos(A) * i + 2.0 * j * A) * dA, rtol=1e-12, atol=1e-15)


def test_const_array_is_still_mutated_by_the_primal():
    x = X.copy()
    dz = ez.autodiff(ez.Forward, square_inplace_sum, ez.Const(x))
    np.testing.assert_allclose(x, X * X)
    assert dz is None or dz == 0.0
