"""GradBench ``ode`` (cmpad's ``an_ode``): the linear system ``y_0' = x_0``,
``y_i' = x_i y_{i−1}``, ``y(0) = 0``, integrated to t = 2 with s classical Runge–Kutta steps;
the primal returns y(2), the gradient is that of its last element with respect to x. Inputs as
in GradBench: x uniform in [0, 1) (``numpy.random.seed(31337)``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..timing import Inputs
from ._common import floats, random_direction, reverse_gradient, unknown
from ._jit import jit

GRADBENCH_FUNCTIONS: tuple[str, ...] = ("primal", "gradient")
#: ode_solve(x, s, y): x active, y is the output (its shadow starts at zero)
ACTIVE = (True, False, True)
SIZES: dict[str, Any] = {"quick": (30, 10), "full": (10_000, 10), "sweep": [(1000, 100)]}


@jit
def ode_fun(x, y, z):
    z[0] = x[0]
    for i in range(1, x.shape[0]):
        z[i] = x[i] * y[i - 1]


@jit
def ode_solve(x, s, y):
    n = x.shape[0]
    h = 2.0 / s
    k1 = np.empty(n)
    k2 = np.empty(n)
    k3 = np.empty(n)
    k4 = np.empty(n)
    tmp = np.empty(n)
    for i in range(n):
        y[i] = 0.0
    for _ in range(s):
        ode_fun(x, y, k1)
        for i in range(n):
            tmp[i] = y[i] + h * k1[i] / 2.0
        ode_fun(x, tmp, k2)
        for i in range(n):
            tmp[i] = y[i] + h * k2[i] / 2.0
        ode_fun(x, tmp, k3)
        for i in range(n):
            tmp[i] = y[i] + h * k3[i]
        ode_fun(x, tmp, k4)
        for i in range(n):
            y[i] += h * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]) / 6.0
    return y[n - 1]


def arguments(inp: dict[str, Any]) -> tuple[Any, ...]:
    """GradBench input -> (x, s, y) with y a fresh output buffer."""
    x = floats(inp["x"])
    return x, int(inp["s"]), np.zeros_like(x)


def make_inputs(size: tuple[int, int]) -> Inputs:
    """Kernel inputs for (n, s), with a random direction in x (y's is zero: it is overwritten)."""
    n, s = size
    x = np.random.RandomState(31337).rand(n)
    args = (x, s, np.zeros(n))
    direction = random_direction(args, ACTIVE)
    return Inputs(args, (direction[0], None, np.zeros(n)), {"n": n, "s": s})


def size_label(size: tuple[int, int]) -> str:
    """``n=10000 s=10``."""
    return f"n={size[0]} s={size[1]}"


def array_objective(xp: Any, x: Any, s: int, y: Any) -> Any:
    """The same integration as array code; returns y_{n−1}(2) (``y`` is ignored)."""
    h = 2.0 / s

    def f(v: Any) -> Any:
        return xp.concatenate([x[:1], x[1:] * v[:-1]])

    def step(_: Any, v: Any) -> Any:
        k1 = f(v)
        k2 = f(v + h * k1 / 2.0)
        k3 = f(v + h * k2 / 2.0)
        k4 = f(v + h * k3)
        return v + h * (k1 + 2.0 * k2 + 2.0 * k3 + k4) / 6.0

    return xp.fold(s, step, xp.zeros_like(x))[-1]


def gradbench_prepare(function: str, input: dict[str, Any]) -> Callable[[], Any]:
    """Decode once; ``primal`` -> y(2), ``gradient`` -> ∂y_{n−1}(2)/∂x (enzpy reverse)."""
    args = arguments(input)
    if function == "primal":

        def primal() -> np.ndarray:
            ode_solve(*args)
            return args[2]

        return primal
    if function == "gradient":
        return lambda: reverse_gradient(ode_solve, args, ACTIVE)[0]
    raise unknown("ode", function, GRADBENCH_FUNCTIONS)


def gradbench(function: str, input: dict[str, Any]) -> Any:
    """One GradBench evaluation of ``function`` (see :func:`gradbench_prepare`)."""
    return gradbench_prepare(function, input)()


#: the kernel the benchmark times and differentiates
PRIMAL = ode_solve
