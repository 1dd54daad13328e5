"""Forward mode through Numba's BLAS helpers (`np.dot` / `@`: numba_xxdot, numba_xxgemv,
numba_xxgemm), against central finite differences of the whole map (harness.check_forward).

Covers vector . vector, matrix . vector, vector . matrix, matrix . matrix (and the 2-d
shapes Numba sends to xxdot / xxgemv), float64 and float32, C and F order, one operand
Const, results used in further arithmetic, products in a loop, an explicit `out` array,
and an output that is active although both factors are Const.
"""

import numpy as np
import pytest
from harness import check_forward

import enzpy as ez
from enzpy.bridge.blas import BLAS_OUTPUTS
from llvm_passes.rules import RULES

pytest.importorskip("scipy")  # Numba's np.dot needs SciPy's BLAS


def _rand(shape, dtype, order, seed):
    a = np.random.default_rng(seed).uniform(-1.0, 1.0, shape).astype(dtype)
    return np.asfortranarray(a) if order == "F" else np.ascontiguousarray(a)


@ez.enzyme_jit
def vv(x, y):
    return np.dot(x, y)


@ez.enzyme_jit
def mv(A, x):
    return np.dot(A, x)


@ez.enzyme_jit
def vm(x, A):
    return np.dot(x, A)


@ez.enzyme_jit
def mm(A, B):
    return A @ B


@ez.enzyme_jit
def mv_sum(A, x):
    return np.dot(A, x).sum()


@ez.enzyme_jit
def mm_loop(A, B):
    C = np.dot(A, B)
    s = C[0, 0] * 0
    for i in range(C.shape[0]):
        for j in range(C.shape[1]):
            s += C[i, j] * C[i, j] * (i + 1) - C[i, j] * j
    return s


@ez.enzyme_jit
def vv_chain(x, y):
    return np.dot(x, y) * np.dot(x, x) + np.dot(y, y)


@ez.enzyme_jit
def rows_in_loop(A, x):
    """A dot product per row (row views: contiguous for C order, copied for F order)."""
    s = x[0] * 0
    for i in range(A.shape[0]):
        s += np.dot(A[i], x) * (i + 1)
    return s


@ez.enzyme_jit
def mv_out(A, x, out):
    np.dot(A, x, out)


@ez.enzyme_jit
def mm_out(A, B, out):
    np.dot(A, B, out)


@ez.enzyme_jit
def mm_const_factors(A, B, a):
    """The product's memory becomes active through the store; its factors are Const."""
    C = A @ B
    C[0, 0] = C[0, 0] * a
    return C


DTYPES = [np.float64, np.float32]
ORDERS = ["C", "F"]
# (function, shapes) — each shape pair picks a different helper / transposition
PRODUCTS = [
    (vv, [(7,), (7,)]),
    (mv, [(5, 3), (3,)]),
    (vm, [(5,), (5, 3)]),
    (mm, [(4, 3), (3, 5)]),
    (mm, [(1, 3), (3, 1)]),  # xxdot into a 2-d result
    (mm, [(4, 3), (3, 1)]),  # xxgemv, matrix . column
    (mm, [(1, 3), (3, 4)]),  # xxgemv, row . matrix
    (mv_sum, [(5, 3), (3,)]),
    (mm_loop, [(4, 3), (3, 2)]),
    (vv_chain, [(6,), (6,)]),
    (rows_in_loop, [(4, 3), (3,)]),
]


def _ids(p):
    f, shapes = p
    return f"{f.py_func.__name__}-" + "x".join("_".join(map(str, s)) for s in shapes)


def _args(shapes, dtype, orders, seed=0):
    return [
        _rand(s, dtype, o if len(s) == 2 else "C", seed + k)
        for k, (s, o) in enumerate(zip(shapes, orders, strict=True))
    ]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("orders", [("C", "C"), ("F", "F"), ("C", "F"), ("F", "C")], ids="".join)
@pytest.mark.filterwarnings("ignore::numba.NumbaPerformanceWarning")
@pytest.mark.parametrize("product", PRODUCTS, ids=_ids)
def test_both_duplicated(product, orders, dtype):
    f, shapes = product
    if all(len(s) == 1 for s in shapes) and orders != ("C", "C"):
        pytest.skip("vectors have one layout")
    check_forward(f, _args(shapes, dtype, orders), (0, 1))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("active", [0, 1], ids=["dup-const", "const-dup"])
@pytest.mark.filterwarnings("ignore::numba.NumbaPerformanceWarning")
@pytest.mark.parametrize("product", PRODUCTS, ids=_ids)
def test_one_duplicated(product, active, order, dtype):
    f, shapes = product
    check_forward(f, _args(shapes, dtype, (order, order), seed=3), (active,))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("active", [(0, 1, 2), (0, 2), (1, 2)])
def test_into_out_argument(active, order, dtype):
    """np.dot(A, x, out) / np.dot(A, B, out): the shadow of `out` receives the tangent."""
    A, x = _args([(5, 3), (3,)], dtype, (order, "C"), seed=5)
    check_forward(mv_out, [A, x, np.zeros(5, dtype)], active)
    A, B = _args([(4, 3), (3, 2)], dtype, (order, order), seed=7)
    check_forward(mm_out, [A, B, np.zeros((4, 2), dtype)], active)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize(
    "shapes", [[(4, 3), (3, 5)], [(4, 3), (3, 1)], [(1, 3), (3, 1)]], ids=["gemm", "gemv", "dot"]
)
def test_active_output_of_const_factors(shapes, dtype):
    A, B = _args(shapes, dtype, ("C", "C"), seed=11)
    check_forward(mm_const_factors, [A, B, dtype(0.7)], (2,))


def test_vector_dot_direct():
    """The tangent of x . y is dx . y + x . dy exactly (no finite differences)."""
    x, y, dx, dy = (_rand((9,), np.float64, "C", s) for s in range(4))
    dz, z = ez.autodiff(ez.ForwardWithPrimal, vv, ez.Duplicated(x, dx), ez.Duplicated(y, dy))
    assert z == pytest.approx(x @ y, rel=1e-14)
    assert dz == pytest.approx(dx @ y + x @ dy, rel=1e-13)
    dz = ez.autodiff(ez.Forward, vv, ez.Const(x), ez.Duplicated(y, dy))
    assert dz == pytest.approx(x @ dy, rel=1e-13)


def test_matmul_direct():
    A, B, dA, dB = (
        _rand(s, np.float64, "F" if k % 2 else "C", k)
        for k, s in enumerate([(4, 3), (3, 5), (4, 3), (3, 5)])
    )
    dC, C = ez.autodiff(ez.ForwardWithPrimal, mm, ez.Duplicated(A, dA), ez.Duplicated(B, dB))
    np.testing.assert_allclose(C, A @ B, rtol=1e-13)
    np.testing.assert_allclose(dC, dA @ B + A @ dB, rtol=1e-12, atol=1e-14)


def test_rules_and_output_table():
    for name, (out, ins) in BLAS_OUTPUTS.items():
        assert RULES[name].kind == "custom"
        assert out not in ins
