"""Tests for IR capture and the argument ABI mapping."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from numba.core import types

from enzpy.bridge import abi, capture


@numba.njit
def _callee(x):
    return x.sum() + np.zeros(3)[0]


@numba.njit
def _root(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] * x[i]
    return s + _callee(x)


def test_hook_installed_once() -> None:
    capture.install_hook()
    capture.install_hook()
    fn = numba.core.codegen.CPUCodeLibrary._optimize_functions
    assert getattr(fn, "_enzpy_hook", False)


def test_function_ir_and_callees() -> None:
    x = np.arange(4.0)
    assert _root(x) == pytest.approx(14.0 + 6.0)
    sym, lib, sig = capture.compiled_function(_root)
    text = capture.function_ir(sym)
    assert text is not None
    assert sym in capture.defined_symbols(text)
    # function-optimized level: a clean loop, and the callee is a declaration
    assert "fmul double" in text
    mods = capture.modules_for(sym)
    assert mods[0] is text
    defined = {s for m in mods for s in capture.defined_symbols(m)}
    callee_sym, _, _ = capture.compiled_function(_callee)
    assert callee_sym in defined
    assert any("array_sum_impl" in s for s in defined)
    assert any("ol_np_zeros" in s for s in defined)
    # runtime functions and wrappers are never captured as callees
    skipped = ("NRT_", "nrt_", "numba_", "_ZN7cpython", "cfunc.")
    assert not any(s.startswith(skipped) for s in defined)
    for m in mods:
        assert "_ZN7cpython" not in " ".join(capture.defined_symbols(m))


def test_unknown_symbol() -> None:
    assert capture.function_ir("no_such_symbol") is None
    with pytest.raises(KeyError):
        capture.modules_for("no_such_symbol")


def test_suspended_does_not_record() -> None:
    @numba.njit
    def k(a):
        return a + 1.0

    with capture.suspended():
        k(1.0)
    sym, _, _ = capture.compiled_function(k)
    assert capture.function_ir(sym) is None


def test_defined_declared_regex() -> None:
    text = (
        'define i32 @"fwddiffe_a.b$1"(ptr %x) {\n  ret i32 0\n}\n'
        "define internal double @g(double %a) {\n  ret double %a\n}\n"
        "declare void @NRT_incref(ptr noalias captures(none))\n"
        "declare double @llvm.exp.f64(double)\n"
    )
    assert capture.defined_symbols(text) == ["fwddiffe_a.b$1", "g"]
    assert capture.declared_symbols(text) == ["NRT_incref", "llvm.exp.f64"]


def test_layout_1d_2d_scalars() -> None:
    a1 = types.float64[::1]
    a2 = types.float32[:, :]
    lay = abi.argument_layout([a1, types.float64, types.int64, types.boolean, a2])
    roles = [[x.role for x in g] for g in lay]
    assert roles[0] == ["meminfo", "parent", "nitems", "itemsize", "data", "shape", "strides"]
    assert [x.position for x in lay[0]] == list(range(2, 9))
    assert roles[1] == ["scalar_float"] and lay[1][0].position == 9
    assert roles[2] == ["scalar_int"] and roles[3] == ["scalar_int"]
    assert roles[4] == [
        "meminfo",
        "parent",
        "nitems",
        "itemsize",
        "data",
        "shape",
        "shape",
        "strides",
        "strides",
    ]
    assert [x.dim for x in lay[4][5:]] == [0, 1, 0, 1]
    assert lay[4][0].position == 12 and lay[4][-1].position == 20
    # agrees with Numba's own function type
    from numba.core.registry import cpu_target

    fnty = cpu_target.target_context.call_conv.get_function_type(
        types.float64, [a1, types.float64, types.int64, types.boolean, a2]
    )
    assert len(fnty.args) == 2 + sum(len(g) for g in lay)


def test_layout_tuple_arg() -> None:
    tup = types.Tuple((types.float64[:], types.float64, types.UniTuple(types.int64, 2)))
    (group,) = abi.argument_layout([tup])
    assert [x.role for x in group] == [
        "meminfo",
        "parent",
        "nitems",
        "itemsize",
        "data",
        "shape",
        "strides",
        "scalar_float",
        "scalar_int",
        "scalar_int",
    ]
    assert group[7].path == (1,) and group[8].path == (2, 0)


def test_activities() -> None:
    A, C = abi.Activity.DUP, abi.Activity.CONST
    acts = abi.llvm_activities(
        [types.float64[:], types.int64, types.float64], types.float64, ["dup", "const", "dup"]
    )
    assert acts == [A, C, A, A, C, C, A, C, C, C, A]
    # const array, int return: nothing active but the scalar
    acts = abi.llvm_activities([types.float64[:], types.float64], types.int64, ["const", "dup"])
    assert acts == [C] * 9 + [A]
    # integer arrays are never active; dup_noneed passes through
    acts = abi.llvm_activities(
        [types.int64[:], types.float64[:]], types.float64[:], ["dup", "dup_noneed"]
    )
    N = abi.Activity.DUP_NONEED
    assert acts[:9] == [A] + [C] * 8
    assert acts[9:] == [N, N, C, C, N, C, C]
    assert abi.shadowed_args([types.int64[:], types.float64[:]], acts) == [1]
    with pytest.raises(ValueError):
        abi.llvm_activities([types.float64], types.float64, ["bogus"])
