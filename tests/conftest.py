"""Shared pytest configuration for enzpy's tests: `tests/` is put on `sys.path` so that test
modules can `import harness` and `import corpus`; the Hypothesis profiles of `tests/property`
are registered here ("ci", the default, and "long"; see `tests/property/test_programs.py`);
tests marked `slow` run first."""

import os
import pathlib
import sys

from hypothesis import HealthCheck, settings

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

_slow = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("ci", max_examples=6, derandomize=True, database=None, **_slow)
settings.register_profile(
    "long", max_examples=int(os.environ.get("ENZPY_PROP_LONG_EXAMPLES", "3000")), **_slow
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_collection_modifyitems(items: list) -> None:
    """Tests marked `slow` (tens of seconds each) first: started last, one of them would keep
    a worker busy after the other has run out of tests."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
