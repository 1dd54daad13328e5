"""What the tape keeps: counted loops are replayed by counting down (no path, no induction
variable on the tape), memory nothing writes is loaded again in combined mode — and the
gradient stays right where memory does change between the sweeps."""

from __future__ import annotations

import numpy as np
import pytest
from harness import check_reverse, dot_test

import enzpy as ez


@ez.enzyme_jit
def _reduction(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += np.sin(x[i]) * x[i]
    return s


def test_read_only_loop_keeps_one_value_per_iteration():
    n = 10_000
    x, dx = np.linspace(-2, 2, n), np.zeros(n)
    ez.autodiff(ez.Reverse, _reduction, ez.Active, ez.Duplicated(x, dx))
    np.testing.assert_allclose(dx, np.cos(x) * x + np.sin(x), rtol=1e-13)
    assert ez.last_tape_bytes() <= 8 * n + 64  # sin(x[i]) only: x[i] is loaded again


@ez.enzyme_jit
def _reads(x):
    return x[0] * x[1] + np.sin(x[2])


@ez.enzyme_jit
def _callee_reads_then_caller_writes(x):
    s = _reads(x)  # a callee that only reads x ...
    x[0] = 3.0 * x[1]  # ... then its caller overwrites what it read
    x[2] = x[0] * x[2]
    return s + x[0] * x[2]


@ez.enzyme_jit
def _local_scratch(x):
    t = np.empty(3)
    s = 0.0
    for k in range(4):
        for i in range(3):
            t[i] = x[i] * (k + 1.0)
        s += _reads(t)  # reads scratch memory that the next iteration overwrites
    return s


@pytest.mark.parametrize("f", [_callee_reads_then_caller_writes, _local_scratch])
def test_memory_changed_after_a_read_is_not_loaded_again(f):
    x = np.array([0.3, -0.7, 1.1])
    check_reverse(f, (x,), (0,))
    dot_test(f, (x,), (0,))


@ez.enzyme_jit
def _nested(A, x):
    m, n = A.shape
    s = 0.0
    for i in range(1, m):  # counted loops starting at 1, nested, then a second loop
        acc = 0.0
        for j in range(n):
            acc += A[i, j] * np.tanh(x[j] * i)
        s += acc * acc
    for j in range(n):
        s += x[j] * x[j]
        if s > 50.0:
            break
    return s


def test_nested_counted_loops_and_break():
    rng = np.random.default_rng(3)
    A, x = rng.standard_normal((5, 4)), rng.standard_normal(4)
    check_reverse(_nested, (A, x), (0, 1))
    dot_test(_nested, (A, x), (0, 1))


def test_split_mode_does_not_load_again():
    """In split mode the caller may change the arguments between the two passes."""
    n = 100
    x, dx = np.linspace(-2, 2, n), np.zeros(n)
    fwd, rev = ez.autodiff_thunk(ez.ReverseSplitNoPrimal, _reduction, ez.Active,
                                 ez.Duplicated(x, dx))  # fmt: skip
    tape, _, _ = fwd(ez.Duplicated(x, dx))
    x0 = x.copy()
    x[:] = 0.0
    rev(ez.Duplicated(x, dx), 1.0, tape)
    np.testing.assert_allclose(dx, np.cos(x0) * x0 + np.sin(x0), rtol=1e-13)


@ez.enzyme_jit
def _triangular(L, x):
    n = x.shape[0]
    y = np.zeros(n)
    idx = 0
    for i in range(n):  # the inner loop starts where the outer one is; idx counts along
        for j in range(i + 1, n):
            y[j] += L[idx] * np.sin(x[i])
            idx += 1
    s = 0.0
    for k in range(n - 1, -1, -1):  # counting down
        s += y[k] * y[k] * (k + 1.0)
    return s


def test_loops_with_computed_starts_second_counters_and_negative_steps():
    rng = np.random.default_rng(5)
    n = 6
    L, x = rng.standard_normal(n * (n - 1) // 2), rng.standard_normal(n)
    check_reverse(_triangular, (L, x), (0, 1))
    dot_test(_triangular, (L, x), (0, 1))
