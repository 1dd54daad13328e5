"""GradBench ``lse``: LogSumExp with the max trick, ``a = max x``,
``LSE(x) = a + log Σ exp(x_i − a)``, and its gradient. Inputs as in GradBench: x uniform in
[0, 1) (``numpy.random.seed(31337)``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..timing import Inputs
from ._common import floats, random_direction, reverse_gradient, unknown
from ._jit import jit, njit

GRADBENCH_FUNCTIONS: tuple[str, ...] = ("primal", "gradient")
ACTIVE = (True,)
SIZES: dict[str, Any] = {"quick": 10_000, "full": 1_280_000, "sweep": [10_000, 160_000]}


@jit
def lse(x):
    a = x[0]
    for i in range(1, x.shape[0]):
        if x[i] > a:
            a = x[i]
    s = 0.0
    for i in range(x.shape[0]):
        s += np.exp(x[i] - a)
    return a + np.log(s)


@njit
def hand_gradient(x):
    """Hand-written gradient: softmax(x)."""
    a = x.max()
    g = np.empty_like(x)
    s = 0.0
    for i in range(x.shape[0]):
        g[i] = np.exp(x[i] - a)
        s += g[i]
    for i in range(x.shape[0]):
        g[i] /= s
    return (g,)


def generate(n: int, seed: int = 31337) -> dict[str, Any]:
    """GradBench's lse input for n elements."""
    return {"x": np.random.RandomState(seed).rand(n).tolist()}


def arguments(inp: dict[str, Any]) -> tuple[Any, ...]:
    """GradBench input -> (x,)."""
    return (floats(inp["x"]),)


def make_inputs(n: int) -> Inputs:
    """Kernel inputs for n elements, with a random direction."""
    args = (np.random.RandomState(31337).rand(n),)
    return Inputs(args, random_direction(args, ACTIVE), {"n": n})


def size_label(n: int) -> str:
    """``n=10000``."""
    return f"n={n}"


def array_objective(xp: Any, x: Any) -> Any:
    """The same LSE as array code (the max is a constant shift: its derivative cancels)."""
    a = xp.stop_gradient(xp.amax(x, axis=0))
    return a + xp.log(xp.sum(xp.exp(x - a), axis=0))


def gradbench_prepare(function: str, input: dict[str, Any]) -> Callable[[], Any]:
    """Decode once; ``primal`` -> LSE(x), ``gradient`` -> its gradient (enzpy reverse)."""
    args = arguments(input)
    if function == "primal":
        return lambda: float(lse(*args))
    if function == "gradient":
        return lambda: reverse_gradient(lse, args, ACTIVE)[0]
    raise unknown("lse", function, GRADBENCH_FUNCTIONS)


def gradbench(function: str, input: dict[str, Any]) -> Any:
    """One GradBench evaluation of ``function`` (see :func:`gradbench_prepare`)."""
    return gradbench_prepare(function, input)()


#: the kernel the benchmark times and differentiates
PRIMAL = lse
