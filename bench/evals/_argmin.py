"""GradBench's gradient descent for the nested evals (``particle``, ``saddle``): the solver of
GradBench's ``gd.hpp``, step for step, written once for any objective and gradient."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._jit import jit


def argmin_solver(
    objective: Any, gradient: Any, sign: float = 1.0
) -> Callable[[np.ndarray], np.ndarray]:
    """`argmin(x0, *rest)`: gradient descent on the jitted `sign * objective(x, *rest)` with
    the jitted `gradient(x, *rest) -> array` (`sign` -1: an argmax), both compiled into the
    solver's loop, which enzpy can differentiate in turn."""

    @jit
    def argmin(x0, *rest):
        x = x0.copy()
        fx = sign * objective(x, *rest)
        gx = sign * gradient(x, *rest)
        i = 0
        eta = 1e-5
        while True:
            if np.sqrt(np.sum(gx * gx)) <= 1e-5:
                return x
            if i == 10:
                eta *= 2
                i = 0
                continue
            x_prime = x - eta * gx
            if np.sqrt(np.sum((x - x_prime) ** 2)) <= 1e-5:
                return x
            fx_prime = sign * objective(x_prime, *rest)
            if fx_prime < fx:
                x = x_prime
                fx = fx_prime
                gx = sign * gradient(x, *rest)
                i += 1
            else:
                eta /= 2
                i = 0

    return argmin
