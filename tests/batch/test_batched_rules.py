"""Batch mode through functions with rules (np.linalg, np.interp, users' rules): forward mode
calls a rule once per lane when it writes nothing but its result (one that writes its
arguments is refused by name); reverse mode runs the augmented rule once and the reverse
rule once per lane. Lanes against one call per lane, whole Jacobians in both modes against
central differences, and the references batched calls take and give back."""

import numpy as np
import pytest
from harness import fd_jacobian, whole_map

import enzpy as ez

A = np.array([[3.0, 1.0, 0.2], [0.5, 4.0, 1.0], [0.1, 0.3, 2.0]])
KNOTS = np.array([0.0, 0.4, 1.1, 2.0])


@ez.enzyme_jit
def _scaled(x, c):
    return x * c


@ez.forward_rule(_scaled)
def _scaled_fwd(x, dx, c, dc):
    return x * c, dx * c + x * dc


@ez.enzyme_jit
def model(a, b, w):
    """A solve, an interpolation and a user's rule, then a vector result."""
    y = np.linalg.solve(a, b)
    v = np.interp(np.array([0.2, 0.9, 1.5]), KNOTS, w)
    return _scaled(np.sin(y) + v, 1.5)


def _args():
    return A.copy(), np.array([1.0, -2.0, 0.5]), np.array([0.3, -0.1, 0.8, 1.2])


def test_batched_tangents_equal_one_call_per_tangent():
    a, b, w = _args()
    rng = np.random.default_rng(0)
    tb, tw = rng.standard_normal((3, 3)), rng.standard_normal((3, 4))
    got = ez.autodiff(
        ez.Forward,
        model,
        ez.Const(a),
        ez.BatchDuplicated(b.copy(), tuple(tb)),
        ez.BatchDuplicated(w.copy(), tuple(tw)),
    )
    for lane in range(3):
        shadows = (ez.Duplicated(b.copy(), tb[lane]), ez.Duplicated(w, tw[lane]))
        one = ez.autodiff(ez.Forward, model, ez.Const(a), *shadows)
        np.testing.assert_array_equal(got[lane], one)


def test_forward_jacobian_against_central_differences():
    a, b, w = _args()
    jb, jw = ez.jacobian(ez.Forward, model, ez.Const(a), b, w)[1:]
    ref = fd_jacobian(whole_map(model, (a, b, w), (1, 2)))
    np.testing.assert_allclose(np.hstack([jb, jw]), ref[-3:], rtol=1e-6, atol=1e-8)


def test_a_rule_writing_its_argument_is_refused_in_batch_mode():
    @ez.enzyme_jit
    def sorted_sum(x):
        y = x * 1.0
        y.sort()
        return np.sum(y * np.arange(4.0))

    x = np.array([0.3, -1.0, 2.0, 0.5])
    with pytest.raises(ez.NoDerivativeError, match="writes its arguments") as raised:
        ez.autodiff(ez.Forward, sorted_sum, ez.BatchDuplicated(x, (np.ones(4), np.zeros(4))))
    assert "once per tangent" in str(raised.value)
    assert "cannot differentiate yet" not in str(raised.value)  # (x.sort() has a rule)


def test_reverse_jacobian_against_central_differences():
    a, b, w = _args()
    jb, jw = ez.jacobian(ez.Reverse, model, ez.Const(a), b, w)[1:]
    ref = fd_jacobian(whole_map(model, (a, b, w), (1, 2)))
    np.testing.assert_allclose(np.hstack([jb, jw]), ref[-3:], rtol=1e-6, atol=1e-8)


@ez.enzyme_jit
def scalar_rules(a, c, w):
    """Rules with float results and a float argument (det, np.interp at a point), and one
    sorting an argument in place."""
    w.sort()
    return np.linalg.det(a) * c + np.interp(0.7 * c, KNOTS, w) + np.sum(w * np.arange(4.0)) * c


def test_batched_cotangents_equal_one_call_per_cotangent():
    """Each lane with its own cotangent of `w` after the call (sorted in place)."""
    a, _, w = _args()
    rng = np.random.default_rng(1)
    seeds = [rng.standard_normal(4) for _ in range(3)]
    da = tuple(np.zeros_like(a) for _ in seeds)
    dw = tuple(s.copy() for s in seeds)
    args = (ez.BatchDuplicated(a, da), ez.Active(0.9), ez.BatchDuplicated(w.copy(), dw))
    dc = ez.autodiff(ez.Reverse, scalar_rules, ez.Active, *args)[1]
    for lane, seed in enumerate(seeds):
        one_da, one_dw = np.zeros_like(a), seed.copy()
        args = (ez.Duplicated(a, one_da), ez.Active(0.9), ez.Duplicated(w.copy(), one_dw))
        one_dc = ez.autodiff(ez.Reverse, scalar_rules, ez.Active, *args)[1]
        np.testing.assert_array_equal(da[lane], one_da)
        np.testing.assert_array_equal(dw[lane], one_dw)
        assert dc[lane] == one_dc


@ez.enzyme_jit
def _solved(a, b):
    return np.sum(np.linalg.solve(a, b) ** 2)


def test_batched_calls_of_a_rule_returning_an_array_leak_nothing():
    """Forward: each lane's call makes the primal result again, only the first is kept;
    reverse: each lane's shadow of the result is released."""
    from numba.core.runtime import _nrt_python, rtsys

    a, b, w = _args()

    def call():
        lanes = (np.ones(3), np.zeros(3), np.arange(3.0))
        ez.autodiff(ez.Forward, model, ez.Const(a), ez.BatchDuplicated(b, lanes), ez.Const(w))
        cotangents = (np.zeros(3), np.zeros(3), np.zeros(3))
        ez.autodiff(ez.Reverse, _solved, ez.Const(a), ez.BatchDuplicated(b, cotangents))

    def live():
        stats = rtsys.get_allocation_stats()
        return stats.mi_alloc - stats.mi_free

    call()
    _nrt_python.memsys_enable_stats()
    try:
        before = live()
        for _ in range(5):
            call()
        assert live() == before
    finally:
        _nrt_python.memsys_disable_stats()
