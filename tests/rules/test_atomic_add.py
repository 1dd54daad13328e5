"""`atomicrmw fadd` (`*p += v` atomically, the old value returned), as reverse sweeps of
parallel chunks emit it, differentiated when such a derivative is differentiated again:
forward mode adds v's tangent into the shadow atomically (the old value's tangent is the
shadow's old value), reverse mode adds d p into v's adjoint and the old value's adjoint
into d p. On hand-written IR run natively: central differences of the whole map and the
dot test between the two modes."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

import llvm_passes
from rules.rule_driver import Jit

DUP, CONST = llvm_passes.Activity.DUP, llvm_passes.Activity.CONST

# y[0] += x[i]^2 atomically for each i; z[i] = (y[0] before the add) * x[i]
ACCUMULATE = r"""
define i32 @f(ptr %x, ptr %y, ptr %z, i64 %n) {
entry:
  br label %loop
loop:
  %i = phi i64 [ 0, %entry ], [ %i1, %loop ]
  %px = getelementptr double, ptr %x, i64 %i
  %a = load double, ptr %px, align 8
  %v = fmul double %a, %a
  %old = atomicrmw fadd ptr %y, double %v monotonic, align 8
  %w = fmul double %old, %a
  %pz = getelementptr double, ptr %z, i64 %i
  store double %w, ptr %pz, align 8
  %i1 = add i64 %i, 1
  %c = icmp eq i64 %i1, %n
  br i1 %c, label %exit, label %loop
exit:
  ret i32 0
}
"""
N = 5
P = ctypes.c_void_p


def _ptr(a: np.ndarray) -> P:
    return a.ctypes.data_as(P)


def _runner(text: str, name: str, shadows: bool):
    jit = Jit(text)
    call = jit.fn(name, [P, P, P, ctypes.c_int64] + [P] * (3 if shadows else 0), ctypes.c_int32)

    def run(*arrays: np.ndarray) -> None:
        assert call(*map(_ptr, arrays[:3]), N, *map(_ptr, arrays[3:])) == 0
        assert jit is not None  # holds the machine code

    return run


def _whole_map(theta: np.ndarray) -> np.ndarray:
    """(x, y, z) -> (x, y, z) after the call, flattened."""
    x, y, z = (theta[k * N : (k + 1) * N].copy() for k in range(3))
    _PRIMAL(x, y, z)
    return np.concatenate([x, y, z])


_PRIMAL = _runner(ACCUMULATE, "f", False)
ACTS = [DUP, DUP, DUP, CONST]


@pytest.fixture(scope="module")
def derivatives():
    fwd = llvm_passes.forward(ACCUMULATE, "f", ACTS)
    rev = llvm_passes.reverse(ACCUMULATE, "f", ACTS)
    return (
        _runner(fwd.module_text, fwd.fn_name, True),
        _runner(rev.module_text, rev.fn_name, True),
    )


def test_forward_and_reverse_against_central_differences_and_each_other(derivatives):
    forward, reverse = derivatives
    rng = np.random.default_rng(0)
    theta = rng.uniform(-1.0, 1.0, 3 * N)
    u, w = rng.standard_normal(3 * N), rng.standard_normal(3 * N)
    x, y, z = (theta[k * N : (k + 1) * N] for k in range(3))

    tangents = [u[k * N : (k + 1) * N].copy() for k in range(3)]
    forward(x.copy(), y.copy(), z.copy(), *tangents)
    jvp = np.concatenate(tangents)
    h = 1e-6
    fd = (_whole_map(theta + h * u) - _whole_map(theta - h * u)) / (2 * h)
    np.testing.assert_allclose(jvp, fd, rtol=1e-7, atol=1e-8)

    cotangents = [w[k * N : (k + 1) * N].copy() for k in range(3)]
    reverse(x.copy(), y.copy(), z.copy(), *cotangents)
    vjp = np.concatenate(cotangents)
    assert np.dot(w, jvp) == pytest.approx(np.dot(vjp, u), rel=1e-13)
