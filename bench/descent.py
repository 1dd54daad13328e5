"""``python -m bench.descent [--quick]``: gradient descent on a 10-element Rosenbrock function,
the gradient from ``ez.autodiff(ez.Reverse, ...)`` called from a Python loop vs the same loop
written inside ``@ez.enzyme_jit`` (where the call compiles to a direct native call).

Both loops run in the same process, interleaved, from the same start; the table gives the
median time per step of each and their ratio, and checks that both end at the same point.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import enzpy as ez

N = 10
LR = 1e-3


@ez.enzyme_jit
def rosenbrock(x):
    s = 0.0
    for i in range(x.shape[0] - 1):
        s += 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    return s


@ez.enzyme_jit
def descend_numba(x, steps, lr):
    dx = np.zeros_like(x)
    for _ in range(steps):
        dx[:] = 0.0
        ez.autodiff(ez.Reverse, rosenbrock, ez.Active, ez.Duplicated(x, dx))
        x -= lr * dx


def descend_python(x: np.ndarray, steps: int, lr: float) -> None:
    """The same loop, driven from Python."""
    dx = np.zeros_like(x)
    for _ in range(steps):
        dx[:] = 0.0
        ez.autodiff(ez.Reverse, rosenbrock, ez.Active, ez.Duplicated(x, dx))
        x -= lr * dx


def _start() -> np.ndarray:
    return np.linspace(-1.0, 1.0, N)


def _time(loop: Callable[[np.ndarray, int, float], None], steps: int) -> tuple[float, Any]:
    x = _start()
    t0 = time.perf_counter()
    loop(x, steps, LR)
    return time.perf_counter() - t0, x


def run(quick: bool) -> dict[str, Any]:
    """Time both loops (10^4 steps; 10^3 with `quick`); seconds per step, medians."""
    steps = 10**3 if quick else 10**4
    reps = 3 if quick else 7
    loops = {"python": descend_python, "numba": descend_numba}
    for loop in loops.values():  # compile and warm up
        _time(loop, 10)
    samples: dict[str, list[float]] = {name: [] for name in loops}
    ends: dict[str, np.ndarray] = {}
    for _ in range(reps):
        for name, loop in loops.items():
            seconds, ends[name] = _time(loop, steps)
            samples[name].append(seconds / steps)
    per_step = {name: statistics.median(s) for name, s in samples.items()}
    return {
        "steps": steps,
        "n": N,
        "lr": LR,
        "s_per_step": per_step,
        "samples_s_per_step": samples,
        "ratio": per_step["python"] / per_step["numba"],
        "max_abs_diff": float(np.max(np.abs(ends["python"] - ends["numba"]))),
        "loss_start": float(rosenbrock(_start())),
        "loss_end": float(rosenbrock(ends["numba"])),
    }


def markdown(result: dict[str, Any]) -> str:
    """A Markdown table of `run`'s result."""
    per = result["s_per_step"]
    lines = [
        f"Gradient descent, {result['steps']} steps on a {result['n']}-element Rosenbrock "
        f"function (loss {result['loss_start']:.3g} -> {result['loss_end']:.3g}; the two "
        f"loops end {result['max_abs_diff']:.1e} apart):",
        "",
        "| loop | µs per step | ratio |",
        "|---|---:|---:|",
        f"| Python loop calling `ez.autodiff` | {per['python'] * 1e6:.3g} | "
        f"{result['ratio']:.1f}× |",
        f"| the same loop inside `@ez.enzyme_jit` | {per['numba'] * 1e6:.3g} | 1× |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.descent", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="10^3 steps, fewer repetitions")
    print(markdown(run(ap.parse_args(argv).quick)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
