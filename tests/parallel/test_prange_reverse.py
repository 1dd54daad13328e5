"""Reverse mode of functions compiled with `parallel=True` (`prange` loops and parallel
array expressions): the gradient equals that of the same Python function compiled serially
(to 1e-12), the vector-Jacobian product of central finite differences of the whole map,
and forward mode through the dot-product test; it does so whatever the number of threads
and the schedule, and gives the same result when run again; split mode (arguments modified
between the passes or not) equals combined mode; batch mode equals one cotangent at a time.
Nested prange loops and non-additive reductions are refused by name."""

from __future__ import annotations

import inspect
import textwrap

import numba
import numpy as np
import pytest
from harness import (
    annotate_reverse,
    assert_close,
    check_reverse,
    clone,
    clone_args,
    dot_test,
    random_like,
    reverse_return_activity,
    whole_map,
)
from processes import run_python

import enzpy as ez
from parallel.kernels import (
    array_expression,
    captured_scalar,
    compiled,
    copy,
    copy_rows,
    elementwise,
    gather,
    inputs,
    local_array,
    matvec,
    maximum,
    product,
    reduction,
    scatter,
    stencil,
    subtraction,
    two_d,
    two_loops,
)

KERNELS = [
    elementwise,
    two_d,
    captured_scalar,
    reduction,
    subtraction,
    array_expression,
    stencil,
    gather,
    scatter,
    copy,
    copy_rows,
    matvec,
    local_array,
    two_loops,
]


def _reverse(f, args, active, seeds):
    """(adjoints returned, shadows after the call) of `ez.Reverse` on copies; the return
    seeded 1.0 when it is a float."""
    ret_act, _ = reverse_return_activity(whole_map(f, args, active).spec)
    shadows = {i: clone(s) for i, s in seeds.items()}
    adj = ez.autodiff(ez.Reverse, f, ret_act, *annotate_reverse(clone_args(args), active, shadows))
    return adj, shadows


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.__name__)
def test_gradient_equals_the_serial_functions(kernel):
    args, active = inputs(np.random.default_rng(1))[kernel]
    rng = np.random.default_rng(2)
    seeds = {i: random_like(args[i], rng) for i in active if isinstance(args[i], np.ndarray)}
    adj_par, s_par = _reverse(compiled(kernel, True), args, active, seeds)
    adj_ser, s_ser = _reverse(compiled(kernel, False), args, active, seeds)
    for i in active:
        if isinstance(args[i], np.ndarray):
            assert_close(s_par[i], s_ser[i], 1e-12, 0.0, f"shadow of argument {i}")
        else:
            assert_close(adj_par[i], adj_ser[i], 1e-12, 0.0, f"adjoint of argument {i}")


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.__name__)
def test_gradient_against_finite_differences(kernel):
    args, active = inputs(np.random.default_rng(3))[kernel]
    check_reverse(compiled(kernel, True), args, active, seed=4)


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.__name__)
def test_dot_product_with_forward_mode(kernel):
    args, active = inputs(np.random.default_rng(5))[kernel]
    dot_test(compiled(kernel, True), args, active, rtol=1e-12, seed=6)


def test_an_exception_in_a_chunk_is_raised_and_the_schedule_restored():
    @ez.enzyme_jit(parallel=True, boundscheck=True)
    def shifted(x, y):
        for i in numba.prange(x.shape[0]):
            y[i] = 2.0 * x[i + 1]

    x, y = np.ones(10), np.zeros(10)
    with numba.parallel_chunksize(3):
        for _ in range(2):
            with pytest.raises(IndexError):
                ez.autodiff(
                    ez.Reverse,
                    shifted,
                    ez.Duplicated(x, np.zeros(10)),
                    ez.Duplicated(y, np.ones(10)),
                )
            assert numba.get_parallel_chunksize() == 3
        with pytest.raises(IndexError):
            ez.autodiff(
                ez.Forward, shifted, ez.Duplicated(x, np.ones(10)), ez.Duplicated(y, np.zeros(10))
            )
        assert numba.get_parallel_chunksize() == 3


def test_reverse_through_a_parallel_callee():
    inner = numba.njit(parallel=True)(reduction)

    @ez.enzyme_jit
    def outer(x):
        return 2.0 * inner(x)

    x = np.random.default_rng(9).uniform(-1.0, 1.0, 20)
    (gx,) = ez.gradient(ez.Reverse, outer, x)
    assert_close(gx, 4.0 * x, 1e-14, 0.0, "gradient")


def time_steps(x, y, steps):
    for _ in range(steps):  # a parallel call per step: one set of chunk tapes each
        for i in numba.prange(1, x.shape[0] - 1):
            y[i] = 0.5 * x[i] + 0.25 * (x[i - 1] + x[i + 1]) * np.cos(x[i])
        for i in numba.prange(x.shape[0]):
            x[i] = 0.9 * y[i]
    s = 0.0
    for i in numba.prange(x.shape[0]):
        s += x[i] * x[i]
    return s


def test_parallel_loops_inside_a_serial_loop():
    rng = np.random.default_rng(12)
    args = [rng.uniform(-1.0, 1.0, 41), np.zeros(41), 3]
    seeds = {1: rng.uniform(-1.0, 1.0, 41)}
    seeds[0] = rng.uniform(-1.0, 1.0, 41)
    with numba.parallel_chunksize(4):
        _, s_par = _reverse(compiled(time_steps, True), args, (0, 1), seeds)
    _, s_ser = _reverse(compiled(time_steps, False), args, (0, 1), seeds)
    for i in (0, 1):
        assert_close(s_par[i], s_ser[i], 1e-12, 0.0, f"shadow of argument {i}")
    check_reverse(compiled(time_steps, True), args, (0, 1), seed=13)


@pytest.mark.parametrize(
    "kernel, combiner, update",
    [
        (product, "reduction_mul", "p *= 1.0 + 0.1 * x[i]"),
        (maximum, "reducer_getitem", "m = max(m, np.sin(3.0 * x[i]) + x[i])"),
    ],
)
def test_non_additive_reductions_are_refused_at_their_line(kernel, combiner, update):
    line = inspect.getsourcelines(kernel)[1] + inspect.getsource(kernel).split("\n").index(
        f"        {update}"
    )
    with pytest.raises(ez.EnzpyError, match=f"reduction combined by {combiner}") as e:
        ez.gradient(ez.Reverse, compiled(kernel, True), np.linspace(0.0, 1.0, 20))
    assert f"at kernels.py:{line}: {update}\n" in str(e.value)


@pytest.mark.parametrize("modified_between", [True, False])
@pytest.mark.parametrize("kernel", [reduction, gather, matvec], ids=lambda k: k.__name__)
def test_split_mode_equals_combined_mode(kernel, modified_between):
    args, active = inputs(np.random.default_rng(10))[kernel]
    rng = np.random.default_rng(11)
    seeds = {i: random_like(args[i], rng) for i in active if isinstance(args[i], np.ndarray)}
    f = compiled(kernel, True)
    _, combined = _reverse(f, args, active, seeds)
    spec = whole_map(f, args, active).spec
    shadows = {i: clone(s) for i, s in seeds.items()}
    ann = annotate_reverse(clone_args(args), active, shadows)
    ret = ez.Active if spec == "f" else ez.Const
    fwd, rev = ez.autodiff_thunk(
        ez.ReverseSplitNoPrimal, f, ret, *ann, modified_between=modified_between
    )
    for _ in range(3):  # tapes dropped unused are released
        fwd(*annotate_reverse(clone_args(args), active, {i: clone(s) for i, s in seeds.items()}))
    tape, _, _ = fwd(*ann)
    if spec == "f":
        rev(*ann, 1.0, tape)
    else:
        rev(*ann, tape)
    for i in seeds:
        assert_close(shadows[i], combined[i], 1e-12, 0.0, f"shadow of argument {i}")


def test_nested_parallel_loops_are_refused():
    inner = numba.njit(parallel=True)(reduction)

    @ez.enzyme_jit(parallel=True)
    def nested(x, y):
        for i in numba.prange(y.shape[0]):
            y[i] = inner(x) * i

    x = np.linspace(0.0, 1.0, 8)
    with pytest.raises(ez.EnzpyError, match="nested parallel loops"):
        ez.autodiff(ez.Reverse, nested, ez.Duplicated(x, x * 0.0), ez.Duplicated(x * 0.0, x + 1))


THREADS = """
    import numba, numpy as np, enzpy as ez
    from parallel.kernels import gather, matvec, reduction, stencil

    rng = np.random.default_rng(0)
    n = 20001
    x, ybar = rng.uniform(-1.0, 1.0, n), rng.uniform(-1.0, 1.0, n)
    idx = rng.integers(0, 50, n)
    a, v = rng.uniform(-1.0, 1.0, (301, 57)), rng.uniform(-1.0, 1.0, 57)
    abar = rng.uniform(-1.0, 1.0, 301)

    compiled = {}  # parallel -> the kernels, compiled once: runs repeat on one derivative

    def grads(parallel):
        if parallel not in compiled:
            jit = ez.enzyme_jit(parallel=True) if parallel else ez.enzyme_jit
            compiled[parallel] = [jit(k) for k in (stencil, gather, reduction, matvec)]
        st, ga, re, mv = compiled[parallel]
        out = []
        dx = np.zeros(n)
        ez.autodiff(ez.Reverse, st, ez.Duplicated(x, dx),
                    ez.Duplicated(np.zeros(n), ybar.copy()))
        out.append(dx)
        dx = np.zeros(50)
        ez.autodiff(ez.Reverse, ga, ez.Duplicated(x[:50].copy(), dx), ez.Const(idx),
                    ez.Duplicated(np.zeros(n), ybar.copy()))
        out.append(dx)
        out.append(ez.gradient(ez.Reverse, re, x)[0])
        da, dv = np.zeros_like(a), np.zeros_like(v)
        ez.autodiff(ez.Reverse, mv, ez.Duplicated(a, da), ez.Duplicated(v, dv),
                    ez.Duplicated(np.zeros(301), abar.copy()))
        out += [da, dv]
        return out

    serial = grads(False)
    errors, repeats = [], []
    for chunk in (0, 7):  # Numba's schedule: one row per thread, or rows of 7 items
        with numba.parallel_chunksize(chunk):
            first = grads(True)
            again = grads(True)
        for p, q, s in zip(first, again, serial):
            scale = np.max(np.abs(s))
            errors.append(float(np.max(np.abs(p - s)) / scale))
            repeats.append(float(np.max(np.abs(p - q)) / scale))
    print(numba.get_num_threads(), numba.threading_layer(), max(errors), max(repeats))
"""


@pytest.mark.parametrize("threads, layer", [(1, "default"), (2, "default"), (2, "workqueue")])
def test_any_number_of_threads_and_schedule(threads, layer, tmp_path):
    (tmp_path / "run.py").write_text(textwrap.dedent(THREADS))
    env = {"NUMBA_NUM_THREADS": str(threads), "NUMBA_THREADING_LAYER": layer}
    count, used, error, repeat = run_python(["run.py"], tmp_path, **env).split()
    assert int(count) == threads and layer in ("default", used)
    assert float(error) < 1e-12
    assert float(repeat) < 1e-12


OUT_OF_MEMORY = """
    import resource
    import numba, numpy as np
    import enzpy as ez

    @ez.enzyme_jit(parallel=True)
    def repeated(x, y):  # each chunk's tape keeps the argument of every sin
        for i in numba.prange(x.shape[0]):
            t = x[i]
            for k in range(4):
                t = np.sin(t)
            y[i] = t

    def gradient(x):
        g, t = np.ones_like(x), x.copy()
        for k in range(4):
            g, t = g * np.cos(t), np.sin(t)
        return g

    def check(n):
        x, dx = np.linspace(0.0, 1.0, n), np.zeros(n)
        ez.autodiff(ez.Reverse, repeated, ez.Duplicated(x, dx),
                    ez.Duplicated(np.zeros(n), np.ones(n)))
        assert np.allclose(dx, gradient(x), rtol=1e-12)

    check(100)
    n = 4 * 10**6
    x, dx, y, dy = np.linspace(0.0, 1.0, n), np.zeros(n), np.zeros(n), np.ones(n)
    with open("/proc/self/status") as fh:
        used = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize"))
    limit = used + 24 * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        ez.autodiff(ez.Reverse, repeated, ez.Duplicated(x, dx), ez.Duplicated(y, dy))
        print("no error")
    except MemoryError as e:
        print("MemoryError:", e)
    check(1000)
    print("usable")
"""


@pytest.mark.parametrize("threads", [1, 2])
def test_no_memory_in_a_chunk_raises_memory_error(threads, tmp_path):
    (tmp_path / "run.py").write_text(textwrap.dedent(OUT_OF_MEMORY))
    out = run_python(["run.py"], tmp_path, NUMBA_NUM_THREADS=str(threads)).splitlines()
    assert out[0].startswith("MemoryError"), out
    assert out[1] == "usable"


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two threads")
def test_a_reverse_pass_on_more_threads_than_its_forward_pass_is_refused():
    """A reduction's reverse sweep finds its partial results by the running thread's index:
    more threads than the forward pass had would index past them."""
    f = compiled(reduction, True)
    x = np.linspace(-1.0, 1.0, 50)
    dx = np.zeros_like(x)
    fwd, rev = ez.autodiff_thunk(ez.ReverseSplitNoPrimal, f, ez.Active, ez.Duplicated(x, dx))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        tape, _, _ = fwd(ez.Duplicated(x, dx))
        numba.set_num_threads(2)
        with pytest.raises(ez.EnzpyError, match="runs with 2 threads .* ran with 1"):
            rev(ez.Duplicated(x, dx), 1.0, tape)
        numba.set_num_threads(1)
        rev(ez.Duplicated(x, dx), 1.0, tape)  # the tape was kept for this call
    finally:
        numba.set_num_threads(before)
    np.testing.assert_allclose(dx, 2.0 * x, rtol=1e-14)  # d/dx sum(x^2)


# a kernel of each kind (a captured scalar, a reduction, a stencil, mat-vec, two loops)
BATCHED = [elementwise, captured_scalar, reduction, stencil, matvec, two_loops]


@pytest.mark.parametrize("kernel", BATCHED, ids=lambda k: k.__name__)
def test_batch_mode_equals_one_cotangent_at_a_time(kernel):
    # width 3: each lane's shadows and Active adjoints equal a width-1 call's with that
    # lane's cotangents (checked above against the serial function and central differences)
    args, active = inputs(np.random.default_rng(12))[kernel]
    f = compiled(kernel, True)
    ret_act, _ = reverse_return_activity(whole_map(f, args, active).spec)
    rng = np.random.default_rng(13)
    lanes = [
        {i: random_like(args[i], rng) for i in active if isinstance(args[i], np.ndarray)}
        for _ in range(3)
    ]
    batch = {i: tuple(clone(lane[i]) for lane in lanes) for i in lanes[0]}
    annotated = [
        ez.BatchDuplicated(a, batch[i]) if i in batch else ez.Active(a) if i in active else a
        for i, a in enumerate(clone_args(args))
    ]
    with numba.parallel_chunksize(4):
        adjoints = ez.autodiff(ez.Reverse, f, ret_act, *annotated)
        for lane, seeds in enumerate(lanes):
            adj, shadows = _reverse(f, args, active, seeds)
            for i in active:
                if i in batch:
                    assert_close(batch[i][lane], shadows[i], 1e-12, 0.0, f"lane {lane}, {i}")
                else:
                    assert_close(adjoints[i][lane], adj[i], 1e-12, 0.0, f"lane {lane}, {i}")
