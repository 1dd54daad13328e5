"""`DuplicatedNoNeed`: the same tangents as `Duplicated`, and the primal work the caller does
not need is skipped (stores into an output the function never reads back)."""

from __future__ import annotations

import numpy as np
import pytest
from corpus import CASES
from harness import annotate_forward, assert_close, clone, clone_args, random_like

import enzpy as ez


@pytest.mark.parametrize("case", CASES[::2], ids=lambda c: c.id)
def test_noneed_gives_the_same_tangents(case):
    args = case.args()
    rng = np.random.default_rng(case.seed + 9)
    u = {i: random_like(args[i], rng) for i in case.active}
    outs = []
    for noneed in (False, True):
        sh = {i: clone(t) for i, t in u.items()}
        z = ez.autodiff(
            ez.Forward, case.fn, *annotate_forward(clone_args(args), case.active, sh, noneed=noneed)
        )
        outs.append((z, sh))
    (z0, s0), (z1, s1) = outs
    if z0 is not None:
        for a, b in zip(
            z0 if isinstance(z0, tuple) else (z0,),
            z1 if isinstance(z1, tuple) else (z1,),
            strict=True,
        ):
            assert_close(b, a, 1e-15, 0.0, "tangent of the return")
    for i in s0:
        assert_close(s1[i], s0[i], 1e-15, 0.0, f"tangent of argument {i}")


@ez.enzyme_jit
def _square_into(y, x):
    s = 0.0
    for i in range(x.shape[0]):
        y[i] = x[i] * x[i]
        s += np.sin(x[i])
    return s


def test_noneed_output_is_not_written():
    x, dx = np.array([0.5, 2.0]), np.array([1.0, -1.0])
    y, dy = np.full(2, 7.0), np.zeros(2)
    dz = ez.autodiff(ez.Forward, _square_into, ez.DuplicatedNoNeed(y, dy), ez.Duplicated(x, dx))
    assert dz == pytest.approx(float(np.cos(x) @ dx), rel=1e-14)
    np.testing.assert_allclose(dy, 2 * x * dx, rtol=1e-15)
    np.testing.assert_array_equal(y, 7.0)  # the primal store was skipped
    z = ez.autodiff(
        ez.ForwardWithPrimal,
        _square_into,
        ez.DuplicatedNoNeed,
        ez.Duplicated(y, dy),
        ez.Duplicated(x, dx),
    )
    assert z == pytest.approx(float(np.cos(x) @ dx), rel=1e-14)  # the tangent alone
