"""``python -m bench``: time primal, enzpy forward and reverse mode, finite differences and
native C."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from . import native_lib
from .kernels import ENZPY_IMPORT_ERROR, build_kernels, ez, tiny
from .timing import (
    KernelResult,
    fmt_time,
    interleaved_per_call,
    markdown_tape,
    markdown_times,
    markdown_values,
    run_kernel,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "out"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes, finishes in seconds")
    ap.add_argument("--kernels", default="", help="comma-separated subset: reduction,ode,stencil")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    ap.add_argument("--reps", type=int, default=None, help="fixed repetitions per tool")
    ap.add_argument(
        "--native",
        type=Path,
        default=None,
        help="path of libenzpy_bench_native (default: search build dirs)",
    )
    ap.add_argument("--no-native", action="store_true", help="skip the native C columns")
    ap.add_argument("--no-overhead", action="store_true", help="skip the call-overhead figure")
    return ap.parse_args(argv)


def call_overhead(quick: bool) -> dict[str, Any]:
    """µs per call of ``ez.autodiff(Forward | Reverse, tiny, ...)`` vs ``tiny(a, b)``."""
    a, b, da = np.arange(1.0, 5.0), np.linspace(0.5, 2.0, 4), np.ones(4)
    ga = np.zeros(4)  # reverse accumulates into it call after call; harmless here
    fns = {"primal": lambda: tiny(a, b)}
    if ez is not None:
        fns["enzpy fwd"] = lambda: ez.autodiff(ez.Forward, tiny, ez.Duplicated(a, da), ez.Const(b))
        fns["enzpy rev"] = lambda: ez.autodiff(
            ez.Reverse, tiny, ez.Active, ez.Duplicated(a, ga), ez.Const(b)
        )
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


def markdown_overhead(ov: dict[str, Any]) -> str:
    """Markdown table of the call-overhead figure."""
    lines = ["| call (4-element arrays) | µs per call | ratio to primal |", "|---|---:|---:|"]
    prim = ov["tools"].get("primal", {}).get("us_per_call")
    labels = {
        "primal": "`tiny(a, b)`",
        "enzpy fwd": "`ez.autodiff(ez.Forward, tiny, ez.Duplicated(a, da), ez.Const(b))`",
        "enzpy rev": "`ez.autodiff(ez.Reverse, tiny, ez.Active, ez.Duplicated(a, da), "
        "ez.Const(b))`",
    }
    for name, rec in ov["tools"].items():
        if "us_per_call" in rec:
            us = rec["us_per_call"]
            ratio = f"{us / prim:.1f}×" if prim else "n/a"
            lines.append(f"| {labels.get(name, name)} | {us:.3g} | {ratio} |")
        else:
            lines.append(f"| {labels.get(name, name)} | n/a ({rec['error']}) | |")
    return "\n".join(lines)


def _has(results: list[KernelResult], tool: str) -> bool:
    """Whether any kernel has the tool."""
    return any(tool in r.tools for r in results)


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


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print Markdown, write ``bench.md`` and ``bench.json`` to ``--out``."""
    args = parse_args(argv)
    lib = None
    native_note = "native C columns skipped (--no-native)"
    if not args.no_native:
        try:
            lib = native_lib.load(args.native)
            native_note = (
                f"native C: {lib._enzpy_path}"
                if lib is not None
                else "native C columns skipped: library not built "
                "(cmake -S . -B build/native && cmake --build build/native)"
            )
        except Exception as exc:  # noqa: BLE001
            native_note = f"native C columns skipped: {type(exc).__name__}: {exc}"
    print(native_note)
    if ENZPY_IMPORT_ERROR:
        print(f"enzpy not importable ({ENZPY_IMPORT_ERROR}); primals use numba.njit")

    kernels = build_kernels(lib)
    names = [k for k in args.kernels.split(",") if k] or list(kernels)
    unknown = [k for k in names if k not in kernels]
    if unknown:
        print(
            f"unknown kernel(s): {', '.join(unknown)}; choose from {', '.join(kernels)}",
            file=sys.stderr,
        )
        return 2
    sizes = "quick" if args.quick else "full"
    budget = 0.2 if args.quick else 1.0
    results: list[KernelResult] = []
    for name in names:
        k = kernels[name]
        print(f"[{name}] {k.description}, size {k.size_label(k.sizes[sizes])}", flush=True)
        results.append(
            run_kernel(
                k,
                k.sizes[sizes],
                reps=args.reps,
                budget_s=budget,
                min_reps=5,
                max_reps=10 if args.quick else 50,
            )
        )

    overhead = None if args.no_overhead else call_overhead(args.quick)

    reference = "native fwd" if lib is not None else "FD central"
    md = [
        "## enzpy benchmark" + (" (quick)" if args.quick else ""),
        "",
        "Median wall time per call; in parentheses the ratio to the Numba primal. Reverse "
        "columns: one full gradient (return seeded 1.0; shadows zeroed outside the timed region).",
        "",
        markdown_times(results),
        "",
        f"Directional derivative ż per tool (relative deviation from `{reference}`; a reverse "
        "tool's ż is its gradient dotted with the direction), then the checks of the reverse "
        "gradient: max |g − g_native| / max |g_native| against the hand-written native adjoint, "
        "and the relative error of the dot-product test <v, J u> = <Jᵀ v, u> against forward mode:",
        "",
        markdown_values(results, reference),
        "",
        "Tape: bytes the reverse pass kept (enzpy: `ez.last_tape_bytes()` after the call; "
        "native: the hand-written adjoint's own record):",
        "",
        markdown_tape(results, [t for t in ("enzpy rev", "native rev") if _has(results, t)]),
    ]
    if overhead is not None:
        md += ["", "Call overhead from Python:", "", markdown_overhead(overhead)]
    md += ["", f"_{native_note}_"]
    text = "\n".join(md) + "\n"
    print()
    print(text)

    record = {
        "meta": metadata(args, lib),
        "kernels": [r.to_json() for r in results],
        "call_overhead": overhead,
        "markdown": text,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.md").write_text(text, encoding="utf-8")
    (args.out / "bench.json").write_text(
        json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    print(f"wrote {args.out / 'bench.md'} and {args.out / 'bench.json'}")
    total = sum(t.median for r in results for t in r.tools.values() if t.ok)
    print(f"(sum of medians {fmt_time(total)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
