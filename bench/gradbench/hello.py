"""GradBench's ``hello`` eval with enzpy: ``square(x) = x*x`` and ``double``, its derivative.

GradBench asks every new tool to pass ``hello`` first; it exercises the protocol end to end
(the input is a bare number, with no ``min_runs``/``min_seconds``). ``double`` is not written
by hand: it is enzpy's reverse-mode derivative of the compiled ``square``.
"""

from __future__ import annotations

from typing import Any

import enzpy as ez

GRADBENCH_FUNCTIONS: tuple[str, ...] = ("square", "double")


@ez.enzyme_jit
def _square(x):
    return x * x


def square(x: float) -> float:
    """x squared, by the Numba-compiled primal."""
    return float(_square(float(x)))


def double(x: float) -> float:
    """The derivative of ``square`` at ``x`` (that is, 2x), by enzpy's reverse mode."""
    (dx,) = ez.autodiff(ez.Reverse, _square, ez.Active, ez.Active(float(x)))
    return float(dx)


def gradbench(function: str, input: Any) -> float:
    """Evaluate ``function`` ("square" or "double") at the number ``input``."""
    if function == "square":
        return square(input)
    if function == "double":
        return double(input)
    raise ValueError(f"hello has no function {function!r}")
