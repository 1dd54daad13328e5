"""GradBench ``det``: determinant of an ℓ × ℓ matrix by expansion by minors (cmpad's
``det_by_minor``), and its gradient with respect to A. GradBench's definition is recursive, and
enzpy differentiates it as written (tests/reverse/test_recursion.py); here it is the same
algorithm with the recursion turned into an explicit stack (one frame per minor size), the same
products and sums in the same order, because Numba runs that primal about 6× faster than the
recursive one (each call passes the arrays anew): at ℓ=7, 0.05 ms against 0.34 ms, with
enzpy's reverse pass 2.8× and 2.4× its primal.
Inputs as in GradBench: A uniform in [0, 1) (``numpy.random.seed(31337)``)."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from ..timing import Inputs
from ._common import floats, random_direction, reverse_gradient, unknown
from ._jit import jit, njit

GRADBENCH_FUNCTIONS: tuple[str, ...] = ("primal", "gradient")
ACTIVE = (True, False)
SIZES: dict[str, Any] = {"quick": 5, "full": 9, "sweep": [7]}


@jit
def det_by_minor(a, ell):
    # r[i] / c[i]: the row / column following i in the current minor; r[ell] / c[ell]: the first
    n = ell
    r = np.empty(n + 1, dtype=np.int64)
    c = np.empty(n + 1, dtype=np.int64)
    for i in range(n):
        r[i] = i + 1
        c[i] = i + 1
    r[n] = 0
    c[n] = 0
    # one frame per minor size m: first row, current column, previous column, sign, column
    # counter and the running sum of the minor's determinant
    row0 = np.empty(n + 1, dtype=np.int64)
    col = np.empty(n + 1, dtype=np.int64)
    prev = np.empty(n + 1, dtype=np.int64)
    sign = np.empty(n + 1, dtype=np.int64)
    count = np.empty(n + 1, dtype=np.int64)
    acc = np.empty(n + 1)
    m = n
    entering = True
    result = 0.0
    while True:
        if entering:
            row0[m] = r[n]
            col[m] = c[n]
            if m == 1:
                result = a[row0[m] * n + col[m]]
                if m == n:
                    break
                m += 1
                entering = False
                continue
            acc[m] = 0.0
            sign[m] = 1
            r[n] = r[row0[m]]
            prev[m] = n
            count[m] = 0
            c[prev[m]] = c[col[m]]
            m -= 1
            continue
        # back in minor m with the determinant of its sub-minor in `result`
        c[prev[m]] = col[m]
        term = a[row0[m] * n + col[m]] * result
        if sign[m] > 0:
            acc[m] = acc[m] + term
        else:
            acc[m] = acc[m] - term
        prev[m] = col[m]
        col[m] = c[col[m]]
        sign[m] = -sign[m]
        count[m] += 1
        if count[m] < m:
            c[prev[m]] = c[col[m]]
            m -= 1
            entering = True
            continue
        r[n] = row0[m]
        result = acc[m]
        if m == n:
            break
        m += 1
    return result


@njit
def hand_gradient(a, ell):
    """Hand-written gradient: the cofactor matrix det(A)·A⁻ᵀ (LU based, not by minors)."""
    m = a.reshape((ell, ell))
    g = np.linalg.det(m) * np.linalg.inv(m).T
    return np.ascontiguousarray(g).reshape(ell * ell), None


def arguments(inp: dict[str, Any]) -> tuple[Any, ...]:
    """GradBench input -> (A flat row-major, ell)."""
    return floats(inp["A"]), int(inp["ell"])


def make_inputs(ell: int) -> Inputs:
    """Kernel inputs for an ell × ell matrix, with a random direction in A."""
    args = (np.random.RandomState(31337).rand(ell * ell), ell)
    return Inputs(args, random_direction(args, ACTIVE), {"ell": ell})


def size_label(ell: int) -> str:
    """``ℓ=9``."""
    return f"ℓ={ell}"


@functools.cache
def _permutations(ell: int) -> tuple[np.ndarray, np.ndarray]:
    """All permutations of range(ell) (ℓ! × ℓ, flat indices into A row-major) and their signs."""
    perms = np.array(list(itertools.permutations(range(ell))), dtype=np.int64).reshape(-1, ell)
    inversions = np.zeros(len(perms), dtype=np.int64)
    for i in range(ell):
        for j in range(i + 1, ell):
            inversions += perms[:, i] > perms[:, j]
    return perms + np.arange(ell) * ell, np.where(inversions % 2 == 0, 1.0, -1.0)


def array_objective(xp: Any, a: Any, ell: int) -> Any:
    """The same determinant as array code: the non-recursive form of the expansion, all ℓ!
    signed products at once (GradBench's suggestion for array languages)."""
    idx, signs = _permutations(ell)
    return xp.sum(xp.asarray(signs) * xp.prod(a[xp.asarray(idx)], axis=1), axis=0)


def gradbench_prepare(function: str, input: dict[str, Any]) -> Callable[[], Any]:
    """Decode once; ``primal`` -> det(A), ``gradient`` -> ∂det/∂A row-major (enzpy reverse)."""
    args = arguments(input)
    if function == "primal":
        return lambda: float(det_by_minor(*args))
    if function == "gradient":
        return lambda: reverse_gradient(det_by_minor, args, ACTIVE)[0]
    raise unknown("det", function, GRADBENCH_FUNCTIONS)


def gradbench(function: str, input: dict[str, Any]) -> Any:
    """One GradBench evaluation of ``function`` (see :func:`gradbench_prepare`)."""
    return gradbench_prepare(function, input)()


#: the kernel the benchmark times and differentiates
PRIMAL = det_by_minor
