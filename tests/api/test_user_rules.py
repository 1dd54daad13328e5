"""User-defined derivatives (`ez.forward_rule`, `augmented_rule`, `reverse_rule`, `inactive`,
`inactive_arg`, `check_rule`): checked against finite differences and the dot test, in
both modes, split mode, loops, Numba code, and when the ruled function is the root."""

import math
import re

import numba
import numpy as np
import pytest
from harness import check_all, check_forward, check_reverse, dot_test

import enzpy as ez

# ---- a solve given by rules (a better formula than the code's: pinv's) ----------------------


@ez.enzyme_jit
def solve(a, b):
    return np.linalg.pinv(a) @ b


@ez.forward_rule(solve)
def solve_fwd(a, da, b, db):
    y = np.linalg.solve(a, b)
    return y, np.linalg.solve(a, db - da @ y)


@ez.augmented_rule(solve)
def solve_aug(a, b):
    y = np.linalg.solve(a, b)
    return y, (a.copy(), y)


@ez.reverse_rule(solve)
def solve_rev(saved, dy, a, da, b, db):
    a0, y = saved
    g = np.linalg.solve(a0.T.copy(), dy)
    db += g
    da -= np.outer(g, y)
    return ()


@ez.enzyme_jit
def solve_loss(a, b, c):
    s = 0.0
    for _ in range(2):
        y = solve(a, b)
        for i in range(y.shape[0]):
            s += math.sin(c * y[i])
        b[0] = b[0] * 0.5 + y[1]  # overwrites an input of the first solve
    return s


def _system(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n)) + n * np.eye(n), rng.standard_normal(n)


@pytest.mark.slow
def test_rules_replace_what_the_engine_refuses():
    a, b = _system()
    with ez.rules.set_aside(solve), ez.rules.set_aside(ez.linalg.pinv):  # (LAPACK's SVD)
        with pytest.raises(ez.NoDerivativeError):
            ez.gradient(ez.Reverse, solve_loss, a, b.copy(), ez.Const(0.7))
    args = (a, b, 0.7)
    check_all(solve_loss, args, (0, 1, 2))


@pytest.mark.slow
def test_ruled_function_as_the_root_in_every_mode():
    a, b = _system(3, seed=1)
    check_forward(solve, (a, b), (0, 1))
    dot_test(solve, (a, b), (0, 1))
    ez.check_rule(solve, a, b)


def test_split_mode_and_a_tape_released_without_reverse():
    a, b = _system(3, seed=2)
    da, db = np.zeros_like(a), np.zeros_like(b)
    ann = (ez.Duplicated(a, da), ez.Duplicated(b.copy(), db), ez.Active(0.7))
    fwd, rev = ez.autodiff_thunk(ez.ReverseSplitWithPrimal, solve_loss, ez.Active, *ann)
    tape, z, _ = fwd(*ann)
    dc = rev(*ann, 1.0, tape)[2]
    ref_da, ref_db = np.zeros_like(a), np.zeros_like(b)
    ref = ez.autodiff(
        ez.Reverse,
        solve_loss,
        ez.Duplicated(a, ref_da),
        ez.Duplicated(b.copy(), ref_db),
        ez.Active(0.7),
    )
    np.testing.assert_allclose([*da.ravel(), *db, dc], [*ref_da.ravel(), *ref_db, ref[2]])
    tape, _, _ = fwd(*ann)
    del tape  # its saved arrays are released


def test_no_references_leak():
    from numba.core.runtime import _nrt_python, rtsys

    a, b = _system(3, seed=3)
    _nrt_python.memsys_enable_stats()

    def live():
        s = rtsys.get_allocation_stats()
        return s.mi_alloc - s.mi_free

    ez.gradient(ez.Reverse, solve_loss, a, b.copy(), ez.Const(0.7))
    before = live()
    for _ in range(5):
        ez.gradient(ez.Reverse, solve_loss, a, b.copy(), ez.Const(0.7))
        ez.autodiff(
            ez.Forward,
            solve_loss,
            ez.Duplicated(a, np.ones_like(a)),
            ez.Duplicated(b.copy(), np.ones_like(b)),
            0.7,
        )
    after = live()
    _nrt_python.memsys_disable_stats()
    assert after == before


# ---- a rule that differs from the body: the rule is what is used ----------------------------


@ez.enzyme_jit
def snap(x):
    return np.floor(x * 4.0) / 4.0


@ez.forward_rule(snap)
def snap_fwd(x, dx):  # straight-through: the derivative of the identity
    return np.floor(x * 4.0) / 4.0, dx


@ez.augmented_rule(snap)
def snap_aug(x):
    return np.floor(x * 4.0) / 4.0, None


@ez.reverse_rule(snap)
def snap_rev(saved, dy, x):
    return (dy,)


@ez.enzyme_jit
def snapped_energy(x):
    s = 0.0
    for i in range(x.shape[0]):
        q = snap(x[i])
        s += q * q
    return s


def test_the_rule_is_used_where_the_body_says_otherwise():
    x = np.array([0.3, 1.1, -0.6])
    q = np.floor(x * 4.0) / 4.0
    (g,) = ez.gradient(ez.Reverse, snapped_energy, x)
    np.testing.assert_allclose(g, 2 * q)
    for k in range(3):
        e = np.eye(3)[k]
        t = ez.autodiff(ez.Forward, snapped_energy, ez.Duplicated(x, e))
        assert t == pytest.approx(2 * q[k])


# ---- only one mode given: the engine derives the other ---------------------------------------


@ez.enzyme_jit
def cube(x, n):
    return x**3 + n


@ez.forward_rule(cube)
def cube_fwd(x, dx, n, dn):
    assert dn is None  # integers get no tangent
    return x**3 + n, 3.0 * x * x * dx


@ez.enzyme_jit
def cubes(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += cube(x[i], i)
    return s


def test_forward_rule_alone_reverse_by_the_engine():
    x = np.array([0.5, -1.5, 2.0])
    check_forward(cubes, (x,), (0,))
    check_reverse(cubes, (x,), (0,))
    ez.check_rule(cube, 0.7, 3)


# ---- arrays mutated by a ruled function, Const arguments, float32 ----------------------------


@ez.enzyme_jit
def axpy(a, x, y):
    for i in range(y.shape[0]):
        y[i] += a * x[i]


@ez.forward_rule(axpy)
def axpy_fwd(a, da, x, dx, y, dy):
    for i in range(y.shape[0]):
        y[i] += a * x[i]
        dy[i] += da * x[i] + a * dx[i]
    return None, None


@ez.augmented_rule(axpy)
def axpy_aug(a, x, y):
    for i in range(y.shape[0]):
        y[i] += a * x[i]
    return None, x.copy()


def test_signature_checked_at_registration():
    with pytest.raises(ez.RuleError, match="takes 5 to 8 parameters, not 9"):

        @ez.reverse_rule(axpy)
        def wrong(saved, dy, a, x, dx, y, dy2, z, w):
            return (0.0,)


@ez.reverse_rule(axpy)
def axpy_rev_ok(x0, dy_ret, a, x, dx, y, dy):
    da = 0.0
    for i in range(y.shape[0]):
        da += x0[i] * dy[i]
        dx[i] += a * dy[i]
    return (da,)


@ez.enzyme_jit
def two_axpys(a, x, y, w):
    axpy(a, x, y)
    axpy(a * a, w, y)  # w: Const in some tests
    return (y * y).sum()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mutating_rule_with_const_and_active_arrays(dtype):
    rng = np.random.default_rng(4)
    x, y, w = (rng.standard_normal(5).astype(dtype) for _ in range(3))
    a = 0.8
    check_forward(two_axpys, (a, x, y, w), (0, 1, 2))
    check_reverse(two_axpys, (a, x, y, w), (0, 1, 2))
    dot_test(two_axpys, (a, x, y, w), (0, 1, 2, 3))


# ---- a ruled function writing its output through a view its helper made --------------------


@numba.njit
def _tail(a):
    return a[1:]


@numba.njit
def _flat(a):
    return a.reshape((a.size,))  # the view's struct stays in memory (a runtime call takes it)


def _sines_into(view):
    """A function with rules writing sin(x) into `out` through view(out): whether its body
    writes `out` is found through the helper's result."""

    @ez.enzyme_jit
    def sines(x, out):
        v = view(out)
        for i in range(x.shape[0]):
            v[i] = math.sin(x[i])

    @ez.forward_rule(sines)
    def sines_fwd(x, dx, out, dout):
        sines(x, out)
        dv = view(dout)
        for i in range(x.shape[0]):
            dv[i] = math.cos(x[i]) * dx[i]
        return None, None

    @ez.augmented_rule(sines)
    def sines_aug(x, out):
        sines(x, out)
        return None, x.copy()

    @ez.reverse_rule(sines)
    def sines_rev(saved, dy, x, dx, out, dout):
        dv = view(dout)
        for i in range(saved.shape[0]):
            dx[i] += math.cos(saved[i]) * dv[i]
            dv[i] = 0.0
        return ()

    extra = 1 if view is _tail else 0

    @ez.enzyme_jit
    def energy(x):
        out = np.zeros(x.shape[0] + extra)
        sines(x, out)
        return (out * out).sum()

    return energy


@pytest.mark.parametrize("view", [_tail, _flat])
def test_a_rule_output_written_through_a_view_carries_derivatives(view):
    energy = _sines_into(view)
    x = np.linspace(0.1, 1.0, 5)
    check_all(energy, (x,), (0,))


# ---- a reverse rule reading an argument the caller frees before the reverse sweep ----------


@ez.enzyme_jit
def gather(x, idx):
    return x[idx]


@ez.augmented_rule(gather)
def gather_aug(x, idx):
    return x[idx], None  # saves nothing: the reverse rule reads idx itself


@ez.reverse_rule(gather)
def gather_rev(saved, dy, x, dx, idx):
    for i in range(idx.shape[0]):
        dx[idx[i]] += dy[i]
    return ()


@ez.enzyme_jit
def sorted_weights(x, w):
    idx = np.argsort(w)  # a temporary: the primal frees it after the call
    y = gather(x, idx)
    other = np.full(idx.shape[0], 7)  # may take the freed memory
    return np.sum(y * np.arange(1.0, y.shape[0] + 1.0)) + other[0] * 0.0


@pytest.mark.parametrize("n", [10, 300, 3000])
def test_reverse_rule_reads_a_temporary_argument_as_the_call_saw_it(n):
    rng = np.random.default_rng(n)
    x, w = rng.standard_normal(n), rng.standard_normal(n)
    check_reverse(sorted_weights, (x, w), (0,))
    dot_test(sorted_weights, (x, w), (0,))


def test_check_rule_finds_a_wrong_rule():
    @ez.enzyme_jit
    def sq(x):
        return x * x

    @ez.forward_rule(sq)
    def sq_fwd(x, dx):
        return x * x, 2.1 * x * dx

    with pytest.raises(AssertionError, match="forward rule: relative error"):
        ez.check_rule(sq, 1.3)


def test_check_rule_passes_correct_rules_and_reports():
    report = ez.check_rule(axpy, 0.8, np.array([1.0, 2.0]), np.array([0.5, -0.5]))
    assert report.forward is not None and report.forward < 1e-6
    assert report.reverse is not None and report.reverse < 1e-6
    assert report.engine is not None and report.engine < 1e-12


# ---- inside Numba code -----------------------------------------------------------------------


@numba.njit
def grad_inside(x):
    dx = np.zeros_like(x)
    ez.autodiff(ez.Reverse, snapped_energy, ez.Duplicated(x, dx))
    return dx


def test_rules_inside_numba_code():
    x = np.array([0.3, 1.1, -0.6])
    np.testing.assert_allclose(grad_inside(x), 2 * (np.floor(x * 4.0) / 4.0))


# ---- inactive functions and arguments --------------------------------------------------------


@numba.njit
def record(log, v):
    log[0] += 1.0
    log[1] = v
    return 2.0 * v


ez.inactive(record)


@ez.enzyme_jit
def logged(x, log):
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] * x[i] + record(log, x[i])
    return s


def test_inactive_function_carries_no_derivative():
    x = np.array([1.0, -2.0])
    log = np.zeros(2)
    g = np.zeros(2)
    ez.autodiff(ez.Reverse, logged, ez.Duplicated(x, g), ez.Const(log))
    np.testing.assert_allclose(g, 2 * x)  # not 2 x + 2
    assert log[0] == 2.0  # it ran
    t = ez.autodiff(ez.Forward, logged, ez.Duplicated(x, np.ones(2)), ez.Const(log))
    assert t == pytest.approx(2 * x.sum())


def test_the_code_of_an_inactive_function_is_not_read(monkeypatch, tmp_path):
    """Its calls stay calls to its compiled code: the derivative only declares it (so a
    function loaded from Numba's disk cache is not compiled again for its IR)."""
    monkeypatch.setenv("ENZPY_DUMP_IR", str(tmp_path))
    x = np.array([0.5, 2.0])
    g = ez.gradient(ez.Reverse, ez.enzyme_jit(logged.py_func), x, ez.Const(np.zeros(2)))[0]
    np.testing.assert_allclose(g, 2 * x)
    text = (tmp_path / "logged.ll").read_text()
    symbol = ez.bridge.compiled_function(record)[0]
    assert re.search(rf"^declare .*@{re.escape(symbol)}\(", text, re.M)
    assert not re.search(rf"^define .*@{re.escape(symbol)}\(", text, re.M)


@ez.enzyme_jit
def weighted(x, w):
    return (x * x).sum() * w


ez.inactive_arg(weighted, "w")


@ez.enzyme_jit
def uses_weighted(x, a):
    return weighted(x, a) + a


def test_inactive_argument():
    x = np.array([1.0, 2.0])
    dx = np.zeros(2)
    _, da = ez.autodiff(ez.Reverse, uses_weighted, ez.Duplicated(x, dx), ez.Active(3.0))
    assert da == pytest.approx(1.0)  # nothing through w
    np.testing.assert_allclose(dx, 6 * x)
    with pytest.raises(ez.AnnotationError, match="never carries a derivative"):
        ez.autodiff(ez.Reverse, weighted, ez.Duplicated(x, dx), ez.Active(3.0))
    with pytest.raises(ez.RuleError, match="has no parameter"):
        ez.inactive_arg(weighted, "v")


# ---- misuse ----------------------------------------------------------------------------------


def test_rule_returning_the_wrong_type():
    @ez.enzyme_jit
    def half(x):
        return 0.5 * x

    @ez.forward_rule(half)
    def half_fwd(x, dx):
        return 1, 0.5 * dx  # an int primal

    with pytest.raises(ez.RuleError, match="returns a result of type int64, not float64"):
        ez.autodiff(ez.Forward, half, ez.Duplicated(1.0, 1.0))


def test_reverse_rule_with_the_wrong_number_of_adjoints():
    @ez.enzyme_jit
    def prod(x, y):
        return x * y

    @ez.augmented_rule(prod)
    def prod_aug(x, y):
        return x * y, None

    with pytest.raises(ez.RuleError, match="reverse mode needs both"):
        ez.autodiff(ez.Reverse, prod, ez.Active(1.0), ez.Active(2.0))

    @ez.reverse_rule(prod)
    def prod_rev(saved, dy, x, y):
        return (y * dy,)  # one adjoint for two floats

    with pytest.raises(ez.RuleError, match=r"adjoints of the float arguments \(x, y\)"):
        ez.autodiff(ez.Reverse, prod, ez.Active(1.0), ez.Active(2.0))


def test_rules_for_what_is_not_a_jitted_function():
    with pytest.raises(ez.RuleError, match="not"):
        ez.forward_rule(math.sin)


def test_a_rule_that_does_not_compile_names_the_function():
    @ez.enzyme_jit
    def lin(x):
        return 3.0 * x

    @ez.forward_rule(lin)
    def lin_fwd(x, dx):
        return 3.0 * x, undefined_name * dx  # noqa: F821

    with pytest.raises(ez.RuleError, match="forward rule of .*lin does not compile"):
        ez.autodiff(ez.Forward, lin, ez.Duplicated(1.0, 1.0))


def test_an_exception_raised_by_a_rule_reaches_the_caller():
    @ez.enzyme_jit
    def checked(x):
        return math.sqrt(x)

    @ez.forward_rule(checked)
    def checked_fwd(x, dx):
        if x < 0:
            raise ValueError("negative input")
        return math.sqrt(x), 0.5 * dx / math.sqrt(x)

    with pytest.raises(ValueError, match="negative input"):
        ez.autodiff(ez.Forward, checked, ez.Duplicated(-1.0, 1.0))
    assert ez.autodiff(ez.Forward, checked, ez.Duplicated(4.0, 1.0)) == pytest.approx(0.25)


# ---- a reverse rule that raises: the exception reaches the caller, whatever the mode --------


@ez.enzyme_jit
def scale(x, s):
    return x * s


@ez.augmented_rule(scale)
def scale_aug(x, s):
    return x * s, x.copy()


@ez.reverse_rule(scale)
def scale_rev(saved, dy, x, dx, s):
    if s < 0:
        raise ValueError("negative scale")
    dx += dy * s
    return ((dy * saved).sum(),)


@ez.enzyme_jit
def scaled_energy(x, s):
    return (scale(x, s) ** 2).sum()


@numba.njit
def scaled_energy_gradient(x, s):
    dx = np.zeros_like(x)
    (_, ds), _ = ez.autodiff(
        ez.ReverseWithPrimal, scaled_energy, ez.Active, ez.Duplicated(x, dx), ez.Active(s)
    )
    return dx, ds


def _split_gradient(x, s):
    dx = np.zeros_like(x)
    fwd, rev = ez.autodiff_thunk(
        ez.ReverseSplitNoPrimal, scaled_energy, ez.Active, ez.Duplicated(x, dx), ez.Active(s)
    )
    tape, _, _ = fwd(ez.Duplicated(x, dx), ez.Active(s))
    _, ds = rev(ez.Duplicated(x, dx), ez.Active(s), 1.0, tape)
    return dx, ds


_SCALED_GRADIENTS = {
    "combined": lambda x, s: ez.gradient(ez.Reverse, scaled_energy, x, s),
    "split": _split_gradient,
    "in jit": scaled_energy_gradient,
    "batch": lambda x, s: ez.jacobian(ez.Reverse, scaled_energy, x, s),
}


@pytest.mark.parametrize("how", list(_SCALED_GRADIENTS))
def test_an_exception_raised_by_a_reverse_rule_reaches_the_caller(how):
    gradient = _SCALED_GRADIENTS[how]
    x = np.array([0.5, -1.0, 2.0])
    for _ in range(2):  # (the tape's storage, kept after a failure, serves the next call)
        dx, ds = gradient(x, 0.7)  # energy s² |x|²
        np.testing.assert_allclose(dx, 2 * 0.7**2 * x, rtol=1e-12)
        assert ds == pytest.approx(2 * 0.7 * (x @ x), rel=1e-12)
        with pytest.raises(ValueError, match="negative scale"):
            gradient(x, -0.7)


@ez.enzyme_jit
def _through_a_gradient(x, s):
    dx = np.zeros_like(x)
    ez.autodiff(ez.Reverse, scaled_energy, ez.Active, ez.Duplicated(x, dx), ez.Const(s))
    return (dx * dx).sum()


def test_nested_differentiation_through_rules_is_refused_by_name():
    x = np.array([0.5, -1.0, 2.0])
    dx = _through_a_gradient(x, 0.7)  # (the inner gradient itself runs)
    assert dx == pytest.approx(4 * 0.7**4 * (x @ x), rel=1e-12)
    with pytest.raises(ez.NoDerivativeError, match=r"derivative of .*scale is given by rules"):
        ez.gradient(ez.Reverse, _through_a_gradient, x, ez.Const(0.7))


# ---- results that are views: their tangents and shadows take the result's strides ---------


@ez.enzyme_jit
def strided_view(x):
    return (2.0 * x)[::-1, ::2]  # a view with a negative and a doubled stride


@ez.forward_rule(strided_view)
def strided_view_fwd(x, dx):
    return strided_view(x), (2.0 * dx)[::-1, ::2].copy()  # (C order, unlike the result)


@ez.augmented_rule(strided_view)
def strided_view_aug(x):
    return strided_view(x), 0


@ez.reverse_rule(strided_view)
def strided_view_rev(saved, dy, x, dx):
    dx[::-1, ::2] += 2.0 * dy
    return ()


@ez.enzyme_jit
def uses_strided_view(x, w):
    y = strided_view(x)
    s = 0.0
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            s += w[i, j] * y[i, j] ** 2
    return s


def test_a_rule_returning_a_strided_view():
    x, w = np.arange(1.0, 13.0).reshape(3, 4) / 7, np.linspace(0.5, 2.0, 6).reshape(3, 2)
    check_all(uses_strided_view, (x, w), (0, 1))


# ---- rules kept in Numba's disk cache (`cache=True`) ---------------------------------------


@numba.njit
def third(x):
    return x * x * x


@numba.njit
def third_power(x):
    return x**3


@ez.forward_rule(third, cache=True)
@ez.forward_rule(third_power, cache=True)
def power_fwd(x, dx):
    return x * x * x, 3.0 * x * x * dx


@ez.enzyme_jit
def powers(x):
    return third(x[0]) + third_power(x[1])


def test_a_cached_rule_is_returned_compiled_once_for_every_function_it_is_declared_for():
    assert isinstance(power_fwd, numba.core.dispatcher.Dispatcher)
    check_forward(powers, (np.array([0.7, -1.3]),), (0,))
