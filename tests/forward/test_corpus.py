"""Forward mode on the whole corpus, against finite differences of the whole map."""

import numpy as np
import pytest
from corpus import CASES
from harness import check_forward, clone_args, random_like

import enzpy as ez


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_forward_vs_fd(case):
    check_forward(case.fn, case.args(), case.active, seed=case.seed, **case.tols())


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_forward_is_linear_and_repeatable(case):
    """J(2u) == 2 J(u) and a second identical call gives the identical result (no state
    kept between calls); Forward's tangent equals ForwardWithPrimal's."""
    args = case.args()
    rng = np.random.default_rng(case.seed)
    u = {i: random_like(args[i], rng) for i in case.active}

    def run(scale, mode=ez.Forward):
        prim = clone_args(args)
        sh = {
            i: (v * scale if isinstance(v, np.ndarray) else type(v)(v * scale))
            for i, v in u.items()
        }
        ann = []
        for i, a in enumerate(prim):
            if i in case.active:
                ann.append(ez.Duplicated(a, sh[i]))
            elif isinstance(a, int | np.integer):
                ann.append(a)
            else:
                ann.append(ez.Const(a))
        res = ez.autodiff(mode, case.fn, *ann)
        if mode is ez.ForwardWithPrimal:
            res = res[0]
        return res, sh

    def flat(res, sh):
        parts = [np.asarray(sh[i], np.float64).ravel() for i in sorted(sh)]
        stack = [res]
        while stack:
            r = stack.pop(0)
            if isinstance(r, tuple):
                stack = list(r) + stack
            elif r is not None:
                parts.append(np.asarray(r, np.float64).ravel())
        return np.concatenate(parts)

    one = flat(*run(1.0))
    again = flat(*run(1.0))
    two = flat(*run(2.0))
    with_primal = flat(*run(1.0, ez.ForwardWithPrimal))
    np.testing.assert_array_equal(one, again)
    tol = 1e-5 if "float32" in case.tags else 1e-12
    np.testing.assert_allclose(with_primal, one, rtol=tol, atol=tol * np.max(np.abs(one)))
    np.testing.assert_allclose(two, 2.0 * one, rtol=tol, atol=tol * np.max(np.abs(one)))
