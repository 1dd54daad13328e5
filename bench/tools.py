"""The benchmark's columns as tools, factored once: enzpy forward and reverse mode, central
finite differences, a hand-written gradient, and the checks run after timing (dot-product test,
gradient against a reference).

A forward tool returns ż for the kernel's direction; a reverse tool returns a
:class:`~bench.timing.Gradient`. See :mod:`bench.timing`.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from . import peers
from .evals._jit import ENZPY_IMPORT_ERROR, ez
from .timing import Gradient, Inputs, Kernel, KernelResult, Tool

FD_STEP = 1e-6


def annotate(inp: Inputs) -> list[Any]:
    """Forward-mode annotations: Duplicated(arg, direction) where a direction is given."""
    assert ez is not None
    return [
        ez.Const(a) if d is None else ez.Duplicated(a, d)
        for a, d in zip(inp.args, inp.direction, strict=True)
    ]


def enzpy_forward(kernel_fn: Any) -> Tool:
    """Tool: ``ez.autodiff(ez.Forward, kernel_fn, ...)`` -> ż."""

    def tool(inp: Inputs) -> float:
        if ez is None:
            raise ImportError(ENZPY_IMPORT_ERROR)
        return ez.autodiff(ez.Forward, kernel_fn, *annotate(inp))

    return tool


def reverse_annotate(
    args: tuple[Any, ...], direction: tuple[Any, ...], shadow: tuple[Any, ...]
) -> list[Any]:
    """Reverse-mode annotations: every argument with a direction is active — an array as
    Duplicated(arg, shadow), a float scalar as Active(arg); the rest Const."""
    assert ez is not None
    out = []
    for a, d, s in zip(args, direction, shadow, strict=True):
        if d is None:
            out.append(ez.Const(a))
        elif isinstance(a, np.ndarray):
            out.append(ez.Duplicated(a, s))
        else:
            out.append(ez.Active(a))
    return out


def _grads(
    args: tuple[Any, ...],
    direction: tuple[Any, ...],
    shadow: tuple[Any, ...],
    adjoints: tuple[Any, ...],
) -> tuple[Any, ...]:
    """Per argument: the shadow of an active array, the returned adjoint of an active scalar."""
    return tuple(
        None if d is None else (s if isinstance(a, np.ndarray) else adj)
        for a, d, s, adj in zip(args, direction, shadow, adjoints, strict=True)
    )


def enzpy_reverse(kernel_fn: Any) -> Tool:
    """Tool: ``ez.autodiff(ez.Reverse, kernel_fn, ez.Active, ...)`` -> the gradient (return seed
    1.0, shadows zeroed by the harness outside the timed region)."""

    def tool(inp: Inputs) -> Gradient:
        if ez is None:
            raise ImportError(ENZPY_IMPORT_ERROR)
        adj = ez.autodiff(
            ez.Reverse, kernel_fn, ez.Active, *reverse_annotate(inp.args, inp.direction, inp.shadow)
        )
        tape = ez.last_tape_bytes()
        return Gradient(_grads(inp.args, inp.direction, inp.shadow, adj), inp.direction, tape)

    return tool


def dot_test(kernel_fn: Any, inp: Inputs, seed: int = 7) -> float:
    """Relative error of the dot-product test ``<v, J u> == <Jᵀ v, u>`` for the map
    ``args -> (args after, z)``: u is the kernel's direction, v is the return seed 1.0 plus a
    random cotangent for every active array after execution (seeded into its shadow)."""
    if ez is None:
        raise ImportError(ENZPY_IMPORT_ERROR)
    r = np.random.default_rng(seed)
    v = tuple(
        r.standard_normal(a.shape) if isinstance(a, np.ndarray) and d is not None else None
        for a, d in zip(inp.args, inp.direction, strict=True)
    )
    # <v, J u>: forward mode; the shadows hold the tangent of each array after execution
    f = inp.fresh()
    lhs = float(ez.autodiff(ez.Forward, kernel_fn, *annotate(f)))
    lhs += sum(
        float(np.vdot(va, ua)) for va, ua in zip(v, f.direction, strict=True) if va is not None
    )
    # <Jᵀ v, u>: reverse mode with the shadows seeded with v
    b = inp.fresh()
    shadow = tuple(None if va is None else va.copy() for va in v)
    adj = ez.autodiff(
        ez.Reverse, kernel_fn, ez.Active, *reverse_annotate(b.args, b.direction, shadow)
    )
    rhs = Gradient(_grads(b.args, b.direction, shadow, adj), inp.direction).tangent()
    return abs(lhs - rhs) / max(abs(lhs), abs(rhs), 1e-300)


def gradient_error(tool: str, reference: str) -> Any:
    """Check: ``max |g − g_ref| / max |g_ref|`` between the gradients two reverse tools
    returned in their warm-up calls."""

    def check(inp: Inputs, res: KernelResult) -> float:
        g, ref = res.tools[tool], res.tools[reference]
        for t in (g, ref):
            if t.gradient is None:
                raise RuntimeError(f"{t.name}: no gradient ({t.error})")
        assert g.gradient is not None and ref.gradient is not None
        scale = max(float(np.max(np.abs(ref.gradient))), 1e-300)
        return float(np.max(np.abs(g.gradient - ref.gradient))) / scale

    return check


def _first_active_array(inp: Inputs) -> int:
    """The position of the first array argument with a direction."""
    return next(
        k
        for k, (a, d) in enumerate(zip(inp.args, inp.direction, strict=True))
        if isinstance(a, np.ndarray) and d is not None
    )


@functools.cache
def _moved_first(kernel_fn: Any, k: int, nargs: int) -> Any:
    """`kernel_fn` with its argument `k` moved first (``ez.hvp`` differentiates the first)."""
    params = [f"a{j}" for j in range(nargs)]
    rest = params[:k] + params[k + 1 :]
    src = f"def moved({', '.join([params[k], *rest])}):\n    return _f({', '.join(params)})\n"
    env: dict[str, Any] = {"_f": kernel_fn}
    exec(src, env)  # noqa: S102 (our source)
    assert ez is not None
    return ez.enzyme_jit(env["moved"])


def _hvp(kernel_fn: Any, inp: Inputs, k: int) -> np.ndarray:
    assert ez is not None
    rest = inp.args[:k] + inp.args[k + 1 :]
    return ez.hvp(_moved_first(kernel_fn, k, len(inp.args)), inp.args[k], inp.direction[k], *rest)


def enzpy_hvp(kernel_fn: Any) -> Tool:
    """Tool: ``ez.hvp`` -> H·u, the Hessian of the return with respect to the first active
    array (the other arguments held constant) times the kernel's direction there."""

    def tool(inp: Inputs) -> np.ndarray:
        if ez is None:
            raise ImportError(ENZPY_IMPORT_ERROR)
        return _hvp(kernel_fn, inp, _first_active_array(inp))

    return tool


def hvp_error(kernel_fn: Any, h: float = 1e-5) -> Any:
    """Check: ``max |H·u − FD| / max |FD|``, FD the central difference of the enzpy gradient
    (with respect to the same array) along u."""

    def check(inp: Inputs, res: KernelResult) -> float:
        assert ez is not None
        k = _first_active_array(inp)
        hv = _hvp(kernel_fn, inp.fresh(), k)
        u = inp.direction[k]
        sides = []
        for sign in (1.0, -1.0):
            f = inp.fresh()
            x = f.args[k] + sign * h * u
            g = np.zeros_like(x)
            ann = [ez.Const(a) for a in f.args]
            ann[k] = ez.Duplicated(x, g)
            ez.autodiff(ez.Reverse, kernel_fn, ez.Active, *ann)
            sides.append(g)
        fd = (sides[0] - sides[1]) / (2 * h)
        return float(np.max(np.abs(hv - fd)) / max(float(np.max(np.abs(fd))), 1e-300))

    return check


def value_error(tool: str, reference: str) -> Any:
    """Check: ``max |v − v_ref| / max |v_ref|`` between the arrays two tools returned in their
    warm-up calls (``enzpy hvp`` against ``jax hvp``)."""

    def check(inp: Inputs, res: KernelResult) -> float:
        v, ref = (np.asarray(res.tools[t].value, dtype=float) for t in (tool, reference))
        return float(np.max(np.abs(v - ref)) / max(float(np.max(np.abs(ref))), 1e-300))

    return check


def central_fd(kernel_fn: Any, h: float = FD_STEP) -> Tool:
    """Tool: central finite difference of the return along the direction (2 primal calls)."""

    def tool(inp: Inputs) -> float:
        plus = [a if d is None else a + h * d for a, d in zip(inp.args, inp.direction, strict=True)]
        minus = [
            a if d is None else a - h * d for a, d in zip(inp.args, inp.direction, strict=True)
        ]
        return (kernel_fn(*plus) - kernel_fn(*minus)) / (2.0 * h)

    return tool


def hand_gradient(gradient_fn: Any) -> Tool:
    """Tool: a hand-written gradient ``gradient_fn(*args) -> one gradient per argument``."""

    def tool(inp: Inputs) -> Gradient:
        return Gradient(tuple(gradient_fn(*inp.args)), inp.direction)

    return tool


def default_tools(kernel_fn: Any) -> dict[str, Tool]:
    """The columns every scalar kernel has: enzpy forward (one direction) and reverse mode (the
    whole gradient), a Hessian-vector product, central finite differences (one direction)."""
    return {
        "enzpy fwd": enzpy_forward(kernel_fn),
        "enzpy rev": enzpy_reverse(kernel_fn),
        "enzpy hvp": enzpy_hvp(kernel_fn),
        "FD central": central_fd(kernel_fn),
    }


def family(tool: str) -> str:
    """The --tools family of a column: ``enzpy rev`` -> enzpy, ``FD central`` -> fd, ..."""
    return tool.split()[0].lower()


def add_columns(
    k: Kernel,
    wanted: set[str],
    active: tuple[bool, ...],
    hand: Any = None,
    array_objective: Any = None,
    extra: dict[str, Tool] | None = None,
    hvp: bool = True,
) -> Kernel:
    """``k`` with the columns of the ``wanted`` families: :func:`default_tools`, the
    hand-written gradient ``hand`` (``hand rev``), ``extra`` (native C) and JAX / PyTorch on
    ``array_objective``; with enzpy, the checks of its derivatives (dot test, H·u against
    differences of gradients and against JAX's). ``hvp=False`` leaves out the Hessian-vector
    products (``ez.hvp`` passes the other arguments Const: wrong where they carry derivatives,
    e.g. a scratch array written from the first one and read back)."""
    tools = dict(default_tools(k.primal))
    if hand is not None:
        tools["hand rev"] = hand_gradient(hand)
    tools.update(extra or {})
    tools.update(peers.peer_tools(array_objective, active, wanted))
    k.tools.update(
        {t: f for t, f in tools.items() if family(t) in wanted and (hvp or not t.endswith("hvp"))}
    )
    if "enzpy" in wanted:
        k.checks["enzpy rev dot test"] = lambda inp, res, f=k.primal: dot_test(f, inp)
        if hvp:
            k.checks["enzpy hvp vs FD"] = hvp_error(k.primal)
        if "jax hvp" in k.tools:
            k.checks["enzpy hvp vs jax hvp"] = value_error("enzpy hvp", "jax hvp")
    return k
