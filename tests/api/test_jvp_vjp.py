"""`ez.jvp` and `ez.vjp`: against central finite differences, against each other (the dot
test), on copies (the caller's arrays unchanged), and their misuse."""

import math

import numpy as np
import pytest

import enzpy as ez


@ez.enzyme_jit
def f(x, a, n):
    s = 0.0
    for i in range(n):
        s += math.sin(a * x[i]) * x[(i + 1) % n]
    x[0] = 0.0  # a mutation: jvp and vjp work on copies
    return s


X = np.array([0.3, -1.2, 0.8, 2.0])


def _value(x, a):
    return f(x.copy(), a, 4)


def test_jvp_against_finite_differences():
    u, da = np.array([1.0, -0.5, 0.25, 2.0]), 0.7
    x = X.copy()
    value, tangent = ez.jvp(f, (x, 1.3, 4), (u, da, None))
    np.testing.assert_array_equal(x, X)
    h = 1e-6
    fd = (_value(X + h * u, 1.3 + h * da) - _value(X - h * u, 1.3 - h * da)) / (2 * h)
    assert value == pytest.approx(_value(X, 1.3), rel=1e-15)
    assert tangent == pytest.approx(fd, rel=1e-7)


def test_vjp_is_the_transpose_of_jvp():
    u, da, w = np.array([1.0, -0.5, 0.25, 2.0]), 0.7, -1.7
    _, tangent = ez.jvp(f, (X, 1.3, 4), (u, da, None))
    value, (gx, ga, gn) = ez.vjp(f, (X, 1.3, 4), w)
    assert gn is None
    assert value == pytest.approx(_value(X, 1.3), rel=1e-15)
    assert w * tangent == pytest.approx(gx @ u + ga * da, rel=1e-13)


@ez.enzyme_jit
def jvp_inside(g, primals, tangents):
    return ez.jvp(g, primals, tangents)


@pytest.mark.parametrize("jvp", [ez.jvp, jvp_inside], ids=["python", "jitted"])
def test_misuse(jvp):
    """The same mistakes raise the same errors from Python and in jitted code."""
    with pytest.raises(ez.AnnotationError, match="3 primals but 2 tangents"):
        jvp(f, (X, 1.3, 4), (X, 1.0))
    with pytest.raises(ez.ShadowError, match="argument 0: the shadow's shape differs"):
        jvp(f, (X, 1.3, 4), (np.ones(3), None, None))


@ez.enzyme_jit
def both_inside(x, a, u):
    value, tangent = ez.jvp(f, (x, a, 4), (u, 0.5, None))
    again, (gx, ga, gn) = ez.vjp(f, (x, a, 4), 2.0)
    return value - again, tangent, gx, ga


def test_inside_jitted_code():
    u = np.array([1.0, -0.5, 0.25, 2.0])
    diff, tangent, gx, ga = both_inside(X.copy(), 1.3, u)
    assert diff == 0.0
    assert tangent == pytest.approx(ez.jvp(f, (X, 1.3, 4), (u, 0.5, None))[1], rel=1e-14)
    _, (px, pa, _) = ez.vjp(f, (X, 1.3, 4), 2.0)
    np.testing.assert_allclose(gx, px, rtol=1e-14)
    assert ga == pytest.approx(pa, rel=1e-14)


@ez.enzyme_jit
def vjp_inside(g, primals, cotangent):
    return ez.vjp(g, primals, cotangent)


def test_float32_gradients_stay_float32_inside_jitted_code():
    """A float32 array's entry of `vjp` has its dtype, from Python and in jitted code (a
    float64 cotangent scales it without promoting it)."""
    x = X.astype(np.float32)
    value, (gx, ga, _) = ez.vjp(f, (x, 1.3, 4), 0.5)
    inside_value, (inside_gx, inside_ga, _) = vjp_inside(f, (x, 1.3, 4), 0.5)
    assert gx.dtype == inside_gx.dtype == np.float32
    np.testing.assert_allclose(inside_gx, gx, rtol=1e-6)
    assert (inside_value, inside_ga) == pytest.approx((value, ga), rel=1e-6)
    _, (g64, _, _) = ez.vjp(f, (X, 1.3, 4), 0.5)
    np.testing.assert_allclose(gx, g64, rtol=1e-5)
