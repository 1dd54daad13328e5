"""Stores that increment memory (`*p = *p ± v`), which the reverse sweep reverses as a read of
`d p` (`analysis/increments.py`), and the near misses it must reverse the general way: each
against central differences of the whole map (the arrays after the call and the return) and
the dot test, in one lane and in batch mode."""

import math

import numpy as np
import pytest
from harness import check_all, fd_jacobian, whole_map

import enzpy as ez


@ez.enzyme_jit
def matmul_into(a, b, c):
    for i in range(a.shape[0]):
        for k in range(a.shape[1]):
            for j in range(b.shape[1]):
                c[i, j] += a[i, k] * b[k, j]
    return (c * c).sum()


@ez.enzyme_jit
def decrement(x, y):
    for i in range(x.shape[0]):
        x[i] = x[i] - math.sin(y[i])
    return (x * y).sum()


@ez.enzyme_jit
def from_the_value(x, y):  # x[i] = v - x[i]: not an increment
    for i in range(x.shape[0]):
        x[i] = y[i] * y[i] - x[i]
    return (x * x).sum()


@ez.enzyme_jit
def from_a_neighbour(x):  # the added value is loaded from the same array
    for i in range(1, x.shape[0]):
        x[i] = x[i] + 0.5 * x[i - 1]
    return (x * x).sum()


@ez.enzyme_jit
def doubled(x):  # x[i] + x[i]: the load used twice
    for i in range(x.shape[0]):
        t = x[i]
        x[i] = t + t
    return (x * x).sum()


@ez.enzyme_jit
def written_between(x, y, k):  # a store between the load and the store (maybe the same cell)
    for i in range(x.shape[0]):
        t = x[i]
        x[k] = y[i]
        x[i] = t + y[i] * y[i]
    return (x * x).sum()


@ez.enzyme_jit
def scattered(out, idx, w, x):  # out[idx[i]] += ...: repeated cells
    for i in range(idx.shape[0]):
        out[idx[i]] += w[i] * x[i]
    return (out * out).sum()


@ez.enzyme_jit
def accumulator_read_later(x, y):  # the loaded value used twice, the cell read again
    for i in range(y.shape[0]):
        x[0] += y[i] * x[0]
    return x[0]


rng = np.random.default_rng(7)
CASES = {
    "matmul_into": (
        matmul_into,
        (rng.standard_normal((3, 4)), rng.standard_normal((4, 5)), rng.standard_normal((3, 5))),
        (0, 1, 2),
    ),
    "decrement": (decrement, (rng.standard_normal(6), rng.standard_normal(6)), (0, 1)),
    "from_the_value": (from_the_value, (rng.standard_normal(6), rng.standard_normal(6)), (0, 1)),
    "from_a_neighbour": (from_a_neighbour, (rng.standard_normal(7),), (0,)),
    "doubled": (doubled, (rng.standard_normal(5),), (0,)),
    "written_between": (
        written_between,
        (rng.standard_normal(6), rng.standard_normal(6), 2),
        (0, 1),
    ),
    "scattered": (
        scattered,
        (np.zeros(4), np.array([0, 2, 2, 3, 0, 2]), rng.standard_normal(6), rng.standard_normal(6)),
        (0, 2, 3),
    ),
    "accumulator_read_later": (
        accumulator_read_later,
        (np.array([0.3]), 0.2 * rng.standard_normal(5)),
        (0, 1),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_against_finite_differences_and_the_dot_test(name):
    f, args, active = CASES[name]
    check_all(f, args, active)


@pytest.mark.parametrize("name", ["matmul_into", "decrement", "scattered"])
def test_batch_mode_jacobian(name):
    f, args, active = CASES[name]
    wm = whole_map(f, args, active)
    ref = fd_jacobian(wm)
    plain = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    annotated = [a if k in active else ez.Const(a) for k, a in enumerate(plain)]
    jac = ez.jacobian(ez.Reverse, f, *annotated)
    got = np.concatenate([jac[k].ravel() for k in active])
    # the return's row of the whole map's Jacobian (its last row)
    np.testing.assert_allclose(got, ref[-1], rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("matmul_into", True),
        ("decrement", True),
        ("scattered", True),
        ("from_a_neighbour", True),
        ("accumulator_read_later", False),
        ("from_the_value", False),
        ("doubled", False),
        ("written_between", False),
    ],
)
def test_which_stores_are_increments(name, expected):
    """The cases above exercise what they are named for."""
    import numba

    from enzpy.derivatives import primal_module
    from llvm_passes.analysis.increments import increments

    f, args, _ = CASES[name]
    module, symbol, _, _ = primal_module(f.dispatcher, tuple(map(numba.typeof, args)))
    assert bool(increments(module, module.functions[symbol])) is expected
