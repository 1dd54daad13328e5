"""Reverse calls release what they allocate: tape, shadow allocations, shadow stack memory."""

from __future__ import annotations

import os

import numpy as np

import enzpy as ez


def _rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@ez.enzyme_jit
def _allocating_loss(x, y):
    t = np.zeros(x.shape[0])  # a local array: its shadow is allocated and freed per call
    for i in range(x.shape[0]):
        t[i] = np.exp(x[i]) * y[i]
    return (t * x).sum() + _helper(y)  # array expression + a differentiated callee


@ez.enzyme_jit
def _helper(y):
    s = 0.0
    for i in range(y.shape[0]):
        s += y[i] * y[i]
    return s


def _run(n: int, x, y, dx, dy) -> None:
    for _ in range(n):
        ez.autodiff(
            ez.Reverse, _allocating_loss, ez.Active, ez.Duplicated(x, dx), ez.Duplicated(y, dy)
        )


def test_100k_reverse_calls_keep_memory_flat():
    x, y = np.linspace(0.1, 1.0, 16), np.linspace(1.0, 2.0, 16)
    dx, dy = np.zeros(16), np.zeros(16)
    _run(20_000, x, y, dx, dy)  # warm up: compilation, caches, allocator pools
    before = _rss_bytes()
    _run(100_000, x, y, dx, dy)
    grown = _rss_bytes() - before
    # one leaked 16-double shadow per call would be > 12 MB; allow allocator noise only
    assert grown < 2 * 1024 * 1024, f"resident memory grew by {grown / 1e6:.1f} MB"
    # and the gradient is still right after all those calls (it accumulated 120k times)
    expected_dx = 120_000 * (np.exp(x) * y * x + np.exp(x) * y)
    np.testing.assert_allclose(dx, expected_dx, rtol=1e-9)
