"""GradBench ``particle`` (Pearlmutter and Siskind's charged particle): the control ``w`` that
makes a particle, pushed by two charges one of which ``w`` moves, reach the origin. The Euler
integration of its path takes the force as the gradient of the potential (inner derivative),
and the argmin over ``w`` takes the gradient of the whole integration (outer derivative): nested
differentiation, with an unbounded ``while`` loop inside. The four functions name the outer
and inner modes (``rf``: reverse mode over forward mode); all four must give the same ``w``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ._argmin import argmin_solver
from ._common import require_enzpy, unknown
from ._jit import ez, jit

GRADBENCH_FUNCTIONS: tuple[str, ...] = ("rr", "rf", "fr", "ff")


@jit
def potential(charges, x):
    """Σ 1 / |x − charge|."""
    p = 0.0
    for k in range(charges.shape[0]):
        dx = x[0] - charges[k, 0]
        dy = x[1] - charges[k, 1]
        p += 1.0 / math.sqrt(dx * dx + dy * dy)
    return p


@jit
def force_r(charges, x):
    """−∇ₓ potential, by reverse mode."""
    g = np.zeros(2)
    ez.autodiff(ez.Reverse, potential, ez.Active, ez.Const(charges), ez.Duplicated(x, g))
    return -g


@jit
def force_f(charges, x):
    """−∇ₓ potential, by two forward-mode passes."""
    g = np.empty(2)
    for k in range(2):
        e = np.zeros(2)
        e[k] = 1.0
        g[k] = ez.autodiff(ez.Forward, potential, ez.Const(charges), ez.Duplicated(x, e))
    return -g


def euler_miss(force: Any) -> Any:
    """`miss(w)`: the squared distance from the origin where the path crosses the x axis."""

    @jit
    def miss(w):
        charges = np.empty((2, 2))
        charges[0, 0], charges[0, 1] = 10.0, 10.0 - w[0]
        charges[1, 0], charges[1, 1] = 10.0, 0.0
        x = np.array([0.0, 8.0])
        xdot = np.array([0.75, 0.0])
        dt = 0.1
        while True:
            xddot = force(charges, x)
            x = x + dt * xdot
            if x[1] <= 0.0:
                dt_f = -x[1] / xdot[1]
                x_f = x[0] + dt_f * xdot[0]
                return x_f * x_f
            xdot = xdot + dt * xddot

    return miss


def miss_gradient(miss: Any, mode: str) -> Any:
    """d miss / dw by reverse or forward mode (from jitted code)."""

    @jit
    def gradient(w):
        g = np.zeros(1)
        if mode == "r":
            ez.autodiff(ez.Reverse, miss, ez.Active, ez.Duplicated(w, g))
        else:
            g[0] = ez.autodiff(ez.Forward, miss, ez.Duplicated(w, np.ones(1)))
        return g

    return gradient


def _solvers() -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    misses = {"r": euler_miss(force_r), "f": euler_miss(force_f)}
    return {
        outer + inner: argmin_solver(misses[inner], miss_gradient(misses[inner], outer))
        for outer in "rf"
        for inner in "rf"
    }


_SOLVERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {}


def gradbench_prepare(function: str, input: dict[str, Any]) -> Callable[[], Any]:
    """``rr`` / ``rf`` / ``fr`` / ``ff``: the final ``w`` from ``input["w"]``."""
    require_enzpy()
    if function not in GRADBENCH_FUNCTIONS:
        raise unknown("particle", function, GRADBENCH_FUNCTIONS)
    if not _SOLVERS:
        _SOLVERS.update(_solvers())
    solve, w0 = _SOLVERS[function], np.array([float(input["w"])])
    return lambda: float(solve(w0)[0])


def gradbench(function: str, input: dict[str, Any]) -> Any:
    """One GradBench evaluation of ``function`` (see :func:`gradbench_prepare`)."""
    return gradbench_prepare(function, input)()
