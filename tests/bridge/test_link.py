"""End-to-end tests of the derivative linker with hand-written derivative IR."""

from __future__ import annotations

import re
import sys

import numba
import numpy as np
import pytest
from numba.core import types
from numba.core.runtime import _nrt_python, rtsys

from enzpy.bridge import abi, capture, link


@numba.njit
def sumsq(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] * x[i]
    return s


@numba.njit
def raiser(x):
    if x[0] < 0.0:
        raise ValueError("neg")
    return x[0] * 2.0


@numba.njit(boundscheck=True)
def oob(x, i):
    return x[i] * 3.0


@numba.njit
def expo(x):
    return np.exp(x)


def _primal(dispatcher, *args):
    """Compile the primal for `args` and return (symbol, library, signature, IR text)."""
    dispatcher(*args)
    sym, lib, sig = capture.compiled_function(dispatcher)
    text = capture.function_ir(sym)
    assert text is not None
    return sym, lib, sig, text


_SUMSQ_FWD = """
define i32 @"fwddiffe_{sym}"(ptr %retptr, ptr %excinfo, ptr %m, ptr %p, i64 %n, i64 %isz,
                              ptr %data, i64 %shape, i64 %stride,
                              ptr %dretptr, ptr %dm, ptr %dp, ptr %ddata) {{
entry:
  %c = icmp slt i64 %shape, 1
  br i1 %c, label %exit, label %loop
loop:
  %s = phi double [0.0, %entry], [%s2, %loop]
  %ds = phi double [0.0, %entry], [%ds2, %loop]
  %i = phi i64 [0, %entry], [%i2, %loop]
  %i2 = add i64 %i, 1
  %g = getelementptr double, ptr %data, i64 %i
  %x = load double, ptr %g
  %dg = getelementptr double, ptr %ddata, i64 %i
  %dx = load double, ptr %dg
  %xx = fmul double %x, %x
  %s2 = fadd double %s, %xx
  %t = fmul double %x, %dx
  %t2 = fmul double %t, 2.0
  %ds2 = fadd double %ds, %t2
  %e = icmp eq i64 %i2, %shape
  br i1 %e, label %exit, label %loop
exit:
  %sf = phi double [0.0, %entry], [%s2, %loop]
  %dsf = phi double [0.0, %entry], [%ds2, %loop]
  store double %sf, ptr %retptr
  store double %dsf, ptr %dretptr
  ret i32 0
}}
"""


def _acts(sig, annotations):
    return abi.llvm_activities(sig.args, sig.return_type, annotations)


def test_forward_sumsq() -> None:
    x = np.linspace(-1.0, 2.0, 7)
    sym, lib, sig, text = _primal(sumsq, x)
    module = text + _SUMSQ_FWD.format(sym=sym)
    acts = _acts(sig, ["dup"])
    d = link.make_driver(module, f"fwddiffe_{sym}", lib, sig.args, sig.return_type, acts)
    assert d.shadowed == (0,)
    dx = np.cos(np.arange(7.0))
    p, t = d(x, dx)
    assert p == pytest.approx(sumsq(x))
    assert t == pytest.approx(2.0 * x @ dx)
    # cached by content
    d2 = link.make_driver(module, f"fwddiffe_{sym}", lib, sig.args, sig.return_type, acts)
    assert d2 is d
    # callable from njit code through the intrinsic and `finish`
    call, finish = d.call, link.finish

    @numba.njit
    def inner(a, b):
        o = call(a, b)
        return finish(o, o[3])

    assert inner(x, dx)[1] == pytest.approx(2.0 * x @ dx)
    # both call the derivative's machine code by address: its IR is not linked into them
    # (to be optimized and compiled again)
    for caller in (d.driver.func, inner):  # (the driver is shared: `d.table` bound)
        (compiled,) = caller.overloads.values()
        assert d.library not in compiled.library._linking_libraries
        assert d.symbol not in compiled.library.get_llvm_str()
    # wrong argument types fail in dispatch, before native code runs
    with pytest.raises(TypeError):
        d(x, np.arange(7))


def _copy_primal(text: str, sym: str, extra: str) -> str:
    """The primal's definition renamed to fwddiffe_<sym>, with extra unused parameters."""
    start = text.index("define ")
    start = text.index(f"@{sym}(", start)
    body_start = text.rfind("\ndefine", 0, start) + 1
    end = text.index("\n}\n", start) + 3
    fn = text[body_start:end]
    fn = fn.replace(f"@{sym}(", f'@"fwddiffe_{sym}"(', 1)
    fn = re.sub(r"\) (#\d+ )?\{\n", lambda m: f", {extra}) {{\n", fn, count=1)
    return text + "\n" + fn


def test_exception_propagates_static() -> None:
    x = np.array([1.5, 2.0])
    sym, lib, sig, text = _primal(raiser, x)
    module = _copy_primal(text, sym, "ptr %dret, ptr %dm, ptr %dp, ptr %dd")
    acts = _acts(sig, ["dup"])
    d = link.make_driver(module, f"fwddiffe_{sym}", lib, sig.args, sig.return_type, acts)
    p, t = d(x, np.ones(2))
    assert p == 3.0 and t == 0.0
    with pytest.raises(ValueError, match="neg"):
        d(-x, np.ones(2))


def test_exception_propagates_boundscheck() -> None:
    x = np.array([1.5, 2.0])
    sym, lib, sig, text = _primal(oob, x, 1)
    module = _copy_primal(text, sym, "ptr %dret, ptr %dm, ptr %dp, ptr %dd")
    acts = _acts(sig, ["dup", "const"])
    d = link.make_driver(module, f"fwddiffe_{sym}", lib, sig.args, sig.return_type, acts)
    assert d(x, 1, np.ones(2)) == (6.0, 0.0)
    with pytest.raises(IndexError) as exc_primal:
        oob(x, 5)
    with pytest.raises(IndexError) as exc_drv:
        d(x, 5, np.ones(2))
    assert str(exc_drv.value) == str(exc_primal.value)


def _array_fwd(sym: str) -> str:
    """Derivative of a 1-D array -> 1-D array primal: the 'tangent' is primal(dx)."""
    args = "ptr %m, ptr %p, i64 %n, i64 %isz, ptr %data, i64 %shape, i64 %stride"
    dargs = "ptr %dm, ptr %dp, i64 %n, i64 %isz, ptr %ddata, i64 %shape, i64 %stride"
    return f"""
define i32 @"fwddiffe_{sym}"(ptr %retptr, ptr %excinfo, {args},
                              ptr %dretptr, ptr %dm, ptr %dp, ptr %ddata) {{
entry:
  %r = call i32 @{sym}(ptr %retptr, ptr %excinfo, {args})
  %bad = icmp ne i32 %r, 0
  br i1 %bad, label %fail, label %second
second:
  %r2 = call i32 @{sym}(ptr %dretptr, ptr %excinfo, {dargs})
  ret i32 %r2
fail:
  ret i32 %r
}}
"""


def test_array_return_ownership() -> None:
    x = np.linspace(0.0, 1.0, 5)
    sym, lib, sig, text = _primal(expo, x)
    module = text + _array_fwd(sym)
    acts = _acts(sig, ["dup"])
    d = link.make_driver(module, f"fwddiffe_{sym}", lib, sig.args, sig.return_type, acts)
    dx = np.full(5, 0.5)
    d(x, dx)  # warm up
    _nrt_python.memsys_enable_stats()
    try:
        before = rtsys.get_allocation_stats()
        for _ in range(50):
            p, t = d(x, dx)
            np.testing.assert_allclose(p, np.exp(x))
            np.testing.assert_allclose(t, np.exp(dx))
            assert sys.getrefcount(p) == sys.getrefcount(t) == 2
            assert p.base is not None and t.base is not None  # NRT-owned buffers
            del p, t
        after = rtsys.get_allocation_stats()
        for _ in range(50):
            expo(x)
        primal = rtsys.get_allocation_stats()
    finally:
        _nrt_python.memsys_disable_stats()
    # everything allocated is freed; the driver allocates what two primal calls do
    assert after.alloc - before.alloc == after.free - before.free
    assert after.alloc - before.alloc == 2 * (primal.alloc - after.alloc)
    assert primal.alloc - after.alloc == primal.free - after.free
    p, t = d(x, dx)
    t[:] = 1.0  # the shadow is a distinct, writable allocation
    np.testing.assert_allclose(p, np.exp(x))


def test_const_return_gives_none_tangent() -> None:
    x = np.linspace(0.0, 1.0, 5)
    sym, lib, sig, text = _primal(sumsq, x)
    module = _copy_primal(text, sym, "ptr %dm, ptr %dp, ptr %dd")
    acts = _acts(sig, ["dup"])
    acts[0] = abi.Activity.CONST
    d = link.make_driver(module, f"fwddiffe_{sym}", lib, sig.args, sig.return_type, acts)
    assert d(x, x) == (pytest.approx(sumsq(x)), None)


def test_bad_activity_count() -> None:
    x = np.ones(3)
    sym, lib, sig, text = _primal(sumsq, x)
    with pytest.raises(ValueError):
        link.make_driver(text, sym, lib, sig.args, sig.return_type, [abi.Activity.CONST])


def test_scalar_and_tuple_types() -> None:
    @numba.njit
    def mix(a, x, k):
        return a * x[k]

    x = np.arange(3.0)
    sym, lib, sig, text = _primal(mix, 2.0, x, 1)
    assert sig.args == (types.float64, types.Array(types.float64, 1, "C"), types.int64)
    # shadows: retptr, a, x.meminfo, x.parent, x.data
    module = _copy_primal(text, sym, "ptr %dr, double %da, ptr %dm, ptr %dp, ptr %dd")
    acts = _acts(sig, ["dup", "dup", "const"])
    d = link.make_driver(module, f"fwddiffe_{sym}", lib, sig.args, sig.return_type, acts)
    assert d.shadowed == (0, 1)
    assert d(2.0, x, 1, 1.0, x) == (2.0, 0.0)


@numba.njit
def dyn_raiser(x):
    if x[0] < 0.0:
        raise ValueError("negative value", x[0])
    return x[0]


def test_exception_propagates_dynamic() -> None:
    x = np.array([1.5, 2.0])
    sym, lib, sig, text = _primal(dyn_raiser, x)
    module = _copy_primal(text, sym, "ptr %dret, ptr %dm, ptr %dp, ptr %dd")
    d = link.make_driver(
        module, f"fwddiffe_{sym}", lib, sig.args, sig.return_type, _acts(sig, ["dup"])
    )
    assert d(x, x) == (1.5, 0.0)
    with pytest.raises(ValueError) as info:
        d(-x, x)
    assert info.value.args == ("negative value", -1.5)


@numba.njit
def scale2d(x):
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            x[i, j] *= 2.0


def test_inplace_2d_none_return() -> None:
    x = np.arange(6.0).reshape(2, 3)
    sym, lib, sig, text = _primal(scale2d, x.copy())
    assert sig.return_type == types.none
    args = "ptr %m, ptr %p, i64 %n, i64 %isz, ptr %data, i64 %s0, i64 %s1, i64 %t0, i64 %t1"
    dargs = "ptr %dm, ptr %dp, i64 %n, i64 %isz, ptr %dd, i64 %s0, i64 %s1, i64 %t0, i64 %t1"
    fwd = f"""
define i32 @"fwddiffe_{sym}"(ptr %retptr, ptr %excinfo, {args}, ptr %dm, ptr %dp, ptr %dd) {{
  %r = call i32 @{sym}(ptr %retptr, ptr %excinfo, {args})
  %r2 = call i32 @{sym}(ptr %retptr, ptr %excinfo, {dargs})
  ret i32 %r2
}}
"""
    acts = _acts(sig, ["dup"])
    assert acts[0] is abi.Activity.CONST
    d = link.make_driver(text + fwd, f"fwddiffe_{sym}", lib, sig.args, sig.return_type, acts)
    dx = np.ones((2, 3))
    assert d(x, dx) == (None, None)
    np.testing.assert_array_equal(x, 2.0 * np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(dx, 2.0)
