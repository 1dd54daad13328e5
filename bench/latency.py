"""First-call latency of enzpy: analysis, synthesis and compilation of a derivative, measured on
a fresh ``@enzyme_jit`` object (derivatives are cached per function object) whose primal is
already compiled: the first ``autodiff`` call minus a warm call.

And in new processes (`in_new_processes`): the first reverse gradient in an interpreter that
has never compiled the kernel, then in a second one that finds the primal and the derivative
in the disk caches (``@ez.enzyme_jit(cache=True)``). Both use one ``NUMBA_CACHE_DIR`` made
for the run and warmed by an interpreter that compiles enzpy's own cached helpers (the
memory checks): the figures of a machine where enzpy ran before, not of its first run after
installing."""

from __future__ import annotations

import atexit
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
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


_ROOT = pathlib.Path(__file__).resolve().parent.parent
_CHILD = """
import ast, json, sys, time
import enzpy as ez
from enzpy import disk_cache
from bench.suite import build_all
from bench.tools import enzpy_reverse
k = build_all(None, {"enzpy"})[sys.argv[1]]
inputs = k.make_inputs(ast.literal_eval(sys.argv[2]))
f = ez.enzyme_jit(k.primal.py_func, cache=True, **getattr(k.primal, "options", {}))
t0 = time.perf_counter()
f(*inputs.fresh().args)
t1 = time.perf_counter()
enzpy_reverse(f)(inputs.fresh())
t2 = time.perf_counter()
print(json.dumps({"primal": t1 - t0, "rev": t2 - t1, "loaded": disk_cache.stats["loaded"]}))
"""
_WARM = """
import numpy as np, enzpy as ez
from bench.kernels import tiny
a = np.linspace(0.5, 2.0, 4)
ez.gradient(ez.Reverse, tiny, a, a.copy())
ez.autodiff(ez.Forward, tiny, ez.Duplicated(a, np.ones(4)), ez.Const(a))
"""
_cache_dir: list[str] = []  # the run's NUMBA_CACHE_DIR, once warmed


def _child(code: str, *argv: str) -> str:
    """Run `code` in a new interpreter with the run's cache directory; its output."""
    if not _cache_dir:
        _cache_dir.append(tempfile.mkdtemp(prefix="enzpy-bench-cache-"))
        atexit.register(shutil.rmtree, _cache_dir[0], ignore_errors=True)
        _child(_WARM)
    env = {**os.environ, "NUMBA_CACHE_DIR": _cache_dir[0], "PYTHONPATH": str(_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=_ROOT,
        timeout=600,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr else "failed")
    return done.stdout


def in_new_processes(name: str, size: Any) -> dict[str, float | str]:
    """``{"new process primal", "new process rev", "cached process primal", "cached process
    rev"}``: seconds of the first primal call and of the first reverse gradient of kernel
    `name` at `size`, in a new interpreter, then in a second one that loads both from the
    disk caches ("not loaded" where it did not find the derivative)."""
    out: dict[str, float | str] = {}
    for run in ("new process", "cached process"):
        got = json.loads(_child(_CHILD, name, repr(size)).splitlines()[-1])
        out[f"{run} primal"], out[f"{run} rev"] = got["primal"], got["rev"]
        if run == "cached process" and not got["loaded"]:
            out[f"{run} rev"] = "not loaded"
    return out
