"""The loads of a prange chunk in reverse mode: those whose cells no other chunk loads add
their adjoints without atomics (`analysis.partition`, from the row Numba's schedule gives
each chunk; the chunks' reverse sweeps are read for the atomics they keep), those whose cells
only the chunk loads away from its row's border atomically at the border only; those of memory
nothing writes from the parallel loop on are loaded again in the chunk's reverse sweep
instead of kept on its tape (`reverse.parallel.Launch.unchanged`). The derivatives are
checked against the serial function's and central differences of the whole map."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from harness import assert_close, check_reverse

import enzpy as ez
from enzpy import derivatives
from parallel.kernels import (
    compiled,
    elementwise,
    from_start,
    periodic,
    reduction,
    shifted,
    stencil,
    then_rewritten,
    then_scaled,
)


def _atomic_adds(kernel, args, kinds, ret):
    """The atomic adds in the reverse sweeps of the kernel's parallel chunks: (always, at
    the border only)."""
    argtypes = tuple(numba.typeof(a) for a in args)
    deriv = derivatives.derivative(ez.Reverse, compiled(kernel, True), argtypes, kinds, ret)
    module = deriv.synthesis().module
    added = [
        inst.block.name.startswith("cell.shared")
        for name, fn in module.functions.items()
        if name.startswith("diffe_") and name.endswith(".shared")
        for inst in fn.instructions()
        if inst.opcode == "atomicrmw" and "fadd" in inst.text()
    ]
    return added.count(False), added.count(True)


X = np.linspace(-1.0, 1.0, 37)


@pytest.mark.parametrize(
    "kernel, args, kinds, ret, atomic",
    [
        # x[i] owned: only the per-thread partial sum's adjoint, once per chunk
        (reduction, [X], ("dup",), "active", (1, 0)),
        (elementwise, [X, np.zeros_like(X)], ("dup", "dup"), "const", (0, 0)),
        # x[i - 1], x[i], x[i + 1]: neighbouring chunks load the cells at their borders
        (stencil, [X, np.zeros_like(X)], ("dup", "dup"), "const", (0, 3)),
        (periodic, [X, np.zeros_like(X)], ("dup", "dup"), "const", (0, 2)),
        # x[i] and x[1:][i] (a chunk's last cell is the next one's first), and the partial
        (shifted, [X], ("dup",), "active", (3, 0)),
    ],
    ids=lambda v: getattr(v, "__name__", None),
)
def test_only_loads_of_cells_other_chunks_load_add_atomically(kernel, args, kinds, ret, atomic):
    assert _atomic_adds(kernel, args, kinds, ret) == atomic


@pytest.mark.parametrize("kernel", [shifted, reduction], ids=lambda k: k.__name__)
def test_against_the_serial_function_and_central_differences(kernel):
    x = np.random.default_rng(5).uniform(-1.0, 1.0, 41)
    f = compiled(kernel, True)
    with numba.parallel_chunksize(3):  # many chunks, many borders
        (got,) = ez.gradient(ez.Reverse, f, x)
    (serial,) = ez.gradient(ez.Reverse, compiled(kernel, False), x)
    assert_close(got, serial, 1e-12, 0.0, "parallel vs serial")
    fd = np.array([(f(x + h) - f(x - h)) / 2e-6 for h in np.eye(x.size) * 1e-6])
    assert_close(got, fd, 1e-7, 1e-9, "vs central differences")


@pytest.mark.parametrize(
    "kernel, extra",
    [(stencil, ()), (periodic, ()), (from_start, (0,)), (from_start, (1,)), (from_start, (2,))],
    ids=["stencil", "periodic", "from-0", "from-1", "from-2"],
)
def test_cells_owned_away_from_the_border(kernel, extra):
    # x[i - 1], x[i], x[i + 1]: plain adds but within reach of a row's border, or everywhere
    # when a chunk's x[i - 1] may wrap around to the last cell (the loop starting at 0)
    x = np.random.default_rng(9).uniform(-1.0, 1.0, 43)
    f, g = compiled(kernel, True), compiled(kernel, False)
    v = np.random.default_rng(10).uniform(-1.0, 1.0, x.size)
    with numba.parallel_chunksize(3):
        check_reverse(f, [x, np.zeros_like(x), *extra], (0, 1), seed=11)
        for _ in range(3):
            got = _vjp(f, x, v, extra)
            assert_close(got, _vjp(g, x, v, extra), 1e-12, 0.0, "parallel vs serial")


def _vjp(f, x, v, extra):
    dx, dy = np.zeros_like(x), v.copy()
    ez.autodiff(ez.Reverse, f, ez.Duplicated(x, dx), ez.Duplicated(np.zeros_like(x), dy), *extra)
    return dx


@pytest.mark.parametrize("kernel", [then_scaled, then_rewritten], ids=lambda k: k.__name__)
def test_memory_written_after_the_parallel_loop_is_not_loaded_again(kernel):
    x = np.random.default_rng(6).uniform(-1.0, 1.0, 29)
    f = compiled(kernel, True)
    with numba.parallel_chunksize(4):
        check_reverse(f, [x], (0,), seed=3)
        (got,) = ez.gradient(ez.Reverse, f, x.copy())
    (serial,) = ez.gradient(ez.Reverse, compiled(kernel, False), x.copy())
    assert_close(got, serial, 1e-12, 0.0, "parallel vs serial")


def test_one_array_passed_twice_is_not_loaded_again_after_the_loop_overwrote_it():
    # elementwise(x, x): the loop overwrites what it read; the derivative assuming its
    # arguments apart would load x again in the reverse sweep: its aliased twin runs instead
    rng = np.random.default_rng(7)
    x0, v = rng.uniform(-1.0, 1.0, 23), rng.uniform(-1.0, 1.0, 23)

    def vjp(f):
        x, dx = x0.copy(), v.copy()
        with numba.parallel_chunksize(4):
            ez.autodiff(ez.Reverse, f, ez.Duplicated(x, dx), ez.Duplicated(x, dx))
        return dx

    f = compiled(elementwise, True)
    got = vjp(f)
    assert_close(got, vjp(compiled(elementwise, False)), 1e-12, 0.0, "parallel vs serial")

    def after(x):
        x = x.copy()
        f(x, x)
        return x

    jac = np.array([(after(x0 + h) - after(x0 - h)) / 2e-6 for h in np.eye(x0.size) * 1e-6]).T
    assert_close(got, jac.T @ v, 1e-7, 1e-9, "vs central differences")


def test_the_chunks_tape_storage_is_kept_between_calls_until_released():
    x = np.random.default_rng(8).uniform(-1.0, 1.0, 4001)
    f = compiled(then_scaled, True)
    ez.gradient(ez.Reverse, f, x.copy())
    assert ez.release_tapes() >= 8 * x.size  # x[i] on the chunks' tapes
    assert ez.release_tapes() == 0
    (again,) = ez.gradient(ez.Reverse, f, x.copy())  # fresh storage after the release
    (serial,) = ez.gradient(ez.Reverse, compiled(then_scaled, False), x.copy())
    assert_close(again, serial, 1e-12, 0.0, "parallel vs serial")
