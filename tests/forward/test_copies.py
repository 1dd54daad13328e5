"""Copies of arrays (`x.copy()`, a memcpy in Numba's IR) carry their tangents, and in reverse
mode give their adjoints back to the source."""

from __future__ import annotations

import numpy as np
import pytest
from harness import check_forward, check_reverse, dot_test

import enzpy as ez


@ez.enzyme_jit
def copy_then_overwrite(x):
    y = x.copy()
    y[0] = 2.0
    return (y * y).sum()


def test_forward_through_copy():
    check_forward(copy_then_overwrite, (np.array([1.0, 2.0, 3.0]),), (0,))
    (g,) = ez.gradient(ez.Forward, copy_then_overwrite, np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(g, [0.0, 4.0, 6.0], rtol=1e-14)


@ez.enzyme_jit
def copy_in_a_loop(a, m):
    s = 0.0
    for k in range(m):
        b = a.copy()  # a 2-D copy, once per iteration, of memory a changes in between
        for i in range(a.shape[0]):
            for j in range(a.shape[1]):
                a[i, j] = np.sin(b[i, j]) * (k + 1.0)
                s += b[i, j] * a[i, j]
    return s


def test_reverse_through_copy():
    x = np.array([1.0, 2.0, 3.0])
    check_reverse(copy_then_overwrite, (x,), (0,))
    dot_test(copy_then_overwrite, (x,), (0,))
    (g,) = ez.gradient(ez.Reverse, copy_then_overwrite, x)
    np.testing.assert_allclose(g, [0.0, 4.0, 6.0], rtol=1e-14)
    a = np.random.default_rng(3).standard_normal((3, 4))
    for dtype in (np.float64, np.float32):
        args = (a.astype(dtype), 3)
        check_reverse(copy_in_a_loop, args, (0,))
        dot_test(copy_in_a_loop, args, (0,))


@ez.enzyme_jit
def _sum_powers(y, n):
    s = 0.0
    k = y.shape[0]
    while k > 0:  # halving: no induction variable, so not inlined
        k //= 2
        s += y[k] ** n
    return s


@ez.enzyme_jit
def copy_read_elsewhere(x):
    return _sum_powers(x.copy(), 3)  # the copy is read only by the callee


def test_reverse_copy_read_by_a_callee():
    """The copy's element type is learned from the callee that reads it."""
    x = np.array([1.0, 2.0, 3.0])
    check_forward(copy_read_elsewhere, (x,), (0,))
    check_reverse(copy_read_elsewhere, (x,), (0,))
    dot_test(copy_read_elsewhere, (x,), (0,))


@ez.enzyme_jit
def assign_slice(x, y):
    y[:] = x  # Numba copies through a temporary (NRT_Allocate/NRT_Free) when they may overlap
    s = 0.0
    for i in range(y.shape[0]):
        s += np.sin(y[i]) * y[i]
    return s


@ez.enzyme_jit
def shift_in_place(x, m):
    s = 0.0
    for _ in range(m):
        x[1:] = x[:-1]  # overlapping source and destination: the temporary is used
        x[0] = np.cos(x[1]) * 1.5
        s += x[-1] * x[0]
    return s


@ez.enzyme_jit
def shift_rows(a):
    a[1:, :] = a[:-1, :]
    a[0, :] = 2.0 * a[1, :]
    return (a * a * a).sum()


@pytest.mark.parametrize(
    ("f", "args", "active"),
    [
        (assign_slice, (np.array([0.3, -1.2, 2.0, 0.7]), np.zeros(4)), (0, 1)),
        (shift_in_place, (np.array([0.3, -1.2, 2.0, 0.7, 1.1]), 3), (0,)),
        (shift_rows, (np.random.default_rng(5).standard_normal((4, 3)),), (0,)),
    ],
)
def test_slice_assignment_in_both_modes(f, args, active):
    check_forward(f, args, active)
    check_reverse(f, args, active)
    dot_test(f, args, active)
