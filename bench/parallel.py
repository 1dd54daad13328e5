"""``python -m bench.parallel [--n N]``: reverse mode of ``prange`` kernels on 1 and 2 threads.

For each kernel: the parallel primal and the parallel reverse derivative (``ez.autodiff``
with ``ez.Reverse``) with ``numba.set_num_threads(1)`` and ``(2)``, and the same Python
function compiled serially with its reverse derivative, all in one process, the calls
interleaved (minimum over batches). The table gives the speed-up of the parallel reverse
derivative from 1 to 2 threads and its ratio to the parallel primal beside the serial ratio.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numba
import numpy as np

import enzpy as ez

from .timing import interleaved_per_call


def elementwise(x, y):
    for i in numba.prange(x.shape[0]):
        v = x[i]
        y[i] = np.sin(v) * np.exp(-v * v) + np.cos(3.0 * v)


def reduction(x):
    s = 0.0
    for i in numba.prange(x.shape[0]):
        v = x[i]
        s += np.sin(v) * np.exp(-v * v)
    return s


def stencil(x, y):  # neighbouring chunks read the same cells of x
    for i in numba.prange(1, x.shape[0] - 1):
        y[i] = np.sin(x[i - 1]) * x[i + 1] + np.exp(-x[i] * x[i])


KERNELS = {elementwise: True, reduction: False, stencil: True}  # kernel: writes into y


def _calls(kernel: Any, writes: bool, x: np.ndarray) -> dict[str, Callable[[], Any]]:
    """The primal and reverse calls of the kernel compiled with and without parallel=True."""
    out = {}
    for label, f in (("par", ez.enzyme_jit(parallel=True)(kernel)), ("ser", ez.enzyme_jit(kernel))):
        y, dx, dy = np.zeros_like(x), np.zeros_like(x), np.ones_like(x)
        if writes:
            out[f"primal {label}"] = lambda f=f, y=y: f(x, y)
            out[f"rev {label}"] = lambda f=f, y=y, dx=dx, dy=dy: ez.autodiff(
                ez.Reverse, f, ez.Duplicated(x, dx), ez.Duplicated(y, dy)
            )
        else:
            out[f"primal {label}"] = lambda f=f: f(x)
            out[f"rev {label}"] = lambda f=f, dx=dx: ez.autodiff(
                ez.Reverse, f, ez.Active, ez.Duplicated(x, dx)
            )
    return out


def run(n: int) -> list[dict[str, float | str]]:
    """One row per kernel: best seconds per call of each call on 1 and 2 threads."""
    x = np.random.default_rng(0).uniform(-1.0, 1.0, n)
    rows: list[dict[str, float | str]] = []
    before = numba.get_num_threads()
    try:
        for kernel, writes in KERNELS.items():
            calls = _calls(kernel, writes, x)
            row: dict[str, float | str] = {"kernel": kernel.__name__}
            for threads in (1, 2):
                numba.set_num_threads(threads)
                times = interleaved_per_call(calls, batch_s=0.1, batches=5)
                for name, t in times.items():
                    assert isinstance(t, list), t
                    row[f"{name} @{threads}"] = min(t)
            rows.append(row)
    finally:
        numba.set_num_threads(before)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The markdown table of `run`'s rows."""
    lines = [
        "| kernel | primal par 1 thr / 2 thr (ms) | rev par 1 thr / 2 thr (ms) "
        "| rev speed-up 2 vs 1 | rev/primal par (2 thr) | rev/primal serial |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['kernel']} | {r['primal par @1'] * 1e3:.1f} / {r['primal par @2'] * 1e3:.1f} "
            f"| {r['rev par @1'] * 1e3:.1f} / {r['rev par @2'] * 1e3:.1f} "
            f"| {r['rev par @1'] / r['rev par @2']:.2f} "
            f"| {r['rev par @2'] / r['primal par @2']:.2f} "
            f"| {r['rev ser @1'] / r['primal ser @1']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2_000_000, help="array length (default 2e6)")
    args = ap.parse_args()
    if numba.config.NUMBA_NUM_THREADS < 2:
        raise SystemExit("needs two threads (NUMBA_NUM_THREADS >= 2)")
    print(table(run(args.n)))
    print(f"\nn = {args.n}, threading layer {numba.threading_layer()}")


if __name__ == "__main__":
    main()
