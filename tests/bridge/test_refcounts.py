"""Reference counting of argument arrays is dropped only where no reference leaves the call."""

from __future__ import annotations

import numpy as np

import enzpy as ez
from enzpy.bridge.refcounts import drop_argument_refcounts
from llvm_passes.ir import parse_module

IR = """
declare void @NRT_incref(ptr)
declare void @NRT_decref(ptr)
declare void @keep(ptr)

define i32 @f(ptr %retptr, ptr %excinfo, ptr %a.0, ptr %b.0, ptr %c.0) {
entry:
  call void @NRT_incref(ptr %a.0)
  call void @NRT_incref(ptr %b.0)
  call void @NRT_incref(ptr %c.0)
  br label %next

next:
  call void @NRT_decref(ptr %a.0)
  store ptr %b.0, ptr %retptr
  call void @keep(ptr %c.0)
  call void @NRT_decref(ptr %c.0)
  ret i32 0
}
"""


def calls(fn, arg: str) -> list[str]:
    return [
        i.callee_name
        for i in fn.instructions()
        if i.opcode == "call" and any(getattr(o, "name", "") == arg for o in i.operands)
    ]


def test_only_meminfos_used_by_counting_alone_lose_it():
    fn = parse_module(IR).get("f")
    assert drop_argument_refcounts(fn, [2, 3, 4]) == 2
    assert calls(fn, "a.0") == []
    assert calls(fn, "b.0") == ["NRT_incref"]  # returned: its reference leaves the call
    assert calls(fn, "c.0") == ["NRT_incref", "keep", "NRT_decref"]  # passed on


@ez.enzyme_jit
def _tail(x):
    y = x[1:]
    y[0] = y[0] * y[0]
    return y


def test_a_returned_view_keeps_its_reference():
    x, dx = np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 0.0])
    tangent, y = ez.autodiff(ez.ForwardWithPrimal, _tail, ez.Duplicated(x, dx))
    del x, dx
    np.testing.assert_array_equal(y, [4.0, 3.0])
    np.testing.assert_array_equal(tangent, [4.0, 0.0])
    assert y.base is not None and tangent.base is not None
