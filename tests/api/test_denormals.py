"""Subnormal floats in reverse sweeps (`enzyme_jit(flush_denormals=...)`): by default a
reverse sweep flushes them to zero (x86's MXCSR, restored after), so an adjoint below
2.2e-308 in magnitude is 0 while the primal's results keep IEEE arithmetic; with
`flush_denormals=False` subnormal adjoints are kept. A mixture whose negligible weights
underflow into subnormals is checked both ways against central differences and by the dot
test."""

from __future__ import annotations

import platform

import numpy as np
import pytest
from harness import check_all

import enzpy as ez

pytestmark = pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64"), reason="MXCSR is x86's"
)

TINY = 2.0**-1040  # subnormal (the smallest normal double is 2**-1022)


def _scaled(x, c):
    return c * x[0] * x[1]


def _mixture(x, mu):
    """log sum_k exp(-(x_i - mu_k)^2 / 2) summed over i: far components' weights are
    subnormal or zero."""
    s = 0.0
    for i in range(x.shape[0]):
        t = -0.5 * (x[i] - mu) ** 2
        m = t.max()
        s += m + np.log(np.sum(np.exp(t - m)))
    return s


def _gradient(f, x, c):
    dx = np.zeros_like(x)
    (_, _), value = ez.autodiff(ez.ReverseWithPrimal, f, ez.Active, ez.Duplicated(x, dx), c)
    return dx, value


def test_a_subnormal_adjoint_is_flushed_and_the_primal_kept():
    x = np.array([1.0, 0.5])
    dx, value = _gradient(ez.enzyme_jit(_scaled), x, TINY)
    assert value == TINY * 1.0 * 0.5 and value != 0.0  # the forward sweep: IEEE
    assert np.all(dx == 0.0)  # TINY * 0.5 and TINY * 1.0: subnormal


def test_subnormal_adjoints_are_kept_when_asked():
    x = np.array([1.0, 0.5])
    dx, _ = _gradient(ez.enzyme_jit(flush_denormals=False)(_scaled), x, TINY)
    np.testing.assert_array_equal(dx, [TINY * 0.5, TINY * 1.0])


def test_the_callers_floating_point_state_is_restored():
    x = np.array([1.0, 0.5])
    _gradient(ez.enzyme_jit(_scaled), x, TINY)
    assert np.float64(TINY) * np.float64(1.5) != 0.0  # Python's own arithmetic after it


@pytest.mark.parametrize("flush", [True, False], ids=["flushed", "kept"])
def test_a_mixture_with_underflowing_weights(flush):
    rng = np.random.default_rng(3)
    x = rng.normal(size=6)
    mu = np.array([0.0, 0.7, 37.5, 38.0, 60.0])  # exp(-700..-750): subnormal and zero
    check_all(ez.enzyme_jit(flush_denormals=flush)(_mixture), [x, mu], [0, 1])
