"""NumPy functions Numba implements as library code: each gradient, in both modes, matches
central finite differences; those without a derivative yet are refused, never wrong."""

from __future__ import annotations

import numpy as np
import pytest

import enzpy as ez


def _slice(x):
    return (x[1:] * x[:-1]).sum()


def _sqrt_sum(x):
    return np.sum(np.sqrt(x) * x)


def _mean(x):
    return np.mean(x**2)


def _iterate(x):
    s = 0.0
    for v in x:
        s += v * v * v
    return s


def _cumsum(x):
    return (np.cumsum(x) * x).sum()


def _reshape(x):
    a = x.reshape(2, 3)
    s = 0.0
    for i in range(2):
        for j in range(3):
            s += a[i, j] * (i + 1) * a[i, j]
    return s


def _outer(x):
    return (np.outer(x, x) * 0.5).sum()


def _prod(x):
    return np.prod(x)


def _min_max(x):
    return min(x[0], x[1]) + max(x[2], x[3])


WEIGHTS = np.linspace(0.3, 1.7, 7)


def _convolve_with_a_global(x):
    """A global array's data is a constant: LLVM folds offsets into it to constant GEPs
    with flags (`getelementptr inbounds nuw (...)`)."""
    return np.sum(np.convolve(x, WEIGHTS[:3]) ** 2)


def _where_2d(x):
    """Numba's 2-D np.where fills an array and returns it: its parent (null) beside the
    data it wrote."""
    m = np.outer(x, x[::-1]) - 0.3
    return np.sum(np.where(m > 0, m, 0.1 * m))


def _triangles(x):
    m = np.outer(x, x)
    return np.sum(np.tril(m) * 2.0 + np.triu(m, 1) ** 2)


SUPPORTED = [
    _slice,
    _sqrt_sum,
    _mean,
    _iterate,
    _cumsum,
    _reshape,
    _outer,
    _prod,
    _min_max,
    _convolve_with_a_global,
    _where_2d,
    _triangles,
]
X = np.array([0.3, 0.7, 0.2, 0.9, 0.6, 0.4])


@pytest.mark.parametrize("mode", ["Forward", "Reverse"])
@pytest.mark.parametrize("py", SUPPORTED, ids=lambda f: f.__name__)
def test_gradient_matches_finite_differences(py, mode):
    f = ez.enzyme_jit(py)
    h = 1e-6
    fd = np.array([(py(X + h * e) - py(X - h * e)) / (2 * h) for e in np.eye(X.size)])
    (g,) = ez.gradient(getattr(ez, mode), f, X.copy())
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


def _condition(x):
    return np.linalg.cond(x.reshape(2, 3) @ x.reshape(3, 2))  # LAPACK's SVD: no rule


@pytest.mark.parametrize("mode", ["Forward", "Reverse"])
def test_without_rule_is_refused(mode):
    with pytest.raises(ez.NoDerivativeError, match="numba_ez_gesdd"):
        ez.gradient(getattr(ez, mode), ez.enzyme_jit(_condition), X.copy())
