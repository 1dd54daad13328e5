"""Large blocks derivatives allocate are kept between calls (`bridge.pool`): gradients stay
right (central differences), the blocks kept do not grow from one call to the next and go
back to the system with `ez.release_tapes()`, arrays
a derivative returns are never handed out again while alive, and derivatives running on
several threads (Numba's `prange`, Python threads) share the pool safely."""

from __future__ import annotations

import threading

import numba
import numpy as np

import enzpy as ez
from enzpy.bridge import pool

N = 20_000  # 160 kB arrays: above pool.LARGE


@ez.enzyme_jit
def energy(x, w):
    t = np.sin(x) * w  # temporaries the reverse sweep keeps, and their shadows
    u = t * t + x
    return np.sum(u * np.cos(t))


def _energy(x, w):
    t = np.sin(x) * w
    return np.sum((t * t + x) * np.cos(t))


def _fd(x, w, h=1e-6):
    g = np.empty_like(x)
    for i in range(0, x.size, 997):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (_energy(x + e, w) - _energy(x - e, w)) / (2 * h)
    return g


def test_kept_blocks_are_reused_and_gradients_stay_right():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(N), rng.standard_normal(N)
    reference = _fd(x, w)
    kept = []
    for _ in range(4):
        gx, _ = ez.gradient(ez.Reverse, energy, x, ez.Const(w))
        np.testing.assert_allclose(gx[::997], reference[::997], rtol=1e-6, atol=1e-8)
        kept.append(pool.kept_bytes())
    assert kept[0] >= N * 8  # the temporaries of the first call, kept
    assert kept[1:] == kept[:-1]  # then reused: nothing more is kept
    assert kept[-1] <= pool.CAP
    assert ez.release_tapes() >= kept[-1] and pool.kept_bytes() == 0  # given back
    np.testing.assert_allclose(
        ez.gradient(ez.Reverse, energy, x, ez.Const(w))[0][::997], reference[::997], rtol=1e-6
    )


@ez.enzyme_jit
def scaled(x):
    return x * 2.0 + 1.0  # a new array, returned to the caller


def test_arrays_a_derivative_returns_are_not_handed_out_again():
    x = np.linspace(0.0, 1.0, N)
    outs = [
        ez.autodiff(ez.ForwardWithPrimal, scaled, ez.Duplicated(x, np.ones(N))) for _ in range(3)
    ]
    for tangent, primal in outs:
        np.testing.assert_array_equal(primal, x * 2.0 + 1.0)
        np.testing.assert_array_equal(tangent, np.full(N, 2.0))
    arrays = [a for pair in outs for a in pair]
    assert not any(np.shares_memory(a, b) for i, a in enumerate(arrays) for b in arrays[i + 1 :])
    outs[0][1][:] = -1.0  # (written after the later calls: nothing else holds its memory)
    np.testing.assert_array_equal(outs[1][1], x * 2.0 + 1.0)


@ez.enzyme_jit(parallel=True)
def chunks(x, w):
    s = 0.0
    for c in numba.prange(4):
        t = np.sin(x) * w[c]  # each thread's own large temporary
        s += np.sum(t * t)
    return s


def test_threads_share_the_pool():
    x = np.linspace(-1.0, 1.0, N)
    w = np.array([0.5, -1.0, 2.0, 0.25])
    expected_gx = 2.0 * np.sin(x) * np.cos(x) * np.sum(w * w)
    expected_gw = 2.0 * w * np.sum(np.sin(x) ** 2)
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    for _ in range(3):
        gx, gw = ez.gradient(ez.Reverse, chunks, x, w)
        np.testing.assert_allclose(gx, expected_gx, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(gw, expected_gw, rtol=1e-12)

    rng = np.random.default_rng(1)
    inputs = [(rng.standard_normal(N), rng.standard_normal(N)) for _ in range(4)]
    wanted = [ez.gradient(ez.Reverse, energy, a, ez.Const(b))[0] for a, b in inputs]
    got: dict[int, np.ndarray] = {}

    def work(k: int) -> None:
        for _ in range(5):
            got[k] = ez.gradient(ez.Reverse, energy, *inputs[k][:1], ez.Const(inputs[k][1]))[0]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(4):
        np.testing.assert_array_equal(got[k], wanted[k])


def test_pooled_arrays_are_aligned_as_numbas():
    """Numba's data follows its 48-byte MemInfo: the pool's blocks put it on 64 bytes."""
    x = np.linspace(0.0, 1.0, N)
    tangent, primal = ez.autodiff(ez.ForwardWithPrimal, scaled, ez.Duplicated(x, np.ones(N)))
    assert tangent.ctypes.data % 64 == 0 and primal.ctypes.data % 64 == 0


def test_the_pool_follows_recent_sizes_within_its_slots_and_cap():
    """More sizes freed than the pool has slots: it keeps the latest within `SLOTS` blocks
    and `CAP` bytes, hands a kept block back for its size only, and gives every block back
    on release."""
    malloc, free = pool.functions()
    pool.release()
    sizes = [pool.LARGE + 64 * k for k in range(pool.SLOTS + 100)]
    blocks = [malloc(n, None) for n in sizes]
    assert all(b and b % 16 == 0 for b in blocks)
    for b in blocks:
        free(b, None)
    assert 0 < pool.kept_bytes() <= min(pool.CAP, pool.SLOTS * sizes[-1])
    again = malloc(sizes[-1], None)  # the last one freed is kept: handed back
    assert again == blocks[-1]
    other = malloc(sizes[-1] + 8, None)  # no block of that size: a new one
    assert other and other != again
    free(again, None)
    free(other, None)
    huge = malloc(pool.CAP + 64, None)  # (never kept)
    free(huge, None)
    assert pool.kept_bytes() <= pool.CAP
    assert pool.release() > 0 and pool.kept_bytes() == 0
