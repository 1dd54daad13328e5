"""A summary in the activity cache belongs to the IR it was made from: a function rewritten
after its analysis (the cause of a silently zero gradient once: a callee's loops rewritten
after its caller's analysis had summarized it) is an error of the engine, not a stale
answer."""

from __future__ import annotations

import pytest

from llvm_passes.analysis.activity import activity
from llvm_passes.forward import has_rule
from llvm_passes.ir import Instruction, parse_module

SQUARE = """
define double @f(double %x) {
entry:
  %y = fmul double %x, %x
  ret double %y
}
"""


def test_a_hit_on_unchanged_ir_is_the_summary():
    fn = (module := parse_module(SQUARE)).functions["f"]
    cache: dict = {}
    first = activity(module, fn, (True,), has_rule, cache)
    assert activity(module, fn, (True,), has_rule, cache) is first
    assert {v.name for v in first.active} >= {"y"}


def test_a_function_changed_after_its_analysis_is_refused():
    fn = (module := parse_module(SQUARE)).functions["f"]
    cache: dict = {}
    activity(module, fn, (True,), has_rule, cache)
    y = fn.entry.instructions[0]
    fn.entry.instructions.insert(1, Instruction("fadd", y.type, [y, y], name="z"))
    with pytest.raises(AssertionError, match="@f changed after analysis"):
        activity(module, fn, (True,), has_rule, cache)
