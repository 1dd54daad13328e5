"""parse -> print -> llvmlite parse + verify, and print(parse(print)) == print, for every
module Numba compiles for the corpus (its function-optimized IR and its callees'), stored in
``fixtures/`` by ``capture_fixtures.py``."""

from __future__ import annotations

import pathlib

import llvmlite.binding as llvm
import pytest

from llvm_passes.ir import parse_module

FIXTURES = sorted((pathlib.Path(__file__).resolve().parent / "fixtures").glob("*.ll"))


def test_the_fixtures_are_there():
    assert len(FIXTURES) >= 50, "run tests/ir/capture_fixtures.py"


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_captured_module_round_trips(path):
    printed = parse_module(path.read_text()).text()
    llvm.parse_assembly(printed).verify()
    assert parse_module(printed).text() == printed


def test_numbered_locals_do_not_take_the_names_of_printed_ones():
    """IR printed by enzpy (numbered locals named `_<n>`) and numbered again by LLVM after
    inlining holds both `%_0` and `%0`: they stay two values."""
    text = """
define i64 @f(i64 %a) {
entry:
  %_0 = add i64 %a, 1
  %0 = mul i64 %_0, 2
  br label %1

1:
  %2 = phi i64 [ %0, %entry ]
  %_2 = add i64 %2, %_0
  ret i64 %_2
}
"""
    printed = parse_module(text).text()
    llvm.parse_assembly(printed).verify()
    assert printed.count(" = add ") == 2 and printed.count(" = mul ") == 1


def test_printing_from_roots_keeps_what_they_reach_and_leaves_the_rest_unparsed():
    """`Module.text(roots)`: the definitions the roots reach through calls, function
    pointers in constants and globals' initializers are printed (a valid module), the
    others neither printed nor parsed (a body that would not parse stays unread)."""
    text = """
@table = internal constant [1 x ptr] [ptr @through_global]

define double @root(double %x) {
entry:
  %a = call double @callee(double %x)
  %p = select i1 true, ptr @by_pointer, ptr @by_pointer
  %b = call double %p(double %a)
  ret double %b
}

define double @callee(double %x) {
entry:
  %y = call double @"quoted name"(double %x)
  ret double %y
}

define double @"quoted name"(double %x) {
entry:
  ret double %x
}

define double @by_pointer(double %x) {
entry:
  ret double %x
}

define double @through_global(double %x) {
entry:
  ret double %x
}

define double @unreached(double %x) {
entry:
  %y = this is not an instruction
  ret double %y
}

declare double @llvm.sin.f64(double)
"""
    module = parse_module(text)
    printed = module.text(roots=["root"])
    llvm.parse_assembly(printed).verify()
    for name in ("@root", "@callee", '@"quoted name"', "@by_pointer", "@through_global"):
        assert f"define double {name}(" in printed
    assert "@unreached" not in printed and "declare double @llvm.sin.f64" in printed
    assert module.functions["unreached"]._parse_body is not None  # (never parsed)


def test_constant_expressions_with_flags():
    """LLVM prints a constant GEP with its flags (`getelementptr inbounds nuw (...)`) and
    `inrange(...)`: read whole, never cut after the opcode."""
    text = """
@data = internal constant [7 x double] zeroinitializer

define double @f(i64 %i) {
entry:
  %p = getelementptr double, ptr getelementptr inbounds nuw (i8, ptr @data, i64 16), i64 %i
  %q = getelementptr i8, ptr getelementptr inbounds inrange(-8, 48) (i8, ptr @data, i64 8), i64 %i
  %a = load double, ptr %p, align 8
  %b = load double, ptr %q, align 8
  %c = fadd double %a, %b
  ret double %c
}
"""
    printed = parse_module(text).text()
    llvm.parse_assembly(printed).verify()
    assert "inbounds nuw (i8, ptr @data, i64 16)" in printed
    assert "inrange(-8, 48) (i8, ptr @data, i64 8)" in printed
