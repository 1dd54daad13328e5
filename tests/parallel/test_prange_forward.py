"""Forward mode of functions compiled with `parallel=True` (`prange` loops and parallel
array expressions): the tangent equals that of the same Python function compiled serially
(to 1e-12, the sums of a reduction being associated per thread), and central finite
differences of the whole map (arrays after execution and the return value); it does so
whatever the number of threads. Reverse mode: `test_prange_reverse.py`."""

from __future__ import annotations

import inspect
import math
import textwrap
import warnings

import numba
import numpy as np
import pytest
from harness import (
    annotate_forward,
    assert_close,
    check_forward,
    clone,
    clone_args,
    random_like,
)
from processes import run_python

import enzpy as ez
from enzpy import bridge
from enzpy.bridge.parfors import parallel_calls
from llvm_passes.ir import I64, PTR, parse_module
from llvm_passes.rules.parallel import PARALLEL_FOR
from parallel.kernels import (
    array_expression,
    captured_scalar,
    compiled,
    elementwise,
    inputs,
    local_array,
    maximum,
    product,
    reduction,
    returned_array,
    stencil,
    two_d,
    two_loops,
)

KERNELS = [
    elementwise,
    two_d,
    captured_scalar,
    reduction,
    array_expression,
    stencil,
    product,
    maximum,
    local_array,
    returned_array,
    two_loops,
]


def _forward(f, args, active, tangents, annotation=ez.Duplicated):
    """(returned tangent, shadows after the call) of `ez.Forward` on copies."""
    shadows = {i: clone(t) for i, t in tangents.items()}
    annotated = annotate_forward(clone_args(args), active, shadows)
    if annotation is not ez.Duplicated:
        annotated = [
            annotation(a.val, a.dval) if isinstance(a, ez.Duplicated) else a for a in annotated
        ]
    return ez.autodiff(ez.Forward, f, *annotated), shadows


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.__name__)
def test_tangent_equals_the_serial_functions(kernel):
    args, active = inputs(np.random.default_rng(1))[kernel]
    rng = np.random.default_rng(2)
    tangents = {i: random_like(args[i], rng) for i in active}
    z_par, s_par = _forward(compiled(kernel, True), args, active, tangents)
    z_ser, s_ser = _forward(compiled(kernel, False), args, active, tangents)
    if z_ser is None:
        assert z_par is None
    else:
        assert_close(np.asarray(z_par), np.asarray(z_ser), 1e-12, 0.0, "returned tangent")
    for i in active:
        if isinstance(args[i], np.ndarray):
            assert_close(s_par[i], s_ser[i], 1e-12, 0.0, f"shadow of argument {i}")


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.__name__)
def test_tangent_against_finite_differences(kernel):
    args, active = inputs(np.random.default_rng(3))[kernel]
    check_forward(compiled(kernel, True), args, active, seed=4)


def test_batch_mode_gives_each_tangent():
    args, active = inputs(np.random.default_rng(5))[captured_scalar]
    rng = np.random.default_rng(6)
    lanes = [{i: random_like(args[i], rng) for i in active} for _ in range(3)]
    f = compiled(captured_scalar, True)
    x, a, y = clone_args(args)
    dxs, das, dys = ([clone(t[i]) for t in lanes] for i in active)
    ez.autodiff(
        ez.Forward,
        f,
        ez.BatchDuplicated(x, tuple(dxs)),
        ez.BatchDuplicated(a, tuple(das)),
        ez.BatchDuplicated(y, tuple(dys)),
    )
    for lane, tangents in enumerate(lanes):
        _, shadows = _forward(compiled(captured_scalar, False), args, active, tangents)
        assert_close(dys[lane], shadows[2], 1e-12, 0.0, f"lane {lane}")


def test_jvp():
    x = np.random.default_rng(7).uniform(-1.0, 1.0, 50)
    u = np.random.default_rng(8).uniform(-1.0, 1.0, 50)
    value, tangent = ez.jvp(compiled(reduction, True), (x,), (u,))
    assert value == pytest.approx(float(x @ x), rel=1e-13)
    assert tangent == pytest.approx(float(2.0 * x @ u), rel=1e-13)


def test_an_exception_in_a_chunk_is_raised():
    @ez.enzyme_jit(parallel=True, boundscheck=True)
    def shifted(x, y):
        for i in numba.prange(x.shape[0]):
            y[i] = 2.0 * x[i + 1]

    x, y = np.ones(10), np.zeros(10)
    with pytest.raises(IndexError):
        ez.autodiff(
            ez.Forward, shifted, ez.Duplicated(x, np.ones(10)), ez.Duplicated(y, np.zeros(10))
        )


def test_a_const_output_warns_only_when_read_back():
    def write_only(x, y):
        for i in numba.prange(x.shape[0]):
            y[i] = np.sin(x[i])

    def read_back(x, y, z):
        for i in numba.prange(x.shape[0]):
            y[i] = np.sin(x[i])
        for i in numba.prange(x.shape[0]):
            z[i] = 2.0 * y[x.shape[0] - 1 - i]

    x = np.linspace(0.0, 1.0, 30)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ez.DroppedDerivativeWarning)
        ez.autodiff(
            ez.Forward,
            compiled(write_only, True),
            ez.Duplicated(x, np.ones(30)),
            ez.Const(np.zeros(30)),
        )
    for parallel in (False, True):  # as the serial function does
        dz = np.ones(30)
        with pytest.warns(ez.DroppedDerivativeWarning, match="`y`"):
            ez.autodiff(
                ez.Forward,
                compiled(read_back, parallel),
                ez.Duplicated(x, np.ones(30)),
                ez.Const(np.zeros(30)),
                ez.Duplicated(np.zeros(30), dz),
            )
        np.testing.assert_array_equal(dz, 0.0)  # Const semantics: y's derivative is dropped


def test_a_refusal_in_a_loop_body_names_the_users_line():
    @ez.enzyme_jit(parallel=True)
    def after(x, y):
        for i in numba.prange(x.shape[0]):
            y[i] = math.nextafter(x[i], 2.0)

    line = inspect.getsourcelines(after)[1] + 3
    x = np.linspace(0.0, 1.0, 10)
    with pytest.raises(ez.NoDerivativeError, match=rf"nextafter at test_prange_forward.py:{line}"):
        ez.autodiff(ez.Forward, after, ez.Duplicated(x, np.ones(10)), ez.Const(np.zeros(10)))


THREADS = """
    import numba, numpy as np, enzpy as ez

    def elementwise(x, y):
        for i in numba.prange(x.shape[0]):
            y[i] = np.sin(x[i]) * x[i]

    def reduction(x):
        s = 0.0
        for i in numba.prange(x.shape[0]):
            s += x[i] * x[i]
        return s

    f = ez.enzyme_jit(parallel=True)(elementwise)
    g = ez.enzyme_jit(parallel=True)(reduction)
    rng = np.random.default_rng(0)
    x, u = rng.uniform(-1.0, 1.0, 100001), rng.uniform(-1.0, 1.0, 100001)
    exact = (np.cos(x) * x + np.sin(x)) * u
    errors = []
    for chunk in (0, 997):  # Numba's schedule: one row per thread, or rows of 997 items
        with numba.parallel_chunksize(chunk):
            dy = np.zeros_like(x)
            ez.autodiff(ez.Forward, f, ez.Duplicated(x, u), ez.Duplicated(np.zeros_like(x), dy))
            errors.append(float(np.max(np.abs(dy - exact)) / np.max(np.abs(exact))))
            ds = ez.autodiff(ez.Forward, g, ez.Duplicated(x, u))
            errors.append(abs(ds - 2.0 * float(x @ u)) / abs(2.0 * float(x @ u)))
    print(numba.get_num_threads(), numba.threading_layer(), max(errors))
"""


@pytest.mark.parametrize("threads, layer", [(1, "default"), (2, "default"), (2, "workqueue")])
def test_any_number_of_threads(threads, layer, tmp_path):
    (tmp_path / "run.py").write_text(textwrap.dedent(THREADS))
    env = {"NUMBA_NUM_THREADS": str(threads), "NUMBA_THREADING_LAYER": layer}
    count, used, error = run_python(["run.py"], tmp_path, **env).split()
    assert int(count) == threads and layer in ("default", used)
    assert float(error) < 1e-12


def test_the_launch_becomes_one_parallel_call_of_plain_values():
    """Pins the shape of Numba's launch that the bridge reads (a new Numba version may
    change it): the root's launch becomes an `enzpy.parallel_for` call whose operands are
    the root's own values, and the launcher and gufunc wrapper drop out."""
    f = compiled(elementwise, True)
    x = np.linspace(0.0, 1.0, 8)
    f(x, np.zeros(8))
    symbol = bridge.compiled_function(f.dispatcher)[0]
    texts = parallel_calls(bridge.modules_for(symbol))
    assert not any("numba_parallel_for" in t or "__gufunc__" in t for t in texts)
    module = parse_module(texts[0])
    root = module.get(symbol)
    (call,) = [i for i in root.instructions() if i.callee_name == PARALLEL_FOR]
    chunk = module.get(call.operands[0].name)
    assert [a.type for a in chunk.args[:1]] == [I64] and chunk.args[-1].type == PTR
    assert len(chunk.args) == len(call.operands) - 1  # the chunk index, then the operands
    data = {a.name: a for a in root.args if a.name in ("arg.x.4", "arg.y.4")}
    assert set(data.values()) <= set(call.operands)  # the arrays' data pointers
    assert call.operands[-1] is root.args[1]  # the root's excinfo
