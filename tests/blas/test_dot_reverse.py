"""Reverse mode through Numba's BLAS helpers (numba_xxdot, numba_xxgemv, numba_xxgemm).

The functions are those of test_dot.py. Each case is checked twice: against v^T J from the
finite-difference Jacobian of the whole map (harness.check_reverse, the shadows of the
active inputs pre-seeded with random cotangents, so `+=` is checked too), and against
forward mode by the dot-product test (harness.dot_test, no step-size noise).

The memory layouts pick the helper and its transposition flags: Numba computes a C-order
product as the transposed Fortran product, so C/F orders of the two factors give the four
(transa, transb) combinations of gemm and both of gemv; (1, 3) x (3, 1) goes to xxdot.
"""

import numpy as np
import pytest
from harness import check_reverse, dot_test

import enzpy as ez

from .test_dot import PRODUCTS, _args, _ids, _rand, mm_out, mv_out, vv

pytest.importorskip("scipy")  # Numba's np.dot needs SciPy's BLAS

pytestmark = pytest.mark.filterwarnings("ignore::numba.NumbaPerformanceWarning")

F64, F32 = np.float64, np.float32
_BY_NAME = {_ids(p): p for p in PRODUCTS}


def _case(name, dtype, orders=("C", "C")):
    return pytest.param(
        _BY_NAME[name], dtype, orders, id=f"{name}-{''.join(orders)}-{np.dtype(dtype).name}"
    )


# the products of test_dot.py in float64 C order; the other three gemm transpositions and
# an F-order gemv; a float32 sample of each helper
_SKIP = {"mm-1_3x3_1", "mv_sum-5_3x3"}  # float32 below / mv then sum: covered by the corpus
BOTH = (
    [_case(name, F64) for name in _BY_NAME if name not in _SKIP]
    + [_case("mm-4_3x3_5", F64, o) for o in [("F", "F"), ("C", "F"), ("F", "C")]]
    + [_case("mm-1_3x3_4", F64, ("F", "F"))]
    + [
        _case(name, F32, o)
        for name, o in [
            ("mm-1_3x3_1", ("C", "C")),
            ("mv-5_3x3", ("C", "C")),
            ("mm-4_3x3_5", ("C", "F")),
        ]
    ]
)


@pytest.mark.parametrize(("product", "dtype", "orders"), BOTH)
def test_both_duplicated(product, dtype, orders):
    f, shapes = product
    args = _args(shapes, dtype, orders)
    check_reverse(f, args, (0, 1))
    dot_test(f, args, (0, 1))


ONE = [_case("mv-5_3x3", F64), _case("mm-4_3x3_5", F64), _case("mm-4_3x3_5", F64, ("F", "F"))]


@pytest.mark.parametrize("active", [0, 1], ids=["dup-const", "const-dup"])
@pytest.mark.parametrize(("product", "dtype", "orders"), ONE)
def test_one_duplicated(product, dtype, orders, active):
    f, shapes = product
    args = _args(shapes, dtype, orders, seed=3)
    check_reverse(f, args, (active,))
    dot_test(f, args, (active,))


@pytest.mark.parametrize(
    ("active", "dtype", "order"),
    [((0, 1, 2), F64, "C"), ((0, 2), F32, "F"), ((1, 2), F64, "F")],
    ids=["all-float64-C", "A-out-float32-F", "x-out-float64-F"],
)
def test_into_out_argument(active, dtype, order):
    """np.dot(A, x, out): the seeded shadow of `out` flows to the factors and is consumed
    (out is overwritten, beta = 0: its shadow comes back zero)."""
    A, x = _args([(5, 3), (3,)], dtype, (order, "C"), seed=5)
    check_reverse(mv_out, [A, x, np.zeros(5, dtype)], active)
    dot_test(mv_out, [A, x, np.zeros(5, dtype)], active)
    A, B = _args([(4, 3), (3, 2)], dtype, (order, order), seed=7)
    check_reverse(mm_out, [A, B, np.zeros((4, 2), dtype)], active)
    dot_test(mm_out, [A, B, np.zeros((4, 2), dtype)], active)


# ---- exact adjoints (no finite differences) ---------------------------------------------------
def test_vector_dot_exact():
    x, y = _rand((9,), F64, "C", 0), _rand((9,), F64, "C", 1)
    gx, gy = ez.gradient(ez.Reverse, vv, x, y)
    np.testing.assert_allclose(gx, y, rtol=1e-15)
    np.testing.assert_allclose(gy, x, rtol=1e-15)
    dx = np.ones(9)  # a pre-filled shadow accumulates
    assert ez.autodiff(ez.Reverse, vv, ez.Active, ez.Duplicated(x, dx), ez.Const(y)) == (None, None)
    np.testing.assert_allclose(dx, 1.0 + y, rtol=1e-15)


@pytest.mark.parametrize("orders", [("C", "C"), ("F", "C"), ("C", "F"), ("F", "F")], ids="".join)
def test_matmul_out_exact(orders):
    """C = A B into a seeded `out`: A' = C' B^T, B' = A^T C', out' = 0, for each gemm
    transposition (C order: B^T A^T with 'n', 'n'; F order: 't' flags)."""
    A, B = _rand((4, 3), F64, orders[0], 0), _rand((3, 5), F64, orders[1], 1)
    out = np.zeros((4, 5))
    seed = _rand((4, 5), F64, "C", 2)
    dA, dB, dout = np.zeros_like(A), np.zeros_like(B), seed.copy()
    ez.autodiff(
        ez.Reverse,
        mm_out,
        ez.Const,
        ez.Duplicated(A, dA),
        ez.Duplicated(B, dB),
        ez.Duplicated(out, dout),
    )
    np.testing.assert_allclose(out, A @ B, rtol=1e-14)
    np.testing.assert_allclose(dA, seed @ B.T, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(dB, A.T @ seed, rtol=1e-13, atol=1e-15)
    assert not dout.any()


@pytest.mark.parametrize("order", ["C", "F"])
def test_matvec_exact(order):
    """z = A x (gemv 't' for C order, 'n' for F order), returned through z . w."""
    A, x = _rand((5, 3), F64, order, 0), _rand((3,), F64, "C", 1)
    out, seed = np.zeros(5), _rand((5,), F64, "C", 2)
    dA, dx, dout = np.zeros_like(A), np.zeros(3), seed.copy()
    ez.autodiff(
        ez.Reverse,
        mv_out,
        ez.Const,
        ez.Duplicated(A, dA),
        ez.Duplicated(x, dx),
        ez.Duplicated(out, dout),
    )
    np.testing.assert_allclose(dA, np.outer(seed, x), rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(dx, A.T @ seed, rtol=1e-13)
    assert not dout.any()


# ---- the factors' memory changes after the call: the adjoints read forward-sweep copies ----
@ez.enzyme_jit
def mv_then_overwrite(A, x):
    z = np.dot(A, x)
    A[0, 0] = 2.0  # the factor changes after the product
    return np.dot(z, z)


@pytest.mark.parametrize("case", ["overwritten-factor", "overwritten-const", "freed-row-copy"])
def test_factor_memory_changes_after_the_call(case):
    """(A Const argument's memory is read in place by the adjoint only where nothing writes
    it after the product.)"""
    if case.startswith("overwritten"):
        active = (0, 1) if case == "overwritten-factor" else (1,)
        check_reverse(mv_then_overwrite, _args([(4, 3), (3,)], F64, ("C", "C")), active)
    else:  # F-order rows are copied to a temporary, freed (and reused) before the reverse
        f, shapes = _BY_NAME["rows_in_loop-4_3x3"]
        check_reverse(f, _args(shapes, F64, ("F", "C")), (0, 1))
