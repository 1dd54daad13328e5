"""`ez.hvp` and `ez.hessian` (reverse over forward) against finite differences of the
gradient, symmetry, and closed forms."""

import numba
import numpy as np
import pytest

import enzpy as ez


@ez.enzyme_jit
def rosenbrock(x, scale):
    s = 0.0
    for i in range(x.shape[0] - 1):
        s += scale[i] * (x[i + 1] - x[i] * x[i]) ** 2 + (1.0 - x[i]) ** 2
    return s


def _gradient(x, scale):
    (g, _) = ez.gradient(ez.Reverse, rosenbrock, x, ez.Const(scale))
    return g


X = np.array([0.3, -0.8, 1.1, 0.5, 0.9])
SCALE = np.array([100.0, 50.0, 100.0, 10.0])


def test_hvp_against_finite_differences_of_the_gradient():
    v = np.array([1.0, -0.5, 0.25, 2.0, -1.0])
    h = 1e-6
    fd = (_gradient(X + h * v, SCALE) - _gradient(X - h * v, SCALE)) / (2 * h)
    np.testing.assert_allclose(ez.hvp(rosenbrock, X, v, SCALE), fd, rtol=1e-6, atol=1e-6)


def test_hessian_is_symmetric_and_matches_the_closed_form():
    hess = ez.hessian(rosenbrock, X, SCALE)
    np.testing.assert_allclose(hess, hess.T, rtol=1e-12, atol=1e-12)
    exact = np.zeros((5, 5))
    for i in range(4):
        a, b, c = X[i], X[i + 1], SCALE[i]
        exact[i, i] += c * (12 * a * a - 4 * b) + 2
        exact[i, i + 1] += -4 * c * a
        exact[i + 1, i] += -4 * c * a
        exact[i + 1, i + 1] += 2 * c
    np.testing.assert_allclose(hess, exact, rtol=1e-12)


def test_misuse():
    with pytest.raises(ez.AnnotationError, match="float array"):
        ez.hvp(rosenbrock, [0.3, 0.4], np.ones(2), SCALE)
    with pytest.raises(ez.AnnotationError, match="got tuple: hvp"):
        ez.hvp(rosenbrock, (X,), (np.ones(5),), SCALE)  # (JAX's form)
    with pytest.raises(ez.AnnotationError, match="shape"):
        ez.hvp(rosenbrock, X, np.ones(3), SCALE)
    with pytest.raises(ez.AnnotationError, match="held constant"):
        ez.hessian(rosenbrock, X, ez.Duplicated(SCALE, np.zeros_like(SCALE)))


def test_the_other_arguments_as_const_are_held_constant_too():
    np.testing.assert_array_equal(
        ez.hessian(rosenbrock, X, ez.Const(SCALE)), ez.hessian(rosenbrock, X, SCALE)
    )


@numba.njit
def _inside(x, v, scale):
    return ez.hvp(rosenbrock, x, v, scale), ez.hessian(rosenbrock, x, scale)


def test_inside_jitted_code():
    v = np.array([1.0, -0.5, 0.25, 2.0, -1.0])
    hv, hess = _inside(X, v, SCALE)
    np.testing.assert_allclose(hv, ez.hvp(rosenbrock, X, v, SCALE), rtol=1e-12)
    np.testing.assert_allclose(hess, ez.hessian(rosenbrock, X, SCALE), rtol=1e-12)
