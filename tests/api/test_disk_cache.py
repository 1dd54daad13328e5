"""A primal loaded from Numba's disk cache has no captured IR: enzpy recompiles it."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap

ROOT = str(pathlib.Path(__file__).resolve().parents[2])


def test_cache_true_differentiates_from_a_warm_cache(tmp_path):
    (tmp_path / "mod.py").write_text(textwrap.dedent("""
        import numpy as np, enzpy as ez

        @ez.enzyme_jit(cache=True)
        def f(x):
            s = 0.0
            for i in range(x.shape[0]):
                s += x[i] * x[i]
            return s

        x = np.array([1.0, 2.0, 3.0])
        (g,) = ez.gradient(ez.Reverse, f, x)
        assert (g == 2 * x).all(), g
        print("ok")
    """))
    for _ in range(2):  # the second run loads f from the disk cache
        env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
        run = subprocess.run([sys.executable, "mod.py"], cwd=tmp_path, capture_output=True,
                             text=True, timeout=300, env=env)  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == "ok"
    assert list(tmp_path.glob("__pycache__/*.nbi")), "numba wrote no disk cache"
