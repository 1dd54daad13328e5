"""GradBench ``llsq``: linear least squares objective
``y(x) = ½ Σ_i (s_i − Σ_j x_j t_i^j)²`` with ``t_i = −1 + 2i/(n − 1)``, ``s_i = sign(t_i)``,
differentiated with respect to the m coefficients x. Inputs as in GradBench: x uniform in
[0, 1) (``numpy.random.seed(31337)``), m = 128. The powers ``t_i^j`` are a running product,
as in GradBench's own implementations (C++, Julia, Futhark's ``scan (*)``, JAX's
``cumprod``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..timing import Inputs
from ._common import floats, random_direction, reverse_gradient, unknown
from ._jit import jit, njit

GRADBENCH_FUNCTIONS: tuple[str, ...] = ("primal", "gradient")
ACTIVE = (True, False)
SIZES: dict[str, Any] = {"quick": (64, 16), "full": (4096, 128), "sweep": [(256, 128)]}


@jit
def llsq(x, n):
    m = x.shape[0]
    total = 0.0
    for i in range(n):
        t = -1.0 + i * 2.0 / (n - 1)
        r = 0.0
        if t > 0.0:
            r = 1.0
        elif t < 0.0:
            r = -1.0
        power = 1.0
        for j in range(m):
            r -= x[j] * power
            power *= t
        total += r * r
    return total / 2.0


@njit
def hand_gradient(x, n):
    """Hand-written gradient: −Σ_i r_i t_i^j."""
    m = x.shape[0]
    g = np.zeros(m)
    for i in range(n):
        t = -1.0 + i * 2.0 / (n - 1)
        r = float(np.sign(t))
        p = 1.0
        for j in range(m):
            r -= x[j] * p
            p *= t
        p = 1.0
        for j in range(m):
            g[j] -= r * p
            p *= t
    return g, None


def arguments(inp: dict[str, Any]) -> tuple[Any, ...]:
    """GradBench input -> (x, n)."""
    return floats(inp["x"]), int(inp["n"])


def make_inputs(size: tuple[int, int]) -> Inputs:
    """Kernel inputs for (n, m), with a random direction in x."""
    n, m = size
    args = (np.random.RandomState(31337).rand(m), n)
    return Inputs(args, random_direction(args, ACTIVE), {"n": n, "m": m})


def size_label(size: tuple[int, int]) -> str:
    """``n=4096 m=128``."""
    return f"n={size[0]} m={size[1]}"


def array_objective(xp: Any, x: Any, n: int) -> Any:
    """The same objective as array code (the powers a cumulative product, computed inside the
    differentiated function as GradBench's JAX tool does)."""
    t = -1.0 + xp.arange(n) * 2.0 / (n - 1)
    factors = xp.concatenate(
        [xp.ones((n, 1)), xp.broadcast_to(t[:, None], (n, x.shape[0] - 1))], axis=1
    )
    r = xp.sign(t) - xp.cumprod(factors, axis=1) @ x
    return xp.sum(r * r, axis=0) / 2.0


def gradbench_prepare(function: str, input: dict[str, Any]) -> Callable[[], Any]:
    """Decode once; ``primal`` -> y(x), ``gradient`` -> ∇y (enzpy reverse)."""
    args = arguments(input)
    if function == "primal":
        return lambda: float(llsq(*args))
    if function == "gradient":
        return lambda: reverse_gradient(llsq, args, ACTIVE)[0]
    raise unknown("llsq", function, GRADBENCH_FUNCTIONS)


def gradbench(function: str, input: dict[str, Any]) -> Any:
    """One GradBench evaluation of ``function`` (see :func:`gradbench_prepare`)."""
    return gradbench_prepare(function, input)()


#: the kernel the benchmark times and differentiates
PRIMAL = llsq
