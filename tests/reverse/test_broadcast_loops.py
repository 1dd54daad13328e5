"""Loops of array expressions, which Numba indexes through broadcasting choices (the index
follows the loop's counter, or stays 0 along a dimension of length 1): the reverse
derivative versions such a loop (`transforms.loops.version_broadcast_loops`), one copy for
when no operand is broadcast, whose reverse loop LLVM vectorizes, the other for the rest
(also the copy into a slice, whose source index Numba clamps).
In that copy, slices of one array start at the constants Numba clamps them from, so the
reverse sweep sums their cells in a window. The same compiled code is checked with operands
broadcast and not, and with slices clamped (arrays shorter than the slices' starts), against
central differences of the whole map and by the dot test; the copy and its window are found
in the reverse sweep's IR."""

from __future__ import annotations

import re

import numpy as np
import pytest
from harness import check_all, reverse_functions

import enzpy as ez


def _heat(u, kappa, steps):
    """Slices of one array, the result stored back into a slice of it."""
    for _ in range(steps):
        u[1:-1] = u[1:-1] + kappa * (u[2:] - 2 * u[1:-1] + u[:-2])
    return 0.5 * np.sum(u * u)


def _smooth_2d(u, v, w):
    """A 9-point slice stencil from u into v, weighted by w."""
    v[1:-1, 1:-1] = (
        u[:-2, :-2]
        + u[:-2, 1:-1]
        + u[:-2, 2:]
        + u[1:-1, :-2]
        + u[1:-1, 2:]
        + u[2:, :-2]
        + u[2:, 1:-1]
        + u[2:, 2:]
        - 8.0 * u[1:-1, 1:-1]
    ) * w
    return np.sum(v * v)


def _wave(u, v, c, steps):
    """An in-place slice update (`v[1:-1] += ...`: Numba's copy into the slice clamps its
    source's index, `umin(i, m)`) and a whole-array one."""
    for _ in range(steps):
        v[1:-1] += c * (u[2:] - 2.0 * u[1:-1] + u[:-2])
        u += 0.1 * v
    return np.sum(u * u) + np.sum(v * v)


def _assign(u, w):
    """A slice assigned from an array that may have one element (broadcast)."""
    u[1:-1] = w
    s = 0.0
    for x in u:
        s += x * x * np.sin(x)
    return s


def _mixed(a, b, c):
    """Three operands, any of which may have length 1."""
    out = a * b + np.sin(c) * a
    return np.sum(out * out)


def _kinked(a, b, c):
    """Functions with branches per element (`np.maximum`, `np.abs`) on broadcast operands."""
    return np.sum(np.maximum(a * b, c) ** 2 + np.abs(a - c))


def _outer(x, row, col):
    """2-D: a row and a column broadcast against a matrix."""
    y = np.tanh(x * row + col)
    return np.sum(y * x)


_RNG = np.random.default_rng(5)
_V = [_RNG.uniform(0.2, 1.0, n) for n in (9, 9, 9, 1, 1)]


@pytest.mark.parametrize(
    ("f", "args", "active"),
    [
        (_heat, (_RNG.uniform(0.0, 1.0, 12), 0.2, 4), (0, 1)),
        (_heat, (_RNG.uniform(0.0, 1.0, 3), 0.2, 2), (0, 1)),
        (_heat, (_RNG.uniform(0.0, 1.0, 2), 0.2, 2), (0, 1)),
        (_heat, (_RNG.uniform(0.0, 1.0, 1), 0.2, 2), (0, 1)),
        (_smooth_2d, (_RNG.random((5, 6)), np.zeros((5, 6)), 0.3), (0, 1, 2)),
        (_smooth_2d, (_RNG.random((2, 6)), np.zeros((2, 6)), 0.3), (0, 1, 2)),
        (_wave, (_RNG.random(10), _RNG.random(10), 0.3, 3), (0, 1, 2)),
        (_wave, (_RNG.random(3), _RNG.random(3), 0.3, 2), (0, 1, 2)),
        (_assign, (_RNG.random(7), _RNG.random(5)), (0, 1)),
        (_assign, (_RNG.random(7), _RNG.random(1)), (0, 1)),
        (_mixed, (_V[0], _V[1], _V[2]), (0, 1, 2)),
        (_mixed, (_V[0], _V[3], _V[2]), (0, 1, 2)),
        (_mixed, (_V[3], _V[1], _V[4]), (0, 1, 2)),
        (_kinked, (_V[0], _V[1], _V[2] * 0.5), (0, 1, 2)),
        (_kinked, (_V[0], _V[3], _V[4] * 0.5), (0, 1, 2)),
        (_outer, (_RNG.random((3, 4)), _RNG.random((1, 4)), _RNG.random((3, 1))), (0, 1, 2)),
        (_outer, (_RNG.random((3, 4)), _RNG.random((3, 4)), _RNG.random((3, 4))), (0, 1, 2)),
        (_outer, (_RNG.random((1, 4)), _RNG.random((3, 1)), _RNG.random((1, 1))), (0, 1, 2)),
    ],
    ids=[
        "heat",
        "heat_one_inner_point",
        "heat_no_inner_point",
        "heat_one_point",
        "smooth_2d",
        "smooth_2d_two_rows",
        "wave",
        "wave_one_inner_point",
        "assign",
        "assign_broadcast",
        "none_broadcast",
        "one_broadcast",
        "most_broadcast",
        "kinked",
        "kinked_broadcast",
        "row_and_column",
        "matrices",
        "all_broadcast",
    ],
)
def test_against_finite_differences_and_the_dot_test(f, args, active):
    check_all(ez.enzyme_jit(f), list(args), list(active))


@pytest.mark.parametrize(
    ("f", "args", "active"),
    [
        (_heat, (_V[0], 0.2, 2), (0, 1)),
        (_mixed, tuple(_V[:3]), (0, 1, 2)),
    ],
    ids=["heat", "mixed"],
)
def test_the_reverse_sweep_has_the_copy(f, args, active, tmp_path):
    (diffe, *_) = reverse_functions(f, args, active, tmp_path).values()
    assert ".unbroadcast" in diffe


def test_the_copy_into_a_slice_has_a_copy_with_its_source_index_unclamped(tmp_path):
    """`u[1:-1] = w` copies through `umin(i, m)` (and has no other array expression)."""
    (diffe, *_) = reverse_functions(_assign, (_V[0], _V[1][:7]), (0, 1), tmp_path).values()
    assert ".unbroadcast" in diffe


def test_slices_of_one_array_are_summed_in_a_window(tmp_path):
    """`u[2:]`, `u[1:-1]` and `u[:-2]` at their constant starts: one window over u."""
    (diffe, *_) = reverse_functions(_heat, (_V[0], 0.2, 2), (0, 1), tmp_path).values()
    assert len(re.findall(r"%window\.anchor\d* = alloca", diffe)) == 1
