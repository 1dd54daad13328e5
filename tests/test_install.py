"""The installed enzpy is imported even from a folder that holds a directory named ``enzpy``
without ``__init__.py`` (the folder holding a clone), which Python sees as a namespace
package."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _python(args: list[str], cwd: pathlib.Path) -> subprocess.CompletedProcess:
    """This interpreter with only its installation on sys.path (no PYTHONPATH), from cwd."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_a_directory_named_enzpy_beside_the_script_does_not_shadow_the_installed_package(
    tmp_path,
):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    found = _python(["-c", "import enzpy; print(enzpy.__file__)"], elsewhere)
    installed = pathlib.Path(found.stdout.strip() or "/").resolve()
    if found.returncode != 0 or not installed.is_relative_to(ROOT):
        pytest.skip(f"enzpy is not installed from {ROOT} (pip install -e . there)")

    (tmp_path / "enzpy").mkdir()
    script = tmp_path / "script.py"
    script.write_text("import enzpy\n\nprint(enzpy.__file__, enzpy.enzyme_jit.__name__)\n")
    run = _python([script.name], tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [str(installed), "enzyme_jit"]
