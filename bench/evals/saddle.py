"""GradBench ``saddle`` (Pearlmutter and Siskind): the saddle point of
``(x1² + y1²) − (x2² + y2²)`` by gradient descent on ``p1`` over the value of an inner gradient
ascent on ``p2``. The outer gradient differentiates through the whole inner optimizer, inner
gradients included: nested differentiation through a data-dependent loop. The four functions
name the outer and inner modes (``fr``: forward mode over reverse mode); all four give the same
point ``[x1, y1, x2, y2]``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._argmin import argmin_solver
from ._common import require_enzpy, unknown
from ._jit import ez, jit

GRADBENCH_FUNCTIONS: tuple[str, ...] = ("rr", "rf", "fr", "ff")


@jit
def objective(p1, p2):
    return (p1[0] * p1[0] + p1[1] * p1[1]) - (p2[0] * p2[0] + p2[1] * p2[1])


@jit
def inner_cost(p2, p1):
    return objective(p1, p2)


@jit
def inner_gradient_r(p2, p1):
    """∇ over p2 by reverse mode."""
    g = np.zeros(2)
    ez.autodiff(ez.Reverse, inner_cost, ez.Active, ez.Duplicated(p2, g), ez.Const(p1))
    return g


@jit
def inner_gradient_f(p2, p1):
    """∇ over p2 by two forward-mode passes."""
    g = np.empty(2)
    for k in range(2):
        e = np.zeros(2)
        e[k] = 1.0
        g[k] = ez.autodiff(ez.Forward, inner_cost, ez.Duplicated(p2, e), ez.Const(p1))
    return g


def inner_maximum(argmax: Any) -> Any:
    """`max_primal(p1, start)`: the largest value over p2 (gradient ascent from `start`)."""

    @jit
    def max_primal(p1, start):
        return inner_cost(argmax(start, p1), p1)

    return max_primal


def maximum_gradient(max_primal: Any, mode: str) -> Any:
    """∇ max_primal over p1 by reverse mode or two forward-mode passes."""

    @jit
    def gradient(p1, start):
        g = np.zeros(2)
        if mode == "r":
            ez.autodiff(ez.Reverse, max_primal, ez.Active, ez.Duplicated(p1, g), ez.Const(start))
        else:
            for k in range(2):
                e = np.zeros(2)
                e[k] = 1.0
                g[k] = ez.autodiff(ez.Forward, max_primal, ez.Duplicated(p1, e), ez.Const(start))
        return g

    return gradient


def _solvers() -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    gradients = {"r": inner_gradient_r, "f": inner_gradient_f}
    solvers = {}
    for inner, gradient in gradients.items():
        argmax = argmin_solver(inner_cost, gradient, sign=-1.0)
        max_primal = inner_maximum(argmax)
        for outer in "rf":
            argmin = argmin_solver(max_primal, maximum_gradient(max_primal, outer))

            def solve(start, argmin=argmin, argmax=argmax):
                p1 = argmin(start, start)
                return np.concatenate((p1, argmax(start, p1)))

            solvers[outer + inner] = solve
    return solvers


_SOLVERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {}


def gradbench_prepare(function: str, input: dict[str, Any]) -> Callable[[], Any]:
    """``rr`` / ``rf`` / ``fr`` / ``ff``: the saddle point ``[x1, y1, x2, y2]`` found from
    ``input["start"]``."""
    require_enzpy()
    if function not in GRADBENCH_FUNCTIONS:
        raise unknown("saddle", function, GRADBENCH_FUNCTIONS)
    if not _SOLVERS:
        _SOLVERS.update(_solvers())
    solve, start = _SOLVERS[function], np.array(input["start"], dtype=np.float64)
    return lambda: solve(start).tolist()


def gradbench(function: str, input: dict[str, Any]) -> Any:
    """One GradBench evaluation of ``function`` (see :func:`gradbench_prepare`)."""
    return gradbench_prepare(function, input)()
