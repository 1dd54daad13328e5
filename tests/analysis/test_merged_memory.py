"""Pointers merged from memory with and without derivatives (`maybe_primal`): loads and
stores through them check at run time whether the shadow is the primal itself; storing,
returning or passing such a pointer is refused by name. (Numba programs: the `merge` cases
of the corpus.)"""

from __future__ import annotations

import pytest

import llvm_passes
from llvm_passes.analysis.activity import activity
from llvm_passes.forward import has_rule
from llvm_passes.ir import parse_module

CONST, DUP = llvm_passes.Activity.CONST, llvm_passes.Activity.DUP

MERGE = """
define double @f(ptr %x, ptr %c, i1 %flag, i64 %i) {
entry:
  %base = select i1 %flag, ptr %x, ptr %c
  %p = getelementptr double, ptr %base, i64 %i
  %v = load double, ptr %p
  %w = fmul double %v, %v
  store double %w, ptr %p
  BODY
  ret double %w
}
declare void @g(ptr)
"""


def test_addresses_from_a_merge_may_be_their_own_shadow():
    module = parse_module(MERGE.replace("BODY", ""))
    fn = module.get("f")
    act = activity(module, fn, (True, False, False, False), has_rule)
    assert {v.name for v in act.maybe_primal} == {"base", "p"}
    assert not activity(module, fn, (True, True, False, False), has_rule).maybe_primal


@pytest.mark.parametrize("body", ["call void @g(ptr %p)", "store ptr %p, ptr %x"])
@pytest.mark.parametrize("derive", [llvm_passes.forward, llvm_passes.reverse])
def test_passing_or_storing_a_merged_pointer_is_refused(body, derive):
    with pytest.raises(llvm_passes.NoDerivativeError, match="Mark both Duplicated"):
        derive(MERGE.replace("BODY", body), "f", [DUP, CONST, CONST, CONST])
