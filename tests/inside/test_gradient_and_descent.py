"""``ez.gradient`` inside Numba code against the Python API and central finite differences,
and a gradient-descent loop written inside ``@enzyme_jit`` against the same loop driven
from Python."""

import corpus
import harness
import numba
import numpy as np
import pytest

import enzpy as ez

CASES = {c.id: c for c in corpus.CASES}


def _fd_gradient(f, args, k, h=1e-6):
    """Central differences of the float-valued ``f`` with respect to argument ``k``."""
    x = np.asarray(args[k], dtype=np.float64)
    g = np.empty(x.shape)
    for idx in np.ndindex(x.shape):
        vals = []
        for step in (h, -h):
            a = harness.clone_args(args)
            if isinstance(a[k], np.ndarray):
                a[k][idx] += step
            else:
                a[k] = a[k] + step
            vals.append(f.py_func(*a))
        g[idx] = (vals[0] - vals[1]) / (2 * h)
    return g if isinstance(args[k], np.ndarray) else float(g)


def _gradient_caller(mode, n):
    params = ", ".join(f"a{k}" for k in range(n))
    ns = {"ez": ez}
    exec(f"def call(f, {params}):\n    return ez.gradient(ez.{mode}, f, {params})\n", ns)
    return numba.njit(ns["call"])


@pytest.mark.parametrize(
    ("cid", "mode"),
    [
        ("arith_scalars", "Reverse"),
        ("arith_scalars", "Forward"),
        ("calls_jit_functions", "Reverse"),
        ("calls_jit_functions", "Forward"),
        ("int_count", "Reverse"),
        ("sum_2d", "Forward"),
    ],
)
def test_gradient_inside_matches_python_api_and_fd(cid, mode):
    case = CASES[cid]
    args = case.args()
    before = harness.clone_args(args)
    inside = _gradient_caller(mode, len(args))(case.fn, *args)
    python = ez.gradient(getattr(ez, mode), case.fn, *harness.clone_args(args))
    for k, a in enumerate(args):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, before[k])  # gradient runs on copies
        if isinstance(a, int):
            assert inside[k] is None and python[k] is None
            continue
        np.testing.assert_allclose(inside[k], python[k], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(inside[k], _fd_gradient(case.fn, args, k), rtol=1e-6, atol=1e-8)


@ez.enzyme_jit
def _weighted(x, w):
    return (w * x * x).sum()


def test_gradient_inside_const_argument_gives_none():
    call = numba.njit(lambda x, w: ez.gradient(ez.Reverse, _weighted, x, ez.Const(w)))
    x, w = np.array([1.0, -2.0]), np.array([3.0, 0.5])
    gx, gw = call(x, w)
    assert gw is None
    np.testing.assert_allclose(gx, 2 * w * x, rtol=1e-15)


def test_descent_inside_numba_matches_the_python_loop():
    from bench.descent import descend_numba, descend_python, rosenbrock  # the loop

    x0 = np.linspace(-0.5, 0.5, 10)
    steps, lr = 300, 1e-3
    x_inside = x0.copy()
    descend_numba(x_inside, steps, lr)
    x_python = x0.copy()
    descend_python(x_python, steps, lr)
    np.testing.assert_allclose(x_inside, x_python, rtol=1e-13, atol=1e-15)
    assert rosenbrock(x_inside) < 0.5 * rosenbrock(x0)
