"""PNG plots of a benchmark run (matplotlib, Agg backend): derivative time / primal time per
kernel and tool, and time against problem size for kernels run at several sizes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .timing import KernelResult, is_derivative


def _last_per_kernel(results: Sequence[KernelResult]) -> list[KernelResult]:
    """One result per kernel: its last (headline) size."""
    seen: dict[str, KernelResult] = {}
    for r in results:
        seen[r.kernel] = r
    return list(seen.values())


def ratio_plot(results: Sequence[KernelResult], path: Path) -> Path:
    """Grouped bars: time / primal time for each kernel (headline size) and derivative tool."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _last_per_kernel(results)
    tools = [t for t in dict.fromkeys(n for r in rows for n in r.tools) if is_derivative(t)]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(rows) + 2), 3.6), dpi=90)
    width = 0.8 / max(len(tools), 1)
    for j, tool in enumerate(tools):
        vals = []
        for r in rows:
            res = r.tools.get(tool)
            ok = res is not None and res.ok and np.isfinite(r.primal_median)
            vals.append(res.median / r.primal_median if ok else np.nan)
        ax.bar(np.arange(len(rows)) + j * width, vals, width, label=tool)
    ax.set_xticks(np.arange(len(rows)) + 0.4 - width / 2, [r.kernel for r in rows], rotation=30)
    ax.set_yscale("log")
    ax.axhline(1.0, color="k", lw=0.6)
    ax.set_ylabel("time / Numba primal")
    ax.legend(fontsize=7, ncol=4)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def size_plots(results: Sequence[KernelResult], path: Path) -> Path | None:
    """Time against problem size (one panel per kernel with more than one size)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_kernel: dict[str, list[KernelResult]] = {}
    for r in results:
        by_kernel.setdefault(r.kernel, []).append(r)
    swept = {k: v for k, v in by_kernel.items() if len(v) > 1}
    if not swept:
        return None
    fig, axes = plt.subplots(1, len(swept), figsize=(3.4 * len(swept), 3.2), dpi=90, squeeze=False)
    for ax, (kernel, rs) in zip(axes[0], swept.items(), strict=True):
        tools = list(dict.fromkeys(n for r in rs for n in r.tools))
        xs = np.arange(len(rs))
        for tool in tools:
            ys = [
                r.tools[tool].median if tool in r.tools and r.tools[tool].ok else np.nan for r in rs
            ]
            ax.plot(xs, ys, marker="o", ms=3, label=tool)
        ax.set_xticks(xs, [r.size for r in rs], rotation=30, fontsize=6)
        ax.set_yscale("log")
        ax.set_title(kernel, fontsize=9)
        ax.set_ylabel("seconds per call")
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
