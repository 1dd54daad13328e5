"""Timing harness: kernels with named tools, interleaved repetitions, medians, tables.

A :class:`Kernel` bundles a primal function, ``make_inputs(size)`` and a ``tools`` dict mapping a
column name ("enzpy fwd", "FD central", "native fwd", "enzpy rev", later "jax fwd", ...) to a
callable ``tool(inputs) -> value``. The harness hands every call fresh copies of the inputs (the
kernels mutate them) and freshly zeroed shadow buffers (copying and zeroing are not timed), warms
each tool up, then times all tools in interleaved rounds so that drift (frequency scaling, other
load) hits every column alike. In a round each tool's timed call follows untimed calls of its
own for about ``SETTLE_S`` (at least one, at most 16): it is timed in the state of a loop
calling it back to back, its memory in the caches, not what the tool before it touched
(after 20-65 ms of other work or of sleep, the next call of enzpy's springs gradient took
634-673 µs, then 486-506 µs from the third call on; the primal 94-105 µs, then 84-92 µs).
A forward tool returns ż; a reverse tool returns a
:class:`Gradient` (the gradient arrays; the dot product with the direction is taken after the
timed call). A tool that raises is reported as ``n/a (ErrorClass)`` and the rest of the run goes
on. After timing, the kernel's ``checks`` run once (e.g. reverse vs native reverse, dot test).
"""

from __future__ import annotations

import math
import statistics
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PRIMAL = "primal"
SETTLE_S = 2e-3  # seconds of untimed calls of a tool before each timed one


@dataclass
class Inputs:
    """Arguments of one kernel call plus a tangent direction (None for inactive arguments)."""

    args: tuple[Any, ...]
    direction: tuple[Any, ...]
    params: dict[str, Any] = field(default_factory=dict)
    #: zero-filled shadow buffers, one per argument whose direction is an array (else None);
    #: made by :meth:`fresh` outside the timed region, for reverse-mode tools to accumulate into
    shadow: tuple[Any, ...] = ()

    def fresh(self) -> Inputs:
        """A copy whose arrays may be mutated freely, with zeroed shadows (memory touched)."""
        shadow = tuple(
            np.zeros_like(d) if isinstance(d, np.ndarray) else None for d in self.direction
        )
        return Inputs(_copy_all(self.args), _copy_all(self.direction), dict(self.params), shadow)


def _copy_all(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Copies of the arrays in ``values``; other values are passed through."""
    return tuple(v.copy() if isinstance(v, np.ndarray) else v for v in values)


@dataclass
class Prepared:
    """A tool whose input conversion is not timed: ``prepare(inputs) -> state`` runs before the
    clock starts (e.g. NumPy -> JAX arrays), ``run(state) -> value`` is the timed call."""

    prepare: Callable[[Inputs], Any]
    run: Callable[[Any], Any]


Tool = Callable[[Inputs], Any] | Prepared


@dataclass
class Gradient:
    """What a reverse-mode tool returns: the gradient for each argument (None where inactive),
    the direction it is checked along, and the bytes its tape held (None if unknown)."""

    grads: tuple[Any, ...]
    direction: tuple[Any, ...]
    tape_bytes: int | None = None

    def tangent(self) -> float:
        """gᵀu: the directional derivative ż this gradient implies for the direction u."""
        s = 0.0
        for g, d in zip(self.grads, self.direction, strict=True):
            if g is not None and d is not None:
                s += float(np.vdot(np.ravel(g), np.ravel(d)))
        return s

    def flat(self) -> np.ndarray:
        """All gradient entries as one float vector, in argument order."""
        parts = [np.ravel(np.asarray(g, dtype=np.float64)) for g in self.grads if g is not None]
        return np.concatenate(parts) if parts else np.zeros(0)


@dataclass
class Kernel:
    """A benchmark kernel: its primal, how to make inputs for a size, and its tools."""

    name: str
    description: str
    primal: Callable[..., Any]
    make_inputs: Callable[[Any], Inputs]
    sizes: dict[str, Any]
    tools: dict[str, Tool] = field(default_factory=dict)
    size_label: Callable[[Any], str] = str
    #: checks run once after timing: name -> check(inputs, result) -> error (a float)
    checks: dict[str, Callable[[Inputs, KernelResult], float]] = field(default_factory=dict)
    #: units to express tape size in: params -> [(unit name, count), ...], e.g. [("step", 1e5)]
    tape_units: Callable[[dict[str, Any]], list[tuple[str, int]]] = lambda params: []
    #: the primal-like tool the derivative times are divided by ("primal": the Numba kernel)
    group: str = "simple"

    def size_list(self, preset: str) -> list[Any]:
        """Sizes to run for a preset: ``quick``, ``full`` (the headline size) or ``sweep`` (the
        headline size plus ``sizes["sweep"]``, smallest problem first)."""
        if preset == "sweep":
            return [*self.sizes.get("sweep", []), self.sizes["full"]]
        return [self.sizes[preset]]

    def all_tools(self) -> dict[str, Tool]:
        """The primal (as column ``primal``) followed by the kernel's tools."""
        primal = self.primal
        return {PRIMAL: lambda inp: primal(*inp.args), **self.tools}


@dataclass
class ToolResult:
    """Measurements of one tool on one kernel."""

    name: str
    times: list[float] = field(default_factory=list)
    value: Any = None
    error: str | None = None
    error_detail: str | None = None
    gradient: np.ndarray | None = None  # flat gradient of a reverse tool (warm-up call)
    tape_bytes: int | None = None  # tape bytes of a reverse tool (warm-up call)
    first_call_s: float | None = None  # the first call (compiles, for JIT tools)
    rel_error: float | None = None  # deviation from the kernel's reference tool
    flagged: bool = False  # rel_error above the tool's tolerance: its time is not valid

    def record(self, value: Any) -> None:
        """Keep a tool's result: ż, or for a :class:`Gradient` its gᵀu, gradient and tape."""
        if isinstance(value, Gradient):
            self.gradient = value.flat()
            self.tape_bytes = value.tape_bytes
            value = value.tangent()
        self.value = value

    @property
    def ok(self) -> bool:
        """True when the tool ran, was timed and agrees with the reference."""
        return self.error is None and bool(self.times) and not self.flagged

    @property
    def median(self) -> float:
        """Median time in seconds (nan if not timed)."""
        return statistics.median(self.times) if self.times else float("nan")

    @property
    def best(self) -> float:
        """Minimum time in seconds (nan if not timed)."""
        return min(self.times) if self.times else float("nan")

    def to_json(self, primal_median: float) -> dict[str, Any]:
        """JSON-serializable record."""
        ratio = self.median / primal_median if self.ok and primal_median > 0 else None
        return {
            "median_s": self.median if self.ok else None,
            "min_s": self.best if self.ok else None,
            "times_s": self.times,
            "ratio_to_primal": ratio,
            "value": _jsonable(self.value),
            "gradient": _jsonable(self.gradient)
            if self.gradient is not None and self.gradient.size <= 16
            else None,
            "tape_bytes": self.tape_bytes,
            "first_call_s": self.first_call_s,
            "rel_error": self.rel_error,
            "flagged": self.flagged,
            "median_s_even_if_flagged": self.median if self.times else None,
            "error": self.error,
            "error_detail": self.error_detail,
        }


@dataclass
class KernelResult:
    """All tools' results for one kernel at one size."""

    kernel: str
    description: str
    size: str
    params: dict[str, Any]
    tools: dict[str, ToolResult]
    error: str | None = None
    checks: dict[str, float | str] = field(default_factory=dict)  # float error or "Err: msg"
    tape_units: list[tuple[str, int]] = field(default_factory=list)
    reference: str | None = None  # the tool every gradient is compared with
    latency: dict[str, Any] = field(default_factory=dict)  # first-call latency (enzpy)
    size_value: Any = None  # the size as given to make_inputs (for plots)

    @property
    def primal_median(self) -> float:
        """Median time of the primal (nan if it failed)."""
        p = self.tools.get(PRIMAL)
        return p.median if p is not None and p.ok else float("nan")

    def to_json(self) -> dict[str, Any]:
        """JSON-serializable record."""
        pm = self.primal_median
        return {
            "kernel": self.kernel,
            "description": self.description,
            "size": self.size,
            "params": {k: _jsonable(v) for k, v in self.params.items()},
            "error": self.error,
            "tools": {k: v.to_json(pm) for k, v in self.tools.items()},
            "checks": {k: _jsonable(v) for k, v in self.checks.items()},
            "tape_units": [[u, c] for u, c in self.tape_units],
            "reference": self.reference,
            "latency": {k: _jsonable(v) for k, v in self.latency.items()},
            "size_value": _jsonable(self.size_value),
        }


def _jsonable(v: Any) -> Any:
    """Numbers and small containers as plain JSON values; anything else as its repr."""
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, float | np.floating):
        f = float(v)
        return f if np.isfinite(f) else repr(f)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, tuple | list):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray) and v.size <= 16:
        return [_jsonable(x) for x in v.ravel().tolist()]
    return repr(v)


def _error_name(exc: BaseException) -> str:
    """Short error label, e.g. ``NotImplementedError``."""
    return type(exc).__name__


def _call(tool: Tool, inputs: Inputs) -> tuple[float, Any]:
    """Time one call on fresh inputs (the copy, and a Prepared tool's conversion, not timed)."""
    inp = inputs.fresh()
    if isinstance(tool, Prepared):
        state = tool.prepare(inp)
        t0 = time.perf_counter()
        value = tool.run(state)
    else:
        t0 = time.perf_counter()
        value = tool(inp)
    return time.perf_counter() - t0, value


def run_kernel(
    kernel: Kernel,
    size: Any,
    *,
    reps: int | None = None,
    budget_s: float = 1.0,
    min_reps: int = 5,
    max_reps: int = 50,
    log: Callable[[str], None] = print,
    step: Callable[[str], None] = lambda label: None,
) -> KernelResult:
    """Warm up and time every tool of ``kernel`` at ``size`` in interleaved repetitions.

    Without ``reps`` the repetition count is chosen so that one tool takes about ``budget_s``.
    """
    label = kernel.size_label(size)
    try:
        inputs = kernel.make_inputs(size)
    except Exception as exc:  # noqa: BLE001 - one broken kernel must not stop the run
        return KernelResult(kernel.name, kernel.description, label, {}, {}, _error_name(exc))
    tools = kernel.all_tools()
    results = {name: ToolResult(name) for name in tools}

    # warm-up: compile and touch memory; a failing tool is dropped from the rounds
    slowest = 0.0
    settle: dict[str, int] = {}  # untimed calls before each timed one
    for name, tool in tools.items():
        step(f"{kernel.name} {label}: {name}")
        res = results[name]
        try:
            first, _ = _call(tool, inputs)
            res.first_call_s = first
            dt, value = _call(tool, inputs)
            res.record(value)
            slowest = max(slowest, dt)
            settle[name] = min(16, max(1, math.ceil(SETTLE_S / max(dt, 1e-9))))
            log(
                f"  {kernel.name:<10} {name:<14} warm-up {first * 1e3:9.2f} ms,"
                f" then {dt * 1e3:9.3f} ms"
            )
        except Exception as exc:  # noqa: BLE001
            res.error = _error_name(exc)
            res.error_detail = "".join(traceback.format_exception_only(exc)).strip()[-2000:]
            log(f"  {kernel.name:<10} {name:<14} n/a: {res.error_detail.splitlines()[-1]}")

    if reps is None:  # (each round calls every tool twice)
        reps = int(budget_s / (2 * slowest)) if slowest > 0 else max_reps
        reps = max(min_reps, min(max_reps, reps))
    live = [n for n in tools if results[n].error is None]
    step(f"{kernel.name} {label}: {reps} timed rounds")
    for _ in range(reps):
        for name in live:
            res = results[name]
            if res.error is not None:
                continue
            try:
                for _ in range(settle[name]):
                    _call(tools[name], inputs)
                dt, _value = _call(tools[name], inputs)
                res.times.append(dt)
            except Exception as exc:  # noqa: BLE001
                res.error = _error_name(exc)
                res.error_detail = "".join(traceback.format_exception_only(exc)).strip()
                res.times.clear()
    out = KernelResult(kernel.name, kernel.description, label, dict(inputs.params), results)
    out.size_value = size
    out.tape_units = list(kernel.tape_units(inputs.params))
    for name, check in kernel.checks.items():
        try:
            out.checks[name] = float(check(inputs, out))
        except Exception as exc:  # noqa: BLE001
            out.checks[name] = f"{_error_name(exc)}: {str(exc)[:300]}"
            log(f"  {kernel.name:<10} check {name!r} n/a: {out.checks[name]}")
    return out


def per_call_seconds(
    fn: Callable[[], Any], *, batch_s: float = 0.02, batches: int = 15
) -> list[float]:
    """Seconds per call of ``fn`` measured in ``batches`` batches of about ``batch_s`` each."""
    fn()
    n, t = 1, 0.0
    while True:  # calibrate the batch length
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        t = time.perf_counter() - t0
        if t >= batch_s / 4 or n >= 1 << 22:
            break
        n *= 4
    n = max(1, int(n * batch_s / max(t, 1e-9)))
    out = []
    for _ in range(batches):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        out.append((time.perf_counter() - t0) / n)
    return out


def interleaved_per_call(
    fns: dict[str, Callable[[], Any]], *, batch_s: float = 0.02, batches: int = 15
) -> dict[str, list[float] | BaseException]:
    """Like :func:`per_call_seconds` for several callables, batches interleaved; errors kept."""
    out: dict[str, list[float] | BaseException] = {}
    live = {}
    for name, fn in fns.items():
        try:
            per_call_seconds(fn, batch_s=batch_s / 4, batches=1)
            live[name] = fn
            out[name] = []
        except Exception as exc:  # noqa: BLE001
            out[name] = exc
    for _ in range(batches):
        for name, fn in live.items():
            res = out[name]
            assert isinstance(res, list)
            res.extend(per_call_seconds(fn, batch_s=batch_s, batches=1))
    return out


# ------------------------------------------------------------------------------------ tables


def fmt_time(seconds: float) -> str:
    """Human-readable duration with 3 significant digits."""
    if not np.isfinite(seconds):
        return "n/a"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _cell(res: ToolResult | None, primal_median: float, name: str) -> str:
    """Table cell: median time and ratio to the primal, or why it is missing."""
    if res is None:
        return "—"
    if res.flagged:
        return f"✗ wrong (err {res.rel_error:.0e})"
    if not res.ok:
        return f"n/a ({res.error})"
    if name == PRIMAL or not np.isfinite(primal_median):
        return fmt_time(res.median)
    return f"{fmt_time(res.median)} ({res.median / primal_median:.2f}×)"


def is_derivative(name: str) -> bool:
    """Whether a tool column computes a derivative (by convention, primal-like tools are named
    ``primal`` or ``<something> primal``)."""
    return not (name == PRIMAL or name.endswith(" " + PRIMAL))


def columns(results: Sequence[KernelResult]) -> list[str]:
    """Union of tool names over all kernels, in first-seen order, primal first."""
    cols = [PRIMAL]
    for r in results:
        for name in r.tools:
            if name not in cols:
                cols.append(name)
    return cols


def markdown_times(results: Sequence[KernelResult]) -> str:
    """Markdown table: one row per kernel, one column per tool, median time (ratio to primal)."""
    cols = columns(results)
    lines = [
        "| kernel | size | " + " | ".join(cols) + " |",
        "|---|---|" + "---:|" * len(cols),
    ]
    for r in results:
        if r.error:
            cells = [f"n/a ({r.error})"] * len(cols)
        else:
            cells = [_cell(r.tools.get(c), r.primal_median, c) for c in cols]
        lines.append(f"| {r.kernel} | {r.size} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def check_columns(results: Sequence[KernelResult]) -> list[str]:
    """Union of check names over all kernels, in first-seen order."""
    out: list[str] = []
    for r in results:
        out += [c for c in r.checks if c not in out]
    return out


def _check_cell(value: float | str | None) -> str:
    """Table cell of one check: its error, or why it is missing."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return f"n/a ({value.split(':', 1)[0]})"
    return f"{value:.1e}"


def fmt_bytes(n: float) -> str:
    """Byte count with 3 significant digits in B, kB, MB or GB (powers of 1000)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.3g} B"


def markdown_tape(results: Sequence[KernelResult], tools: Sequence[str]) -> str:
    """Markdown table: tape bytes of each reverse tool in ``tools``, total and per unit."""
    head = "| kernel | size |"
    for t in tools:
        head += f" {t} tape | per unit |"
    lines = [head, "|---|---|" + "---:|---|" * len(tools)]
    for r in results:
        cells = []
        for t in tools:
            res = r.tools.get(t)
            if res is None:
                cells += ["—", ""]
            elif res.tape_bytes is None:
                cells += [f"n/a ({res.error})" if res.error else "n/a", ""]
            else:
                b = res.tape_bytes
                per = [f"{fmt_bytes(b / c)}/{u}" for u, c in r.tape_units if c > 0]
                cells += [fmt_bytes(b), ", ".join(per)]
        lines.append(f"| {r.kernel} | {r.size} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_errors(results: Sequence[KernelResult]) -> str:
    """Markdown table: each derivative tool's deviation from the kernel's reference tool (✗ when
    flagged), then the kernel's own checks (e.g. the dot-product test)."""
    cols = [c for c in columns(results) if is_derivative(c)]
    checks = check_columns(results)
    lines = [
        f"| kernel | size | reference | {' | '.join(cols + checks)} |",
        "|---|---|---|" + "---:|" * (len(cols) + len(checks)),
    ]
    for r in results:
        cells = []
        for c in cols:
            res = r.tools.get(c)
            if res is None:
                cells.append("—")
            elif res.error is not None:
                cells.append(f"n/a ({res.error})")
            elif c == r.reference:
                cells.append("ref")
            elif res.rel_error is None:
                cells.append("—")
            else:
                cells.append(f"{'✗ ' if res.flagged else ''}{res.rel_error:.1e}")
        cells += [_check_cell(r.checks.get(c)) for c in checks]
        ref = f"`{r.reference}`" if r.reference else "—"
        lines.append(f"| {r.kernel} | {r.size} | {ref} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_latency(results: Sequence[KernelResult]) -> str:
    """Markdown table: first-call latency per kernel (Numba compile of the primal, enzpy
    analysis + synthesis + compile of each derivative; in new processes)."""
    names = [
        "numba primal",
        "enzpy fwd",
        "enzpy rev",
        "new process primal",
        "new process rev",
        "cached process primal",
        "cached process rev",
    ]
    lines = ["| kernel | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for r in results:
        if not r.latency:
            continue
        cells = []
        for n in names:
            v = r.latency.get(n)
            cells.append(
                "—" if v is None else fmt_time(v) if isinstance(v, float) else f"n/a ({v})"
            )
        lines.append(f"| {r.kernel} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
