"""Callees whose loops the reverse synthesizer rewrites (`transforms/loops.py`): a pointer
stepped through an array becomes an address computed from the loop's counter. The caller's
activity analysis analyses its callees first; the derivative of a callee must still see
which of the rewritten addresses carry derivatives (a store through one of them was once
left unreversed: its derivative silently dropped). On hand-written IR (exact adjoints and
the dot test against forward mode) and through Numba (`np.cumsum` in a function its caller
does not inline)."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from harness import check_reverse, dot_test
from rules.rule_driver import Jit

import enzpy as ez
import llvm_passes

DUP, CONST = llvm_passes.Activity.DUP, llvm_passes.Activity.CONST

# y[i] = x[i]^2 through two pointers stepped by 8 bytes, called by @g
STEPPED = r"""
define i32 @f(ptr %x, ptr %y, i64 %n) {
entry:
  br label %loop
loop:
  %i = phi i64 [ 0, %entry ], [ %i1, %loop ]
  %p = phi ptr [ %x, %entry ], [ %p1, %loop ]
  %q = phi ptr [ %y, %entry ], [ %q1, %loop ]
  %a = load double, ptr %p, align 8
  %aa = fmul double %a, %a
  store double %aa, ptr %q, align 8
  %p1 = getelementptr i8, ptr %p, i64 8
  %q1 = getelementptr i8, ptr %q, i64 8
  %i1 = add i64 %i, 1
  %c = icmp eq i64 %i1, %n
  br i1 %c, label %exit, label %loop
exit:
  ret i32 0
}

define i32 @g(ptr %x, ptr %y, i64 %n) {
entry:
  %r = call i32 @f(ptr %x, ptr %y, i64 %n)
  ret i32 0
}
"""

# y[j] += x[i, j]^2 for each row i: the inner loop's stepped pointers are also used after
# it (they give the next row's), and the loop addresses memory through a computed address
# beside them (the shape 8b85d84's first rewrite left: phi and computed address together)
ROWS = r"""
define i32 @f(ptr %x, ptr %y, i64 %n, i64 %m) {
entry:
  %back = mul i64 %m, -8
  br label %outer
outer:
  %i = phi i64 [ 0, %entry ], [ %i1, %olatch ]
  %px = phi ptr [ %x, %entry ], [ %qx1, %olatch ]
  %py = phi ptr [ %y, %entry ], [ %py1, %olatch ]
  br label %inner
inner:
  %j = phi i64 [ 0, %outer ], [ %j1, %inner ]
  %qx = phi ptr [ %px, %outer ], [ %qx1, %inner ]
  %qy = phi ptr [ %py, %outer ], [ %qy1, %inner ]
  %off = mul i64 %j, 8
  %ay = getelementptr i8, ptr %py, i64 %off
  %a = load double, ptr %qx, align 8
  %b = load double, ptr %ay, align 8
  %aa = fmul double %a, %a
  %s = fadd double %aa, %b
  store double %s, ptr %ay, align 8
  %qx1 = getelementptr i8, ptr %qx, i64 8
  %qy1 = getelementptr i8, ptr %qy, i64 8
  %j1 = add i64 %j, 1
  %c = icmp eq i64 %j1, %m
  br i1 %c, label %olatch, label %inner
olatch:
  %py1 = getelementptr i8, ptr %qy1, i64 %back
  %i1 = add i64 %i, 1
  %c2 = icmp eq i64 %i1, %n
  br i1 %c2, label %exit, label %outer
exit:
  ret i32 0
}

define i32 @g(ptr %x, ptr %y, i64 %n, i64 %m) {
entry:
  %r = call i32 @f(ptr %x, ptr %y, i64 %n, i64 %m)
  ret i32 0
}
"""


def _ptr(a: np.ndarray) -> ctypes.c_void_p:
    return a.ctypes.data_as(ctypes.c_void_p)


def _sweeps(text: str, root: str, sizes: tuple[int, ...]):
    """(forward, reverse): each runs its derivative of `root` on copies of (x, y), with the
    shadows given (updated in place)."""
    acts = [DUP, DUP] + [CONST] * len(sizes)
    kinds = [ctypes.c_void_p] * 2 + [ctypes.c_int64] * len(sizes) + [ctypes.c_void_p] * 2

    def sweep(result):
        jit = Jit(result.module_text)
        call = jit.fn(result.fn_name, kinds, ctypes.c_int32)

        def run(x: np.ndarray, y: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> None:
            x, y = x.copy(), y.copy()
            assert call(_ptr(x), _ptr(y), *sizes, _ptr(dx), _ptr(dy)) == 0
            assert jit is not None  # holds the machine code

        return run

    return (
        sweep(llvm_passes.forward(text, root, acts)),
        sweep(llvm_passes.reverse(text, root, acts)),
    )


@pytest.mark.parametrize("root", ["f", "g"])
def test_store_through_a_stepped_pointer_in_a_callee(root):
    n = 6
    rng = np.random.default_rng(0)
    x, y, v = rng.standard_normal(n), rng.standard_normal(n), rng.standard_normal(n)
    _, reverse = _sweeps(STEPPED, root, (n,))
    gx, gy = np.zeros(n), v.copy()
    reverse(x, y, gx, gy)
    np.testing.assert_allclose(gx, 2 * x * v, rtol=1e-14)
    assert not gy.any()  # y is overwritten: its cotangent is consumed


@pytest.mark.parametrize("root", ["f", "g"])
def test_stepped_pointers_beside_a_computed_address(root):
    n, m = 3, 4
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal(n * m), rng.standard_normal(m)
    u, uy, v = rng.standard_normal(n * m), rng.standard_normal(m), rng.standard_normal(m)
    forward, reverse = _sweeps(ROWS, root, (n, m))
    dx, dy = u.copy(), uy.copy()
    forward(x, y, dx, dy)
    np.testing.assert_allclose(dy, uy + (2 * x * u).reshape(n, m).sum(0), rtol=1e-13)
    gx, gy = np.zeros(n * m), v.copy()
    reverse(x, y, gx, gy)
    np.testing.assert_allclose(gx, (2 * x.reshape(n, m) * v).ravel(), rtol=1e-14)
    np.testing.assert_allclose(gy, v, rtol=1e-14)
    assert np.isclose(v @ dy, gx @ u + gy @ uy, rtol=1e-13)  # the dot test


@ez.enzyme_jit
def _squares_of_running_sums(a):
    c = np.cumsum(a)
    s = np.sum(c * c)
    while s > 1e300:  # a loop that is not counted: its callers do not inline this function
        s = s * 0.5
    return s


@ez.enzyme_jit
def _calls_it(a):
    return _squares_of_running_sums(a)


def test_cumsum_in_a_callee():
    a = np.array([0.3, -1.2, 0.7, 2.0, -0.4])
    check_reverse(_calls_it, (a,), (0,))
    dot_test(_calls_it, (a,), (0,))
