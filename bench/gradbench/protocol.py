"""GradBench's tool side of the JSON-lines protocol, independent of enzpy.

The eval (GradBench's driver) writes one JSON object per line; the tool answers every message
with exactly one JSON line carrying the same ``id``:

===============  ==========================================  ===================================
message kind     fields read                                 response
===============  ==========================================  ===================================
``start``        ``eval``, ``config`` (both optional)        ``{"id", "tool"}``
``define``       ``module``                                  ``{"id", "success"[, "timings",
                                                             "error"]}``
``evaluate``     ``module``, ``function``, ``input``         ``{"id", "success"[, "output",
                 (``description`` is ignored)                "timings", "error"]}``
``analysis``     ``of``, ``valid``, ``error`` (recorded)     ``{"id"}``
``end``          --                                          ``{"id"}``, then the session ends
anything else    --                                          ``{"id"}``
===============  ==========================================  ===================================

``evaluate`` runs the function until it has run at least ``input["min_runs"]`` times (default
1) *and* the summed run times reach ``input["min_seconds"]`` (default 0), reporting one
``{"name": "evaluate", "nanoseconds": n}`` timing per run and the output of the last run.
A failure is reported as ``{"id", "success": false, "error": "<text>"}``, never by crashing.

Eval modules are Python modules ``<package>.<name>`` (default package ``bench.evals``, plus the
built-in ``hello``), imported lazily on ``define``. Each exports

- ``GRADBENCH_FUNCTIONS: tuple[str, ...]`` -- the function names it answers, and
- ``gradbench(function, input) -> Any`` -- one evaluation of ``function`` on the decoded JSON
  ``input``, returning something :func:`to_json` can encode (numbers, lists, dicts, numpy
  arrays and scalars).

Optionally also ``gradbench_prepare(function, input) -> Callable[[], Any]``: decode and convert
the input once (reported as a ``"prepare"`` timing) and return a zero-argument callable that is
the timed run. Without it each run times the whole ``gradbench(function, input)`` call,
decoding included.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TextIO

import numpy as np

#: The package eval modules are looked up in, one module per GradBench eval.
EVALS_PACKAGE = "bench.evals"

#: Evals this package provides itself, by GradBench module name.
BUILTIN_MODULES: dict[str, str] = {"hello": "bench.gradbench.hello"}

#: The evals enzpy implements for GradBench (issue 4); ``hello`` is the protocol smoke test.
KNOWN_EVALS: tuple[str, ...] = (
    "gmm",
    "lse",
    "ode",
    "lstm",
    "ba",
    "llsq",
    "det",
    "kmeans",
    "ht",
    "particle",
    "saddle",
)

_MODULE_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


class UnknownModule(LookupError):
    """A ``define``/``evaluate`` named a module this tool has no implementation of."""


class ProtocolError(ValueError):
    """A message or its input is malformed (missing field, wrong type, bad run counts)."""


# --------------------------------------------------------------------------- eval modules


def import_eval_module(name: str, package: str = EVALS_PACKAGE) -> ModuleType:
    """Import the eval module GradBench calls ``name``: a built-in, or ``<package>.<name>``.

    Raises :class:`UnknownModule` when there is no such module (or the name is not a plain
    lowercase identifier), and lets any other import error propagate: a module that exists but
    fails to import is a failure to report, not an unknown module.
    """
    if not isinstance(name, str) or not _MODULE_NAME.match(name):
        raise UnknownModule(f"not an eval module name: {name!r}")
    qualified = BUILTIN_MODULES.get(name, f"{package}.{name}")
    try:
        return importlib.import_module(qualified)
    except ModuleNotFoundError as err:
        # Only "that module (or its package) does not exist" means unknown; a missing
        # dependency imported *by* the eval module is an error worth showing.
        missing = err.name or ""
        if qualified == missing or qualified.startswith(missing + "."):
            raise UnknownModule(f"no eval module {name!r} (looked for {qualified})") from None
        raise


@dataclass
class EvalModule:
    """A defined eval module: its name, the functions it answers and how to run them."""

    name: str
    functions: tuple[str, ...]
    evaluate: Callable[[str, Any], Any]
    prepare: Callable[[str, Any], Callable[[], Any]] | None = None

    @classmethod
    def from_module(cls, name: str, module: ModuleType) -> EvalModule:
        """Check that ``module`` exports the eval interface and wrap it."""
        functions = getattr(module, "GRADBENCH_FUNCTIONS", None)
        evaluate = getattr(module, "gradbench", None)
        if not callable(evaluate):
            raise TypeError(f"eval module {module.__name__} defines no gradbench(function, input)")
        if not isinstance(functions, tuple | list) or not all(
            isinstance(f, str) for f in functions
        ):
            raise TypeError(
                f"eval module {module.__name__}: GRADBENCH_FUNCTIONS must be a tuple of str"
            )
        prepare = getattr(module, "gradbench_prepare", None)
        return cls(name, tuple(functions), evaluate, prepare if callable(prepare) else None)

    def runner(self, function: str, input: Any) -> Callable[[], Any]:
        """The zero-argument callable one timed run calls (after any prepare step)."""
        if self.prepare is not None:
            return self.prepare(function, input)
        evaluate = self.evaluate
        return lambda: evaluate(function, input)


def default_resolver(package: str = EVALS_PACKAGE) -> Callable[[str], EvalModule]:
    """A resolver that imports eval modules from ``package`` (see :func:`import_eval_module`)."""

    def resolve(name: str) -> EvalModule:
        return EvalModule.from_module(name, import_eval_module(name, package))

    return resolve


# --------------------------------------------------------------------------- timing, JSON


def run_counts(input: Any) -> tuple[int, float]:
    """``(min_runs, min_seconds)`` from an evaluate ``input`` (GradBench's ``Runs`` fields).

    Defaults are 1 run and 0 seconds, also for inputs that are not objects (``hello`` sends a
    bare number).
    """
    if not isinstance(input, dict):
        return 1, 0.0
    min_runs = input.get("min_runs", 1)
    min_seconds = input.get("min_seconds", 0)
    if isinstance(min_runs, bool) or not isinstance(min_runs, int) or min_runs < 1:
        raise ProtocolError(f"min_runs must be an integer >= 1, got {min_runs!r}")
    if (
        isinstance(min_seconds, bool)
        or not isinstance(min_seconds, int | float)
        or not min_seconds >= 0
        or math.isinf(min_seconds)
    ):
        raise ProtocolError(f"min_seconds must be a finite number >= 0, got {min_seconds!r}")
    return min_runs, float(min_seconds)


def timed_runs(
    run: Callable[[], Any],
    min_runs: int,
    min_seconds: float,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> tuple[Any, list[int]]:
    """Call ``run`` until it ran ``min_runs`` times and the run times sum to ``min_seconds``.

    Returns the last run's result and each run's duration in nanoseconds (only the call is
    inside the clock readings).
    """
    budget_ns = min_seconds * 1e9
    durations: list[int] = []
    total = 0
    result = None
    while len(durations) < min_runs or total < budget_ns:
        start = clock()
        result = run()
        elapsed = clock() - start
        durations.append(elapsed)
        total += elapsed
    return result, durations


def to_json(value: Any) -> Any:
    """``value`` as plain JSON data: numpy arrays and tuples become lists, numpy scalars
    Python numbers. Raises ``ValueError`` for NaN/infinity (JSON cannot carry them) and
    ``TypeError`` for anything else that is not JSON data."""
    if isinstance(value, np.ndarray):
        return to_json(value.tolist())
    if isinstance(value, np.generic):
        return to_json(value.item())
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"output contains {value!r}, which JSON cannot represent")
        return value
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    raise TypeError(f"output of type {type(value).__name__} is not JSON data")


def _error_text(err: BaseException) -> str:
    return "".join(traceback.format_exception(err)).rstrip()


def _timing(name: str, nanoseconds: int) -> dict[str, Any]:
    return {"name": name, "nanoseconds": int(nanoseconds)}


# --------------------------------------------------------------------------- session


@dataclass
class Session:
    """One tool session: turns each protocol message into its response.

    ``resolve`` maps a module name to an :class:`EvalModule` (raising :class:`UnknownModule`
    for names it does not know); it is called once per module, on ``define`` (or on the first
    ``evaluate`` of a module that was never defined). ``tool`` is the name the ``start``
    response reports; ``clock`` returns nanoseconds. With ``warmup`` every evaluate first
    makes one extra call, reported as a ``"warmup"`` timing (JIT compilation lands there, not in
    the first ``"evaluate"``); off by default, since the protocol counts ``"evaluate"`` runs.
    """

    resolve: Callable[[str], EvalModule] = field(default_factory=default_resolver)
    tool: str = "enzpy"
    clock: Callable[[], int] = time.perf_counter_ns
    warmup: bool = False
    eval_name: str | None = None
    config: Any = None
    modules: dict[str, EvalModule] = field(default_factory=dict)
    analyses: dict[Any, dict[str, Any]] = field(default_factory=dict)
    finished: bool = False

    # -- entry points

    def handle_line(self, line: str) -> dict[str, Any]:
        """The response to one line of input (a JSON message)."""
        try:
            message = json.loads(line)
        except json.JSONDecodeError as err:
            return {"id": None, "success": False, "error": f"message is not JSON: {err}"}
        return self.handle(message)

    def handle(self, message: Any) -> dict[str, Any]:
        """The response to one decoded message. Never raises for a bad message or a failing
        eval; the failure is in the response."""
        if not isinstance(message, dict):
            return {"id": None, "success": False, "error": "message is not a JSON object"}
        id_ = message.get("id")
        kind = message.get("kind")
        if "id" not in message:
            return {"id": None, "success": False, "error": "message has no id"}
        handler = {
            "start": self._start,
            "define": self._define,
            "evaluate": self._evaluate,
            "analysis": self._analysis,
            "end": self._end,
        }.get(kind)
        if handler is None:  # unknown kinds get the bare acknowledgement, as analysis does
            return {"id": id_}
        try:
            return {"id": id_} | handler(message)
        except Exception as err:  # a bug in the handler itself: still one answer per message
            return {"id": id_, "success": False, "error": _error_text(err)}

    # -- handlers (each returns the response without its id)

    def _start(self, message: dict[str, Any]) -> dict[str, Any]:
        self.eval_name = message.get("eval")
        self.config = message.get("config")
        return {"tool": self.tool}

    def _module(self, name: Any) -> EvalModule:
        if not isinstance(name, str):
            raise ProtocolError(f"module must be a string, got {name!r}")
        if name not in self.modules:
            self.modules[name] = self.resolve(name)
        return self.modules[name]

    def _define(self, message: dict[str, Any]) -> dict[str, Any]:
        start = self.clock()
        try:
            self._module(message.get("module"))
        except (UnknownModule, ProtocolError) as err:
            return {"success": False, "error": str(err)}
        except Exception as err:
            return {"success": False, "error": _error_text(err)}
        return {"success": True, "timings": [_timing("define", self.clock() - start)]}

    def _evaluate(self, message: dict[str, Any]) -> dict[str, Any]:
        function = message.get("function")
        input = message.get("input")
        try:
            module = self._module(message.get("module"))
            if function not in module.functions:
                raise ProtocolError(
                    f"module {module.name!r} has no function {function!r} "
                    f"(it has {', '.join(module.functions)})"
                )
            min_runs, min_seconds = run_counts(input)
        except (UnknownModule, ProtocolError) as err:
            return {"success": False, "error": str(err)}
        timings: list[dict[str, Any]] = []
        try:
            if module.prepare is not None:
                start = self.clock()
                run = module.runner(function, input)
                timings.append(_timing("prepare", self.clock() - start))
            else:
                run = module.runner(function, input)
            if self.warmup:
                start = self.clock()
                run()
                timings.append(_timing("warmup", self.clock() - start))
            result, durations = timed_runs(run, min_runs, min_seconds, self.clock)
            timings += [_timing("evaluate", ns) for ns in durations]
            output = to_json(result)
        except Exception as err:
            return {"success": False, "error": _error_text(err)}
        return {"success": True, "output": output, "timings": timings}

    def _analysis(self, message: dict[str, Any]) -> dict[str, Any]:
        self.analyses[message.get("of")] = {
            "valid": message.get("valid"),
            "error": message.get("error"),
        }
        return {}

    def _end(self, message: dict[str, Any]) -> dict[str, Any]:
        self.finished = True
        return {}


def serve(session: Session, lines: Iterable[str], out: TextIO) -> None:
    """Answer every non-blank line of ``lines`` on ``out``, one JSON line each, flushed, until
    the input ends or an ``end`` message arrives."""
    for line in lines:
        if not line.strip():
            continue
        response = session.handle_line(line)
        try:
            text = json.dumps(response, allow_nan=False)
        except ValueError as err:  # e.g. a NaN id: still answer, in valid JSON
            text = json.dumps({"id": None, "success": False, "error": str(err)})
        out.write(text + "\n")
        out.flush()
        if session.finished:
            break
