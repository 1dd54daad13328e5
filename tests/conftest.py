"""Shared pytest configuration for enzpy's tests.

``tests/`` is put on ``sys.path`` so test modules can ``import harness`` and ``import corpus``.
Until ``enzpy`` exposes ``enzyme_jit`` and ``autodiff`` the derivative suites (forward/,
reverse/, api/) are not collected (the report header says so) instead of erroring at
collection time, which would stop the whole session.  Reverse-mode tests carry the
``reverse`` marker and are skipped until ``enzpy._REVERSE_IMPLEMENTED`` is true.
"""

import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import harness  # noqa: E402

ENZPY_READY = harness.ENZPY_READY
REVERSE_READY = harness.REVERSE_READY

collect_ignore_glob = [] if ENZPY_READY else ["forward/*", "reverse/*", "api/*"]


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "reverse: reverse-mode test (skipped until enzpy._REVERSE_IMPLEMENTED)"
    )


def pytest_report_header(config):
    lines = []
    if not ENZPY_READY:
        lines.append("enzpy: enzyme_jit/autodiff missing -> forward/, reverse/, api/ not collected")
    elif not REVERSE_READY:
        lines.append("enzpy: reverse mode not implemented -> reverse tests skipped")
    return lines
