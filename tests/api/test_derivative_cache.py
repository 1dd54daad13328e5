"""`@ez.enzyme_jit(cache=True)`: derivatives kept on disk beside Numba's cache, loaded by a
second process (with the allocator they call); a changed function (its code, a helper's, a
global it reads) or a corrupt file is rebuilt, never loaded. Each run is a fresh interpreter."""

from __future__ import annotations

import json
import pathlib
import textwrap

import numpy as np
import pytest
from processes import run_python

MODEL = """
import math
import numba
import numpy as np
import enzpy as ez

SCALE = 0.5


@numba.njit(cache=True)
def rate(y, p):
    return p[0] * math.sin(y) - SCALE * p[1] * y


@numba.njit(cache=True)
def finite(y):
    for v in y:
        if not math.isfinite(v):
            return False
    return True


ez.inactive(finite)  # (enzpy does not read its code: a derivative kept on disk needs it)


@ez.enzyme_jit(cache=True)
def loss(p, y0, n):
    y = y0.copy()
    tmp = np.empty_like(y)
    for _ in range(n):
        if not finite(y):
            break
        for i in range(y.shape[0]):
            tmp[i] = rate(y[i], p)
        y[:] = y + 0.1 * tmp
    return 0.5 * np.sum(y * y)
"""

RUN = """
import json
import numpy as np
import enzpy as ez
from enzpy import disk_cache
from model import loss

p, y0, u = np.array([0.8, 0.3]), np.linspace(0.1, 1.0, 6), np.array([0.6, -0.8])
g, _, _ = ez.gradient(ez.Reverse, loss, p, ez.Const(y0), 20)
fwd = ez.autodiff(ez.Forward, loss, ez.Duplicated(p, u), ez.Const(y0), ez.Const(20))
fd = (loss(p + 1e-6 * u, y0, 20) - loss(p - 1e-6 * u, y0, 20)) / 2e-6
print(json.dumps({"g": g.tolist(), "fwd": fwd, "fd": fd, **disk_cache.stats}))
"""


def _run(tmp_path: pathlib.Path) -> dict:
    out = json.loads(run_python(["run.py"], tmp_path))
    u = np.array([0.6, -0.8])
    np.testing.assert_allclose(np.dot(out["g"], u), out["fd"], rtol=1e-6)  # the map's
    np.testing.assert_allclose(out["fwd"], out["fd"], rtol=1e-6)  # derivative, each run
    return out


def _edit(tmp_path: pathlib.Path, old: str, new: str) -> None:
    model = tmp_path / "model.py"
    model.write_text(model.read_text().replace(old, new))


@pytest.mark.slow
def test_derivatives_cached_across_processes(tmp_path):
    (tmp_path / "model.py").write_text(textwrap.dedent(MODEL))
    (tmp_path / "run.py").write_text(textwrap.dedent(RUN))
    first = _run(tmp_path)
    assert (first["loaded"], first["written"]) == (0, 2)  # reverse and forward mode
    entries = sorted(tmp_path.glob("__pycache__/enzpy/*.enzpy"))
    assert len(entries) == 2

    second = _run(tmp_path)
    assert (second["loaded"], second["written"]) == (2, 0)
    assert second["g"] == first["g"] and second["fwd"] == first["fwd"]
    # the derivatives' allocator is loaded beside them, not compiled again
    (pool,) = tmp_path.glob("__pycache__/enzpy/pool.lib")
    assert (first["pools loaded"], second["pools loaded"]) == (0, 1)
    kept = pool.read_bytes()

    # (Numba's cache has the helpers, without their IR)
    entries[0].write_bytes(b"not an entry")  # corrupt ...
    entries[1].write_bytes(entries[1].read_bytes()[:-100])  # ... and truncated
    pool.write_bytes(kept[:-100])  # (the allocator's copy too)
    repaired = _run(tmp_path)
    assert (repaired["loaded"], repaired["written"]) == (0, 2)
    assert repaired["g"] == first["g"]
    assert repaired["pools loaded"] == 0 and pool.read_bytes() != kept[:-100]  # rewritten

    _edit(tmp_path, "SCALE = 0.5", "SCALE = 0.75")  # a global a helper reads
    changed = _run(tmp_path)
    assert (changed["loaded"], changed["written"]) == (0, 2)
    assert changed["g"] != first["g"]

    _edit(tmp_path, "math.sin(y)", "math.cos(y)")  # a helper's code
    assert _run(tmp_path)["written"] == 2
    assert sorted(tmp_path.glob("__pycache__/enzpy/*.enzpy")) == entries  # replaced in place


FACT = """
import json
import numba
import numpy as np
from enzpy import derivatives
from model import loss

analysed = []
real = derivatives.primal_module
derivatives.primal_module = lambda *a: analysed.append(1) or real(*a)
types = tuple(map(numba.typeof, (np.zeros(2), np.zeros(6), 20)))
print(json.dumps({"written": derivatives.may_write(loss, types), "analysed": len(analysed)}))
"""


def test_which_arguments_are_written_is_kept_on_disk(tmp_path):
    """`gradient` copies only the arrays a function may write; for a cached function a
    second process knows which without its IR; a corrupt or stale fact is found again."""
    (tmp_path / "model.py").write_text(textwrap.dedent(MODEL))
    (tmp_path / "fact.py").write_text(textwrap.dedent(FACT))

    def run() -> dict:
        return json.loads(run_python(["fact.py"], tmp_path))

    assert run() == {"written": [False, False, False], "analysed": 1}
    assert run() == {"written": [False, False, False], "analysed": 0}
    (fact,) = tmp_path.glob("__pycache__/enzpy/*.fact")
    fact.write_bytes(fact.read_bytes()[:-5])  # truncated
    assert run() == {"written": [False, False, False], "analysed": 1}
    _edit(tmp_path, "y = y0.copy()", "y = y0")  # now it writes y0
    assert run() == {"written": [False, True, False], "analysed": 1}
    assert run()["analysed"] == 0


def test_a_cache_directory_that_cannot_be_written_is_skipped(tmp_path, monkeypatch):
    """The derivative is built and right; nothing is written, nothing raises."""
    (tmp_path / "unwritable_model.py").write_text(textwrap.dedent(MODEL))
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "enzpy").write_text("a file where the directory would be")
    monkeypatch.syspath_prepend(str(tmp_path))
    from unwritable_model import loss

    import enzpy as ez
    from enzpy import disk_cache

    p, y0 = np.array([0.8, 0.3]), np.linspace(0.1, 1.0, 6)
    written = disk_cache.stats["written"]
    g, _, _ = ez.gradient(ez.Reverse, loss, p, ez.Const(y0), 5)
    u = np.array([0.6, -0.8])
    fd = (loss(p + 1e-6 * u, y0, 5) - loss(p - 1e-6 * u, y0, 5)) / 2e-6
    np.testing.assert_allclose(np.dot(g, u), fd, rtol=1e-6)
    assert disk_cache.stats["written"] == written


def test_the_key_holds_the_rules_of_the_functions_reached_only():
    import numba

    import enzpy as ez
    from enzpy import disk_cache

    @numba.njit
    def helper(x):
        return x * x

    @numba.njit
    def unrelated(x):
        return x + 1.0

    @ez.enzyme_jit
    def f(x):
        return helper(x[0]) + x[1]

    before = disk_cache._fingerprint(f.dispatcher)
    ez.inactive(unrelated)
    assert disk_cache._fingerprint(f.dispatcher) == before
    ez.inactive(helper)  # changes f's derivative: another key
    assert disk_cache._fingerprint(f.dispatcher) != before
    g = ez.gradient(ez.Reverse, f, np.array([3.0, 2.0]))[0]
    np.testing.assert_array_equal(g, [0.0, 1.0])  # helper's x * x held constant


WITH_RULES = """
import json
import numpy as np
import enzpy as ez
from enzpy import disk_cache


@ez.enzyme_jit(cache=True)
def fit(a, b):
    return np.sum(np.linalg.solve(a, b) ** 2)


a = np.array([[4.0, 1.0, 0.5], [0.3, 3.0, -1.0], [0.2, 0.1, 5.0]])
b, u = np.array([1.0, -2.0, 0.5]), np.arange(9.0).reshape(3, 3) / 9
g = ez.gradient(ez.Reverse, fit, a, ez.Const(b))[0]
fd = (fit(a + 1e-6 * u, b) - fit(a - 1e-6 * u, b)) / 2e-6
print(json.dumps({"gu": float(np.sum(g * u)), "fd": fd, **disk_cache.stats}))
"""


def test_a_derivative_through_rules_loads_in_another_process(tmp_path):
    """The rules' compiled code is called where it was loaded in the process that built the
    derivative; what goes to disk carries its own copy, so that a second process, which has
    not compiled the rules, loads it."""
    (tmp_path / "rules.py").write_text(textwrap.dedent(WITH_RULES))
    runs = [json.loads(run_python(["rules.py"], tmp_path)) for _ in range(2)]
    for run in runs:
        np.testing.assert_allclose(run["gu"], run["fd"], rtol=1e-6)
    assert [(run["loaded"], run["written"]) for run in runs] == [(0, 1), (1, 0)]
