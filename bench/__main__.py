"""``python -m bench``: time the Numba primal, enzpy forward and reverse mode, central finite
differences, hand-written gradients, JAX, PyTorch and native C on the simple kernels and the
GradBench evals; check every gradient against a reference; write Markdown, JSON and PNG plots."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numba
import numpy as np

from . import descent, native_lib, plots, suite
from .correctness import assess
from .evals._jit import ENZPY_IMPORT_ERROR, ez
from .kernels import tiny
from .latency import first_call_latency, in_new_processes
from .progress import Progress
from .timing import (
    KernelResult,
    interleaved_per_call,
    markdown_errors,
    markdown_latency,
    markdown_tape,
    markdown_times,
    run_kernel,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "out"
#: --quick without --kernels: one kernel per kind of column (native, hand-written, peers, BA)
QUICK_KERNELS = ("reduction", "gmm", "lse", "ba")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, a smoke run of seconds")
    ap.add_argument("--kernels", default="", help="comma-separated subset, e.g. gmm,lse,reduction")
    ap.add_argument(
        "--sizes",
        choices=("quick", "full", "sweep"),
        default=None,
        help="quick (tiny), full (one size per kernel) or sweep (full plus the size sweeps; "
        "the default without --quick)",
    )
    ap.add_argument(
        "--tools",
        default=",".join(suite.FAMILIES),
        help=f"comma-separated tool families (the primal always runs): {','.join(suite.FAMILIES)}",
    )
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    ap.add_argument("--reps", type=int, default=None, help="fixed repetitions per tool")
    ap.add_argument(
        "--native",
        type=Path,
        default=None,
        help="path of libenzpy_bench_native (default: search build dirs)",
    )
    ap.add_argument("--no-native", action="store_true", help="skip the native C columns")
    ap.add_argument(
        "--no-overhead",
        action="store_true",
        help="skip the call-overhead figure and the optimizer-loop figure",
    )
    ap.add_argument("--no-latency", action="store_true", help="skip first-call latency")
    ap.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    ap.add_argument("--verbose", action="store_true", help="log every warm-up instead of a bar")
    return ap.parse_args(argv)


def call_overhead(quick: bool) -> dict[str, Any]:
    """µs per call of ``ez.autodiff(Forward | Reverse, tiny, ...)``, ``ez.gradient``, a split
    pair, making one and ``ez.autodiff`` inside an njit function, vs ``tiny(a, b)``; and the
    slowest of the 2nd to 10th calls of each (whether a later call compiles)."""
    a, b, da = np.arange(1.0, 5.0), np.linspace(0.5, 2.0, 4), np.ones(4)
    ga = np.zeros(4)  # reverse accumulates into it call after call; harmless here
    fns = {"primal": lambda: tiny(a, b)}
    if ez is not None:
        fns["enzpy fwd"] = lambda: ez.autodiff(ez.Forward, tiny, ez.Duplicated(a, da), ez.Const(b))
        fns["enzpy rev"] = lambda: ez.autodiff(
            ez.Reverse, tiny, ez.Active, ez.Duplicated(a, ga), ez.Const(b)
        )
        fns["enzpy gradient"] = lambda: ez.gradient(ez.Reverse, tiny, a, ez.Const(b))
        fns["enzpy split pair"] = _split_pair(a, b, ga)
        fns["enzpy thunk"] = lambda: ez.autodiff_thunk(
            ez.ReverseSplitWithPrimal, tiny, ez.Active, ez.Duplicated(a, ga), ez.Const(b)
        )
        in_jit = numba.njit(
            lambda a, ga, b: ez.autodiff(
                ez.Reverse, tiny, ez.Active, ez.Duplicated(a, ga), ez.Const(b)
            )
        )
        fns["enzpy in-jit"] = lambda: in_jit(a, ga, b)
    later = {}
    for name, fn in fns.items():
        times = []
        for _ in range(10):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        later[name] = max(times[1:]) * 1e3
    batches = 5 if quick else 15
    raw = interleaved_per_call(fns, batch_s=0.01 if quick else 0.02, batches=batches)
    out: dict[str, Any] = {"args": "two float64 arrays of 4 elements", "tools": {}}
    for name, res in raw.items():
        if isinstance(res, BaseException):
            out["tools"][name] = {"error": type(res).__name__, "error_detail": str(res)[:500]}
        else:
            out["tools"][name] = {
                "us_per_call": statistics.median(res) * 1e6,
                "samples_us": [t * 1e6 for t in res],
                "slowest_later_ms": later.get(name),
            }
    if ez is None:
        for name in ("enzpy fwd", "enzpy rev"):
            out["tools"][name] = {"error": "ImportError", "error_detail": ENZPY_IMPORT_ERROR}
    p = out["tools"].get("primal", {})
    for name, key in (("enzpy fwd", "ratio"), ("enzpy rev", "ratio_rev")):
        f = out["tools"].get(name, {})
        if "us_per_call" in p and "us_per_call" in f:
            out[key] = f["us_per_call"] / p["us_per_call"]
    return out


def _split_pair(a: np.ndarray, b: np.ndarray, ga: np.ndarray) -> Any:
    """One forward and one reverse pass of the split-mode derivative of `tiny`."""
    fwd, rev = ez.autodiff_thunk(
        ez.ReverseSplitWithPrimal, tiny, ez.Active, ez.Duplicated(a, ga), ez.Const(b)
    )

    def pair() -> None:
        tape, _, _ = fwd(ez.Duplicated(a, ga), ez.Const(b))
        rev(ez.Duplicated(a, ga), ez.Const(b), 1.0, tape)

    return pair


def markdown_overhead(ov: dict[str, Any]) -> str:
    """Markdown table of the call-overhead figure."""
    lines = [
        "| call (4-element arrays) | µs per call | ratio to primal | slowest of calls 2–10 (ms) |",
        "|---|---:|---:|---:|",
    ]
    prim = ov["tools"].get("primal", {}).get("us_per_call")
    labels = {
        "primal": "`tiny(a, b)`",
        "enzpy fwd": "`ez.autodiff(ez.Forward, tiny, ez.Duplicated(a, da), ez.Const(b))`",
        "enzpy rev": "`ez.autodiff(ez.Reverse, tiny, ez.Active, ez.Duplicated(a, da), "
        "ez.Const(b))`",
        "enzpy gradient": "`ez.gradient(ez.Reverse, tiny, a, ez.Const(b))`",
        "enzpy split pair": "`fwd(...)` then `rev(..., 1.0, tape)` of `ez.autodiff_thunk`",
        "enzpy thunk": "making that pair: `ez.autodiff_thunk(ez.ReverseSplitWithPrimal, tiny, "
        "...)`",
        "enzpy in-jit": "the `rev` call inside an `@njit` function",
    }
    for name, rec in ov["tools"].items():
        if "us_per_call" in rec:
            us = rec["us_per_call"]
            ratio = f"{us / prim:.1f}×" if prim else "n/a"
            slowest = rec.get("slowest_later_ms")
            later = f"{slowest:.2f}" if slowest is not None else ""
            lines.append(f"| {labels.get(name, name)} | {us:.3g} | {ratio} | {later} |")
        else:
            lines.append(f"| {labels.get(name, name)} | n/a ({rec['error']}) | |")
    return "\n".join(lines)


def _version(package: str) -> str | None:
    """Installed version of an optional package (None when absent)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _cpu_model() -> str | None:
    """The CPU model name from /proc/cpuinfo (Linux), else None."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def metadata(args: argparse.Namespace, lib: Any) -> dict[str, Any]:
    """Machine, versions and options of this run."""
    import llvmlite
    import numba

    commit = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=native_lib.REPO,
            timeout=10,
            check=True,
        ).stdout.strip()
    except Exception:  # noqa: BLE001 - not a git checkout
        pass
    return {
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "git_commit": commit,
        "quick": args.quick,
        "sizes": args.sizes,
        "tools": sorted(args.wanted),
        "jax": _version("jax"),
        "torch": _version("torch"),
        "cpu_model": _cpu_model(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "numba": numba.__version__,
        "llvmlite": llvmlite.__version__,
        "enzpy": getattr(ez, "__version__", None) if ez is not None else None,
        "enzpy_import_error": ENZPY_IMPORT_ERROR,
        "native_lib": getattr(lib, "_enzpy_path", None),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }


def _has(results: list[KernelResult], tool: str) -> bool:
    """Whether any kernel has the tool."""
    return any(tool in r.tools for r in results)


def load_native(args: argparse.Namespace) -> tuple[Any, str]:
    """The native library (or None) and a note saying which, or why not."""
    if args.no_native:
        return None, "native C columns skipped (--no-native)"
    try:
        lib = native_lib.load(args.native)
    except Exception as exc:  # noqa: BLE001
        return None, f"native C columns skipped: {type(exc).__name__}: {exc}"
    if lib is None:
        return None, (
            "native C columns skipped: library not built "
            "(cmake -S . -B build/native && cmake --build build/native)"
        )
    return lib, f"native C: {lib._enzpy_path}"


def perf_summary(results: list[KernelResult]) -> dict[str, Any]:
    """enzpy reverse / primal per kernel (headline size), their geometric mean, and enzpy
    reverse against JAX and PyTorch."""
    last: dict[str, KernelResult] = {r.kernel: r for r in results}
    ratios, vs = {}, {}
    for name, r in last.items():
        rev = r.tools.get("enzpy rev")
        if rev is not None and rev.ok and np.isfinite(r.primal_median):
            ratios[name] = rev.median / r.primal_median
            for peer in ("jax rev", "torch rev"):
                p = r.tools.get(peer)
                if p is not None and p.ok:
                    vs.setdefault(peer, {})[name] = p.median / rev.median
    geo = float(np.exp(np.mean(np.log(list(ratios.values()))))) if ratios else None
    return {"rev_over_primal": ratios, "geomean": geo, "peer_time_over_enzpy_rev": vs}


# the performance goals of the issue the bench measures (Performance II): the geometric mean
# of enzpy reverse / primal over the kernels, and that ratio for each kernel
GEOMEAN_GOAL, KERNEL_GOAL = 2.5, 4.0


def markdown_summary(summary: dict[str, Any]) -> str:
    """One paragraph: the issue's performance goals against this run."""
    r = summary["rev_over_primal"]
    if not r:
        return "_no enzpy reverse timings_"
    worst = max(r, key=r.get)
    text = (
        f"enzpy reverse / primal: geometric mean **{summary['geomean']:.2f}×** over "
        f"{len(r)} kernels (goal ≤ {GEOMEAN_GOAL:g}), worst {worst} {r[worst]:.2f}× "
        f"(goal ≤ {KERNEL_GOAL:g} each); {sum(v <= KERNEL_GOAL for v in r.values())}/{len(r)} "
        f"kernels within {KERNEL_GOAL:g}×."
    )
    for peer, per in summary["peer_time_over_enzpy_rev"].items():
        faster = [k for k, v in per.items() if v > 1]
        text += (
            f" Faster than {peer.split()[0]} on {len(faster)}/{len(per)} kernels"
            f" ({', '.join(f'{k} {v:.2g}×' for k, v in per.items())})."
        )
    return text


def run_all(
    args: argparse.Namespace, kernels: dict[str, Any], names: list[str]
) -> list[KernelResult]:
    """Run every selected kernel at every size of the preset, with a progress bar."""
    preset = args.sizes or ("quick" if args.quick else "sweep")
    plan = [(kernels[n], size) for n in names for size in kernels[n].size_list(preset)]
    latency = not (args.no_latency or args.quick) and ez is not None and "enzpy" in args.wanted
    total = sum(len(k.tools) + 2 for k, _ in plan) + (len(names) if latency else 0)
    bar = None if args.verbose else Progress(total)
    log = print if args.verbose else (lambda s: None)
    step = bar.step if bar is not None else (lambda s: None)
    budget = 0.2 if args.quick else 1.0
    results: list[KernelResult] = []
    measured: set[str] = set()
    for k, size in plan:
        res = run_kernel(
            k,
            size,
            reps=args.reps,
            budget_s=budget,
            min_reps=3 if args.quick else 5,
            max_reps=5 if args.quick else 30,
            log=log,
            step=step,
        )
        assess(res)
        if latency and k.name not in measured and k.name != "ba":
            measured.add(k.name)
            step(f"{k.name}: first-call latency")
            try:
                res.latency = first_call_latency(k.primal, k.make_inputs(size))
                res.latency.update(in_new_processes(k.name, size))
            except Exception as exc:  # noqa: BLE001
                res.latency = {"enzpy rev": type(exc).__name__}
        results.append(res)
    if bar is not None:
        bar.close()
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; write ``bench.md``, ``bench.json`` and PNG plots to ``--out``."""
    args = parse_args(argv)
    args.wanted = {t.strip().lower() for t in args.tools.split(",") if t.strip()}
    lib, native_note = load_native(args)
    print(native_note)
    if ENZPY_IMPORT_ERROR:
        print(f"enzpy not importable ({ENZPY_IMPORT_ERROR}); primals use numba.njit")
    kernels = suite.build_all(lib, args.wanted)
    names = [k for k in args.kernels.split(",") if k] or list(
        QUICK_KERNELS if args.quick else kernels
    )
    unknown = [k for k in names if k not in kernels]
    if unknown:
        print(
            f"unknown kernel(s): {', '.join(unknown)}; choose from {', '.join(kernels)}",
            file=sys.stderr,
        )
        return 2
    results = run_all(args, kernels, names)
    overhead = None if args.no_overhead else call_overhead(args.quick)
    loop = None if args.no_overhead else descent.run(args.quick)
    summary = perf_summary(results)
    md = [
        "## enzpy benchmark" + (" (quick)" if args.quick else ""),
        "",
        "Median wall time per call; in parentheses the ratio to the Numba primal. `rev` columns: "
        "one whole gradient (BA: the whole sparse Jacobian); `enzpy fwd` and `FD central`: one "
        "direction (BA: the whole Jacobian); `hvp` columns: one Hessian-vector product H·u "
        "with respect to the first active array, the other arguments held constant "
        "(`ez.hvp`: reverse over forward mode; JAX: `jax.jvp(jax.grad(f))`). ✗: disagrees "
        "with the reference, time not valid.",
        "",
        markdown_times(results),
        "",
        markdown_summary(summary),
        "",
        "Deviation from the reference gradient (‖g − g_ref‖₂ / ‖g_ref‖₂; one-direction "
        "tools: relative error of the directional derivative), then the dot-product test:",
        "",
        markdown_errors(results),
    ]
    if any(r.latency for r in results):
        md += [
            "",
            "First-call latency: in this process, compile of the primal and analysis + "
            "synthesis + compile of each enzpy derivative; in a new process, the first call "
            "of the primal and the first reverse gradient (derivative and call entry); in a "
            "second process, the same loaded from the disk caches (`cache=True`):",
            "",
            markdown_latency(results),
        ]
    if _has(results, "enzpy rev"):
        md += [
            "",
            "Tape: bytes the reverse pass kept (`ez.last_tape_bytes()`; native: the "
            "hand-written adjoint's own record):",
            "",
            markdown_tape(results, [t for t in ("enzpy rev", "native rev") if _has(results, t)]),
        ]
    if overhead is not None:
        md += ["", "Call overhead from Python:", "", markdown_overhead(overhead)]
    if loop is not None:
        md += ["", descent.markdown(loop)]
    md += ["", f"_{native_note}_"]
    text = "\n".join(md) + "\n"
    print()
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    written = [args.out / "bench.md", args.out / "bench.json"]
    if not args.no_plots:
        try:
            written.append(plots.ratio_plot(results, args.out / "ratios.png"))
            sp = plots.size_plots(results, args.out / "sizes.png")
            if sp is not None:
                written.append(sp)
        except ImportError as exc:
            print(f"plots skipped: {exc} (pip install enzpy[bench])")
    record = {
        "meta": metadata(args, lib),
        "kernels": [r.to_json() for r in results],
        "summary": summary,
        "call_overhead": overhead,
        "descent": loop,
        "markdown": text,
    }
    written[0].write_text(text, encoding="utf-8")
    written[1].write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
