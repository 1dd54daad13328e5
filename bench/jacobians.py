"""Batch mode and whole Jacobians: `python -m bench.jacobians [--quick]`.

1. Batch width: one forward call carrying W tangents (`BatchDuplicated`) against W separate
   forward calls, on the bench kernels, as the ratio time(batch of W) / (W · time(one)).
2. Jacobians of vector-valued programs: `ez.jacobian` forward (column by column, and batched
   8 columns per sweep), reverse (row by row, and batched 8 rows per sweep), JAX `jacfwd`
   / `jacrev` and PyTorch's `jacobian` when installed, central finite differences; each as
   its time over the primal's, measured in the same run, and its largest deviation from
   the finite differences' Jacobian.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import enzpy as ez

from .kernels import (
    lotka_volterra,
    ode_inputs,
    reduction,
    reduction_inputs,
    stencil,
    stencil_inputs,
)

WIDTHS = (1, 4, 8, 16)


def _best(fn: Callable[[], Any], seconds: float) -> float:
    """The fastest of repeated calls (at least 3, about `seconds` in all), after warm-up
    calls (enzpy's compiled entry of a call shape comes after a few calls)."""
    start = time.perf_counter()
    for _ in range(5):
        fn()
        if time.perf_counter() - start > seconds:
            break
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


# ---- 1. batch width --------------------------------------------------------------------------


def batch_ratios(quick: bool) -> dict[str, dict[int, float]]:
    """Per kernel and width W: time(one call of width W) / (W · time(one call of width 1))."""
    kernels = {
        "reduction": (reduction, reduction_inputs(2_000 if quick else 100_000)),
        "lotka_volterra": (lotka_volterra, ode_inputs(200 if quick else 10_000)),
        "stencil": (stencil, stencil_inputs((16, 2) if quick else (96, 20))),
    }
    seconds = 0.05 if quick else 0.5
    out = {}
    for name, (fn, inp) in kernels.items():
        calls = {w: _batch_call(fn, inp, w) for w in WIDTHS}
        for call in calls.values():  # compiled, and through the compiled entry, first
            _best(call, 0.0)
        times = {w: _best(call, seconds) for w, call in calls.items()}
        out[name] = {w: times[w] / (w * times[1]) for w in WIDTHS}
    return out


def _batch_call(fn: Any, inp: Any, width: int) -> Callable[[], Any]:
    """One forward call of `fn` carrying `width` random tangents, on copies."""
    rng = np.random.default_rng(0)
    lanes = [
        None if d is None else tuple(rng.standard_normal(np.shape(d)) for _ in range(width))
        for d in inp.direction
    ]

    def run() -> Any:
        args = [
            a if s is None else ez.BatchDuplicated(_copy(a), tuple(map(_copy, s)))
            for a, s in zip(inp.args, lanes, strict=True)
        ]
        return ez.autodiff(ez.Forward, fn, *args)

    return run


def _copy(v: Any) -> Any:
    return v.copy() if isinstance(v, np.ndarray) else v


# ---- 2. Jacobians ----------------------------------------------------------------------------


@ez.enzyme_jit
def broyden(x):
    """The Broyden tridiagonal function R^n -> R^n (a tall and sparse Jacobian)."""
    n = x.shape[0]
    y = np.empty(n)
    for i in range(n):
        y[i] = (3.0 - 2.0 * x[i]) * x[i] + 1.0
        if i > 0:
            y[i] -= x[i - 1]
        if i + 1 < n:
            y[i] -= 2.0 * x[i + 1]
    return y


@ez.enzyme_jit
def trajectory(p, u0, dt, nsteps):
    """Lotka-Volterra by explicit Euler: the states at every step, flattened (a tall
    Jacobian with respect to 4 parameters and 2 initial values)."""
    out = np.empty(2 * nsteps)
    x, y = u0[0], u0[1]
    for k in range(nsteps):
        dx = p[0] * x - p[1] * x * y
        dy = p[2] * x * y - p[3] * y
        x, y = x + dt * dx, y + dt * dy
        out[2 * k] = x
        out[2 * k + 1] = y
    return out


@ez.enzyme_jit
def moments(x):
    """Four statistics of a long vector (a wide Jacobian: 4 × n)."""
    s1 = s2 = s3 = s4 = 0.0
    for i in range(x.shape[0]):
        v = np.tanh(x[i])
        s1 += v
        s2 += v * v
        s3 += v * x[i]
        s4 += np.exp(-x[i] * x[i])
    out = np.empty(4)
    out[0], out[1], out[2], out[3] = s1, s2, s3, s4
    return out


def problems(quick: bool) -> dict[str, tuple[Any, tuple, int, Callable[..., Any]]]:
    """name -> (function, arguments, index of the argument differentiated, a JAX / PyTorch
    version written with `xp` (the array module) and `at` (indexed update))."""
    rng = np.random.default_rng(1)
    n = 40 if quick else 400
    steps = 50 if quick else 500
    wide = 500 if quick else 4_000

    def broyden_xp(xp: Any, x: Any) -> Any:
        y = (3.0 - 2.0 * x) * x + 1.0
        y = y - xp.concatenate([xp.zeros(1, dtype=x.dtype), x[:-1]])
        return y - 2.0 * xp.concatenate([x[1:], xp.zeros(1, dtype=x.dtype)])

    def trajectory_xp(xp: Any, p: Any, u0: Any, dt: float, nsteps: int) -> Any:
        def step(u: Any) -> Any:
            x, y = u[0], u[1]
            return xp.stack(
                [x + dt * (p[0] * x - p[1] * x * y), y + dt * (p[2] * x * y - p[3] * y)]
            )

        if xp.__name__.startswith("jax"):  # a loop JAX compiles as a loop
            import jax

            return jax.lax.scan(lambda u, _: (step(u), step(u)), u0, None, nsteps)[1].ravel()
        out, u = [], u0
        for _ in range(nsteps):
            u = step(u)
            out.append(u)
        return xp.concatenate(out)

    def moments_xp(xp: Any, x: Any) -> Any:
        v = xp.tanh(x)
        return xp.stack([v.sum(), (v * v).sum(), (v * x).sum(), xp.exp(-x * x).sum()])

    return {
        f"broyden n={n}": (broyden, (rng.uniform(-1, 1, n),), 0, broyden_xp),
        f"trajectory {steps} steps": (
            trajectory,
            (np.array([1.5, 1.0, 1.0, 3.0]), np.array([1.0, 1.0]), 1e-2, steps),
            0,
            trajectory_xp,
        ),
        f"moments n={wide}": (moments, (rng.standard_normal(wide),), 0, moments_xp),
    }


def _fd_jacobian(fn: Any, args: tuple, k: int, h: float = 1e-6) -> np.ndarray:
    x = args[k]
    cols = []
    for i in range(x.size):
        hi, lo = list(args), list(args)
        hi[k], lo[k] = x.copy(), x.copy()
        hi[k].flat[i] += h
        lo[k].flat[i] -= h
        cols.append((fn(*hi) - fn(*lo)) / (2 * h))
    return np.stack(cols, axis=1)


def _peers(xp_fn: Callable[..., Any], args: tuple, k: int) -> dict[str, Callable[[], Any]]:
    """JAX's jacfwd / jacrev (jitted) and PyTorch's jacobian, where installed."""
    tools: dict[str, Callable[[], Any]] = {}
    try:
        import jax

        jax.config.update("jax_enable_x64", True)
        jnp = jax.numpy

        def f(x: Any) -> Any:
            return xp_fn(jnp, *args[:k], x, *args[k + 1 :])

        x = jnp.asarray(args[k])
        for name, make in (("jax jacfwd", jax.jacfwd), ("jax jacrev", jax.jacrev)):
            jitted = jax.jit(make(f))
            tools[name] = lambda jitted=jitted: np.asarray(jitted(x).block_until_ready())
    except ImportError:
        pass
    try:
        import torch

        def g(x: Any) -> Any:
            return xp_fn(torch, *args[:k], x, *args[k + 1 :])

        t = torch.tensor(args[k])
        tools["torch jacobian"] = lambda: torch.autograd.functional.jacobian(g, t).numpy()
    except ImportError:
        pass
    return tools


def jacobian_table(quick: bool) -> dict[str, dict[str, tuple[float, float]]]:
    """Per problem and tool: (time / primal time, max |J - J_fd| / max |J_fd|)."""
    out = {}
    seconds = 0.05 if quick else 0.5
    for name, (fn, args, k, xp_fn) in problems(quick).items():
        primal = _best(lambda fn=fn, args=args: fn(*args), seconds)
        ref = _fd_jacobian(fn, args, k)
        row = {}
        for tool, run in _jacobian_tools(fn, args, k, xp_fn).items():
            J = run()
            err = float(np.max(np.abs(J - ref)) / max(np.max(np.abs(ref)), 1e-300))
            row[tool] = (_best(run, seconds) / primal, err)
        out[name] = row
    return out


def _jacobian_tools(
    fn: Any, args: tuple, k: int, xp_fn: Callable[..., Any]
) -> dict[str, Callable[[], Any]]:
    """The tools computing the Jacobian of `fn` with respect to argument `k`."""
    diff = [a if j == k else ez.Const(a) for j, a in enumerate(args)]

    def dense(mode: Any, chunk: int) -> Callable[[], Any]:
        return lambda: ez.jacobian(mode, fn, *diff, chunk=chunk)[k]

    return {
        "enzpy fwd (1 column per sweep)": dense(ez.Forward, 1),
        "enzpy fwd batched (8 per sweep)": dense(ez.Forward, 8),
        "enzpy rev (1 row per sweep)": dense(ez.Reverse, 1),
        "enzpy rev batched (8 per sweep)": dense(ez.Reverse, 8),
        **_peers(xp_fn, args, k),
        "FD central": lambda: _fd_jacobian(fn, args, k),
    }


# ---- report ----------------------------------------------------------------------------------


def markdown(batch: dict[str, dict[int, float]], jac: dict[str, dict]) -> str:
    lines = [
        "Batched forward mode: time of one call carrying W tangents / (W × one call of one "
        "tangent):",
        "",
        "| kernel | " + " | ".join(f"W={w}" for w in WIDTHS) + " |",
        "|---|" + "---:|" * len(WIDTHS),
    ]
    for name, r in batch.items():
        lines.append(f"| {name} | " + " | ".join(f"{r[w]:.2f}" for w in WIDTHS) + " |")
    tools = list(dict.fromkeys(t for row in jac.values() for t in row))
    lines += [
        "",
        "Jacobians: time / primal (in the same run); in parentheses max |J − J_FD| / max |J_FD|:",
        "",
        "| problem | " + " | ".join(tools) + " |",
        "|---|" + "---:|" * len(tools),
    ]
    for name, row in jac.items():
        cells = [f"{row[t][0]:.1f} ({row[t][1]:.0e})" if t in row else "—" for t in tools]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.jacobians", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    args = ap.parse_args(argv)
    print(markdown(batch_ratios(args.quick), jacobian_table(args.quick)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
