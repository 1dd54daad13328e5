"""GradBench ``kmeans``: the k-means cost ``f(P, C) = Σ_i min_j |C_j − P_i|²`` and its
gradient with respect to the centroids C. GradBench's ``dir`` asks for J·H⁻¹ with the (diagonal)
Hessian H: H·1 = diag H is one Hessian–vector product, ``ez.hvp`` (reverse over forward mode).
The benchmark times the gradient. Inputs as in GradBench: points uniform in [0, 1)ⁿˣᵈ,
centroids = the last k points."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import enzpy as ez

from ..timing import Inputs
from ._common import floats, random_direction, reverse_gradient, unknown
from ._jit import jit, njit

GRADBENCH_FUNCTIONS: tuple[str, ...] = ("cost", "dir")
ACTIVE = (False, True)
SIZES: dict[str, Any] = {
    "quick": (10, 1000, 8),
    "full": (100, 10_000, 8),
    "sweep": [(10, 10_000, 8), (100, 10_000, 16)],
}


@jit
def kmeans_cost(points, centroids):
    n, d = points.shape
    k = centroids.shape[0]
    cost = 0.0
    for i in range(n):
        closest = np.inf
        for j in range(k):
            dist = 0.0
            for e in range(d):
                diff = points[i, e] - centroids[j, e]
                dist += diff * diff
            closest = min(closest, dist)
        cost += closest
    return cost


@njit
def hand_gradient(points, centroids):
    """Hand-written gradient: 2 (C_j − P_i) summed over the points i nearest to centroid j."""
    n, d = points.shape
    k = centroids.shape[0]
    g = np.zeros_like(centroids)
    for i in range(n):
        best, arg = np.inf, 0
        for j in range(k):
            dist = 0.0
            for e in range(d):
                diff = points[i, e] - centroids[j, e]
                dist += diff * diff
            if dist < best:
                best, arg = dist, j
        for e in range(d):
            g[arg, e] += 2.0 * (centroids[arg, e] - points[i, e])
    return None, g


def generate(size: tuple[int, int, int], seed: int = 31337) -> tuple[np.ndarray, np.ndarray]:
    """Points uniform in [0, 1)^(n×d) and the last k of them as centroids (every cluster
    non-empty)."""
    k, n, d = size
    points = np.random.RandomState(seed).rand(n, d)
    return points, points[-k:].copy()


def arguments(inp: dict[str, Any]) -> tuple[Any, ...]:
    """GradBench input -> (points, centroids)."""
    return floats(inp["points"]), floats(inp["centroids"])


def make_inputs(size: tuple[int, int, int]) -> Inputs:
    """Kernel inputs for (k, n, d), with a random direction in the centroids."""
    args = generate(size)
    return Inputs(args, random_direction(args, ACTIVE), dict(zip("knd", size, strict=True)))


def size_label(size: tuple[int, int, int]) -> str:
    """``k=100 n=10000 d=8``."""
    return "k={} n={} d={}".format(*size)


def array_objective(xp: Any, points: Any, centroids: Any) -> Any:
    """The same cost as array code."""
    diff = points[:, None, :] - centroids[None, :, :]
    return xp.sum(xp.amin(xp.sum(diff * diff, axis=2), axis=1), axis=0)


@jit
def _cost_in_centroids(centroids, points):
    return kmeans_cost(points, centroids)


def direction(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """GradBench's ``dir``: J·H⁻¹ with J the enzpy gradient and diag H = H·1 by `ez.hvp`."""
    (_, jac) = reverse_gradient(kmeans_cost, (points, centroids), ACTIVE)
    return jac / ez.hvp(_cost_in_centroids, centroids, np.ones_like(centroids), points)


def gradbench_prepare(function: str, input: dict[str, Any]) -> Callable[[], Any]:
    """Decode once; ``cost`` -> f(P, C), ``dir`` -> J·H⁻¹ (see the module docstring)."""
    args = arguments(input)
    if function == "cost":
        return lambda: float(kmeans_cost(*args))
    if function == "dir":
        return lambda: direction(*args)
    raise unknown("kmeans", function, GRADBENCH_FUNCTIONS)


def gradbench(function: str, input: dict[str, Any]) -> Any:
    """One GradBench evaluation of ``function`` (see :func:`gradbench_prepare`)."""
    return gradbench_prepare(function, input)()


#: the kernel the benchmark times and differentiates
PRIMAL = kmeans_cost
