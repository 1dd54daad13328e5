"""Shared pytest configuration for enzpy's tests: `tests/` is put on `sys.path` so that test
modules can `import harness` and `import corpus`."""

import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
