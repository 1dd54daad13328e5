"""Split mode with `modified_between=False`: the reverse pass reads the arguments again
instead of keeping their values on the tape. Its gradients against central differences,
a smaller tape, arrays that overlap (the derivative that keeps every value), and the
refusals: arguments changed between the passes, arguments whose memory cannot be checked."""

from __future__ import annotations

import numpy as np
import pytest
from harness import fd_jvp
from numba.typed import List

import enzpy as ez

WITH = ez.ReverseSplitWithPrimal


@ez.enzyme_jit
def _rate(k, y, i):
    return k[i] * y[i - 1] if i > 0 else k[0]


@ez.enzyme_jit
def _integrate(k, y, steps):
    """Explicit Euler steps of y_i' = k_i y_{i-1} (y_0' = k_0); y is overwritten each step, k
    only read, in a callee."""
    n = y.shape[0]
    rate = np.empty(n)
    for _ in range(steps):
        for i in range(n):
            rate[i] = _rate(k, y, i)
        for i in range(n):
            y[i] += 0.1 * rate[i]
    return np.sum(y * y)


def _gradient(k, y, steps, modified_between):
    """(tape bytes, ∂/∂k, seeded ∂/∂y) of `_integrate` by split mode, y's shadow seeded 1."""
    dk, dy = np.zeros_like(k), np.ones_like(y)
    args = (ez.Duplicated(k, dk), ez.Duplicated(y, dy), ez.Const(steps))
    fwd, rev = ez.autodiff_thunk(
        WITH, _integrate, ez.Active, *args, modified_between=modified_between
    )
    tape, _, _ = fwd(*args)
    nbytes = tape.nbytes
    rev(*args, 1.0, tape)
    return nbytes, dk, dy


def test_gradient_matches_central_differences_with_less_tape():
    rng = np.random.default_rng(7)
    k, y0 = rng.uniform(0.5, 1.5, 12), rng.uniform(-1.0, 1.0, 12)
    kept, dk_kept, dy_kept = _gradient(k.copy(), y0.copy(), 6, True)
    read, dk, dy = _gradient(k.copy(), y0.copy(), 6, False)
    assert read < kept  # k's values read again rather than kept
    u, w = rng.standard_normal(12), rng.standard_normal(12)
    arrays, ret = fd_jvp(_integrate, [k, y0.copy(), 6], [0, 1], {0: u, 1: w})
    # the map's cotangent: 1 on the return, 1 on each entry of y after the call
    want = ret + arrays[1].sum()
    for gk, gy in ((dk, dy), (dk_kept, dy_kept)):
        got = gk @ u + gy @ w
        assert got == pytest.approx(want, rel=1e-7, abs=1e-9)


def test_arguments_changed_between_the_passes_raise_and_can_be_restored():
    k, y = np.linspace(0.5, 1.5, 6), np.linspace(-1.0, 1.0, 6)
    dk, dy = np.zeros(6), np.ones(6)
    args = (ez.Duplicated(k, dk), ez.Duplicated(y, dy), ez.Const(3))
    fwd, rev = ez.autodiff_thunk(WITH, _integrate, ez.Active, *args, modified_between=False)
    tape, _, _ = fwd(*args)
    kept, k[2] = k[2], 5.0
    with pytest.raises(ez.EnzpyError, match="argument 0 .* changed between"):
        rev(*args, 1.0, tape)
    k[2] = kept  # as the forward pass left it: the tape serves its reverse pass
    rev(*args, 1.0, tape)
    _, want, _ = _gradient(k, np.linspace(-1.0, 1.0, 6), 3, True)
    np.testing.assert_allclose(dk, want, rtol=1e-13)


def test_one_flag_per_argument():
    """modified_between=(False, True, True): k is read again (checked), y may change
    between the passes (its values, the final ones included, come from the tape)."""
    k, y0 = np.linspace(0.5, 1.5, 8), np.linspace(-1.0, 1.0, 8)
    _, want_k, want_y = _gradient(k.copy(), y0.copy(), 4, True)
    sizes = {}
    for flags in ((True, True, True), (False, True, True), (False, False, False)):
        sizes[flags] = _gradient(k.copy(), y0.copy(), 4, flags)[0]
    assert sizes[False, False, False] <= sizes[False, True, True] < sizes[True, True, True]
    y = y0.copy()
    dk, dy = np.zeros(8), np.ones(8)
    args = (ez.Duplicated(k, dk), ez.Duplicated(y, dy), ez.Const(4))
    flags = (False, True, True)
    fwd, rev = ez.autodiff_thunk(WITH, _integrate, ez.Active, *args, modified_between=flags)
    tape, _, _ = fwd(*args)
    y[:] = 7.0  # allowed: its values are on the tape
    rev(*args, 1.0, tape)
    np.testing.assert_allclose(dk, want_k, rtol=1e-13)
    np.testing.assert_allclose(dy, want_y, rtol=1e-13)
    tape, _, _ = fwd(*args)
    k[0] += 1.0
    with pytest.raises(ez.EnzpyError, match="argument 0 .* changed between"):
        rev(*args, 1.0, tape)
    with pytest.raises(ez.AnnotationError, match="one bool per argument"):
        ez.autodiff_thunk(WITH, _integrate, ez.Active, *args, modified_between=(False, True))


@ez.enzyme_jit
def _square_into(a, b):
    """b[i] += a[i] * a[i]: given one array twice, a write into b changes what a reads."""
    for i in range(b.shape[0]):
        b[i] += a[i] * a[i]
    return np.sum(b)


def test_one_array_passed_twice_takes_the_derivative_that_keeps_values():
    """The thunk made for arrays apart serves one array given as both arguments (memory
    that overlaps) with the default thunk's derivative."""

    def run(modified_between):
        x, dx = np.linspace(0.5, 2.0, 7), np.zeros(7)
        fwd, rev = ez.autodiff_thunk(
            WITH,
            _square_into,
            ez.Active,
            ez.Duplicated(np.ones(7), np.zeros(7)),  # (the types)
            ez.Duplicated(np.ones(7), np.zeros(7)),
            modified_between=modified_between,
        )
        args = (ez.Duplicated(x, dx), ez.Duplicated(x, dx))
        tape, z, _ = fwd(*args)
        rev(*args, 1.0, tape)
        return z, dx

    z, grad = run(False)
    x = np.linspace(0.5, 2.0, 7)
    assert z == pytest.approx(np.sum(x + x * x))
    np.testing.assert_allclose(grad, 1.0 + 2.0 * x, rtol=1e-14)
    np.testing.assert_array_equal(grad, run(True)[1])


@ez.enzyme_jit
def _weighted(x, w):
    s = 0.0
    for i in range(x.shape[0]):
        s += w[i % len(w)] * x[i] * x[i]
    return s


def test_arguments_whose_memory_cannot_be_checked_are_refused():
    x = np.linspace(0.5, 2.0, 5)
    args = (ez.Duplicated(x, np.zeros(5)), ez.Const(List([1.0, 2.0])))
    with pytest.raises(ez.AnnotationError, match="argument 1 is a List"):
        ez.autodiff_thunk(WITH, _weighted, ez.Active, *args, modified_between=False)
