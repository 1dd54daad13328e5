"""Batch mode: one call carrying N tangents (forward) or N cotangents (reverse) equals N
separate calls, on the whole corpus; the dot test per lane; the errors of batch calls."""

import numba
import numpy as np
import pytest
from corpus import CASES
from harness import (
    clone_args,
    is_float_array,
    is_plain_int,
    random_like,
    reverse_return_activity,
    whole_map,
)

import enzpy as ez


def _annotate(args, active, shadows, cls, reverse=False):
    """`shadows[i]` per active argument: a tuple of shadows (batch) or one shadow; in
    reverse mode active float scalars are `Active`."""
    out = []
    for i, a in enumerate(args):
        if i in active and reverse and not is_float_array(a):
            out.append(ez.Active(a))
        elif i in active:
            out.append(cls(a, shadows[i]))
        elif is_plain_int(a):
            out.append(a)
        else:
            out.append(ez.Const(a))
    return out


def _flat(*parts):
    out = []
    for p in parts:
        if isinstance(p, tuple):
            out.extend(_flat(*p))
        elif p is not None:
            out.append(np.asarray(p, np.float64).ravel())
    return out


def _batch_and_separate(
    f, args, active, width, seed, mode=ez.Forward, cls=ez.BatchDuplicated, ret=()
):
    """(batch call's result and shadows, the N separate calls' results and shadows)."""
    rng = np.random.default_rng(seed)
    lanes = [{i: random_like(args[i], rng) for i in active} for _ in range(width)]
    copies = {i: tuple(_copy(lane[i]) for lane in lanes) for i in active}
    rev = mode.reverse
    batch = ez.autodiff(mode, f, *ret, *_annotate(clone_args(args), active, copies, cls, rev))
    separate = []
    for lane in lanes:
        one = {i: _copy(lane[i]) for i in active}
        ann = _annotate(clone_args(args), active, one, ez.Duplicated, rev)
        separate.append((ez.autodiff(mode, f, *ret, *ann), one))
    return batch, copies, separate


def _copy(v):
    return v.copy() if isinstance(v, np.ndarray) else v


@pytest.mark.parametrize("case", CASES[1::2], ids=lambda c: c.id)  # half: the suite's time
def test_batch_equals_separate_calls(case):
    """Width 3 on every corpus function: each lane's tangent of the return and of the
    arrays after the call equals a separate forward call's."""
    args, active = case.args(), case.active
    batch, shadows, separate = _batch_and_separate(case.fn, args, active, 3, case.seed)
    assert isinstance(batch, tuple) and len(batch) == 3
    _assert_lanes(args, active, [batch[lane] for lane in range(3)], shadows, separate)


def _assert_lanes(args, active, results, shadows, separate):
    """Each lane's result and shadows equal a separate call's (to 1e-14)."""
    arrays = [i for i in sorted(active) if _is_array(args[i])]
    for lane, (res, one) in enumerate(separate):
        got = _flat(results[lane], *[shadows[i][lane] for i in arrays])
        want = _flat(res, *[one[i] for i in arrays])
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-14, atol=1e-300, err_msg=f"lane {lane}")


# every other corpus function with an active array (the suite's time; all pass)
WITH_ARRAYS = [c for c in CASES if any(is_float_array(c.args()[i]) for i in c.active)][::2]


@pytest.mark.parametrize("case", WITH_ARRAYS, ids=lambda c: c.id)
def test_reverse_batch_equals_separate_calls(case):
    """Width 3 in reverse mode on every corpus function: the shadows (seeded with each
    lane's cotangent of the arrays after the call) and the Active adjoints of each lane
    equal a separate reverse call's."""
    args, active = case.args(), case.active
    ret, _ = reverse_return_activity(whole_map(case.fn, args, active).spec)
    batch, shadows, separate = _batch_and_separate(
        case.fn, args, active, 3, case.seed, ez.Reverse, ret=(ret,)
    )
    assert isinstance(batch, tuple) and len(batch) == len(args)
    lanes = [tuple(None if a is None else a[lane] for a in batch) for lane in range(3)]
    _assert_lanes(args, active, lanes, shadows, separate)


def _is_array(v):
    return isinstance(v, np.ndarray)


@ez.enzyme_jit
def _model(x, y, a):
    """Writes into `y`, allocates, calls a helper, returns a float."""
    s = 0.0
    for i in range(x.shape[0]):
        y[i] = np.sin(x[i]) * a + _helper(x[i], a)
        s += y[i] * x[i]
    t = np.exp(x) * a
    return s + t.sum()


@ez.enzyme_jit
def _helper(v, a):
    return v * v * a if v > 0.2 else v - a


def _model_args():
    return (np.linspace(0.05, 1.0, 9), np.zeros(9), 1.5)


@pytest.mark.parametrize("width", [1, 2, 8, 17])
def test_widths(width):
    batch, shadows, separate = _batch_and_separate(
        _model, _model_args(), (0, 1, 2), width, width, ez.ForwardWithPrimal
    )
    tangents, primal = batch
    assert primal == separate[0][0][1]
    for lane, (res, one) in enumerate(separate):
        assert tangents[lane] == res[0]
        for i in (0, 1):
            np.testing.assert_array_equal(shadows[i][lane], one[i])


def test_noneed_return_and_arguments():
    """BatchDuplicatedNoNeed: the tangents alone, as DuplicatedNoNeed gives them."""
    batch, shadows, separate = _batch_and_separate(
        _model, _model_args(), (0, 1, 2), 4, 0, ez.ForwardWithPrimal, ez.BatchDuplicatedNoNeed
    )
    for lane, (res, _) in enumerate(separate):
        assert batch[0][lane] == res[0]


def test_each_lane_passes_the_dot_test_with_reverse_mode():
    """Each lane's J·u against one reverse pass's Jᵀ·v: <v, J u> == <Jᵀ v, u>, with v the
    return's seed 1.0 and a cotangent of `y` after the call."""
    args = _model_args()
    rng = np.random.default_rng(3)
    lanes = [{i: random_like(args[i], rng) for i in (0, 1, 2)} for _ in range(4)]
    shadows = {i: tuple(_copy(lane[i]) for lane in lanes) for i in (0, 1, 2)}
    ann = _annotate(clone_args(args), (0, 1, 2), shadows, ez.BatchDuplicated)
    tangents = ez.autodiff(ez.Forward, _model, *ann)
    x, y, a = clone_args(args)
    v_y = rng.standard_normal(y.shape)
    gx, gy = np.zeros_like(x), v_y.copy()
    ((_, _, ga),) = [
        ez.autodiff(
            ez.Reverse, _model, ez.Active, ez.Duplicated(x, gx), ez.Duplicated(y, gy), ez.Active(a)
        )
    ]
    for lane, u in enumerate(lanes):
        lhs = tangents[lane] + v_y @ shadows[1][lane]
        rhs = gx @ u[0] + gy @ u[1] + ga * u[2]
        np.testing.assert_allclose(lhs, rhs, rtol=1e-11)


def _expect(error, match, *args):
    with pytest.raises(error, match=match):
        ez.autodiff(ez.Forward, _model, *args)


def test_errors():
    x, y = np.ones(9), np.zeros(9)
    dx = (np.ones(9), np.zeros(9))
    _expect(
        ez.AnnotationError,
        "Duplicated and BatchDuplicated arguments in one call",
        ez.BatchDuplicated(x, dx),
        ez.Duplicated(y, np.zeros(9)),
        1.0,
    )
    _expect(
        ez.AnnotationError,
        "with 2 and 3 shadows",
        ez.BatchDuplicated(x, dx),
        ez.BatchDuplicated(y, (np.zeros(9),) * 3),
        1.0,
    )
    _expect(
        ez.ShadowError, "two of its shadows share memory", ez.BatchDuplicated(x, (y, y)), 1.0, 1.0
    )
    _expect(
        ez.ShadowError,
        "argument 0: the shadow's shape differs from the primal's",
        ez.BatchDuplicated(x, (y, np.zeros(3))),
        np.zeros(9),
        1.0,
    )
    _expect(
        ez.ShadowError,
        "shares memory with the primal of argument 1",
        ez.BatchDuplicated(x, (np.ones(9), y)),
        y,
        1.0,
    )
    _expect(ez.AnnotationError, "needs at least one shadow", ez.BatchDuplicated(x, ()), y, 1.0)
    with pytest.raises(ez.AnnotationError, match="Active"):
        ez.autodiff(
            ez.Reverse, _model, ez.BatchDuplicated(x, dx), y, ez.BatchDuplicated(1.0, (1.0, 0.0))
        )
    fwd, rev = ez.autodiff_thunk(
        ez.ReverseSplitWithPrimal, _model, ez.BatchDuplicated(x, dx), y, ez.Active(1.0)
    )
    tape = fwd(ez.BatchDuplicated(x, dx), y, ez.Active(1.0))[0]
    with pytest.raises(ez.AnnotationError, match="a tuple of 2, one per shadow"):
        rev(ez.BatchDuplicated(x, dx), y, ez.Active(1.0), 1.0, tape)


@pytest.mark.parametrize("width", [1, 17])
def test_reverse_widths(width):
    """Reverse mode: each lane's shadows and the Active adjoint equal a separate call's."""
    batch, shadows, separate = _batch_and_separate(
        _model, _model_args(), (0, 1, 2), width, width, ez.ReverseWithPrimal, ret=(ez.Active,)
    )
    adjoints, primal = batch
    assert len(adjoints[2]) == width
    for lane, ((adj, value), one) in enumerate(separate):
        # a float's adjoint is a sum LLVM may reassociate (vectorized, as a reduction)
        assert value == primal and adjoints[2][lane] == pytest.approx(adj[2], rel=1e-14)
        for i in (0, 1):
            np.testing.assert_array_equal(shadows[i][lane], one[i])


@numba.njit
def _forward_inside(x, y, a, dxs, dys, das):
    return ez.autodiff(
        ez.ForwardWithPrimal,
        _model,
        ez.BatchDuplicated(x, dxs),
        ez.BatchDuplicated(y, dys),
        ez.BatchDuplicated(a, das),
    )


@numba.njit
def _reverse_inside(x, y, a, gxs, gys):
    return ez.autodiff(
        ez.Reverse, _model, ez.BatchDuplicated(x, gxs), ez.BatchDuplicated(y, gys), ez.Active(a)
    )


def test_inside_jitted_code_as_from_python():
    """The same batch calls in jitted code and from Python (where the hot path takes them
    after a few calls) give the same derivatives."""
    rng = np.random.default_rng(5)
    x, y, a = _model_args()
    dxs = tuple(rng.standard_normal(9) for _ in range(3))
    dys = tuple(rng.standard_normal(9) for _ in range(3))
    das = (0.5, -1.0, 2.0)

    def forward(call):
        sy = tuple(d.copy() for d in dys)
        return call(x.copy(), y.copy(), a, tuple(d.copy() for d in dxs), sy, das), sy

    def python_forward(x, y, a, dxs, dys, das):
        bd = ez.BatchDuplicated
        return ez.autodiff(ez.ForwardWithPrimal, _model, bd(x, dxs), bd(y, dys), bd(a, das))

    want = np.concatenate(_flat(*forward(python_forward)))
    for _ in range(6):  # through the compiled entry after the first few
        np.testing.assert_array_equal(np.concatenate(_flat(*forward(python_forward))), want)
    np.testing.assert_array_equal(np.concatenate(_flat(*forward(_forward_inside))), want)

    def reverse(call):
        gxs, gys = tuple(np.zeros(9) for _ in range(3)), tuple(d.copy() for d in dys)
        return call(x.copy(), y.copy(), a, gxs, gys), gxs, gys

    def python_reverse(x, y, a, gxs, gys):
        bd = ez.BatchDuplicated
        return ez.autodiff(ez.Reverse, _model, bd(x, gxs), bd(y, gys), ez.Active(a))

    want = np.concatenate(_flat(*reverse(python_reverse)))
    np.testing.assert_array_equal(np.concatenate(_flat(*reverse(_reverse_inside))), want)


@ez.enzyme_jit
def _waves(x, a):
    """An array return, seeded through its shadows in split mode."""
    return np.sin(x) * a + x[::-1]


@pytest.mark.parametrize("width", [1, 3])
def test_split_mode_lanes_equal_separate_thunks(width):
    """Split mode in batch: a float return seeded per lane (`dret` a tuple) and an array
    return seeded through each lane's shadow of it, against one thunk call per lane."""
    rng = np.random.default_rng(width)
    x, y, a = _model_args()
    seeds = [rng.standard_normal(9) for _ in range(width)]
    drets = tuple(rng.standard_normal(width))
    bd = ez.BatchDuplicated

    def batch_model():
        gx, gy = tuple(np.zeros(9) for _ in seeds), tuple(s.copy() for s in seeds)
        args = (bd(x.copy(), gx), bd(y.copy(), gy), ez.Active(a))
        fwd, rev = ez.autodiff_thunk(ez.ReverseSplitWithPrimal, _model, ez.Active, *args)
        tape, value, _ = fwd(*args)
        return value, rev(*args, drets, tape)[2], gx, gy

    value, adj, gx, gy = batch_model()
    for lane in range(width):
        sx, sy = np.zeros(9), seeds[lane].copy()
        args = (ez.Duplicated(x.copy(), sx), ez.Duplicated(y.copy(), sy), ez.Active(a))
        fwd, rev = ez.autodiff_thunk(ez.ReverseSplitWithPrimal, _model, ez.Active, *args)
        tape, one, _ = fwd(*args)
        assert one == value and rev(*args, drets[lane], tape)[2] == adj[lane]
        np.testing.assert_array_equal(gx[lane], sx)
        np.testing.assert_array_equal(gy[lane], sy)

    gx = tuple(np.zeros(9) for _ in seeds)
    fwd, rev = ez.autodiff_thunk(ez.ReverseSplitNoPrimal, _waves, bd(x, gx), ez.Active(a))
    tape, _, shadows = fwd(bd(x, gx), ez.Active(a))
    assert len(shadows) == width
    for shadow, seed in zip(shadows, seeds, strict=True):
        shadow += seed
    adj = rev(bd(x, gx), ez.Active(a), tape)[1]
    for lane, seed in enumerate(seeds):  # the closed form of seedᵀ J
        want = seed * np.cos(x) * a + seed[::-1]
        np.testing.assert_allclose(gx[lane], want, rtol=1e-14)
        assert adj[lane] == pytest.approx(seed @ np.sin(x), rel=1e-14)
