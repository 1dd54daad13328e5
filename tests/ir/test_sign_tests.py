"""Sign tests on never-negative integers are folded (Numba's negative-index wraparound),
and only those: negative indices keep wrapping in the derivative."""

from __future__ import annotations

import numpy as np
import pytest
from harness import check_forward, check_reverse, dot_test

import enzpy as ez
from llvm_passes.ir import parse_module
from llvm_passes.transforms.sign_tests import fold_sign_tests

IR = """
define i64 @f(ptr %p, i64 %n, i64 %s) {
entry:
  %sn = icmp slt i64 %n, 0
  br label %outer
outer:
  %i = phi i64 [ 0, %entry ], [ %i.next, %latch ]
  %idx = phi i64 [ 0, %entry ], [ %idx.out, %latch ]
  %j0 = add i64 %i, 1
  br label %inner
inner:
  %j = phi i64 [ %j0, %outer ], [ %j.next, %inner ]
  %k = phi i64 [ %idx, %outer ], [ %k.next, %inner ]
  %neg = icmp slt i64 %k, 0
  %wrap = select i1 %neg, i64 %n, i64 0
  %at = add i64 %wrap, %k
  %q = getelementptr double, ptr %p, i64 %at
  %back = sub i64 %j, %s
  %negb = icmp slt i64 %back, 0
  %wrapb = select i1 %negb, i64 %n, i64 0
  %down = phi i64 [ %n, %outer ], [ %down.next, %inner ]
  %down.next = add i64 %down, -1
  %negd = icmp sgt i64 %down.next, -1
  %k.next = add i64 %k, 1
  %j.next = add i64 %j, 1
  %c = icmp eq i64 %j.next, %n
  br i1 %c, label %latch, label %inner
latch:
  %idx.out = phi i64 [ %k.next, %inner ]
  %i.next = add i64 %i, 1
  %c2 = icmp eq i64 %i.next, %n
  br i1 %c2, label %exit, label %outer
exit:
  %r = add i64 %wrapb, %at
  %r2 = select i1 %sn, i64 %r, i64 %s
  ret i64 %r2
}
"""


def test_counters_counting_up_from_nonnegative_starts_are_never_negative():
    fn = parse_module(IR).get("f")
    assert fold_sign_tests(fn, frozenset({1})) == 4  # %neg, %wrap; %sn (n is a size), %r2
    text = fn.text()
    assert "%neg " not in text and "%wrap " not in text and "add i64 0, %k" in text
    assert "ret i64 %s" in text
    for kept in ("%negb", "%wrapb", "%negd"):  # a difference; a counter counting down
        assert kept in text


def test_arguments_are_assumed_nonnegative_only_when_said():
    fn = parse_module(IR).get("f")
    assert fold_sign_tests(fn, frozenset()) == 2  # the counters from 0 need no assumption
    assert "%sn = icmp slt i64 %n, 0" in fn.text()


@ez.enzyme_jit
def _neighbours(x, y):
    n = x.shape[0]
    s = 0.0
    for i in range(n):
        y[i] = x[i - 2] * x[i]  # negative for i < 2: wraps around
        for j in range(i + 1, n):
            s += x[j] * y[i]  # never negative: no wraparound in the derivative
    return s


def test_negative_and_nonnegative_indices_in_both_modes():
    x, y = np.linspace(-1.0, 2.0, 6), np.zeros(6)
    check_forward(_neighbours, (x, y), (0, 1))
    check_reverse(_neighbours, (x, y), (0, 1))
    dot_test(_neighbours, (x, y), (0, 1))


@pytest.mark.parametrize(
    ("expr", "never_negative"),
    [
        ("udiv i64 %n, %x", True),  # a nonnegative dividend
        ("udiv i64 %x, %n", False),
        ("urem i64 %x, %n", True),  # below a nonnegative divisor
        ("lshr i64 %x, 1", True),
        ("lshr i64 %x, %s", False),  # the shift may be 0
        ("and i64 %x, %n", True),
        ("add i64 %n, %x", False),
        ("mul i64 %n, %n", True),
        ("call i64 @llvm.smax.i64(i64 %x, i64 0)", True),
        ("call i64 @llvm.smin.i64(i64 %x, i64 %n)", False),
    ],
)
def test_operations_keep_nonnegativity_only_where_they_must(expr, never_negative):
    fn = parse_module(f"""
declare i64 @llvm.smax.i64(i64, i64)
declare i64 @llvm.smin.i64(i64, i64)

define i1 @g(i64 %n, i64 %x, i64 %s) {{
entry:
  %v = {expr}
  %neg = icmp slt i64 %v, 0
  ret i1 %neg
}}
""").get("g")
    assert fold_sign_tests(fn, frozenset({0})) == int(never_negative)
