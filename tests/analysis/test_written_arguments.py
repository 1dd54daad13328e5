"""Which arguments a function may write (`readonly.written_arguments`), where a pointer
goes through a stack slot first (Numba keeps a view's struct in memory when a runtime call
takes its address): traced to what was stored there, or unknown when anything else may
write the slot."""

from __future__ import annotations

import pytest

from llvm_passes.analysis.readonly import written_arguments
from llvm_passes.ir import parse_module

SLOT = """
define void @f(ptr %x, ptr %y, double %v) {
entry:
  %slot = alloca [2 x ptr]
  %second = getelementptr [2 x ptr], ptr %slot, i64 0, i64 1
  store ptr %x, ptr %slot
  store ptr %y, ptr %second
  BODY
  %p = load ptr, ptr %slot
  %q = getelementptr double, ptr %p, i64 3
  store double %v, ptr %q
  ret void
}
declare void @opaque(ptr)
declare void @llvm.memset.p0.i64(ptr, i8, i64, i1)
"""


def _written(body: str) -> frozenset[int] | None:
    module = parse_module(SLOT.replace("BODY", body))
    return written_arguments(module, module.get("f"))


def test_a_pointer_loaded_from_a_slot_is_what_was_stored_there():
    # both stores may have reached the slot's first cell (no offsets are told apart)
    assert _written("") == frozenset({0, 1})


@pytest.mark.parametrize(
    "body",
    [
        "call void @opaque(ptr %second)",  # a call that may write the slot
        "call void @llvm.memset.p0.i64(ptr %slot, i8 0, i64 16, i1 false)",
        "store i64 ptrtoint (ptr %x to i64), ptr %second",  # a pointer kept as an integer
        "%bits = ptrtoint ptr %y to i64\n  store i64 %bits, ptr %second",
        "%other = alloca ptr\n  store ptr %slot, ptr %other",  # the slot's address escapes
    ],
)
def test_a_slot_written_otherwise_leaves_the_pointer_unknown(body):
    assert _written(body) is None


def test_no_slot_a_pointer_of_unknown_origin():
    module = parse_module(
        """
define void @f(ptr %x, ptr %views, double %v) {
entry:
  %p = load ptr, ptr %views
  store double %v, ptr %p
  ret void
}
"""
    )
    assert written_arguments(module, module.get("f")) is None
