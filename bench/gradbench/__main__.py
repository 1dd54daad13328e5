"""``python -m bench.gradbench``: run enzpy as a GradBench tool on stdin/stdout.

Use it as the ``--tool`` command of GradBench's driver, e.g.
``./gradbench run --eval './gradbench repo eval lse' --tool 'python -m bench.gradbench'``
(from this repository's root, or with it on ``PYTHONPATH``).
"""

from __future__ import annotations

import argparse
import io
import os
import sys

from .protocol import EVALS_PACKAGE, Session, default_resolver, serve


def _protocol_stdout() -> io.TextIOWrapper:
    """A private handle on the real stdout for protocol lines; file descriptor 1 and
    ``sys.stdout`` are pointed at stderr, so anything an eval module, Numba or native code
    prints cannot corrupt the JSON stream."""
    sys.stdout.flush()
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return io.TextIOWrapper(os.fdopen(fd, "wb"), encoding="utf-8", line_buffering=True)


def main(argv: list[str] | None = None) -> int:
    """Parse options and serve the protocol until stdin ends or an ``end`` message."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.gradbench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--package",
        default=EVALS_PACKAGE,
        help=f"package holding one module per eval (default {EVALS_PACKAGE})",
    )
    parser.add_argument("--tool", default="enzpy", help="tool name reported on start")
    parser.add_argument(
        "--warmup",
        action="store_true",
        help="call each function once more before its timed runs, reported as 'warmup'",
    )
    args = parser.parse_args(argv)
    out = _protocol_stdout()
    session = Session(resolve=default_resolver(args.package), tool=args.tool, warmup=args.warmup)
    try:
        serve(session, sys.stdin, out)
    except (BrokenPipeError, KeyboardInterrupt):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
