"""Floats moved through integers, on hand-written IR: which integer loads and stores touch
float memory (`analysis.memtypes`), how they are rewritten as float operations
(`transforms.float_bits`), the derivatives that follow, and the refusal of integer
arithmetic on the bits of a float with a derivative. (The same through Numba: the
`bits` cases of the corpus.)"""

from __future__ import annotations

import ctypes

import pytest
from rules.rule_driver import CTYPES, Jit, call_with_out, forward_wrapper

import llvm_passes
from llvm_passes.analysis.memtypes import Offset, float_bits, layout_of
from llvm_passes.ir import DOUBLE, parse_module, parse_type_text
from llvm_passes.transforms.float_bits import follow_float_bits

DUP = llvm_passes.Activity.DUP


def test_offsets():
    a, b = Offset(8, 0), Offset(0, 16)
    assert a.overlaps(b) and not a.overlaps(Offset(0, 4))
    assert Offset(16, 8).overlaps(Offset(0, 24)) and not Offset(16, 8).overlaps(Offset(16, 0))
    assert Offset(0, 0).join(Offset(0, 8)) == Offset(8, 0)
    assert Offset(0, 3).plus(5, 4) == Offset(4, 0)


SIGN_FLIP = """
define double @f(double %x) {
entry:
  %b = bitcast double %x to i64
  %n = xor i64 %b, -9223372036854775808
  %y = bitcast i64 %n to double
  %r = fmul double %y, %x
  ret double %r
}
"""


def _tangent(text: str, x: float, dx: float) -> float:
    res = llvm_passes.forward(text, "f", [DUP])
    jit = Jit(res.module_text + "\n" + forward_wrapper("f", "double", 1))
    fn = jit.fn("call_fwd", [CTYPES["double"]] * 2 + [ctypes.c_void_p])
    return call_with_out(fn, CTYPES["double"], [x, dx], 2)[1]


def test_sign_flip_in_registers_is_a_negation():
    """f(x) = -x · x: f'(x) = -2x."""
    module = parse_module(SIGN_FLIP)
    follow_float_bits(module, "f", None)
    body = module.get("f").text()
    assert "fneg double %x" in body and "xor" not in body
    assert _tangent(SIGN_FLIP, 1.5, 1.0) == -3.0


def test_integer_arithmetic_on_active_bits_is_refused():
    text = SIGN_FLIP.replace("xor i64 %b, -9223372036854775808", "add i64 %b, 1")
    with pytest.raises(llvm_passes.NoDerivativeError, match="bits of a float"):
        llvm_passes.forward(text, "f", [DUP])


def test_bits_used_only_in_comparisons_have_no_derivative():
    """The sign test `bits < 0` picks a branch; f(x) = |x| computed so has f'(x) = sign x."""
    text = """
define double @f(double %x) {
entry:
  %b = bitcast double %x to i64
  %neg = icmp slt i64 %b, 0
  %m = fneg double %x
  %r = select i1 %neg, double %m, double %x
  ret double %r
}
"""
    assert _tangent(text, -2.0, 1.0) == -1.0
    assert _tangent(text, 2.0, 1.0) == 1.0


STRUCT = """
define void @f(ptr %p, ptr %q) {
entry:
  %d = load i64, ptr %p
  %ip = getelementptr i8, ptr %p, i64 8
  %i = load i64, ptr %ip
  store i64 %d, ptr %q
  %qi = getelementptr {double, i64}, ptr %q, i64 0, i32 1
  store i64 %i, ptr %qi
  ret void
}
"""


def test_struct_fields_keep_their_types():
    """Memory holding {double, i64}: the i64 read at offset 0 is a double's bits, the one at
    offset 8 an integer; the copy into the second struct follows."""
    fn = parse_module(STRUCT).get("f")
    pair = layout_of(parse_type_text("{double, i64}"))
    bits = float_bits(fn, {0: pair, 1: pair})
    load_d, _, load_i, store_d, _, store_i, _ = fn.entry.instructions
    assert dict(bits.loads) == {load_d: DOUBLE} and dict(bits.stores) == {store_d: DOUBLE}
    assert load_i not in bits.values and store_i not in bits.stores


COPY = """
define double @f(ptr %x, i64 %n) {
entry:
  %y = alloca [4 x double]
  call void @llvm.memcpy.p0.p0.i64(ptr %y, ptr %x, i64 32, i1 false)
  br label %loop
loop:
  %k = phi i64 [ 0, %entry ], [ %k.next, %loop ]
  %p = phi ptr [ %y, %entry ], [ %p.next, %loop ]
  %w = load i64, ptr %p
  %a = and i64 %w, 9223372036854775807
  store i64 %a, ptr %p
  %p.next = getelementptr i8, ptr %p, i64 8
  %k.next = add i64 %k, 1
  %done = icmp eq i64 %k.next, 4
  br i1 %done, label %exit, label %loop
exit:
  ret double 0.0
}
declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)
"""


def test_types_follow_copies_and_pointer_steps():
    """A copy of an array of doubles, walked by a pointer stepping 8 bytes: every word is a
    double; without the fact about %x nothing in the function says so."""
    fn = parse_module(COPY).get("f")
    known = float_bits(fn, {0: layout_of(DOUBLE)})
    assert [i.name for i in known.loads] == ["w"] and len(known.stores) == 1
    unknown = float_bits(fn)
    assert not unknown.loads and not unknown.stores
    module = parse_module(COPY)
    follow_float_bits(module, "f", [DOUBLE, None])
    assert "call double @llvm.fabs.f64" in module.get("f").text()
