"""GradBench ``gmm``: log-likelihood of a Gaussian mixture model with a Wishart prior on the
precision matrices (ADBench's formulation), differentiated with respect to the mixture weights
``alpha``, the means ``mu`` and the precision factors ``q`` (log of the diagonal) and ``l``
(strictly lower triangle, column by column). The data ``x`` is constant.

Inputs follow GradBench's generator: x ~ N(0, 1) (n × d), mu ~ U(0, 1), q, l, alpha ~ N(0, 1),
m = 0, gamma = 1, seed 31337.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..timing import Inputs
from ._common import random_direction, reverse_gradient, unknown
from ._jit import jit
from .lse import lse as logsumexp

GRADBENCH_FUNCTIONS: tuple[str, ...] = ("objective", "jacobian")
SIZES: dict[str, Any] = {
    "quick": (3, 4, 100),
    "full": (20, 25, 1000),
    "sweep": [(2, 5, 1000), (10, 10, 1000), (32, 50, 1000), (64, 50, 1000)],
}
#: which arguments of gmm_objective(alpha, mu, q, l, x, gamma, m) are differentiated
ACTIVE = (True, True, True, True, False, False, False)


@jit
def log_gamma_distrib(a, p):
    out = 0.25 * p * (p - 1) * math.log(math.pi)
    for j in range(1, p + 1):
        out += math.lgamma(a + 0.5 * (1 - j))
    return out


@jit
def gmm_objective(alpha, mu, q, l, x, gamma, m):
    k, d = mu.shape
    n = x.shape[0]
    qdiag = np.empty((k, d))
    sum_qs = np.empty(k)
    for ik in range(k):
        s = 0.0
        for j in range(d):
            qdiag[ik, j] = np.exp(q[ik, j])
            s += q[ik, j]
        sum_qs[ik] = s
    xc = np.empty(d)
    qx = np.empty(d)
    main = np.empty(k)
    slse = 0.0
    for ix in range(n):
        for ik in range(k):
            for j in range(d):
                xc[j] = x[ix, j] - mu[ik, j]
            for j in range(d):
                qx[j] = qdiag[ik, j] * xc[j]
            idx = 0
            for i in range(d):
                for j in range(i + 1, d):
                    qx[j] += l[ik, idx] * xc[i]
                    idx += 1
            sq = 0.0
            for j in range(d):
                sq += qx[j] * qx[j]
            main[ik] = alpha[ik] + sum_qs[ik] - 0.5 * sq
        slse += logsumexp(main)
    # Wishart prior
    nw = d + m + 1
    c = nw * d * (np.log(gamma) - 0.5 * np.log(2.0)) - log_gamma_distrib(0.5 * nw, d)
    prior = 0.0
    for ik in range(k):
        frob = 0.0
        for j in range(d):
            frob += qdiag[ik, j] * qdiag[ik, j]
        for j in range(l.shape[1]):
            frob += l[ik, j] * l[ik, j]
        prior += 0.5 * gamma * gamma * frob - m * sum_qs[ik]
    const = -n * d * 0.5 * np.log(2.0 * np.pi)
    return const + slse - n * logsumexp(alpha) - prior + k * c


def generate(d: int, k: int, n: int, seed: int = 31337) -> dict[str, Any]:
    """GradBench's gmm input (JSON-like dict) for dimension d, k components, n points."""
    rng = np.random.default_rng(seed)
    return {
        "d": d,
        "k": k,
        "n": n,
        "x": rng.normal(size=(n, d)).tolist(),
        "m": 0,
        "gamma": 1.0,
        "mu": rng.uniform(size=(k, d)).tolist(),
        "q": rng.normal(size=(k, d)).tolist(),
        "l": rng.normal(size=(k, d * (d - 1) // 2)).tolist(),
        "alpha": rng.normal(size=k).tolist(),
    }


def arguments(inp: dict[str, Any]) -> tuple[Any, ...]:
    """GradBench input -> the kernel's arguments (alpha, mu, q, l, x, gamma, m)."""
    d, k = int(inp["d"]), int(inp["k"])
    lsz = d * (d - 1) // 2

    def mat(key: str, cols: int) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(inp[key], dtype=np.float64).reshape(-1, cols))

    return (
        np.asarray(inp["alpha"], dtype=np.float64),
        mat("mu", d),
        mat("q", d),
        mat("l", lsz) if lsz else np.zeros((k, 0)),
        mat("x", d),
        float(inp["gamma"]),
        int(inp["m"]),
    )


def make_inputs(size: tuple[int, int, int]) -> Inputs:
    """Kernel inputs for (d, K, n); the direction is random normal in alpha, mu, q, l."""
    d, k, n = size
    args = arguments(generate(d, k, n))
    return Inputs(args, random_direction(args, ACTIVE), {"d": d, "K": k, "n": n})


def size_label(size: tuple[int, int, int]) -> str:
    """``d=10 K=25 n=1000``."""
    return f"d={size[0]} K={size[1]} n={size[2]}"


def array_objective(
    xp: Any, alpha: Any, mu: Any, q: Any, l: Any, x: Any, gamma: float, m: int
) -> Any:
    """The same log-likelihood as array code (for JAX / PyTorch through ``bench.peers``)."""
    k, d = mu.shape
    n = x.shape[0]
    qdiag = xp.exp(q)
    sum_qs = xp.sum(q, axis=1)
    rows, cols = np.tril_indices(d, -1, d)  # l's order: column by column below the diagonal
    order = np.lexsort((rows, cols))
    ltri = xp.zeros((k, d, d))
    ltri = xp.index_set(ltri, (slice(None), rows[order], cols[order]), l)
    qmat = ltri + xp.diag_embed(qdiag)
    xc = x[:, None, :] - mu[None, :, :]  # n, k, d
    qx = xp.einsum("kij,nkj->nki", qmat, xc)
    main = alpha[None, :] + sum_qs[None, :] - 0.5 * xp.sum(qx * qx, axis=2)
    nw = d + m + 1
    c = nw * d * (math.log(gamma) - 0.5 * math.log(2.0)) - log_gamma_distrib.py_func(0.5 * nw, d)
    frob = xp.sum(qdiag * qdiag, axis=1) + xp.sum(l * l, axis=1)
    prior = xp.sum(0.5 * gamma * gamma * frob - m * sum_qs)
    const = -n * d * 0.5 * math.log(2.0 * math.pi)
    return (
        const + xp.sum(xp.logsumexp(main, axis=1)) - n * xp.logsumexp(alpha, axis=0) - prior + k * c
    )


def gradbench_prepare(function: str, input: dict[str, Any]) -> Callable[[], Any]:
    """Decode a GradBench ``gmm`` input once; the returned call answers ``objective`` (the
    log-likelihood) or ``jacobian`` (``{"alpha", "mu", "q", "l"}``, enzpy reverse mode)."""
    args = arguments(input)
    if function == "objective":
        return lambda: float(gmm_objective(*args))
    if function == "jacobian":

        def jacobian() -> dict[str, Any]:
            grads = reverse_gradient(gmm_objective, args, ACTIVE)
            return dict(zip(("alpha", "mu", "q", "l"), grads[:4], strict=True))

        return jacobian
    raise unknown("gmm", function, GRADBENCH_FUNCTIONS)


def gradbench(function: str, input: dict[str, Any]) -> Any:
    """One GradBench evaluation of ``function`` (see :func:`gradbench_prepare`)."""
    return gradbench_prepare(function, input)()


#: the kernel the benchmark times and differentiates
PRIMAL = gmm_objective
