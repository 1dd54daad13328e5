"""JAX and PyTorch as benchmark columns (optional: ``pip install enzpy[bench]``; a missing one is
skipped cleanly). Each eval's ``array_objective(xp, *args)`` is written once against the small
namespace :class:`ArrayOps`; this module binds it to ``jax.numpy`` or ``torch``.

Timing is honest: inputs are converted before the timed call (:class:`~bench.timing.Prepared`),
JAX's ``jit(grad(f))`` is compiled in the harness's warm-up, and the timed call ends with
``block_until_ready``; PyTorch runs eagerly (``backward()`` on fresh leaf tensors).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

from .timing import Gradient, Inputs, Prepared


def available(name: str) -> bool:
    """Whether the package ``name`` can be imported (without importing it)."""
    return importlib.util.find_spec(name) is not None


class ArrayOps:
    """The array operations the eval modules' ``array_objective`` functions use."""

    def __init__(self, lib: Any, **overrides: Callable[..., Any]) -> None:
        self.lib = lib
        self.__dict__.update(overrides)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.lib, name)


def _jax() -> tuple[Any, ArrayOps]:
    """jax (float64 enabled) and its ArrayOps."""
    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_platforms", "cpu")
    import jax.numpy as jnp
    from jax.scipy.special import logsumexp

    def index_set(a: Any, idx: Any, v: Any) -> Any:
        return a.at[idx].set(v)

    def diag_embed(v: Any) -> Any:
        return jax.vmap(jnp.diag)(v)

    def fold(n: int, body: Callable[[Any, Any], Any], init: Any) -> Any:
        return jax.lax.fori_loop(0, n, body, init)

    ops = ArrayOps(
        jnp,
        stop_gradient=jax.lax.stop_gradient,
        index_set=index_set,
        diag_embed=diag_embed,
        logsumexp=logsumexp,
        sigmoid=jax.nn.sigmoid,
        fold=fold,
    )
    return jax, ops


def _torch() -> tuple[Any, ArrayOps]:
    """torch (float64 default) and its ArrayOps."""
    import torch

    torch.set_default_dtype(torch.float64)

    def index_set(a: Any, idx: Any, v: Any) -> Any:
        a = a.clone()
        a[idx] = v
        return a

    def sum_(a: Any, axis: int | None = None) -> Any:
        return torch.sum(a) if axis is None else torch.sum(a, dim=axis)

    def fold(n: int, body: Callable[[Any, Any], Any], init: Any) -> Any:
        for t in range(n):
            init = body(t, init)
        return init

    ops = ArrayOps(
        torch,
        fold=fold,
        stop_gradient=lambda a: a.detach(),
        index_set=index_set,
        diag_embed=torch.diag_embed,
        logsumexp=lambda a, axis: torch.logsumexp(a, dim=axis),
        sum=sum_,
        amax=lambda a, axis: torch.amax(a, dim=axis),
        amin=lambda a, axis: torch.amin(a, dim=axis),
        asarray=lambda a: torch.as_tensor(a),
        prod=lambda a, axis: torch.prod(a, dim=axis),
        concatenate=lambda arrays, axis=0: torch.cat(arrays, dim=axis),
        cumprod=lambda a, axis: torch.cumprod(a, dim=axis),
    )
    return torch, ops


def _active_positions(inputs: Inputs, active: tuple[bool, ...]) -> list[int]:
    """Indices of the arguments that are differentiated."""
    return [i for i, on in enumerate(active) if on and inputs.direction[i] is not None]


def jax_gradient(array_objective: Callable[..., Any], active: tuple[bool, ...]) -> Prepared:
    """Tool: ``jax.jit(jax.grad(f, argnums=active))`` on the eval's array objective."""
    jax, ops = _jax()
    cache: dict[tuple, Any] = {}

    def prepare(inp: Inputs) -> tuple[Any, ...]:
        pos = tuple(_active_positions(inp, active))
        static = tuple(i for i, a in enumerate(inp.args) if not isinstance(a, np.ndarray))
        key = (pos, static)
        if key not in cache:
            fn = jax.jit(
                jax.grad(lambda *a: array_objective(ops, *a), argnums=pos), static_argnums=static
            )
            cache[key] = fn
        args = tuple(jax.device_put(a) if isinstance(a, np.ndarray) else a for a in inp.args)
        return cache[key], args, pos, inp

    def run(state: tuple[Any, ...]) -> Gradient:
        fn, args, pos, inp = state
        grads = jax.block_until_ready(fn(*args))
        out: list[Any] = [None] * len(args)
        for p, g in zip(pos, grads, strict=True):
            out[p] = g
        return Gradient(tuple(out), inp.direction)

    return Prepared(prepare, run)


def jax_hvp(array_objective: Callable[..., Any], active: tuple[bool, ...]) -> Prepared:
    """Tool: ``jax.jit`` of ``jax.jvp(jax.grad(f))`` (forward over reverse): H·u with respect
    to the first active array (the others held constant), as ``enzpy hvp`` computes it."""
    jax, ops = _jax()
    cache: dict[tuple, Any] = {}

    def prepare(inp: Inputs) -> tuple[Any, ...]:
        k = next(i for i in _active_positions(inp, active) if isinstance(inp.args[i], np.ndarray))
        static = tuple(i for i, a in enumerate(inp.args) if not isinstance(a, np.ndarray))
        if (k, static) not in cache:

            def hvp(*a: Any) -> Any:
                *args, u = a
                grad = jax.grad(lambda x: array_objective(ops, *args[:k], x, *args[k + 1 :]))
                return jax.jvp(grad, (args[k],), (u,))[1]

            cache[(k, static)] = jax.jit(hvp, static_argnums=static)
        args = tuple(jax.device_put(a) if isinstance(a, np.ndarray) else a for a in inp.args)
        return cache[(k, static)], (*args, jax.device_put(inp.direction[k]))

    def run(state: tuple[Any, ...]) -> Any:
        fn, args = state
        return np.asarray(jax.block_until_ready(fn(*args)))

    return Prepared(prepare, run)


def torch_gradient(array_objective: Callable[..., Any], active: tuple[bool, ...]) -> Prepared:
    """Tool: ``loss.backward()`` through the eval's array objective in eager PyTorch (active
    float scalars as 0-d tensors)."""
    torch, ops = _torch()

    def prepare(inp: Inputs) -> tuple[Any, ...]:
        pos = _active_positions(inp, active)
        args = tuple(
            torch.tensor(a, requires_grad=i in pos) if isinstance(a, np.ndarray) or i in pos else a
            for i, a in enumerate(inp.args)
        )
        return args, pos, inp

    def run(state: tuple[Any, ...]) -> Gradient:
        args, pos, inp = state
        array_objective(ops, *args).backward()
        out: list[Any] = [None] * len(args)
        for p in pos:
            g = args[p].grad
            out[p] = torch.zeros_like(args[p]) if g is None else g
        return Gradient(tuple(out), inp.direction)

    return Prepared(prepare, run)


def peer_tools(
    array_objective: Callable[..., Any] | None, active: tuple[bool, ...], wanted: set[str]
) -> dict[str, Any]:
    """The ``jax rev`` / ``jax hvp`` / ``torch rev`` columns for an eval, when installed and
    wanted."""
    tools: dict[str, Any] = {}
    if array_objective is None:
        return tools
    if "jax" in wanted and available("jax"):
        tools["jax rev"] = jax_gradient(array_objective, active)
        tools["jax hvp"] = jax_hvp(array_objective, active)
    if "torch" in wanted and available("torch"):
        tools["torch rev"] = torch_gradient(array_objective, active)
    return tools
