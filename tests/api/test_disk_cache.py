"""Functions enzpy never saw the IR of (a primal or a helper loaded from Numba's disk
cache, a helper compiled before `import enzpy`) are compiled again for their IR; when that
cannot be done, the error says so."""

from __future__ import annotations

import textwrap

import numba
import numpy as np
import pytest
from harness import check_forward, check_reverse, dot_test
from processes import run_python

import enzpy as ez
from enzpy.bridge import capture


def test_cache_true_differentiates_from_a_warm_cache(tmp_path):
    (tmp_path / "mod.py").write_text(
        textwrap.dedent("""
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
    """)
    )
    for _ in range(2):  # the second run loads f from the disk cache
        assert run_python(["mod.py"], tmp_path).strip() == "ok"
    assert list(tmp_path.glob("__pycache__/*.nbi")), "numba wrote no disk cache"


HELPERS = """
    import numpy as np, numba

    @numba.njit(cache=True)
    def inner(a):
        return np.sin(a) * a

    @numba.njit(cache=True)
    def helper(x, i):
        return inner(x[i]) * x[i + 1] + x.sum()
"""

CHECK = """
    import enzpy as ez
    from harness import check_forward, check_reverse, dot_test

    @ez.enzyme_jit(cache=True)
    def f(x):
        s = 0.0
        for i in range(x.shape[0] - 1):
            s += helper(x, i)
        return s

    x = np.array([0.3, -1.2, 0.8, 2.0])
    check_reverse(f, [x], (0,))
    check_forward(f, [x], (0,))
    dot_test(f, [x], (0,))
    print("loaded from the cache:", helper.stats.cache_hits[helper.signatures[0]] > 0)
"""


def _run(tmp_path, source, cache):
    (tmp_path / "mod.py").write_text(textwrap.dedent(source))
    return run_python(["mod.py"], tmp_path, NUMBA_CACHE_DIR=str(cache)).strip()


def test_helpers_loaded_from_a_shared_disk_cache_differentiate(tmp_path):
    cache = tmp_path / "cache"
    first = _run(tmp_path, HELPERS + CHECK, cache)
    second = _run(tmp_path, HELPERS + CHECK, cache)  # helper, inner and f from the cache
    assert (first, second) == ("loaded from the cache: False", "loaded from the cache: True")


def test_helpers_compiled_before_enzpy_was_imported_differentiate(tmp_path):
    warm = """
    helper(np.linspace(0.0, 1.0, 4), 0)  # compiles helper, inner and x.sum()'s helpers
    """
    assert _run(tmp_path, HELPERS + warm + CHECK, tmp_path / "cache").startswith("loaded")


@numba.njit
def _square(a):
    return a * a


@ez.enzyme_jit
def _sum_of_squares(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += _square(x[i])
    return s


def test_a_helper_without_ir_is_compiled_again_or_named(monkeypatch):
    with capture.suspended():  # as if compiled before enzpy was imported
        _square.compile((numba.float64,))
    monkeypatch.setattr(capture, "_again", {})
    monkeypatch.setattr(capture, "_overload_named", lambda symbol: None)
    x = np.array([0.5, -1.0, 2.0])
    with pytest.raises(ez.NoDerivativeError) as info:
        ez.gradient(ez.Reverse, _sum_of_squares, x)
    message = str(info.value)
    assert "enzpy has no IR for helper" in message and "_square" in message
    assert "Numba's disk cache" in message and "before enzpy was imported" in message
    assert "Const" not in message  # the hint never points away from the cause
    monkeypatch.undo()
    check_reverse(_sum_of_squares, [x], (0,))
    check_forward(_sum_of_squares, [x], (0,))
    dot_test(_sum_of_squares, [x], (0,))
