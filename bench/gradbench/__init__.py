"""enzpy as a GradBench tool: ``python -m bench.gradbench`` speaks GradBench's JSON-lines
protocol on stdin/stdout (see :mod:`bench.gradbench.protocol` and bench/README.md).

The protocol layer (:class:`Session`, :func:`serve`) does not import enzpy; the eval modules
it dispatches to (``bench.evals.<name>``, and the built-in ``hello``) do.
"""

from .protocol import (
    BUILTIN_MODULES,
    EVALS_PACKAGE,
    KNOWN_EVALS,
    EvalModule,
    ProtocolError,
    Session,
    UnknownModule,
    default_resolver,
    import_eval_module,
    run_counts,
    serve,
    timed_runs,
    to_json,
)

__all__ = [
    "BUILTIN_MODULES",
    "EVALS_PACKAGE",
    "KNOWN_EVALS",
    "EvalModule",
    "ProtocolError",
    "Session",
    "UnknownModule",
    "default_resolver",
    "import_eval_module",
    "run_counts",
    "serve",
    "timed_runs",
    "to_json",
]
