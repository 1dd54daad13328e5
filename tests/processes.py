"""Python run in a fresh interpreter with the project importable, for tests of what lives
across processes (disk caches, pickles)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

ROOT = str(pathlib.Path(__file__).resolve().parents[1])
TESTS = str(pathlib.Path(__file__).resolve().parent)


def run_python(args: list[str], cwd: pathlib.Path, **env: str) -> str:
    """The stdout of `python *args` in `cwd` (`env` added to the environment; the project
    and the tests' helpers on the path); fails the test, showing stderr, when it fails."""
    path = os.pathsep.join([ROOT, TESTS, os.environ.get("PYTHONPATH", "")])
    run = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": path, **env},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout
