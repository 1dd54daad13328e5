"""Differentiating functions that call `ez.autodiff(ez.Forward, ...)`: the inner forward
derivative is linked as IR and differentiated again (forward over forward, reverse over
forward, split mode over forward, three levels), checked against finite differences, the
dot test, and closed-form second and third derivatives."""

import math

import numpy as np
import pytest
from harness import check_all

import enzpy as ez


@ez.enzyme_jit
def energy(x):
    """A loop, a local array and a mutation: sum of sin(x_i) x_i^2 over a smoothed copy."""
    y = np.empty_like(x)
    for i in range(x.shape[0]):
        y[i] = x[i] * x[i]
    s = 0.0
    for i in range(x.shape[0]):
        s += math.sin(x[i]) * y[i]
    return s


def _hessian(x):
    return np.diag(2 * np.sin(x) + 4 * x * np.cos(x) - x * x * np.sin(x))


@ez.enzyme_jit
def directional(x, v):
    """∇energy(x) · v, by forward mode inside."""
    dx = v.copy()
    return ez.autodiff(ez.Forward, energy, ez.Duplicated(x, dx))


X = np.array([0.5, 1.2, -0.3, 2.0])
V = np.array([1.0, 0.5, -2.0, 0.25])


def test_reverse_over_forward_is_a_hessian_vector_product():
    dx = np.zeros_like(X)
    ez.autodiff(ez.Reverse, directional, ez.Duplicated(X.copy(), dx), ez.Const(V))
    np.testing.assert_allclose(dx, _hessian(X) @ V, rtol=1e-12)


def test_forward_over_forward_is_a_second_directional_derivative():
    u = np.array([0.3, -1.0, 0.7, 0.1])
    t = ez.autodiff(ez.Forward, directional, ez.Duplicated(X.copy(), u), ez.Const(V))
    assert t == pytest.approx(u @ _hessian(X) @ V, rel=1e-12)


def test_against_finite_differences_and_the_dot_test():
    check_all(directional, (X, V), (0, 1))


def test_split_mode_over_forward():
    dx = np.zeros_like(X)
    ann = (ez.Duplicated(X.copy(), dx), ez.Const(V))
    fwd, rev = ez.autodiff_thunk(ez.ReverseSplitWithPrimal, directional, ez.Active, *ann)
    tape, primal, _ = fwd(*ann)
    rev(*ann, 1.0, tape)
    np.testing.assert_allclose(dx, _hessian(X) @ V, rtol=1e-12)


@ez.enzyme_jit
def second(x, u, v):
    """uᵀ H v by forward over forward inside."""
    du = u.copy()
    return ez.autodiff(ez.Forward, directional, ez.Duplicated(x, du), ez.Const(v))


def test_three_levels():
    """The gradient of uᵀ H(x) v: third derivatives of energy (reverse over forward over
    forward), against the closed form."""
    u = np.array([0.3, -1.0, 0.7, 0.1])
    dx = np.zeros_like(X)
    ez.autodiff(ez.Reverse, second, ez.Duplicated(X.copy(), dx), ez.Const(u), ez.Const(V))
    third = 6 * np.cos(X) - 6 * X * np.sin(X) - X * X * np.cos(X)  # d³/dx³ of sin(x) x²
    np.testing.assert_allclose(dx, third * u * V, rtol=1e-10)


@ez.enzyme_jit
def newton_direction(x):
    """A Newton-like step using a directional derivative along the gradient's sign."""
    v = np.sign(x)
    d = ez.autodiff(ez.Forward, energy, ez.Duplicated(x, v.copy()))
    s = 0.0
    for i in range(x.shape[0]):
        s += (x[i] - 0.1 * d) ** 2
    return s


def test_a_loss_made_of_a_derivative():
    check_all(newton_direction, (X,), (0,))
