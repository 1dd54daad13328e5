"""Memory shared between arguments (DESIGN.md: never a silently wrong derivative). A shadow
must not share memory with any primal, another argument's or a `Const` one included, nor
with another argument's shadow unless the two arguments are the same view with the same
shadow. Each such call raises one `ShadowError`, with the same message, before native code
runs: from Python, through the hot path's compiled entry, and inside jitted code."""

import numba
import numpy as np
import pytest
from harness import check_all

import enzpy as ez
from enzpy import api


@ez.enzyme_jit
def mul_and_double(x, y):
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] * y[i]
        y[i] = 2 * y[i]
    return s


def _annotated(spec):
    return [ez.Duplicated(*a) if len(a) == 2 else ez.Const(*a) for a in spec]


def _python(spec):
    return ez.autodiff(ez.Reverse, mul_and_double, ez.Active, *_annotated(spec))


def _hot(spec, monkeypatch):
    """The call through the compiled entry of its call shape (made by a clean call first)."""
    monkeypatch.setattr(api, "_shapes", {})
    monkeypatch.setattr(api, "_entries", {})
    fresh = [tuple(np.ones(3) for _ in a) for a in spec]
    _python(fresh)
    assert (ez.Reverse, mul_and_double) in api._entries
    return _python(spec)


_INSIDE = {
    (2, 2): numba.njit(
        lambda x, dx, y, dy: ez.autodiff(
            ez.Reverse, mul_and_double, ez.Active, ez.Duplicated(x, dx), ez.Duplicated(y, dy)
        )
    ),
    (1, 2): numba.njit(
        lambda x, y, dy: ez.autodiff(
            ez.Reverse, mul_and_double, ez.Active, ez.Const(x), ez.Duplicated(y, dy)
        )
    ),
    (2, 1): numba.njit(
        lambda x, dx, y: ez.autodiff(
            ez.Reverse, mul_and_double, ez.Active, ez.Duplicated(x, dx), ez.Const(y)
        )
    ),
}


def _inside(spec):
    return _INSIDE[tuple(map(len, spec))](*[v for a in spec for v in a])


def _cases():
    """id -> (argument spec: (primal, shadow) or (primal,) per argument, the error), on
    fresh memory."""
    x, y, d, base = np.ones(3), np.arange(3.0), np.zeros(3), np.arange(4.0)
    return {
        "shadow-is-other-primal": (
            [(x, y), (y, d)],
            "argument 0: the shadow shares memory with the primal of argument 1",
        ),
        "shadow-is-const-primal": (
            [(x,), (y, x)],
            "argument 1: the shadow shares memory with the primal of argument 0",
        ),
        "shadow-inside-const": (
            [(x, base[1:]), (base[:3],)],
            "argument 0: the shadow shares memory with the primal of argument 1",
        ),
        "own-primal": ([(x, x), (y, d)], "argument 0: the shadow shares memory with its primal"),
        "shifted-views-one-shadow": (
            [(base[:3], d), (base[1:], d)],
            "arguments 0 and 1 share memory but are not the same view with the same shadow",
        ),
        "shared-shadow": (
            [(x, d), (y, d)],
            "arguments 0 and 1 have overlapping shadows but distinct primals",
        ),
    }


@pytest.mark.parametrize("path", ["python", "hot", "inside"])
@pytest.mark.parametrize("case", list(_cases()))
def test_overlapping_memory_is_refused_before_native_code(path, case, monkeypatch):
    spec, message = _cases()[case]
    before = [[v.copy() for v in a] for a in spec]
    monkeypatch.setattr(api, "_ENTRIES", path != "python")
    call = {"python": _python, "inside": _inside, "hot": lambda s: _hot(s, monkeypatch)}[path]
    with pytest.raises(ez.ShadowError) as info:
        call(spec)
    assert str(info.value).startswith(message)
    for a, b in zip(spec, before, strict=True):
        for v, w in zip(a, b, strict=True):
            np.testing.assert_array_equal(v, w)


def test_the_same_view_with_the_same_shadow_differentiates():
    x0 = np.array([1.0, 2.0, 3.0])
    for path in (_python, _inside):
        x, dx = x0.copy(), np.zeros(3)
        path([(x, dx), (x, dx)])  # s = x·x (x is doubled after each read; seeded 0)
        np.testing.assert_allclose(dx, 2 * x0, rtol=1e-14)


@ez.enzyme_jit
def weighted(x, ws):
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] * ws[0][i] * ws[1]
    return s


_weighted_inside = numba.njit(
    lambda x, dx, w: ez.autodiff(
        ez.Reverse, weighted, ez.Active, ez.Duplicated(x, dx), ez.Const((w, 2.0))
    )
)


@pytest.mark.parametrize("path", ["python", "hot", "inside"])
def test_a_shadow_inside_a_const_tuple_is_refused(path, monkeypatch):
    monkeypatch.setattr(api, "_ENTRIES", path != "python")
    monkeypatch.setattr(api, "_shapes", {})
    monkeypatch.setattr(api, "_entries", {})
    x, w = np.ones(3), np.arange(3.0)

    def call(dx, w):
        if path == "inside":
            return _weighted_inside(x, dx, w)
        return ez.autodiff(
            ez.Reverse, weighted, ez.Active, ez.Duplicated(x, dx), ez.Const((w, 2.0))
        )

    if path == "hot":
        call(np.zeros(3), np.ones(3))
        assert api._entries
    with pytest.raises(ez.ShadowError) as info:
        call(w, w)
    assert str(info.value) == "argument 0: the shadow shares memory with the primal of argument 1"
    np.testing.assert_array_equal(w, np.arange(3.0))


@numba.njit
def _interleaved_inside(x, da, db):
    return ez.autodiff(
        ez.Forward, _dot_of_views, ez.Duplicated(x[::2], da), ez.Duplicated(x[1::2], db)
    )


@ez.enzyme_jit
def _dot_of_views(a, b):
    return (a * b).sum()


def test_interleaved_views_of_one_array_are_accepted_everywhere():
    """The checks are exact in every entrance: views that share an address range but no
    element (x[::2] and x[1::2]) are distinct memory. The tangent along da: b."""
    x = np.arange(6.0)
    python = ez.autodiff(
        ez.Forward,
        _dot_of_views,
        ez.Duplicated(x[::2], np.ones(3)),
        ez.Duplicated(x[1::2], np.zeros(3)),
    )
    assert python == _interleaved_inside(x, np.ones(3), np.zeros(3)) == x[1::2].sum()


def _product_then_doubled():
    """`mul_and_double` compiled anew (its derivative too)."""
    return ez.enzyme_jit(mul_and_double.py_func)


@pytest.mark.parametrize("path", ["python", "hot"])
def test_the_aliased_twin_is_built_when_arrays_first_overlap(path, monkeypatch):
    # the derivative assumes x and y apart (it reads y again in its reverse sweep); its twin
    # for overlapping memory is compiled on the first call that needs it, from either path
    from enzpy import derivatives

    monkeypatch.setattr(api, "_ENTRIES", path == "hot")
    f = _product_then_doubled()
    x0 = np.array([1.0, 2.0, 3.0])
    for _ in range(6):  # apart: y is read before it is doubled, d/dx = y0, d/dy = x0
        x, y, dx, dy = x0.copy(), x0[::-1].copy(), np.zeros(3), np.zeros(3)
        ez.autodiff(ez.Reverse, f, ez.Active, ez.Duplicated(x, dx), ez.Duplicated(y, dy))
        np.testing.assert_allclose(dx, x0[::-1], rtol=1e-14)
        np.testing.assert_allclose(dy, x0, rtol=1e-14)
    argtypes = (numba.typeof(x0), numba.typeof(x0))
    deriv = derivatives.derivative(ez.Reverse, f, argtypes, ("dup", "dup"), "active")
    assert deriv.linked.twin is not None and deriv.linked.table[1] == 0  # not built
    for _ in range(6):  # s = x·x, x doubled after each read: d/dx = 2 x0
        x, dx = x0.copy(), np.zeros(3)
        ez.autodiff(ez.Reverse, f, ez.Active, ez.Duplicated(x, dx), ez.Duplicated(x, dx))
        np.testing.assert_allclose(dx, 2 * x0, rtol=1e-14)
    assert deriv.linked.table[1] != 0
    deriv.drop_tapes()
    x, dx = x0.copy(), np.zeros(3)
    ez.autodiff(ez.Reverse, f, ez.Active, ez.Duplicated(x, dx), ez.Duplicated(x, dx))
    assert deriv.drop_tapes() > 0  # the twin's tape storage (it keeps y), freed with the rest
    assert deriv.drop_tapes() == 0


@ez.enzyme_jit
def relax(u, v):
    """A linear sweep from u into v and back (its reverse sweep reads no primal value)."""
    for i in range(1, u.shape[0] - 1):
        v[i] = 0.5 * (u[i - 1] + u[i + 1]) + 0.25 * v[i]
    for i in range(1, u.shape[0] - 1):
        u[i] = v[i] - 0.5 * u[i]
    s = 0.0
    for i in range(u.shape[0]):
        s += u[i] * (i + 1.0) + v[i]
    return s


def _gradient_as_one_array(f, x0):
    """The gradient of x -> f(x, x) by the reverse pass (the same array and shadow passed
    twice) and by central differences of the Python function."""

    def same(x):
        return f.py_func(x, x)

    h, fd = 1e-6, np.zeros(x0.size)
    for k in range(x0.size):
        e = np.zeros(x0.size)
        e[k] = h
        fd[k] = (same(x0 + e.reshape(x0.shape)) - same(x0 - e.reshape(x0.shape))) / (2 * h)
    x, dx = x0.copy(), np.zeros_like(x0)
    ez.autodiff(ez.Reverse, f, ez.Active, ez.Duplicated(x, dx), ez.Duplicated(x, dx))
    return dx.ravel(), fd


@ez.enzyme_jit
def product_energy(a, b):
    """A temporary's shadow read while adding into the arguments' shadows (and written while
    reading theirs)."""
    c = np.zeros((a.shape[0], b.shape[1]))
    for i in range(a.shape[0]):
        for k in range(a.shape[1]):
            w = a[i, k]
            for j in range(b.shape[1]):
                c[i, j] += w * b[k, j]
    return (c * c).sum()


@ez.enzyme_jit
def ping_pong(u, v):
    """Buffers swapped between an argument and a new array each step: the shadows read and
    written through `a` and `b` are either (neither given nor made for sure)."""
    a, b = u, v
    for _ in range(4):
        t = np.empty_like(a)
        for i in range(1, a.shape[0] - 1):
            t[i] = 0.5 * a[i] + 0.25 * (a[i - 1] + b[i + 1])
        t[0], t[-1] = a[0], a[-1]
        a, b = t, a
    return np.sum(a * a) + np.sum(b)


@pytest.mark.parametrize(
    "f, a, b, one",
    [
        (relax, (9,), (9,), (9,)),
        (product_energy, (5, 4), (4, 6), (5, 5)),
        (ping_pong, (10,), (10,), (10,)),
    ],
    ids=["sweep", "temporary", "swapped"],
)
def test_shadows_given_and_made_as_two_arrays_and_as_one(f, a, b, one):
    """The reverse sweep tells LLVM that the arguments' shadows are apart from those of the
    memory the function allocates (not from one another): forward, reverse and the dot test
    against central differences with two arrays, and the reverse pass with one array passed
    twice (its shadow too)."""
    rng = np.random.default_rng(3)
    check_all(f, (rng.standard_normal(a), rng.standard_normal(b)), [0, 1])
    np.testing.assert_allclose(
        *_gradient_as_one_array(f, rng.standard_normal(one)), rtol=1e-7, atol=1e-8
    )
