"""First-call latency of enzpy: analysis, synthesis and compilation of a derivative, measured on
a fresh ``@enzyme_jit`` object (derivatives are cached per function object) whose primal is
already compiled: the first ``autodiff`` call minus a warm call."""

from __future__ import annotations

import time
from typing import Any

from .evals._jit import ez
from .timing import Inputs
from .tools import enzpy_forward, enzpy_reverse


def _timed(fn: Any, inputs: Inputs) -> float:
    """Seconds of one call on fresh inputs."""
    inp = inputs.fresh()
    t0 = time.perf_counter()
    fn(inp)
    return time.perf_counter() - t0


def first_call_latency(primal: Any, inputs: Inputs) -> dict[str, float | str]:
    """``{"enzpy rev": s, "enzpy fwd": s, "numba primal": s}``: compile latencies; an error
    is reported by name."""
    if ez is None or not hasattr(primal, "py_func"):
        return {}
    fresh = ez.enzyme_jit(primal.py_func, **getattr(primal, "options", {}))
    out: dict[str, float | str] = {}
    inp = inputs.fresh()
    t0 = time.perf_counter()
    fresh(*inp.args)
    out["numba primal"] = time.perf_counter() - t0
    for name, tool in (("enzpy rev", enzpy_reverse(fresh)), ("enzpy fwd", enzpy_forward(fresh))):
        try:
            first = _timed(tool, inputs)
            out[name] = max(first - _timed(tool, inputs), 0.0)
        except Exception as exc:  # noqa: BLE001
            out[name] = type(exc).__name__
    return out
