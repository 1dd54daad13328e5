"""`x ** n` for a float `x` and an integer `n` (Numba's repeated squaring, differentiated as
`llvm.powi`): every exponent Numba handles, both float widths, both modes, and no tape per
power in a loop."""

from __future__ import annotations

import numpy as np
import pytest
from harness import check_all

import enzpy as ez


@ez.enzyme_jit
def _powers(x, n):
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] ** n + 0.5 * x[i] ** 3
    return s


@pytest.mark.parametrize("n", [-3, -1, 0, 1, 2, 7])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_integer_powers(n, dtype):
    x = np.array([0.7, 1.3, -0.9, 2.1], dtype=dtype)
    check_all(_powers, (x, n), (0,))


@ez.enzyme_jit
def _high_power(x, n):
    return x[0] ** n  # beyond 2**16 Numba falls back to pow


def test_power_beyond_repeated_squaring():
    x = np.array([1.0 + 1e-6])  # (central differences are too coarse for x ** 70000)
    for n in (70_000, -70_000):
        g, _ = ez.gradient(ez.Reverse, _high_power, x, n)
        np.testing.assert_allclose(g, [n * x[0] ** (n - 1)], rtol=1e-12)
        dx = ez.autodiff(ez.Forward, _high_power, ez.Duplicated(x, np.ones(1)), ez.Const(n))
        np.testing.assert_allclose(dx, g[0], rtol=1e-12)


def test_zeroth_power_of_zero_has_derivative_zero():
    x = np.zeros(3)
    g, _ = ez.gradient(ez.Reverse, _powers, x, 0)
    np.testing.assert_array_equal(g, np.zeros(3))  # d(x**0) = 0, d(0.5 x**3) = 0 at 0


@ez.enzyme_jit
def _pair_energy(pos, sigma):
    e = 0.0
    for i in range(pos.shape[0]):
        for j in range(i + 1, pos.shape[0]):
            r2 = (pos[i, 0] - pos[j, 0]) ** 2 + (pos[i, 1] - pos[j, 1]) ** 2
            s6 = (sigma * sigma / r2) ** 3
            e += s6 * s6 - s6
    return e


def test_powers_in_a_loop_keep_one_value_per_pair():
    pos = np.random.default_rng(0).random((40, 2)) * 4
    check_all(_pair_energy, (pos, 0.3), (0, 1))
    ez.gradient(ez.Reverse, _pair_energy, pos, 0.3)
    pairs = 40 * 39 // 2
    assert ez.last_tape_bytes() <= 8 * pairs + 256  # s6 only, no squaring loop per power
