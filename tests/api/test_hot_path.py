"""The Python API's hot path: each call shape goes through a compiled entry whose
native checks defer to the Python path whenever they fail (or might), so hot calls give the
same results and raise the same errors as the first calls."""

import numpy as np
import pytest

import enzpy as ez
from enzpy import api


def _dot():
    @ez.enzyme_jit
    def dot(a, b):
        s = 0.0
        for i in range(a.shape[0]):
            s += a[i] * b[i]
        return s

    return dot


def _weighted():
    """A new function (its own remembered calls) of an array, a weight array and a float."""

    @ez.enzyme_jit
    def weighted(x, w, a):
        s = 0.0
        for i in range(x.shape[0]):
            s += a * w[i] * x[i] * x[i]
        return s

    return weighted


def _aba():
    """A new function (its own remembered calls): Σ a·b·a."""

    @ez.enzyme_jit
    def aba(a, b):
        s = 0.0
        for i in range(a.shape[0]):
            s += a[i] * b[i] * a[i]
        return s

    return aba


def _hot(f, *args):
    """Call twice, the second time through the compiled entry only; both results."""
    first = ez.autodiff(*args[:1], f, *args[1:])
    assert (args[0], f) in api._entries
    slow, api._autodiff = api._autodiff, None  # the Python path must not be taken
    try:
        return first, ez.autodiff(*args[:1], f, *args[1:])
    finally:
        api._autodiff = slow


def test_hot_calls_give_the_same_results():
    dot = _dot()
    a, b, da = np.array([1.0, 2.0]), np.array([3.0, -1.0]), np.array([0.5, 2.0])
    assert _hot(dot, ez.Forward, ez.Duplicated(a, da), ez.Const(b)) == (-0.5, -0.5)
    ga, gb = np.zeros(2), np.zeros(2)
    first, second = _hot(
        dot, ez.ReverseWithPrimal, ez.Active, ez.Duplicated(a, ga), ez.Duplicated(b, gb)
    )
    assert first == second == ((None, None), 1.0)
    np.testing.assert_array_equal(ga, 2 * b)  # accumulated twice
    np.testing.assert_array_equal(gb, 2 * a)


def test_hot_scalars_and_plain_values():
    @ez.enzyme_jit
    def poly(a, x, n):
        return a * a * x[n]

    x = np.array([1.0, 3.0])
    first, second = _hot(poly, ez.Reverse, ez.Active(2.0), ez.Const(x), 1)
    assert first == second == (12.0, None, None)
    first, second = _hot(poly, ez.ForwardWithPrimal, ez.Duplicated(2.0, 1), x, 1)
    assert first == second == (12.0, 12.0)


def test_hot_call_with_a_bad_shadow_raises_the_python_error():
    dot = _dot()
    a, b = np.array([1.0, 2.0]), np.array([3.0, -1.0])
    _hot(dot, ez.Forward, ez.Duplicated(a, np.ones(2)), ez.Const(b))
    with pytest.raises(ez.ShadowError, match="the shadow.s shape differs from the primal.s"):
        ez.autodiff(ez.Forward, dot, ez.Duplicated(a, np.ones(3)), ez.Const(b))
    with pytest.raises(ez.ShadowError, match="dtype float32"):
        ez.autodiff(ez.Forward, dot, ez.Duplicated(a, np.ones(2, np.float32)), ez.Const(b))
    with pytest.raises(ez.ShadowError, match="shares memory with its primal"):
        ez.autodiff(ez.Forward, dot, ez.Duplicated(a, a), ez.Const(b))
    with pytest.raises(ez.AnnotationError, match="Duplicated\\(a, da\\)"):
        ez.autodiff(ez.Forward, dot, ez.Active(a), ez.Const(b))


def test_hot_aliasing_is_decided_exactly():
    dot = _dot()
    x, dx = np.array([1.0, 2.0]), np.zeros(2)
    first, _ = _hot(dot, ez.Reverse, ez.Duplicated(x, dx), ez.Duplicated(x, dx))
    np.testing.assert_array_equal(dx, 4 * x)  # d(x·x)/dx twice
    with pytest.raises(ez.ShadowError, match="share memory"):
        ez.autodiff(ez.Reverse, dot, ez.Duplicated(x, np.zeros(2)), ez.Duplicated(x, np.zeros(2)))
    # interleaved views: their address ranges overlap but they share no element
    base, dbase = np.array([1.0, 2.0, 3.0, 4.0]), np.zeros(4)
    ez.autodiff(
        ez.Reverse,
        dot,
        ez.Duplicated(base[::2], dbase[::2]),
        ez.Duplicated(base[1::2], dbase[1::2]),
    )
    np.testing.assert_array_equal(dbase, [2.0, 1.0, 4.0, 3.0])
    ez.autodiff(ez.Reverse, dot, ez.Duplicated(base[::2], base[1::2]), ez.Const(np.ones(2)))
    with pytest.raises(ez.ShadowError, match="primal of argument 1"):  # a shadow in a Const
        ez.autodiff(ez.Reverse, dot, ez.Duplicated(base[::2], base[1::2]), ez.Const(base))


def test_hot_shadow_with_another_layout():
    @ez.enzyme_jit
    def weigh(A):
        s = 0.0
        for i in range(A.shape[0]):
            for j in range(A.shape[1]):
                s += A[i, j] * A[i, j] * (i + 1)
        return s

    A = np.arange(6.0).reshape(2, 3)
    for shadow in (np.zeros((2, 3)), np.zeros((2, 3), order="F"), np.zeros((2, 6))[:, ::2]):
        for _ in range(2):
            shadow[...] = 0.0
            ez.autodiff(ez.Reverse, weigh, ez.Duplicated(A, shadow))
            np.testing.assert_array_equal(shadow, 2 * A * [[1.0], [2.0]])


def test_one_shadow_passed_twice_with_another_layout():
    @ez.enzyme_jit
    def inner(A, B):
        s = 0.0
        for i in range(A.shape[0]):
            for j in range(A.shape[1]):
                s += A[i, j] * B[i, j]
        return s

    A, dA = np.arange(6.0).reshape(2, 3), np.zeros((2, 3), order="F")
    _hot(inner, ez.Reverse, ez.Duplicated(A, dA), ez.Duplicated(A, dA))
    np.testing.assert_array_equal(dA, 4 * A)  # both arguments, both calls


def test_hot_primal_exception_propagates_once():
    @ez.enzyme_jit
    def count_then_check(x):
        x[0] += 1.0
        if x[1] < 0.0:
            raise ValueError("negative")
        return x[1] * x[1]

    x = np.array([0.0, 1.0])
    _hot(count_then_check, ez.Forward, ez.Duplicated(x, np.zeros(2)))
    x = np.array([0.0, -1.0])
    with pytest.raises(ValueError, match="negative"):
        ez.autodiff(ez.Forward, count_then_check, ez.Duplicated(x, np.zeros(2)))
    assert x[0] == 1.0  # ran once: the error was not taken for a failed check


def test_hot_entry_serves_new_numba_types():
    dot = _dot()
    a, b = np.array([1.0, 2.0]), np.array([3.0, -1.0])
    _hot(dot, ez.Forward, ez.Duplicated(a, np.ones(2)), ez.Const(b))
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    dz = ez.autodiff(ez.Forward, dot, ez.Duplicated(a32, np.ones(2, np.float32)), ez.Const(b32))
    assert dz == pytest.approx(2.0)
    assert ez.autodiff(ez.Forward, dot, ez.Duplicated(a[::-1], np.ones(2)), b[::-1]) == 2.0


def test_later_calls_of_a_call_shape_compile_nothing():
    """Whatever a call shape needs is built by its first call (`autodiff`, `gradient`,
    `vjp`, a split-mode thunk): the next calls compile nothing, and give d(a·b·a)/da =
    2ab, d/db = a²."""
    from numba.core import event

    aba = _aba()

    a, b = np.array([1.0, -2.0, 0.5]), np.array([3.0, 0.25, -1.0])
    ga, gb = np.zeros(3), np.zeros(3)
    fwd, rev = ez.autodiff_thunk(
        ez.ReverseSplitWithPrimal, aba, ez.Active, ez.Duplicated(a, ga), ez.Duplicated(b, gb)
    )

    def pair():
        tape, _, _ = fwd(ez.Duplicated(a, ga), ez.Duplicated(b, gb))
        rev(ez.Duplicated(a, ga), ez.Duplicated(b, gb), 1.0, tape)

    calls = [
        lambda: ez.autodiff(ez.Forward, aba, ez.Duplicated(a, np.ones(3)), ez.Const(b)),
        lambda: ez.autodiff(ez.Reverse, aba, ez.Active, ez.Duplicated(a, ga), ez.Const(b)),
        lambda: ez.gradient(ez.Reverse, aba, a, b),
        lambda: ez.vjp(aba, (a, b), 2.0),
        pair,
    ]
    for call in calls:
        call()
    ga[:], gb[:] = 0.0, 0.0
    with event.install_recorder("numba:compile") as compiles:
        results = [call() for call in calls for _ in range(5)]
    assert compiles.buffer == []
    np.testing.assert_allclose(results[0], np.sum(2 * a * b), rtol=1e-15)
    grads = results[10]
    np.testing.assert_allclose(grads[0], 2 * a * b, rtol=1e-15)
    np.testing.assert_allclose(grads[1], a * a, rtol=1e-15)
    value, (va, vb) = results[15]
    np.testing.assert_allclose(va, 4 * a * b, rtol=1e-15)
    np.testing.assert_allclose(vb, 2 * a * a, rtol=1e-15)
    np.testing.assert_allclose(ga, 10 * 2 * a * b, rtol=1e-14)  # 5 reverse calls, 5 pairs
    np.testing.assert_allclose(gb, 5 * a * a, rtol=1e-14)


def test_gradient_and_vjp_calls_of_another_kind_are_not_taken_for_the_first():
    """`gradient` and `vjp` go straight to the generated code of an earlier call only for
    arguments of the same classes and dtypes: a Const argument that is later plain, an
    integer array, float32 and an integer scalar each get their own gradient, against the
    closed forms."""

    weighted = _weighted()

    x, w = np.array([1.0, -2.0, 0.5]), np.array([0.3, 1.5, 2.0])
    for _ in range(2):  # the second time through `api._gradient_calls`
        gx, gw, ga = ez.gradient(ez.Reverse, weighted, x, ez.Const(w), 2.0)
        np.testing.assert_allclose(gx, 2.0 * w * 2 * x)
        assert gw is None and ga == pytest.approx(np.sum(w * x * x))
    assert ("gradient", ez.Reverse, weighted) in api._calls
    gx, gw, ga = ez.gradient(ez.Reverse, weighted, x, w, 2.0)
    np.testing.assert_allclose(gw, 2.0 * x * x)
    gx, gw, ga = ez.gradient(ez.Reverse, weighted, x, np.array([1, 2, 3]), 2.0)
    assert gw is None and ga == pytest.approx(np.sum(np.array([1, 2, 3]) * x * x))
    x32 = x.astype(np.float32)
    gx, gw, ga = ez.gradient(ez.Reverse, weighted, x32, ez.Const(w), 2.0)
    assert gx.dtype == np.float32
    np.testing.assert_allclose(gx, 2.0 * w * 2 * x, rtol=1e-6)
    gx, gw, ga = ez.gradient(ez.Reverse, weighted, x, ez.Const(w), 2)  # an int: not active
    assert ga is None
    for cotangent in (1.0, 0.5, 2):  # the second time on, through `api._calls`
        value, (gx, gw, ga) = ez.vjp(weighted, [x, ez.Const(w), 2.0], cotangent)
        assert value == pytest.approx(2.0 * np.sum(w * x * x))
        np.testing.assert_allclose(gx, cotangent * 2.0 * w * 2 * x)
        assert gw is None and ga == pytest.approx(cotangent * np.sum(w * x * x))
    assert ("vjp", weighted) in api._calls
    value, (gx, gw, ga) = ez.vjp(weighted, (x, w, 2.0), 0.5)
    np.testing.assert_allclose(gw, 0.5 * 2.0 * x * x)
    value, (gx, gw, ga) = ez.vjp(weighted, (x32, w, 2.0))
    assert gx.dtype == np.float32


def test_jvp_calls_of_another_kind_are_not_taken_for_the_first():
    """`jvp` goes straight to the generated code of an earlier call only for primals and
    tangents of the same classes and dtypes (a tangent given or None); a tangent to convert
    (a list) and a call with the primals and tangents split otherwise take the Python path."""

    weighted = _weighted()

    x, w, u = np.array([1.0, -2.0, 0.5]), np.array([0.3, 1.5, 2.0]), np.array([0.2, 0.1, -1.0])
    for _ in range(2):  # the second time through `api._calls`
        value, tangent = ez.jvp(weighted, (x, w, 2.0), (u, None, None))
        assert value == pytest.approx(2.0 * np.sum(w * x * x))
        assert tangent == pytest.approx(np.sum(2.0 * w * 2 * x * u))
    assert ("jvp", weighted) in api._calls
    value, tangent = ez.jvp(weighted, (x, w, 2.0), (None, u, 1.0))
    assert tangent == pytest.approx(np.sum(2.0 * u * x * x) + np.sum(w * x * x))
    value, tangent = ez.jvp(weighted, (x, w, 2.0), (list(u), None, None))
    assert tangent == pytest.approx(np.sum(2.0 * w * 2 * x * u))
    with pytest.raises(ez.AnnotationError, match="2 primals but 4 tangents"):
        ez.jvp(weighted, (x, w), (2.0, u, None, None))


def test_hot_gradient_jvp_and_vjp_call_the_entries_directly(monkeypatch):
    """From their second call of a shape, `gradient`, `jvp` and `vjp` call the compiled
    entry of their `autodiff` call on the values they would annotate: right with neither
    `autodiff`'s chain of entries nor its Python path, against the closed forms of
    d(Σ a·b·a) = (2ab, a²); where the entry defers (one array passed as both arguments:
    the Python path decides on aliasing), `autodiff` raises the error of a first call."""

    aba = _aba()

    def check(x, y):
        ga, gb = ez.gradient(ez.Reverse, aba, x, y)
        np.testing.assert_allclose(ga, 2 * x * y, rtol=1e-15)
        np.testing.assert_allclose(gb, x * x, rtol=1e-15)
        value, tangent = ez.jvp(aba, (x, y), (u, u))
        assert value == pytest.approx(np.sum(x * y * x), rel=1e-15)
        assert tangent == pytest.approx(np.sum(2 * x * y * u + x * x * u), rel=1e-15)
        value, (va, vb) = ez.vjp(aba, (x, y), 2.0)
        np.testing.assert_allclose(va, 4 * x * y, rtol=1e-15)
        np.testing.assert_allclose(vb, 2 * x * x, rtol=1e-15)

    a, b, u = np.array([1.0, -2.0, 0.5]), np.array([3.0, 0.25, -1.0]), np.array([0.5, 1.0, 2.0])
    check(a, b)
    with monkeypatch.context() as m:
        m.setattr(api, "_entries", {})
        m.setattr(api, "_autodiff", None)  # the Python path must not be taken
        check(b, a)
        assert not api._entries
    with pytest.raises(ez.ShadowError, match="share memory"):
        ez.gradient(ez.Reverse, aba, a, a)
