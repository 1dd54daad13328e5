"""Split reverse mode (`autodiff_thunk`): equals combined mode (with arguments modified
between the passes or not), is linear in the return's cotangent, passes the dot-product test
for returned arrays, computes at the point the forward pass saw, refuses tape misuse, and
leaks nothing."""

from __future__ import annotations

import gc
import os

import numpy as np
import pytest
from corpus import CASES
from harness import (
    annotate_forward,
    annotate_reverse,
    assert_close,
    clone,
    clone_args,
    is_float_array,
    py_function,
    random_like,
    ret_spec,
)

import enzpy as ez

WITH, NO = ez.ReverseSplitWithPrimal, ez.ReverseSplitNoPrimal


def _spec(case):
    return ret_spec(py_function(case.fn)(*clone_args(case.args())))


def _seeds(case, args, rng):
    return {i: random_like(args[i], rng) for i in case.active if is_float_array(args[i])}


def _split(case, args, seeds, dret, mode=WITH, modified_between=True):
    """Shadows (seeded with `seeds`) and adjoints after fwd + rev with cotangent `dret`
    (None: Const return)."""
    ret = ez.Const if dret is None else ez.Active
    shadows = {i: clone(s) for i, s in seeds.items()}
    ann = annotate_reverse(clone_args(args), case.active, shadows)
    fwd, rev = ez.autodiff_thunk(mode, case.fn, ret, *ann, modified_between=modified_between)
    tape, primal, shadow_ret = fwd(*ann)
    assert shadow_ret is None
    assert primal is None or mode is WITH
    adj = rev(*ann, tape) if dret is None else rev(*ann, dret, tape)
    return shadows, adj, primal


FLOAT_OR_CONST = [c for c in CASES if _spec(c) in ("f", None)]


@pytest.mark.parametrize(
    ("case", "modified_between"),
    [(c, True) for c in FLOAT_OR_CONST] + [(c, False) for c in FLOAT_OR_CONST[::3]],
    ids=lambda v: v.id if hasattr(v, "id") else f"modified={v}",
)
def test_split_equals_combined(case, modified_between):
    args = case.args()
    spec = _spec(case)
    seeds = _seeds(case, args, np.random.default_rng(case.seed + 3))
    ret = ez.Active if spec == "f" else ez.Const
    shadows = {i: clone(s) for i, s in seeds.items()}
    prim = clone_args(args)
    adj, z = ez.autodiff(
        ez.ReverseWithPrimal, case.fn, ret, *annotate_reverse(prim, case.active, shadows)
    )
    s_sh, s_adj, s_z = _split(
        case, args, seeds, 1.0 if spec == "f" else None, modified_between=modified_between
    )
    if spec == "f":
        assert s_z == z
    for i in case.active:
        got, want = (s_sh[i], shadows[i]) if i in shadows else (s_adj[i], adj[i])
        assert_close(got, want, 1e-12, 1e-13, f"argument {i}: split vs combined")


@pytest.mark.parametrize(
    "case", [c for c in FLOAT_OR_CONST if _spec(c) == "f"][::3], ids=lambda c: c.id
)
def test_split_is_linear_in_the_cotangent(case):
    args = case.args()
    seeds = _seeds(case, args, np.random.default_rng(case.seed + 4))
    sh1, adj1, _ = _split(case, args, seeds, 1.0, mode=NO)
    sh2, adj2, _ = _split(case, args, {i: 2.5 * s for i, s in seeds.items()}, 2.5, mode=NO)
    for i in case.active:
        got, want = (sh2[i], sh1[i]) if i in sh1 else (adj2[i], adj1[i])
        single = np.asarray(got).dtype == np.float32  # 2.5 (d p) and (2.5 d) p round apart
        rtol = 1e-6 if single else 1e-12
        assert_close(got, 2.5 * np.asarray(want), rtol, rtol * 0.1, f"argument {i}")


ARRAY_RETURNS = [c for c in CASES if isinstance(_spec(c), tuple) and _spec(c)[0] == "a"]


def _dot(a, b) -> float:
    return float(np.sum(np.asarray(a, np.float64) * np.asarray(b, np.float64)))


@pytest.mark.parametrize("modified_between", [True, False])
@pytest.mark.parametrize("case", ARRAY_RETURNS, ids=lambda c: c.id)
def test_array_return_dot_product(case, modified_between):
    """<w, J_ret u> + <v, J_args u> (forward) == <Jᵀ(w, v), u> (split, w seeded into the
    returned array's shadow)."""
    args = case.args()
    rng = np.random.default_rng(case.seed + 5)
    u = {i: random_like(args[i], rng) for i in case.active}
    v = _seeds(case, args, rng)
    fsh = {i: clone(t) for i, t in u.items()}
    z_dot = ez.autodiff(ez.Forward, case.fn, *annotate_forward(clone_args(args), case.active, fsh))
    w = random_like(z_dot, rng)
    lhs = _dot(w, z_dot) + sum(_dot(v[i], fsh[i]) for i in v)

    shadows = {i: clone(s) for i, s in v.items()}
    ann = annotate_reverse(clone_args(args), case.active, shadows)
    fwd, rev = ez.autodiff_thunk(
        NO, case.fn, ez.Duplicated, *ann, modified_between=modified_between
    )
    tape, primal, dret = fwd(*ann)
    assert primal is None and dret.shape == z_dot.shape
    dret += w
    adj = rev(*ann, tape)
    rhs = sum(_dot(shadows[i] if i in shadows else adj[i], u[i]) for i in case.active)
    assert abs(lhs - rhs) <= 1e-10 * max(abs(lhs), 1.0), (lhs, rhs)


@ez.enzyme_jit
def _stats(x):
    s = 0.0
    q = 0.0
    for i in range(x.shape[0]):
        s += x[i]
        q += x[i] * x[i]
    return s, q


def test_tuple_of_floats_return_takes_a_tuple_cotangent():
    x = np.linspace(0.5, 2.0, 4)
    dx = np.zeros(4)
    fwd, rev = ez.autodiff_thunk(WITH, _stats, ez.Active, ez.Duplicated(x, dx))
    tape, z, _ = fwd(ez.Duplicated(x, dx))
    assert z == pytest.approx((x.sum(), (x * x).sum()))
    rev(ez.Duplicated(x, dx), (3.0, -0.5), tape)
    np.testing.assert_allclose(dx, 3.0 - 0.5 * 2 * x)
    with pytest.raises(ez.AnnotationError, match="cotangent"):
        rev(ez.Duplicated(x, dx), 1.0, fwd(ez.Duplicated(x, dx))[0])


@ez.enzyme_jit
def _pair(x):
    return np.sin(x), x * x


def test_tuple_of_arrays_return():
    x = np.linspace(0.1, 1.0, 5)
    dx = np.zeros(5)
    fwd, rev = ez.autodiff_thunk(NO, _pair, ez.Duplicated, ez.Duplicated(x, dx))
    tape, _, (da, db) = fwd(ez.Duplicated(x, dx))
    da += 2.0
    db += 1.0
    rev(ez.Duplicated(x, dx), tape)
    np.testing.assert_allclose(dx, 2.0 * np.cos(x) + 2 * x, rtol=1e-13)


@ez.enzyme_jit
def _scale_in_place(x, a):
    s = 0.0
    for i in range(x.shape[0]):
        s += a * np.sin(x[i])
        x[i] = x[i] * a
    return s


def test_reverse_runs_at_the_point_the_forward_pass_saw():
    x0 = np.array([0.3, 0.7, 1.1])
    x, dx = x0.copy(), np.zeros(3)
    fwd, rev = ez.autodiff_thunk(
        NO, _scale_in_place, ez.Active, ez.Duplicated(x, dx), ez.Active(2.0)
    )
    tape, _, _ = fwd(ez.Duplicated(x, dx), ez.Active(2.0))
    x[:] = 100.0  # modified between the passes
    (_, da) = rev(ez.Duplicated(x, dx), ez.Active(5.0), 1.0, tape)
    np.testing.assert_allclose(dx, 2.0 * np.cos(x0), rtol=1e-14)
    assert da == pytest.approx(np.sin(x0).sum())


def test_tape_misuse_raises():
    x, dx = np.array([0.3, 0.7]), np.zeros(2)
    ann = (ez.Duplicated(x, dx), ez.Active(2.0))
    fwd, rev = ez.autodiff_thunk(NO, _scale_in_place, ez.Active, *ann)
    fwd2, rev2 = ez.autodiff_thunk(NO, _scale_in_place, ez.Active, *ann)
    tape, _, _ = fwd(*ann)
    with pytest.raises(ez.EnzpyError, match="another thunk"):
        rev2(*ann, 1.0, tape)
    with pytest.raises(ez.ShadowError, match="shadow its forward pass got"):
        rev(ez.Duplicated(x, np.zeros(2)), ez.Active(2.0), 1.0, tape)
    with pytest.raises(ez.ShadowError, match="shapes"):
        rev(ez.Duplicated(np.zeros(3), np.zeros(3)), ez.Active(2.0), 1.0, tape)
    rev(*ann, 1.0, tape)
    assert tape.used
    with pytest.raises(ez.EnzpyError, match="already used"):
        rev(*ann, 1.0, tape)
    with pytest.raises(ez.AnnotationError, match="thunk was made for"):
        fwd(ez.Duplicated(np.zeros((2, 2)), np.zeros((2, 2))), ez.Active(2.0))
    for bad in (x, np.zeros(3)):  # (the compiled checks defer to the Python path's errors)
        with pytest.raises(ez.ShadowError, match="shadow"):
            fwd(ez.Duplicated(x, bad), ez.Active(2.0))
    with pytest.raises(ez.AnnotationError, match="tape"):
        rev(*ann, tape)
    with pytest.raises(ez.AnnotationError, match="autodiff_thunk"):
        ez.autodiff(NO, _scale_in_place, *ann)


def test_return_activity_errors():
    x, dx = np.array([0.3, 0.7]), np.zeros(2)
    with pytest.raises(ez.AnnotationError, match="Active return needs a float"):
        ez.autodiff_thunk(NO, _pair, ez.Active, ez.Duplicated(x, dx))
    with pytest.raises(ez.AnnotationError, match="float return is Active"):
        ez.autodiff_thunk(NO, _scale_in_place, ez.Duplicated, ez.Duplicated(x, dx), ez.Active(1.0))
    with pytest.raises(ez.AnnotationError, match="ReverseSplit"):
        ez.autodiff_thunk(ez.Reverse, _pair, ez.Duplicated(x, dx))


@ez.enzyme_jit
def _raises(x):
    y = np.zeros(x.shape[0])
    for i in range(x.shape[0]):
        y[i] = np.exp(x[i])
    if y[0] > 2.0:
        raise ValueError("too big")
    return y


def _rss() -> int:
    with open(f"/proc/{os.getpid()}/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_no_leak_over_100k_pairs_and_unused_tapes():
    x, dx = np.linspace(0.1, 0.5, 32), np.zeros(32)
    fwd, rev = ez.autodiff_thunk(NO, _raises, ez.Duplicated, ez.Duplicated(x, dx))

    def pairs(n):
        for _ in range(n):
            tape, _, dret = fwd(ez.Duplicated(x, dx))
            dret += 1.0
            rev(ez.Duplicated(x, dx), tape)
        for _ in range(n // 10):  # tapes dropped unused are released
            fwd(ez.Duplicated(x, dx))

    pairs(10_000)
    gc.collect()
    before = _rss()
    pairs(100_000)
    gc.collect()
    grown = _rss() - before
    assert grown < 4 * 1024 * 1024, f"resident memory grew by {grown / 1e6:.1f} MB"
    np.testing.assert_allclose(dx, 110_000 * np.exp(x), rtol=1e-9)
    with pytest.raises(ValueError, match="too big"):  # the tape of a failed pass is released
        fwd(ez.Duplicated(np.full(32, 1.0), np.zeros(32)))


@ez.enzyme_jit
def _sum_of_squares(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] * x[i]
    return s


def test_tape_storage_is_kept_for_the_next_forward_pass_until_released():
    x = np.linspace(0.1, 0.5, 5000)
    ann = (ez.Duplicated(x, np.zeros_like(x)),)
    fwd, rev = ez.autodiff_thunk(WITH, _sum_of_squares, ez.Active, *ann)
    ez.release_tapes()
    tape, _, _ = fwd(*ann)
    nbytes = tape.nbytes
    assert nbytes >= 8 * x.size  # (one value per iteration)
    rev(*ann, 1.0, tape)
    assert ez.release_tapes() >= nbytes  # kept after rev, freed now
    for _ in range(3):
        tape, _, _ = fwd(*ann)
        rev(*ann, 2.0, tape)
    assert ez.release_tapes() >= nbytes  # one storage, used by each pair in turn
    np.testing.assert_allclose(ann[0].dval, 7.0 * 2.0 * x, rtol=1e-13)


@ez.enzyme_jit
def _matvec_norm(A, x):
    y = A @ x  # BLAS: the forward pass keeps a copy of A and x for the reverse pass
    return np.dot(y, y)


def test_dropped_tapes_free_cached_blas_inputs():
    rng = np.random.default_rng(0)
    A, x = rng.random((30, 30)), rng.random(30)
    dA, dx = np.zeros_like(A), np.zeros(30)
    ann = (ez.Duplicated(A, dA), ez.Duplicated(x, dx))
    fwd, rev = ez.autodiff_thunk(NO, _matvec_norm, ez.Active, *ann)
    for _ in range(500):
        fwd(*ann)
    gc.collect()
    before = _rss()
    for _ in range(5000):  # each dropped tape held a 7 kB copy of A
        fwd(*ann)
    gc.collect()
    assert _rss() - before < 8 * 1024 * 1024
    tape, _, _ = fwd(*ann)
    rev(*ann, 1.0, tape)
    y = A @ x
    np.testing.assert_allclose(dx, 2 * A.T @ y, rtol=1e-13)
    np.testing.assert_allclose(dA, 2 * np.outer(y, x), rtol=1e-13)
