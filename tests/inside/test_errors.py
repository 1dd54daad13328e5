"""Errors of ``ez.autodiff`` / ``ez.gradient`` inside Numba code: what the Python API refuses
is refused at compile time with the same message; mismatched or aliased shadows raise a
``ShadowError`` before the derivative runs; shadows with another layout are copied back."""

import numba
import numpy as np
import pytest

import enzpy as ez


@ez.enzyme_jit
def square_sum(x):
    s = 0.0
    for i in range(x.shape[0]):
        x[i] = x[i] * x[i]
        s += x[i]
    return s


@ez.enzyme_jit
def dot2(a, b):
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i] * b[i]
    return s


@ez.enzyme_jit
def scale(a, x):
    return x * a


@ez.enzyme_jit
def weigh_2d(A):
    s = 0.0
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            s += A[i, j] * A[i, j] * (i + 2 * j + 1)
    return s


@numba.njit
def _plain(x):
    return x.sum()


def _njit(src, **names):
    ns = {"ez": ez, "np": np, **names}
    exec(f"def call(x, dx, a):\n    return {src}\n", ns)
    return numba.njit(ns["call"])


X = np.array([0.5, -1.5, 2.0])


@pytest.mark.parametrize(
    ("src", "kind", "match"),
    [
        ("ez.autodiff(ez.Forward, scale, ez.Active(a), x)", TypeError, "Duplicated\\(a, da\\)"),
        (
            "ez.autodiff(ez.Reverse, scale, ez.Duplicated, ez.Active(a), ez.Const(x))",
            TypeError,
            "return by reference",
        ),
        (
            "ez.autodiff(ez.Reverse, square_sum, ez.Duplicated(x, dx), a)",
            TypeError,
            "takes 1 arguments, got 2",
        ),
        ("ez.autodiff(ez.Reverse, plain, ez.Duplicated(x, dx))", TypeError, "enzyme_jit"),
        (
            "ez.autodiff(ez.Reverse, scale, ez.Duplicated(a, a), x)",
            TypeError,
            "Active\\(a\\) in reverse",
        ),
        (
            "ez.autodiff(ez.Reverse, square_sum, ez.Duplicated(x.astype(np.int64), dx))",
            ValueError,
            "int64 array carries no derivative",
        ),
        (
            "ez.autodiff(ez.Reverse, square_sum, ez.Duplicated(x + 0j, dx + 0j))",
            TypeError,
            "complex128 data is not supported; enzpy differentiates float32 and",
        ),
        (
            "ez.autodiff(ez.Reverse, square_sum, ez.Duplicated(x, dx.astype(np.float32)))",
            ValueError,
            "dtype float32",
        ),
        (
            "ez.autodiff(ez.Reverse, square_sum, ez.Duplicated(x, dx.reshape(1, 3)))",
            ValueError,
            "dimensions",
        ),
        (
            "ez.autodiff(ez.Reverse, square_sum, ez.Active, ez.Active)",
            TypeError,
            "must wrap a value",
        ),
        (
            "ez.autodiff(ez.Reverse, scale, ez.BatchDuplicated(a, (a, a)), x)",
            TypeError,
            "a float scalar is Active\\(a\\) in reverse mode",
        ),
        ("ez.autodiff(1, square_sum, x)", TypeError, "mode such as enzpy.Forward"),
        ("ez.autodiff(ez.ReverseSplitWithPrimal, square_sum, x)", TypeError, "jitted code"),
        ("ez.gradient(ez.Reverse, scale, a, x)", TypeError, "Active return needs a float"),
    ],
)
def test_refused_at_compile_time_with_the_python_message(src, kind, match):
    call = _njit(src, scale=scale, square_sum=square_sum, plain=_plain)
    x = X.copy()
    with pytest.raises(ez.EnzpyError, match=match) as ei:
        call(x, np.zeros(3), 1.5)
    assert isinstance(ei.value, kind)
    np.testing.assert_array_equal(x, X)


def test_python_api_gives_the_same_messages():
    with pytest.raises(ez.AnnotationError, match="Duplicated\\(a, da\\)"):
        ez.autodiff(ez.Forward, scale, ez.Active(1.5), X)
    with pytest.raises(ez.AnnotationError, match="return by reference"):
        ez.autodiff(ez.Reverse, scale, ez.Duplicated, ez.Active(1.5), ez.Const(X))


_reverse = _njit("ez.autodiff(ez.Reverse, square_sum, ez.Duplicated(x, dx))", square_sum=square_sum)


@pytest.mark.parametrize(
    "shadow",
    [lambda x: np.zeros(4), lambda x: np.zeros(2), lambda x: x, lambda x: x[::-1]],
    ids=["long", "short", "same-array", "reversed-view"],
)
def test_bad_shadow_raises_before_the_derivative_runs(shadow):
    x = X.copy()
    dx = shadow(x)
    before = dx.copy()
    with pytest.raises(ez.ShadowError):
        _reverse(x, dx, 0.0)
    np.testing.assert_array_equal(x, X)
    np.testing.assert_array_equal(dx, before)


_two = _njit("ez.autodiff(ez.Reverse, dot2, ez.Duplicated(x, dx), ez.Duplicated(a, dx))", dot2=dot2)
_two_shadows = numba.njit(
    lambda x, dx, y, dy: ez.autodiff(ez.Reverse, dot2, ez.Duplicated(x, dx), ez.Duplicated(y, dy))
)


def test_same_memory_needs_the_same_shadow():
    x, dx = X.copy(), np.zeros(3)
    _two(x, dx, x)  # d(x·x)/dx = 2x, through both arguments
    np.testing.assert_allclose(dx, 2 * X, rtol=1e-14)
    with pytest.raises(ez.ShadowError, match="share memory"):
        _two_shadows(x, np.zeros(3), x, np.zeros(3))
    shared = np.zeros(3)
    with pytest.raises(ez.ShadowError, match="overlapping shadows"):
        _two_shadows(x, shared, X.copy(), shared)


_weigh = numba.njit(lambda A, dA: ez.autodiff(ez.Reverse, weigh_2d, ez.Duplicated(A, dA)))


@pytest.mark.parametrize(
    ("primal", "shadow"),
    [("C", "F"), ("F", "C"), ("strided", "C"), ("C", "strided")],
)
def test_shadow_with_another_layout_is_copied_back(primal, shadow):
    def make(layout, values):
        if layout == "strided":
            base = np.zeros((3, 8))
            base[:, ::2] = values
            return base[:, ::2]
        return np.asarray(values, order=layout).copy(order=layout)

    A = np.linspace(-1.0, 1.0, 12).reshape(3, 4)
    w = np.arange(3)[:, None] + 2 * np.arange(4)[None, :] + 1.0
    dA = make(shadow, np.zeros((3, 4)))
    _weigh(make(primal, A), dA)
    np.testing.assert_allclose(dA, 2 * A * w, rtol=1e-14)


@ez.enzyme_jit
def inner_2d(A, B):
    s = 0.0
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            s += A[i, j] * B[i, j]
    return s


_inner_twice = numba.njit(
    lambda A, dA: ez.autodiff(ez.Reverse, inner_2d, ez.Duplicated(A, dA), ez.Duplicated(A, dA))
)


@pytest.mark.parametrize("layouts", [("C", "F"), ("strided", "C")])
def test_one_shadow_passed_twice_with_another_layout_accumulates_both(layouts):
    A = np.arange(6.0).reshape(2, 3)
    if layouts[0] == "strided":
        A = np.zeros((2, 6))[:, ::2]
        A[...] = np.arange(6.0).reshape(2, 3)
    dA = np.zeros((2, 3), order=layouts[1] if layouts[1] != "strided" else "C")
    _inner_twice(A, dA)
    np.testing.assert_array_equal(dA, 2 * A)  # d(sum A*A)/dA through both arguments
