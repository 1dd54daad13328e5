"""Counted loops whose tape values are stored by the iteration's number in room taken before
the loop (`LoopPlan.places`), not pushed: loops left early, branches inside, copies of a
loop entered from one preheader, bounds the reverse sweep recomputes or reads from the
tape, counting down or by two, rooms of inner loops in an outer one, batch and split
mode; against central differences of the whole map and the dot test (`test_tape_layout`
checks the tape's size: one slot per value and iteration)."""

from __future__ import annotations

import numpy as np
import pytest
from harness import check_all

import enzpy as ez


@ez.enzyme_jit
def _until(x, t):
    """Left early (a second exit) once a value exceeds t: the last iteration is partial."""
    s = 0.0
    for i in range(x.shape[0]):
        v = np.sin(x[i])
        if v > t:
            break
        s += v * x[i]
    return s


@ez.enzyme_jit
def _neighbours(x, y):
    """A branch on the counter inside (decided by recomputing it), overwriting y."""
    for i in range(x.shape[0]):
        if i > 0:
            y[i] = y[i] * x[i - 1] + np.cos(y[i - 1])
        else:
            y[i] = np.exp(y[i])
    return np.sum(y)


@ez.enzyme_jit
def _ragged(x, counts, w):
    """Inner loops whose bound is loaded in the outer one: the room's size is kept."""
    s = 0.0
    for j in range(counts.shape[0]):
        for i in range(counts[j]):
            s += w[j] * np.tanh(x[i] * w[j])
    return s


@ez.enzyme_jit
def _strided(x, y):
    """Counting down, and by two."""
    for i in range(x.shape[0] - 1, 0, -1):
        x[i] = np.sin(x[i] * x[i - 1])
    for i in range(0, x.shape[0], 2):
        y[i // 2] = y[i // 2] * np.exp(x[i])
    return np.sum(x * x)


@ez.enzyme_jit
def _gauss_seidel(u, kappa):
    """An in-place sweep whose inner loop's latch tests its counter before the step."""
    for i in range(1, u.shape[0] - 1):
        for j in range(1, u.shape[1] - 1):
            v = u[i, j]
            lap = u[i - 1, j] + u[i + 1, j] + u[i, j - 1] + u[i, j + 1] - 4.0 * v
            u[i, j] = v + kappa * lap - 0.1 * v * v * v
    return np.sum(u * u)


@ez.enzyme_jit
def _expression(x, y):
    """An array expression: LLVM made two copies of its loop (y broadcast or not), entered
    from one preheader; each copy's room is taken there."""
    return np.sum(np.sqrt(x) * x * y)


CASES = {
    "left_early": (_until, (np.array([0.3, 0.5, 0.2, 1.4, 0.1]), 0.9), (0, 1)),
    "never_left_early": (_until, (np.array([0.3, 0.5, 0.2]), 0.9), (0, 1)),
    "branch_inside": (_neighbours, (np.linspace(0.2, 1.1, 6), np.linspace(-0.5, 0.5, 6)), (0, 1)),
    "ragged": (
        _ragged,
        (np.linspace(-1.0, 1.0, 5), np.array([3, 0, 5, 1]), np.array([0.5, 1.5, -0.7, 2.0])),
        (0, 2),
    ),
    "in_place_sweep": (_gauss_seidel, (np.linspace(0.0, 1.0, 30).reshape(5, 6), 0.2), (0, 1)),
    "unswitched": (_expression, (np.linspace(0.2, 1.1, 5), np.linspace(1.0, 2.0, 5)), (0, 1)),
    "unswitched_broadcast": (_expression, (np.linspace(0.2, 1.1, 5), np.array([1.5])), (0, 1)),
    "strided": (_strided, (np.linspace(0.1, 0.9, 7), np.linspace(1.0, 2.0, 4)), (0, 1)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_against_finite_differences_and_the_dot_test(name):
    f, args, active = CASES[name]
    check_all(f, args, active)


def test_batch_and_split_mode():
    x = np.linspace(0.2, 1.1, 6)
    y = np.linspace(-0.5, 0.5, 6)
    rng = np.random.default_rng(3)
    seeds = [rng.standard_normal(6) for _ in range(2)]
    dx, dy = [np.zeros(6) for _ in seeds], [s.copy() for s in seeds]
    ez.autodiff(
        ez.Reverse,
        _neighbours,
        ez.Active,
        ez.BatchDuplicated(x.copy(), tuple(dx)),
        ez.BatchDuplicated(y.copy(), tuple(dy)),
    )
    for lane, seed in enumerate(seeds):
        gx, gy = np.zeros(6), seed.copy()
        args = (ez.Duplicated(x.copy(), gx), ez.Duplicated(y.copy(), gy))
        fwd, rev = ez.autodiff_thunk(ez.ReverseSplitNoPrimal, _neighbours, ez.Active, *args)
        tape, _, _ = fwd(*args)
        rev(*args, 1.0, tape)
        np.testing.assert_allclose(dx[lane], gx, rtol=1e-13)
        np.testing.assert_allclose(dy[lane], gy, rtol=1e-13)


def test_rooms_of_loop_copies_survive_the_tape_growing():
    """The first gradient on an empty tape: the copies' rooms (4.8 kB each) outgrow the
    first storage, which is grown for both before the first room is taken (growing it
    between the two may move it from under the first; whether realloc moves it is up to
    the allocator, so the out-of-memory test is what caught that)."""
    n = 600
    x, y = np.linspace(0.2, 1.1, n), np.linspace(1.0, 2.0, n)
    for _ in range(2):
        ez.release_tapes()
        gx, gy = ez.gradient(ez.Reverse, _expression, x, y)
        np.testing.assert_allclose(gx, 1.5 * np.sqrt(x) * y, rtol=1e-14)
        np.testing.assert_allclose(gy, np.sqrt(x) * x, rtol=1e-14)
