"""Reverse loops that sum the adjoints of neighbouring cells in registers
(`analysis.windows`): a loop reading `x[i - 1]`, `x[i]` and `x[i + 1]` adds into each cell
of x's shadow once, when the cell leaves the window, instead of three times. The windows
made are counted in the reverse sweep's IR, and every kernel is checked against central
differences of the whole map and by the dot test: cells read only at the ends or only on
some iterations, gaps between offsets, loops left early, float32, a loop of one iteration,
arrays rotated by each step, and loops that must not have a window (an array written where
it is read, also under two names swapped by each step; an argument written and another read
that may be the same array)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from harness import check_all, check_one_array_twice, reverse_functions

import enzpy as ez


def _laplacian(x, y):
    """y[i] from three neighbours of x: one window."""
    for i in range(1, x.shape[0] - 1):
        y[i] = x[i - 1] - 2.0 * x[i] + x[i + 1]
    return np.sum(y * y)


def _chain(k, x):
    """Springs in a chain fixed at both ends: x[i - 1], x[i + 1] and k[i + 1] read on some
    iterations only (the cells past the ends are never read): two windows."""
    n = x.shape[0]
    s = 0.0
    for i in range(n):
        xl = x[i - 1] if i > 0 else 0.0
        xr = x[i + 1] if i < n - 1 else 0.0
        kr = k[i + 1] if i < n - 1 else 0.0
        f = k[i] * (xl - x[i]) + kr * (xr - x[i])
        s += f * f * x[i]
    return s


def _gaps(x, w):
    """Offsets -2 and +2 (and 0 in w): cells between them are read by no load at the
    ends."""
    s = 0.0
    for i in range(2, x.shape[0] - 2):
        s += w[i] * np.sin(x[i - 2]) * x[i + 2]
    return s


def _early_exit(x, limit):
    """Left by a `break` before the neighbours are read: the last iteration reads x[i]
    alone."""
    s = 0.0
    for i in range(1, x.shape[0] - 1):
        if x[i] > limit:
            break
        s += x[i - 1] * x[i + 1] + x[i] * x[i]
    return s


def _wave(c2, u0, steps):
    """Three arrays rotated by each step (`prev, cur, nxt = cur, nxt, prev`): the store
    into `nxt` is apart from `cur`'s window."""
    n = u0.shape[0]
    prev, cur, nxt = u0.copy(), u0.copy(), np.zeros(n)
    for _ in range(steps):
        for i in range(1, n - 1):
            nxt[i] = 2.0 * cur[i] - prev[i] + c2[i] * (cur[i - 1] - 2.0 * cur[i] + cur[i + 1])
        prev, cur, nxt = cur, nxt, prev
    return np.sum(cur * cur)


def _ping_pong(u0, k, steps):
    """Two arrays swapped by each step."""
    a, b = u0.copy(), np.empty_like(u0)
    b[0], b[-1] = a[0], a[-1]
    for _ in range(steps):
        for i in range(1, u0.shape[0] - 1):
            b[i] = a[i] + k * np.sin(a[i - 1] - 2.0 * a[i] + a[i + 1])
        a, b = b, a
    return np.sum(a * a)


def _swapped_with_itself(u0, k, steps):
    """Two names for one array swapped by each step: not apart, no window."""
    a = u0.copy()
    b = a
    for _ in range(steps):
        for i in range(1, u0.shape[0] - 1):
            b[i] = a[i - 1] * k + a[i + 1]
        a, b = b, a
    return np.sum(a * a)


def _in_place(x):
    """Gauss-Seidel: x[i] written from x[i - 1] and x[i + 1], whose shadow the store's
    reverse reads: no window."""
    for i in range(1, x.shape[0] - 1):
        x[i] = 0.5 * (x[i - 1] + x[i + 1]) + 0.1 * x[i]
    return np.sum(x * x)


def _into(x, y):
    """y written, x's neighbours read: a window only while x and y are apart."""
    for i in range(1, x.shape[0] - 1):
        y[i] = x[i - 1] * x[i + 1] + y[i]
    return np.sum(y)


def _windows(ir: str) -> int:
    return len(re.findall(r"%window\.anchor\d* = alloca", ir))


_RNG = np.random.default_rng(11)
_X, _Y, _W = (_RNG.uniform(0.2, 1.0, 12) for _ in range(3))


@pytest.mark.parametrize(
    ("f", "args", "active", "windows"),
    [
        (_laplacian, (_X, _Y), (0, 1), 1),
        (_laplacian, (_X.astype(np.float32), _Y.astype(np.float32)), (0, 1), 1),
        (_chain, (_W, _X), (0, 1), 2),
        (_chain, (_W[:1], _X[:1]), (0, 1), 2),
        (_gaps, (_X, _W), (0, 1), 1),
        (_early_exit, (_X, 0.8), (0,), 1),
        (_in_place, (_X,), (0,), 0),
        (_wave, (_W, _X, 5), (0, 1), 1),
        (_ping_pong, (_X, 0.3, 4), (0, 1), 1),
        (_swapped_with_itself, (_X, 0.3, 3), (0, 1), 0),
    ],
    ids=[
        "laplacian",
        "float32",
        "chain",
        "one_mass",
        "gaps",
        "early_exit",
        "in_place",
        "wave",
        "ping_pong",
        "swapped_with_itself",
    ],
)
def test_windows_made_and_their_derivatives(f, args, active, windows, tmp_path):
    (diffe, *_) = reverse_functions(f, args, active, tmp_path).values()
    assert _windows(diffe) == windows
    check_all(ez.enzyme_jit(f), list(args), list(active))


def test_an_argument_written_has_no_window_against_another_that_may_be_it(tmp_path):
    """`_into(x, y)` has a window, its twin for arguments sharing memory none: `_into(x, y)`
    against central differences and by the dot test, the twin for one array against
    central differences of x -> _into(x, x)."""
    found = reverse_functions(_into, (_X, _Y), (0, 1), tmp_path)
    windows = {name.endswith(".aliased"): _windows(text) for name, text in found.items()}
    assert windows == {False: 1, True: 0}
    g = ez.enzyme_jit(_into)
    check_all(g, [_X, _Y], [0, 1])
    check_one_array_twice(g, _X)
