"""All benchmark kernels with their columns: the simple kernels of ``bench/kernels.py``, the
GradBench evals of ``bench/evals/`` and the kernels written as a user would of
``bench/untuned_kernels.py``; the evals and the latter with enzpy forward / reverse, central
differences, their hand-written gradient (where there is one), JAX and PyTorch (when installed)
and native C (gmm)."""

from __future__ import annotations

import ctypes
import importlib

import numpy as np

from . import native_lib, untuned_kernels
from .kernels import build_kernels
from .timing import Gradient, Inputs, Kernel, Tool
from .tools import add_columns, family

EVALS: tuple[str, ...] = ("gmm", "gmm_numpy", "lse", "ode", "lstm", "ba", "llsq", "det", "kmeans")
#: tool families selectable with --tools (the primal always runs)
FAMILIES: tuple[str, ...] = ("enzpy", "fd", "hand", "native", "jax", "torch")


def gmm_native_tools(lib: ctypes.CDLL) -> dict[str, Tool]:
    """The native C gmm columns: primal and the hand-written adjoint."""
    from .evals import gmm

    P = native_lib.ptr

    def prior_constant(inp: Inputs) -> float:
        alpha, mu, _, _, _, gamma, m = inp.args
        k, d = mu.shape
        nw = d + m + 1
        c = nw * d * (np.log(gamma) - 0.5 * np.log(2.0)) - gmm.log_gamma_distrib.py_func(
            0.5 * nw, d
        )
        return float(k * c)

    def primal(inp: Inputs) -> float:
        alpha, mu, q, l, x, gamma, m = inp.args
        k, d = mu.shape
        return lib.gmm_primal(
            d, k, x.shape[0], P(alpha), P(mu), P(q), P(l), P(x), gamma, m, prior_constant(inp)
        )

    def rev(inp: Inputs) -> Gradient:
        alpha, mu, q, l, x, gamma, m = inp.args
        ab, mb, qb, lb = inp.shadow[:4]
        k, d = mu.shape
        lib.gmm_rev(
            d,
            k,
            x.shape[0],
            P(alpha),
            P(ab),
            P(mu),
            P(mb),
            P(q),
            P(qb),
            P(l),
            P(lb),
            P(x),
            gamma,
            m,
            prior_constant(inp),
            1.0,
        )
        return Gradient((ab, mb, qb, lb, None, None, None), inp.direction)

    return {"native primal": primal, "native rev": rev}


def eval_kernel(name: str, lib: ctypes.CDLL | None, wanted: set[str]) -> Kernel:
    """The kernel of GradBench eval ``name`` (``bench/evals/<name>.py``) with its columns."""
    mod = importlib.import_module(f"{__package__}.evals.{name}")
    doc = (mod.__doc__ or name).strip().split("\n\n")[0]
    k = Kernel(
        name,
        " ".join(doc.split()),
        mod.PRIMAL,
        mod.make_inputs,
        sizes=mod.SIZES,
        size_label=mod.size_label,
        group="gradbench",
    )
    if hasattr(mod, "bench_tools"):
        k.tools.update(mod.bench_tools(wanted))
        return k
    native = gmm_native_tools(lib) if lib is not None and name == "gmm" else None
    hand, objective = getattr(mod, "hand_gradient", None), getattr(mod, "array_objective", None)
    return add_columns(k, wanted, mod.ACTIVE, hand, objective, native)


def build_all(lib: ctypes.CDLL | None, wanted: set[str] | None = None) -> dict[str, Kernel]:
    """Every kernel: the simple ones, the evals, those written as a user would; columns
    restricted to the ``wanted`` families."""
    wanted = set(FAMILIES) if wanted is None else wanted
    kernels = build_kernels(lib)
    for k in kernels.values():
        k.tools = {t: f for t, f in k.tools.items() if family(t) in wanted}
        if "enzpy" not in wanted:
            k.checks = {}
    for name in EVALS:
        kernels[name] = eval_kernel(name, lib, wanted)
    kernels.update(untuned_kernels.build_kernels(wanted))
    return kernels
