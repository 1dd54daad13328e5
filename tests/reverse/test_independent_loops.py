"""Reverse loops marked parallel for LLVM (`analysis.independent`): iterations that touch
cells of their own, or add into cells one per iteration and statement, are marked (their
accesses in an access group the latch's `!llvm.loop` lists); loops whose reverse
iterations depend on each other (a recurrence, `+=` into neighbours' cells, an argument
written and another read that may be the same array) are not. Every kernel is checked
against central differences of the whole map and by the dot test, with the arguments apart
and, where the function allows, as one array."""

from __future__ import annotations

import re

import numpy as np
import pytest
from harness import check_all, check_one_array_twice, reverse_functions

import enzpy as ez


def _scale_into(x, y, a):
    """y private (written where it is read), x added into once per iteration."""
    for i in range(x.shape[0]):
        y[i] = a * np.sin(x[i]) + y[i] * y[i]
    return y[0]


def _temporary(x, w):
    """A temporary written by one loop and read by the next, both marked."""
    t = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        t[i] = np.exp(-x[i] * x[i])
    s = 0.0
    for i in range(x.shape[0]):
        s += t[i] * w[i]
    return s


def _rows(u):
    """Two rows of one array read per iteration: adds into two bases of one array."""
    n, m = u.shape
    s = 0.0
    for i in range(1, n - 1):
        for j in range(m):
            s += u[i - 1, j] * u[i + 1, j]
    return s


def _neighbours(x, k):
    """Adds into x[i - 1], x[i] and x[i + 1]: not marked (LLVM's store-to-load forwarding
    stalls between overlapping vector updates made jacobi slower)."""
    s = 0.0
    for i in range(1, x.shape[0] - 1):
        s += k[i] * (x[i - 1] - 2.0 * x[i] + x[i + 1]) ** 2
    return s


def _recurrence(x, y):
    """y[i] from y[i - 1]: iterations depend on each other, not marked."""
    for i in range(1, x.shape[0]):
        y[i] = y[i - 1] * np.cos(x[i]) + y[i]
    return y[x.shape[0] - 1]


def _rotation(x, steps):
    """Three buffers a time loop rotates: the store into `nxt` is apart from `cur` and
    `prev` in every step, so the update is marked (with the loops of `x * 0.9` and
    `cur * cur`: three; two before rotations were known apart here)."""
    prev, cur, nxt = x.copy(), x * 0.9, np.empty_like(x)
    for _ in range(steps):
        for i in range(x.shape[0]):
            nxt[i] = 1.5 * cur[i] - 0.5 * prev[i] * cur[i]
        prev, cur, nxt = cur, nxt, prev
    return np.sum(cur * cur)


def _reverse_sweep(f, args, active, tmp_path) -> str:
    """The reverse sweep's IR of a fresh compile of `f` for `args` (`active`: indices)."""
    (diffe, *_) = (
        text
        for name, text in reverse_functions(f, args, active, tmp_path).items()
        if not name.endswith(".aliased")
    )
    return diffe


def _marked(ir: str) -> int:
    return len(re.findall(r"!llvm\.loop !\d+", ir))


_RNG = np.random.default_rng(5)
_X, _Y, _W = (_RNG.uniform(0.2, 1.0, 9) for _ in range(3))
_U = _RNG.uniform(-1.0, 1.0, (5, 4))


@pytest.mark.parametrize(
    ("f", "args", "active", "marked"),
    [
        (_scale_into, (_X, _Y, 0.7), (0, 1), 1),
        (_temporary, (_X, _W), (0, 1), 2),
        (_rows, (_U,), (0,), 1),
        (_neighbours, (_X, _W), (0, 1), 0),
        (_recurrence, (_X, _Y), (0, 1), 0),
        (_rotation, (_X, 4), (0,), 3),
    ],
    ids=["scale_into", "temporary", "rows", "neighbours", "recurrence", "rotation"],
)
def test_marked_loops_and_their_derivatives(f, args, active, marked, tmp_path):
    assert _marked(_reverse_sweep(f, args, active, tmp_path)) == marked
    check_all(ez.enzyme_jit(f), list(args), list(active))


def test_an_argument_written_is_not_marked_against_another_that_may_be_it():
    """`_scale_into(x, x, a)`: the twin for one array (its loop not marked) against central
    differences of a -> f(x, x, a) in x."""
    check_one_array_twice(ez.enzyme_jit(_scale_into), _X, 0.7)
