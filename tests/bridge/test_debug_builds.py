"""Derivatives of code Numba compiled for debugging or profiling: with `NUMBA_DEBUGINFO=1`
(which `NUMBA_ENABLE_PROFILING=1` implies, for perf) every function is `noinline` and arrays
live in stack slots (enzpy's glue and users' rules too); with `NUMBA_OPT=0` nothing is
simplified. Both are read when Numba is imported, so each runs in a fresh interpreter:
forward and reverse mode against central differences of the whole map, and the dot test
between them; calls that raise release what they allocated. With `NUMBA_DISABLE_JIT=1`
(code run as Python) enzpy imports, and every derivative says why it cannot be taken."""

from __future__ import annotations

import pathlib

import pytest
from processes import run_python

PROGRAM = """
import warnings

import numba
import numpy as np
from numba.core.errors import NumbaDebugInfoWarning
from numba.core.runtime import _nrt_python, rtsys

import enzpy as ez
from harness import check_all

warnings.simplefilter("ignore", NumbaDebugInfoWarning)


@numba.njit
def smooth(a, b):
    return np.sqrt(a * a + b * b + 1.0)


@ez.enzyme_jit
def statistics(x, out):
    for i in range(1, x.shape[0] - 1):
        out[i] = smooth(x[i - 1], x[i + 1])
    out[1:-1] *= x[1:-1]
    return out.sum() + x.max() * np.percentile(x, 30) + np.sum(np.exp(-x * x))


@numba.njit
def norm(v):
    return np.sqrt(np.sum(v * v))


@ez.forward_rule(norm)
def norm_fwd(v, dv):
    n = norm(v)
    return n, np.sum(v * dv) / n


@ez.augmented_rule(norm)
def norm_aug(v):
    n = norm(v)
    return n, (v.copy(), n)


@ez.reverse_rule(norm)
def norm_rev(saved, dn, v, dv):
    v0, n = saved
    dv += dn * v0 / n
    return ()


@ez.enzyme_jit
def rows(m):
    top = np.empty(m.shape[0])
    for i in range(m.shape[0]):
        top[i] = m[i].max() + norm(m[i])
    return np.sum(np.log(top * top + 1.0))


@ez.enzyme_jit
def raising(x, n):
    t = np.exp(x)
    for i in range(x.shape[0]):
        if i == n:
            raise ValueError("boom")
    return t.sum()


@numba.njit
def inside(x, dx, n):
    try:
        ez.autodiff(ez.Reverse, raising, ez.Active, ez.Duplicated(x, dx), n)
    except Exception:
        return 1
    return 0


def from_python(x, dx, n):
    try:
        ez.autodiff(ez.Forward, raising, ez.Duplicated(x, dx), n)
    except ValueError:
        return 1
    return 0


def unreleased(call):  # allocations raising calls did not release (once compiled)
    x, dx = np.ones(6), np.ones(6)
    assert call(x, dx, 3) == 1
    before = rtsys.get_allocation_stats()
    for _ in range(5):
        call(x, dx, 3)
    after = rtsys.get_allocation_stats()
    return (after.alloc - before.alloc) - (after.free - before.free)


_nrt_python.memsys_enable_stats()
assert unreleased(inside) == unreleased(from_python) == 0
rng = np.random.default_rng(5)
check_all(statistics, (rng.permutation(np.linspace(-1.0, 2.0, 9)), np.zeros(9)), [0, 1])
check_all(rows, (rng.permutation(np.linspace(0.1, 3.0, 12)).reshape(4, 3),), [0])
print("checked")
"""


@pytest.mark.parametrize("setting", ["NUMBA_DEBUGINFO=1", "NUMBA_OPT=0"])
def test_derivatives_of_code_compiled_for_debugging(setting: str, tmp_path: pathlib.Path):
    (tmp_path / "program.py").write_text(PROGRAM)
    name, value = setting.split("=")
    assert run_python(["program.py"], tmp_path, **{name: value}).split()[-1] == "checked"


WITHOUT_JIT = """
import numba
import numpy as np

import enzpy as ez


@ez.enzyme_jit
def energy(x):
    return np.sum(x * x) + x.max()


@ez.forward_rule(energy)
def energy_fwd(x, dx):  # (declared as usual; never compiled)
    return energy(x), np.sum(2.0 * x * dx)


@numba.njit
def inside(x):
    return ez.gradient(ez.Reverse, energy, x)


x = np.array([1.0, -2.0, 0.5])
assert energy(x) == np.sum(x * x) + 1.0  # the primal runs as Python
calls = [
    lambda: ez.gradient(ez.Reverse, energy, x),
    lambda: ez.autodiff(ez.Forward, energy, ez.Duplicated(x, np.ones(3))),
    lambda: ez.autodiff_thunk(ez.ReverseSplitWithPrimal, energy, ez.Active, ez.Duplicated(x, x)),
    lambda: ez.hvp(energy, x, np.ones(3)),
    lambda: ez.jacobian(ez.Forward, energy, x),
    lambda: inside(x),
]
for call in calls:
    try:
        call()
    except ez.EnzpyError as e:
        assert "NUMBA_DISABLE_JIT=1" in str(e), e
    else:
        raise AssertionError("differentiated without compiled code")
print("checked")
"""


def test_without_the_jit_enzpy_imports_and_says_why_it_cannot_differentiate(
    tmp_path: pathlib.Path,
):
    (tmp_path / "program.py").write_text(WITHOUT_JIT)
    out = run_python(["program.py"], tmp_path, NUMBA_DISABLE_JIT="1")
    assert out.split()[-1] == "checked"
