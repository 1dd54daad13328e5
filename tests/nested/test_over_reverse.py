"""Differentiating functions that call `ez.autodiff(ez.Reverse, ...)` or `ez.gradient`: the
inner reverse derivative's nestable twin (its tape in memory that never moves, malloc'ed
chunks freed at the end) is linked as IR and differentiated again. Forward over reverse,
reverse over reverse, split mode over reverse and three levels, checked against finite
differences, the dot test, closed forms and the symmetry of second derivatives."""

import math

import numba
import numpy as np
import pytest
from harness import check_all

import enzpy as ez


@ez.enzyme_jit
def energy(x):
    """A loop, a local array, a loop whose trip count varies, a branch."""
    y = np.empty_like(x)
    for i in range(x.shape[0]):
        y[i] = x[i] * x[i]
    s = 0.0
    for i in range(x.shape[0]):
        t = x[i]
        for _ in range(i % 3):
            t = math.sin(t) + 0.5 * t
        s += math.sin(x[i]) * y[i] + (t * t if x[i] > 0 else t)
    return s


@ez.enzyme_jit
def gradient_into(x, g):
    """g = ∇energy(x), by reverse mode inside; returns |∇energy|²."""
    dx = np.zeros_like(x)
    ez.autodiff(ez.Reverse, energy, ez.Duplicated(x, dx))
    s = 0.0
    for i in range(x.shape[0]):
        g[i] = dx[i]
        s += dx[i] * dx[i]
    return s


def _gradient(x):
    g = np.zeros_like(x)
    gradient_into(x, g)
    return g


def _hessian_fd(x, eps=1e-6):
    cols = [(_gradient(x + eps * e) - _gradient(x - eps * e)) / (2 * eps) for e in np.eye(x.size)]
    return np.array(cols).T


X = np.array([0.5, 1.2, -0.3, 2.0, 0.7])
V = np.array([1.0, 0.5, -2.0, 0.25, -0.5])


def test_forward_over_reverse_is_a_hessian_vector_product():
    g, dg = np.zeros_like(X), np.zeros_like(X)
    ez.autodiff(ez.Forward, gradient_into, ez.Duplicated(X.copy(), V.copy()), ez.Duplicated(g, dg))
    np.testing.assert_allclose(g, _gradient(X), rtol=1e-14)
    np.testing.assert_allclose(dg, _hessian_fd(X) @ V, rtol=1e-6, atol=1e-8)


def test_reverse_over_reverse_is_a_hessian_vector_product():
    dx = np.zeros_like(X)
    ann = (ez.Duplicated(X.copy(), dx), ez.Duplicated(np.zeros_like(X), V.copy()))
    ez.autodiff(ez.Reverse, gradient_into, ez.Const, *ann)
    np.testing.assert_allclose(dx, _hessian_fd(X).T @ V, rtol=1e-6, atol=1e-8)


def test_the_hessian_is_symmetric():
    h = np.array([ez.hvp(energy, X, e) for e in np.eye(X.size)])
    np.testing.assert_allclose(h, h.T, rtol=1e-13, atol=1e-13)
    rows = []
    for e in np.eye(X.size):
        g, dg = np.zeros_like(X), np.zeros_like(X)
        ez.autodiff(ez.Forward, gradient_into, ez.Duplicated(X.copy(), e), ez.Duplicated(g, dg))
        rows.append(dg)
    np.testing.assert_allclose(np.array(rows), h, rtol=1e-13, atol=1e-13)


def test_against_finite_differences_and_the_dot_test():
    check_all(gradient_into, (X, np.zeros_like(X)), (0, 1))


def test_split_mode_over_reverse():
    dx = np.zeros_like(X)
    ann = (ez.Duplicated(X.copy(), dx), ez.Duplicated(np.zeros_like(X), V.copy()))
    fwd, rev = ez.autodiff_thunk(ez.ReverseSplitWithPrimal, gradient_into, ez.Active, *ann)
    tape, primal, _ = fwd(*ann)
    assert primal == pytest.approx(_gradient(X) @ _gradient(X), rel=1e-14)
    rev(*ann, 0.0, tape)
    np.testing.assert_allclose(dx, _hessian_fd(X) @ V, rtol=1e-6, atol=1e-8)


@ez.enzyme_jit
def mixed(a, b):
    return math.exp(a * b) + a * a * b


@ez.enzyme_jit
def d_da(a, b):
    """∂mixed/∂a from the adjoints reverse mode returns inside."""
    return ez.autodiff(ez.Reverse, mixed, ez.Active, ez.Active(a), ez.Active(b))[0]


def test_scalar_adjoints_returned_inside():
    a, b = 0.7, -1.3
    assert d_da(a, b) == pytest.approx(b * math.exp(a * b) + 2 * a * b, rel=1e-14)
    daa = ez.autodiff(ez.Forward, d_da, ez.Duplicated(a, 1.0), ez.Const(b))
    dab = ez.autodiff(ez.Reverse, d_da, ez.Active, ez.Const(a), ez.Active(b))[1]
    assert daa == pytest.approx(b * b * math.exp(a * b) + 2 * b, rel=1e-13)
    assert dab == pytest.approx((1 + a * b) * math.exp(a * b) + 2 * a, rel=1e-13)


@ez.enzyme_jit
def gradient_norm(x):
    """|∇energy(x)|² by ez.gradient inside."""
    g = ez.gradient(ez.Reverse, energy, x)[0]
    return (g * g).sum()


def test_gradient_inside():
    grad = ez.gradient(ez.Reverse, gradient_norm, X)[0]
    np.testing.assert_allclose(grad, 2 * _hessian_fd(X) @ _gradient(X), rtol=1e-6)
    check_all(gradient_norm, (X,), (0,))


@ez.enzyme_jit
def curvature(x, v):
    """vᵀ H(x) v, by forward mode over reverse mode inside."""
    g, dg = np.zeros_like(x), np.zeros_like(x)
    ez.autodiff(ez.Forward, gradient_into, ez.Duplicated(x, v.copy()), ez.Duplicated(g, dg))
    return (dg * v).sum()


@ez.enzyme_jit
def cubic(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += math.sin(x[i]) * x[i] * x[i]
    return s


def gradient_into_of(f):
    """A jitted `g(x, out)`: out = ∇f(x), by reverse mode inside."""

    @ez.enzyme_jit
    def gradient_into(x, out):
        dx = np.zeros_like(x)
        ez.autodiff(ez.Reverse, f, ez.Duplicated(x, dx))
        out[:] = dx
        return 0.0

    return gradient_into


cubic_gradient_into = gradient_into_of(cubic)


@ez.enzyme_jit
def cubic_curvature(x, v):
    """vᵀ H(x) v of `cubic` (forward over reverse inside)."""
    g, dg = np.zeros_like(x), np.zeros_like(x)
    ez.autodiff(ez.Forward, cubic_gradient_into, ez.Duplicated(x, v.copy()), ez.Duplicated(g, dg))
    return (dg * v).sum()


@pytest.mark.slow
def test_three_levels():
    """Third derivatives: forward over forward over reverse and reverse over forward over
    reverse, against the closed form of d³/dx³ (sin(x) x²)."""
    third = 6 * np.cos(X) - 6 * X * np.sin(X) - X * X * np.cos(X)
    u = np.array([0.3, -1.0, 0.7, 0.1, 2.0])
    t = ez.autodiff(ez.Forward, cubic_curvature, ez.Duplicated(X.copy(), u), ez.Const(V))
    assert t == pytest.approx(np.sum(third * u * V * V), rel=1e-12)
    dx = np.zeros_like(X)
    ez.autodiff(ez.Reverse, cubic_curvature, ez.Duplicated(X.copy(), dx), ez.Const(V))
    np.testing.assert_allclose(dx, third * V * V, rtol=1e-12)
    check_all(curvature, (X, V), (0, 1))


@ez.enzyme_jit
def long_energy(x):
    """Enough iterations that the inner tape spans many chunks."""
    s = 0.0
    for i in range(x.shape[0]):
        t = x[i]
        k = 0
        while k < 1 + i % 4:
            t = math.sin(t) * 1.1 + 0.1 * t * t
            k += 1
        s += t * x[(i + 1) % x.shape[0]]
    return s


long_gradient_into = gradient_into_of(long_energy)


def test_a_tape_of_many_chunks():
    rng = np.random.default_rng(3)
    x = rng.uniform(-1.0, 1.0, 1500)
    v = rng.uniform(-1.0, 1.0, 1500)
    g, dg = np.zeros_like(x), np.zeros_like(x)
    ez.autodiff(ez.Forward, long_gradient_into, ez.Duplicated(x.copy(), v), ez.Duplicated(g, dg))
    eps = 1e-6
    fd = np.zeros_like(x)
    for s in (1, -1):
        gs = np.zeros_like(x)
        long_gradient_into(x + s * eps * v, gs)
        fd += s * gs / (2 * eps)
    np.testing.assert_allclose(dg, fd, rtol=1e-5, atol=1e-7)
    dx = np.zeros_like(x)
    ann = (ez.Duplicated(x.copy(), dx), ez.Duplicated(np.zeros_like(x), v.copy()))
    ez.autodiff(ez.Reverse, long_gradient_into, ez.Active, *ann)
    np.testing.assert_allclose(dx, dg, rtol=1e-10, atol=1e-12)  # H symmetric


@ez.enzyme_jit
def _sin_weighted(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += np.sin(x[i]) * x[i] * x[i]
    return s


_sin_weighted_gradient_into = gradient_into_of(_sin_weighted)


def test_a_loop_room_ending_at_every_place_of_a_chunk():
    """Sizes around the end of the nestable tape's first chunk: the inner loop's values fill
    it exactly, or cross into the next one. Hv against the closed form of the diagonal H."""
    for n in range(480, 540):
        x = np.linspace(0.1, 1.0, n)
        g, hv = np.zeros(n), np.zeros(n)
        ann = (ez.Duplicated(x.copy(), x.copy()), ez.Duplicated(g, hv))
        ez.autodiff(ez.Forward, _sin_weighted_gradient_into, *ann)
        h = 2 * np.sin(x) + 4 * x * np.cos(x) - x * x * np.sin(x)
        np.testing.assert_allclose(hv, h * x, rtol=1e-12, atol=1e-14, err_msg=f"n={n}")


@ez.enzyme_jit
def pairwise(x, lo, hi):
    """A recursive pairwise sum of x[i]³."""
    if hi - lo == 1:
        return x[lo] ** 3
    mid = (lo + hi) // 2
    return pairwise(x, lo, mid) + pairwise(x, mid, hi)


@ez.enzyme_jit
def pairwise_gradient_into(x, g):
    dx = np.zeros_like(x)
    ez.autodiff(ez.Reverse, pairwise, ez.Duplicated(x, dx), ez.Const(0), ez.Const(x.shape[0]))
    g[:] = dx
    return 0.0


def test_over_a_recursive_function():
    g, dg = np.zeros_like(X), np.zeros_like(X)
    ann = (ez.Duplicated(X.copy(), V.copy()), ez.Duplicated(g, dg))
    ez.autodiff(ez.Forward, pairwise_gradient_into, *ann)
    np.testing.assert_allclose(g, 3 * X * X, rtol=1e-14)
    np.testing.assert_allclose(dg, 6 * X * V, rtol=1e-14)


@ez.enzyme_jit
def smooth_in_place(x):
    """Overwrites its argument, then reads it back."""
    for i in range(x.shape[0]):
        x[i] = math.sin(x[i]) + 0.1 * x[(i + 1) % x.shape[0]]
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] * x[i] * x[(i + 2) % x.shape[0]]
    return s


@ez.enzyme_jit
def gradient_of_mutating(x, g):
    """∇ of smooth_in_place at x (on a copy, which it overwrites), into g."""
    xc = x.copy()
    ez.autodiff(ez.Reverse, smooth_in_place, ez.Active, ez.Duplicated(xc, g))
    return xc.sum()


@pytest.mark.slow
def test_over_an_inner_function_that_mutates_its_argument():
    check_all(gradient_of_mutating, (X, np.zeros_like(X)), (0, 1))


@numba.njit
def damped(p, q):
    if p + q < 0.3:
        return p
    return math.exp(-(p / (1.0 + q * q)) * (p / (1.0 + q * q)))


@ez.enzyme_jit
def may_raise(x, y, a, n):
    """Slice assignments that may raise: the exception record Numba builds on that path
    holds a temporary array with derivatives, and goes to `excinfo`, which carries none
    (found by tests/property/test_nested_programs.py)."""
    m = x.shape[0]
    s = 0.0
    x[:] = x
    s += x[0]
    x[:] = np.tanh(y) * 0.5
    return s * damped((x.sum() ** 2), x[m // 2])


@ez.enzyme_jit
def gradient_of_may_raise(x, y, a, n, w):
    dx, dy = np.zeros_like(x), np.zeros_like(y)
    r = ez.autodiff(
        ez.Reverse,
        may_raise,
        ez.Active,
        ez.Duplicated(x, dx),
        ez.Duplicated(y, dy),
        ez.Active(a),
        n,
    )
    return (dx * w).sum() + (dy * w).sum() + r[2]


@pytest.mark.slow
def test_over_an_inner_function_with_a_raising_path():
    rng = np.random.default_rng(0)
    x, y, w = rng.uniform(-1, 1, 12), rng.uniform(-1, 1, 12), rng.standard_normal(12)
    check_all(gradient_of_may_raise, (x, y, 0.3, 0, w), (0, 1, 2))
