"""Adjoints of float arguments: summed in the reverse sweep in a slot of its own (a sum LLVM
may reassociate, so a loop adding into it vectorizes) and added to the caller's accumulator
when the sweep returns: parameters used in every iteration of a loop, in loops left early,
passed twice to a callee, a callee's parameter summed in its own loop; against central
differences of the whole map and the dot test."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from harness import check_all

import enzpy as ez


@ez.enzyme_jit
def _relaxation(x, omega, sweeps):
    """Over-relaxed sweeps in place: omega's adjoint sums every point of every sweep."""
    n = x.shape[0]
    for _ in range(sweeps):
        for i in range(1, n - 1):
            x[i] = (1.0 - omega) * x[i] + omega * 0.5 * (x[i - 1] + x[i + 1])
    return np.sum(x * x)


@ez.enzyme_jit
def _left_early(x, a, t):
    """Returns from inside the loop once a partial sum exceeds t (two ways out)."""
    s = 0.0
    for i in range(x.shape[0]):
        s += np.sin(a * x[i])
        if s > t:
            return s * a
    return s + a


@numba.njit
def _scaled(x, a, b):
    s = 0.0
    for i in range(x.shape[0]):
        s += a * np.cos(b * x[i])
    return s


@ez.enzyme_jit
def _passed_twice(x, a):
    """The same float passed as two parameters of a callee summing in its own loop."""
    return _scaled(x, a, a) + a * _scaled(x, 0.5, a)


CASES = {
    "relaxation": (_relaxation, lambda r: (r.uniform(size=40), 1.3, 6), (0, 1)),
    "left early": (_left_early, lambda r: (r.uniform(size=30), 0.7, 4.0), (0, 1)),
    "never left": (_left_early, lambda r: (r.uniform(size=30), 0.7, 1e9), (0, 1)),
    "passed twice": (_passed_twice, lambda r: (r.uniform(size=25), 1.3), (0, 1)),
}


@pytest.mark.parametrize("name", CASES)
def test_float_adjoints_against_finite_differences(name):
    f, make, active = CASES[name]
    check_all(f, make(np.random.default_rng(5)), active)
