"""A derivative whose primal raises releases everything it took, as the primal does: the
references to the argument arrays and their shadows, the shadows of local arrays, the
tape. Checked by reference counts and by the Numba runtime's allocation counters over
many raising calls, in both modes, from Python, through the hot path's compiled entry, and
inside jitted code (where the caller catches the exception: a Numba function that lets an
exception through keeps its own references, whatever it called)."""

import sys

import numba
import numpy as np
import pytest
from numba.core.runtime import _nrt_python, rtsys

import enzpy as ez
from enzpy import api


@ez.enzyme_jit
def raise_after_loop(x, n):
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] * x[i]
    if n >= 0:
        raise ValueError("boom")
    return s


@ez.enzyme_jit
def raise_with_local_arrays(x, n):
    t = np.zeros(x.shape[0])
    u = np.exp(x)
    s = 0.0
    for i in range(x.shape[0]):
        t[i] = u[i] * x[i]
        s += t[i] * u[i]
        if i == n:
            raise ValueError("boom")
    return s + (t * u).sum()


_MODES = {"Forward": (ez.Forward,), "Reverse": (ez.Reverse, ez.Active)}


def _inside(f, mode):
    """A jitted function making the call and catching what it raises."""
    ret = ", ez.Active" if mode == "Reverse" else ""
    ns = {"ez": ez, "f": f}
    exec(
        f"def call(x, dx, n):\n"
        f"    try:\n"
        f"        ez.autodiff(ez.{mode}, f{ret}, ez.Duplicated(x, dx), n)\n"
        f"    except Exception:\n"
        f"        return 1\n"
        f"    return 0\n",
        ns,
    )
    return numba.njit(ns["call"])


@pytest.fixture
def nrt_stats():
    _nrt_python.memsys_enable_stats()
    yield rtsys.get_allocation_stats
    _nrt_python.memsys_disable_stats()


def _unreleased(before, after):
    return (
        after.alloc - before.alloc - (after.free - before.free),
        after.mi_alloc - before.mi_alloc - (after.mi_free - before.mi_free),
    )


@pytest.mark.parametrize("path", ["python", "hot", "inside"])
@pytest.mark.parametrize("mode", list(_MODES))
@pytest.mark.parametrize(
    "f", [raise_after_loop, raise_with_local_arrays], ids=["after-loop", "local-arrays"]
)
def test_raising_calls_release_everything(f, mode, path, nrt_stats, monkeypatch):
    x, dx = np.linspace(0.1, 1.0, 50), np.zeros(50)
    monkeypatch.setattr(api, "_ENTRIES", path == "hot")
    monkeypatch.setattr(api, "_shapes", {})
    monkeypatch.setattr(api, "_entries", {})
    if path == "inside":
        jitted = _inside(f, mode)

        def call(n):
            assert jitted(x, dx, n) == (n >= 0)
    else:
        m, *ret = _MODES[mode]

        def call(n):
            try:
                ez.autodiff(m, f, *ret, ez.Duplicated(x, dx), n)
            except ValueError as e:
                assert n >= 0 and str(e) == "boom"
            else:
                assert n < 0

    call(-1)  # compiles (and, on the hot path, makes the compiled entry)
    call(10)
    assert (path == "hot") == bool(api._entries)
    refs = sys.getrefcount(x), sys.getrefcount(dx)
    before = nrt_stats()
    for n in range(20):
        call(n)
    assert _unreleased(before, nrt_stats()) == (0, 0)
    assert (sys.getrefcount(x), sys.getrefcount(dx)) == refs
