"""Recursive functions (self and mutual recursion) in forward, reverse and split mode: the
tape holds what each activation needs and the reverse sweep unwinds them in order."""

import math

import numba
import numpy as np
import pytest
from harness import check_all

import enzpy as ez


@ez.enzyme_jit
def power(x, n):
    if n == 0:
        return 1.0
    return x * power(x, n - 1)


@ez.enzyme_jit
def pairwise(x, lo, hi):
    """A pairwise reduction, recursing on both halves."""
    if hi - lo == 1:
        return x[lo] * x[lo]
    mid = (lo + hi) // 2
    return pairwise(x, lo, mid) + math.sin(pairwise(x, mid, hi))


@ez.enzyme_jit
def continued_fraction(x, a, n):
    if n == 0:
        return a
    return a + x[n - 1] / continued_fraction(x, a, n - 1)


@ez.enzyme_jit
def det_by_minors(a, n):
    """GradBench's determinant: expansion along the first row, a fresh minor per term."""
    if n == 1:
        return a[0, 0]
    s = 0.0
    sign = 1.0
    for j in range(n):
        minor = np.empty((n - 1, n - 1))
        for r in range(1, n):
            k = 0
            for c in range(n):
                if c != j:
                    minor[r - 1, k] = a[r, c]
                    k += 1
        s += sign * a[0, j] * det_by_minors(minor, n - 1)
        sign = -sign
    return s


@ez.enzyme_jit
def tree_walk(x, left, right, node):
    """A walk over a binary tree stored as index arrays (-1: no child)."""
    if node < 0:
        return 1.0
    return x[node] * tree_walk(x, left, right, left[node]) + 0.5 * tree_walk(
        x, left, right, right[node]
    )


@ez.enzyme_jit
def smooth_in_place(x, lo, hi):
    """Recursion that writes its argument: each level overwrites what the next one reads."""
    if hi - lo < 2:
        return
    mid = (lo + hi) // 2
    x[mid] = math.tanh(x[lo] + x[hi - 1]) * x[mid]
    smooth_in_place(x, lo, mid)
    smooth_in_place(x, mid, hi)


@ez.enzyme_jit
def smoothed_energy(x):
    smooth_in_place(x, 0, x.shape[0])
    return (x * x).sum()


@numba.njit
def _odd(x, n):
    if n == 0:
        return 0.0
    return math.cos(x) + _even(x * 1.1, n - 1)


@ez.enzyme_jit
def _even(x, n):
    if n == 0:
        return x
    return x * x + _odd(x, n - 1)


@ez.enzyme_jit
def mutual(x, n):
    return _even(x, n) * 0.5


X = np.array([0.3, 0.7, -1.2, 0.5, 0.9, 0.2])
A = np.random.default_rng(0).standard_normal((4, 4))
LEFT = np.array([1, 3, 5, -1, -1, -1])
RIGHT = np.array([2, 4, -1, -1, -1, -1])
CASES = {
    "power": (power, (1.3, 5), (0,)),
    "pairwise": (pairwise, (X, 0, 6), (0,)),
    "continued_fraction": (continued_fraction, (X + 2.0, 1.5, 6), (0, 1)),
    "det_by_minors": (det_by_minors, (A, 4), (0,)),
    "tree_walk": (tree_walk, (X, LEFT, RIGHT, 0), (0,)),
    "in_place": (smoothed_energy, (X,), (0,)),
    "mutual": (mutual, (0.8, 7), (0,)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_both_modes_against_finite_differences(name):
    f, args, active = CASES[name]
    check_all(f, args, active)


def test_split_mode_unwinds_every_activation():
    a = A.copy()
    da = np.zeros_like(a)
    fwd, rev = ez.autodiff_thunk(
        ez.ReverseSplitWithPrimal, det_by_minors, ez.Active, ez.Duplicated(a, da), 4
    )
    tape, det, _ = fwd(ez.Duplicated(a, da), 4)
    a[...] = 0.0  # the reverse pass works at the point the forward pass saw
    rev(ez.Duplicated(a, da), 4, 1.0, tape)
    assert det == pytest.approx(np.linalg.det(A), rel=1e-12)
    np.testing.assert_allclose(da, np.linalg.det(A) * np.linalg.inv(A).T, rtol=1e-10)


def test_tape_grows_with_the_depth():
    (g,) = ez.gradient(ez.Reverse, power, 1.01, ez.Const(10))[:1]
    small = ez.last_tape_bytes()
    (g2,) = ez.gradient(ez.Reverse, power, 1.01, ez.Const(1000))[:1]
    large = ez.last_tape_bytes()
    assert g == pytest.approx(10 * 1.01**9) and g2 == pytest.approx(1000 * 1.01**999)
    assert 50 * small < large < 200 * small
