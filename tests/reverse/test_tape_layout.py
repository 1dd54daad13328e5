"""What the tape keeps: counted loops are replayed by counting down (no path, no induction
variable on the tape), memory nothing writes is loaded again in combined mode — and the
gradient stays right where memory does change between the sweeps."""

from __future__ import annotations

import re

import numba
import numpy as np
import pytest
from harness import check_all, check_reverse, dot_test, reverse_functions

import enzpy as ez


@ez.enzyme_jit
def _reduction(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += np.sin(x[i]) * x[i]
    return s


def test_read_only_loop_keeps_one_value_per_iteration():
    n = 10_000
    x, dx = np.linspace(-2, 2, n), np.zeros(n)
    ez.autodiff(ez.Reverse, _reduction, ez.Active, ez.Duplicated(x, dx))
    np.testing.assert_allclose(dx, np.cos(x) * x + np.sin(x), rtol=1e-13)
    assert ez.last_tape_bytes() <= 8 * n + 64  # sin(x[i]) only: x[i] is loaded again


@ez.enzyme_jit
def _reads(x):
    return x[0] * x[1] + np.sin(x[2])


@ez.enzyme_jit
def _callee_reads_then_caller_writes(x):
    s = _reads(x)  # a callee that only reads x ...
    x[0] = 3.0 * x[1]  # ... then its caller overwrites what it read
    x[2] = x[0] * x[2]
    return s + x[0] * x[2]


@ez.enzyme_jit
def _local_scratch(x):
    t = np.empty(3)
    s = 0.0
    for k in range(4):
        for i in range(3):
            t[i] = x[i] * (k + 1.0)
        s += _reads(t)  # reads scratch memory that the next iteration overwrites
    return s


@pytest.mark.parametrize("f", [_callee_reads_then_caller_writes, _local_scratch])
def test_memory_changed_after_a_read_is_not_loaded_again(f):
    x = np.array([0.3, -0.7, 1.1])
    check_reverse(f, (x,), (0,))
    dot_test(f, (x,), (0,))


@ez.enzyme_jit
def _nested(A, x):
    m, n = A.shape
    s = 0.0
    for i in range(1, m):  # counted loops starting at 1, nested, then a second loop
        acc = 0.0
        for j in range(n):
            acc += A[i, j] * np.tanh(x[j] * i)
        s += acc * acc
    for j in range(n):
        s += x[j] * x[j]
        if s > 50.0:
            break
    return s


def test_nested_counted_loops_and_break():
    rng = np.random.default_rng(3)
    A, x = rng.standard_normal((5, 4)), rng.standard_normal(4)
    check_reverse(_nested, (A, x), (0, 1))
    dot_test(_nested, (A, x), (0, 1))


def test_split_mode_does_not_load_again():
    """In split mode the caller may change the arguments between the two passes."""
    n = 100
    x, dx = np.linspace(-2, 2, n), np.zeros(n)
    fwd, rev = ez.autodiff_thunk(
        ez.ReverseSplitNoPrimal, _reduction, ez.Active, ez.Duplicated(x, dx)
    )
    tape, _, _ = fwd(ez.Duplicated(x, dx))
    x0 = x.copy()
    x[:] = 0.0
    rev(ez.Duplicated(x, dx), 1.0, tape)
    np.testing.assert_allclose(dx, np.cos(x0) * x0 + np.sin(x0), rtol=1e-13)


@ez.enzyme_jit
def _triangular(L, x):
    n = x.shape[0]
    y = np.zeros(n)
    idx = 0
    for i in range(n):  # the inner loop starts where the outer one is; idx counts along
        for j in range(i + 1, n):
            y[j] += L[idx] * np.sin(x[i])
            idx += 1
    s = 0.0
    for k in range(n - 1, -1, -1):  # counting down
        s += y[k] * y[k] * (k + 1.0)
    return s


def test_loops_with_computed_starts_second_counters_and_negative_steps():
    rng = np.random.default_rng(5)
    n = 6
    L, x = rng.standard_normal(n * (n - 1) // 2), rng.standard_normal(n)
    check_reverse(_triangular, (L, x), (0, 1))
    dot_test(_triangular, (L, x), (0, 1))


@ez.enzyme_jit
def _scratch_read_in_inner_loop(x, m):
    n = x.shape[0]
    t = np.empty(n)
    u = np.empty(m)
    s = 0.0
    for i in range(n):
        t[i] = np.sin(x[i])
        for j in range(m):  # t[i] is one value for the whole inner loop: saved once
            u[j] = t[i] * x[i] * (j + 1.0)  # writes another allocation
            s += u[j] * t[i]
    return s


def test_load_invariant_in_an_inner_loop_is_saved_once_per_execution():
    x = np.linspace(-1.0, 1.0, 50)
    sizes = []
    for m in (1, 40):
        check_reverse(_scratch_read_in_inner_loop, (x, m), (0,))
        ez.autodiff(
            ez.Reverse,
            _scratch_read_in_inner_loop,
            ez.Active,
            ez.Duplicated(x, np.zeros_like(x)),
            ez.Const(m),
        )
        sizes.append(ez.last_tape_bytes())
    assert sizes[1] - sizes[0] <= 8 * x.shape[0] * 39  # u[j] per inner iteration, not t[i]
    dot_test(_scratch_read_in_inner_loop, (x, 7), (0,))


@ez.enzyme_jit
def _inner_loop_writes_what_it_reads(x, m):
    t = np.zeros(x.shape[0] + 1)
    v = t[1:]  # a view: the same allocation as t
    s = 0.0
    for i in range(x.shape[0]):
        t[i + 1] = x[i]
        for _ in range(m):
            v[i] = v[i] * x[i] + 0.5  # t[i + 1] changes at every iteration
            s += t[i + 1] * t[i + 1]
    return s


@ez.enzyme_jit
def _inner_loop_writes_an_argument(x, y, m):
    s = 0.0
    for i in range(x.shape[0]):
        for _ in range(m):
            y[i] = y[i] * 0.5 + x[i]  # y may be x: loads of x in the loop are not invariant
            s += x[i] * y[i]
    return s


def _fd_with_x_as_y(x, m, eps=1e-6):
    """Central differences of x -> _inner_loop_writes_an_argument(x, x, m)."""
    grad = np.zeros_like(x)
    for k in range(x.shape[0]):
        xp, xm = x.copy(), x.copy()
        xp[k] += eps
        xm[k] -= eps
        grad[k] = (
            _inner_loop_writes_an_argument(xp, xp, m) - _inner_loop_writes_an_argument(xm, xm, m)
        ) / (2 * eps)
    return grad


def test_loads_are_not_hoisted_past_writes_that_may_reach_them():
    x, y = np.linspace(-1.0, 1.0, 5), np.linspace(0.5, 2.0, 5)
    check_reverse(_inner_loop_writes_what_it_reads, (x, 3), (0,))
    dot_test(_inner_loop_writes_what_it_reads, (x, 3), (0,))
    check_reverse(_inner_loop_writes_an_argument, (x, y, 3), (0, 1))
    dot_test(_inner_loop_writes_an_argument, (x, y, 3), (0, 1))
    grad = _fd_with_x_as_y(x, 2)
    for _ in range(6):  # the same array twice, one shadow (also through the compiled entry)
        z, dz = x.copy(), np.zeros(5)
        ez.autodiff(
            ez.Reverse,
            _inner_loop_writes_an_argument,
            ez.Active,
            ez.Duplicated(z, dz),
            ez.Duplicated(z, dz),
            ez.Const(2),
        )
        np.testing.assert_allclose(dz, grad, rtol=1e-6, atol=1e-8)


@ez.enzyme_jit
def _square_at(a, i):
    return a[i] * a[i]


@ez.enzyme_jit
def _calls_a_small_function(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += _square_at(x, i) * np.sin(x[i])
    return s


def test_small_callee_is_inlined_and_keeps_nothing_per_call():
    n = 1000
    x = np.linspace(-2.0, 2.0, n)
    check_reverse(_calls_a_small_function, (x[:7].copy(),), (0,))
    dot_test(_calls_a_small_function, (x[:7].copy(),), (0,))
    dx = np.zeros(n)
    ez.autodiff(ez.Reverse, _calls_a_small_function, ez.Active, ez.Duplicated(x, dx))
    np.testing.assert_allclose(dx, 2 * x * np.sin(x) + x * x * np.cos(x), rtol=1e-12)
    assert ez.last_tape_bytes() <= 8 * n + 64  # sin(x[i]) only: a[i] is loaded again


@ez.enzyme_jit
def _temporary_then_reduction(x, y):
    n = x.shape[0]
    t = np.empty(n)
    for i in range(n):
        t[i] = np.sin(x[i])
        y[i] = t[i] * x[i]  # an output written once...
    s = 0.0
    for i in range(n):
        s += t[i] * t[i] * y[i]  # ...then read, like the temporary: nothing writes them again
    return s


def test_memory_read_after_its_last_write_is_loaded_again():
    n = 2000
    x, y = np.linspace(-1.0, 1.0, n), np.zeros(n)
    check_reverse(_temporary_then_reduction, (x[:6].copy(), y[:6].copy()), (0, 1))
    dot_test(_temporary_then_reduction, (x[:6].copy(), y[:6].copy()), (0, 1))
    ez.autodiff(
        ez.Reverse,
        _temporary_then_reduction,
        ez.Active,
        ez.Duplicated(x, np.zeros(n)),
        ez.Duplicated(y, np.zeros(n)),
    )
    assert ez.last_tape_bytes() <= 8 * n + 128  # sin(x[i]) for a product; nothing of t, y


@ez.enzyme_jit
def _scaled_sums(x, c):
    s = 0.0
    for i in range(x.shape[0]):
        t = np.sin(x[i])
        s += 2.0 * t + c * t + t / 3.0  # products with constants need no value of t
    return s


def test_products_with_constants_keep_nothing():
    n = 1000
    x = np.linspace(-1.0, 1.0, n)
    check_reverse(_scaled_sums, (x[:5].copy(), 0.7), (0,))
    dot_test(_scaled_sums, (x[:5].copy(), 0.7), (0,))
    dx = np.zeros(n)
    ez.autodiff(ez.Reverse, _scaled_sums, ez.Active, ez.Duplicated(x, dx), ez.Const(0.7))
    np.testing.assert_allclose(dx, (2.0 + 0.7 + 1.0 / 3.0) * np.cos(x), rtol=1e-14)
    assert ez.last_tape_bytes() <= 64


def test_tape_storage_kept_between_calls_gives_the_same_gradient():
    """The combined entry reuses its tape's storage: calls of other sizes in between."""
    rng = np.random.default_rng(7)
    grads = []
    for n in (50, 5000, 50, 20000, 50):
        x = rng.standard_normal(n) if n != 50 else np.linspace(-1.0, 1.0, 50)
        dx = np.zeros(n)
        ez.autodiff(ez.Reverse, _reduction, ez.Active, ez.Duplicated(x, dx))
        np.testing.assert_allclose(dx, np.cos(x) * x + np.sin(x), rtol=1e-13)
        if n == 50:
            grads.append(dx)
    assert all(np.array_equal(g, grads[0]) for g in grads)


def test_released_tape_storage_is_allocated_again():
    x = np.linspace(-1.0, 1.0, 20000)
    ez.autodiff(ez.Reverse, _reduction, ez.Active, ez.Duplicated(x, np.zeros_like(x)))
    kept = ez.last_tape_bytes()
    assert ez.release_tapes() >= kept > 0  # every derivative's kept storage, this one's too
    assert ez.release_tapes() == 0
    dx = np.zeros_like(x)
    ez.autodiff(ez.Reverse, _reduction, ez.Active, ez.Duplicated(x, dx))
    np.testing.assert_allclose(dx, np.cos(x) * x + np.sin(x), rtol=1e-13)
    assert ez.release_tapes() >= kept


@ez.enzyme_jit
def _aliased_inside(z, dz, m):
    return ez.autodiff(
        ez.Reverse,
        _inner_loop_writes_an_argument,
        ez.Active,
        ez.Duplicated(z, dz),
        ez.Duplicated(z, dz),
        ez.Const(m),
    )


def test_aliased_arguments_inside_numba_code_take_the_aliased_derivative():
    x = np.linspace(-1.0, 1.0, 5)
    z, dz = x.copy(), np.zeros(5)
    _aliased_inside(z, dz, 2)
    np.testing.assert_allclose(dz, _fd_with_x_as_y(x, 2), rtol=1e-6, atol=1e-8)


@ez.enzyme_jit
def _while_halving(x):
    s = 0.0
    for i in range(x.shape[0]):
        t = x[i]
        while t > 1e-3:  # a data-dependent trip count: no induction variable of its own
            s += np.sin(t)
            t = t * 0.5
    return s


def test_while_loop_keeps_no_id_per_iteration():
    x = np.linspace(0.5, 2.0, 200)
    check_reverse(_while_halving, (x[:4].copy(),), (0,))
    dot_test(_while_halving, (x[:4].copy(),), (0,))
    ez.autodiff(ez.Reverse, _while_halving, ez.Active, ez.Duplicated(x, np.zeros_like(x)))
    trips = sum(int(np.ceil(np.log2(v / 1e-3))) for v in x)
    # one value per inner iteration (t, for sin), per while loop its count and two ids
    assert ez.last_tape_bytes() <= 8 * trips + 8 * 3 * x.shape[0] + 64


def _reverse_sweep_ir(f, *args) -> str:
    """The synthesized reverse sweep of `f` (the `void` helper of its derivative), as text."""
    text = ez.explain(f, *args, mode=ez.Reverse, print_=False)
    derivative = text.split("; ---- derivative IR", 1)[1]
    return derivative.split("\ndefine void @diffe_", 1)[1]


@ez.enzyme_jit
def _rotation(x):
    s = 0.0
    for i in range(x.shape[0]):
        t = np.sqrt(x[i] * x[i] + 1.0)
        c = np.cos(t)
        sn = np.sin(t)
        s += c * x[i] + sn * sn
    return s


@ez.enzyme_jit
def _boost(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += np.cosh(x[i]) * x[i] - np.sinh(x[i])
    return s


@pytest.mark.parametrize(("f", "calls"), [(_rotation, ("sin", "cos")), (_boost, ("sinh", "cosh"))])
def test_sin_and_cos_of_one_value_keep_each_other_instead_of_calling_libm_again(f, calls):
    x = np.linspace(-2.0, 3.0, 7)
    check_reverse(f, (x,), (0,))
    dot_test(f, (x,), (0,))
    reverse = _reverse_sweep_ir(f, ez.Active, ez.Duplicated(x, np.zeros_like(x)))
    assert not any(f"{name}(" in reverse or f"{name}." in reverse for name in calls)


@ez.enzyme_jit
def _cos_only(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += np.cos(x[i] * x[i])
    return s


def test_cos_without_a_sibling_calls_sin_in_the_reverse_sweep():
    x = np.linspace(-2.0, 3.0, 7)
    check_reverse(_cos_only, (x,), (0,))
    reverse = _reverse_sweep_ir(_cos_only, ez.Active, ez.Duplicated(x, np.zeros_like(x)))
    assert "@llvm.sin" in reverse


@ez.enzyme_jit
def _norm2(v):
    return np.sqrt(v[0] * v[0] + v[1] * v[1])


@ez.enzyme_jit
def _row_norms(A, out):
    for i in range(A.shape[0]):
        out[i] = _norm2(A[i])  # a view of an argument per iteration, passed to a callee


def test_views_of_arguments_cost_no_reference_counting():
    A, out = np.random.default_rng(4).standard_normal((6, 2)), np.zeros(6)
    check_reverse(_row_norms, (A, out), (0, 1))
    dot_test(_row_norms, (A, out), (0, 1))
    text = ez.explain(
        _row_norms,
        ez.Const,
        ez.Duplicated(A, np.zeros_like(A)),
        ez.Duplicated(out, np.ones(6)),
        mode=ez.Reverse,
        print_=False,
    )
    assert "NRT_incref" not in text.split("; ---- derivative IR", 1)[1]


@ez.enzyme_jit
def _heat(u, kappa, steps):
    for _ in range(steps):
        u[1:-1] = u[1:-1] + kappa * (u[2:] - 2 * u[1:-1] + u[:-2])
    return 0.5 * np.sum(u * u)


def test_broadcasting_loops_keep_no_index_per_element():
    """Numba's array expressions index each operand with `select(broadcast, i, previous)`
    and copy with `umin(i, last)`: both follow from the loop's counter, so a step keeps
    only the Laplacian (for ∂/∂κ), one value per point."""
    u = np.random.default_rng(4).random(12)
    check_reverse(_heat, (u, 0.2, 3), (0, 1))
    dot_test(_heat, (u, 0.2, 3), (0, 1))
    n, steps = 1000, 10
    u = np.random.default_rng(5).random(n)
    ez.gradient(ez.Reverse, _heat, u, 0.2, steps)
    assert ez.last_tape_bytes() <= 10 * n * steps  # (it was 49 bytes per point and step)


@ez.enzyme_jit
def _sums(x, w):
    return np.sum(x) * x.sum() + np.sum(w * x)


def test_reductions_walking_arrays_keep_nothing_per_element():
    """`np.sum` and `.sum()` walk a pointer through the array: it follows from the loop's
    counter (and so does its shadow), so nothing is kept per element."""
    n = 10_000
    x, w = np.linspace(-1.0, 1.0, n), np.cos(np.arange(n))
    check_reverse(_sums, (x[:7], w[:7]), (0, 1))
    dot_test(_sums, (x[:7], w[:7]), (0, 1))
    ez.gradient(ez.Reverse, _sums, x, w)
    assert ez.last_tape_bytes() <= 1024


@ez.enzyme_jit
def _log_row_norms(x, w):
    """`sum(axis=1)`: Numba's callee walks a pointer through each row."""
    return np.sum(np.log((x * x).sum(axis=1)) * w)


def test_pointer_walking_a_row_keeps_nothing_per_element():
    """The shadow of a pointer stepping by a constant follows from the loop's counter (as an
    integer induction variable does) instead of being kept for each element."""
    rng = np.random.default_rng(5)
    x, w = rng.uniform(0.5, 1.5, (40, 30)), rng.standard_normal(40)
    check_reverse(_log_row_norms, (x, w), (0, 1))
    dot_test(_log_row_norms, (x, w), (0, 1))
    ez.gradient(ez.Reverse, _log_row_norms, x, w)
    assert ez.last_tape_bytes() < 2 * x.size  # (8 per element when the pointer was kept)


@ez.enzyme_jit
def _boundary(k, x):
    """`kr` joins a load of read-only `k` and a constant, decided by the counter: chosen
    again in the reverse sweep, on the side that loaded it (k[i + 1] is past the end at the
    last mass), not kept."""
    n = x.shape[0]
    s = 0.0
    for i in range(n):
        kr = k[i + 1] if i < n - 1 else 0.0
        s += kr * np.sin(x[i])
    return s


@ez.enzyme_jit
def _far(w, x):
    """The load on one side only would read far past `w` on the other (2^20 iterations, `w`
    of 8 elements): recomputing it unconditionally would fault."""
    m = w.shape[0]
    s = 0.0
    for i in range(x.shape[0]):
        v = w[i] if i < m else 1.0
        s += v * x[i] * x[i]
    return s


def test_a_phi_of_a_decided_join_is_recomputed_on_its_side():
    rng = np.random.default_rng(3)
    k, x = rng.uniform(0.5, 2.0, 6), rng.uniform(-1.0, 1.0, 6)
    check_reverse(_boundary, [k, x], [0, 1])
    dot_test(_boundary, [k, x], [0, 1])
    n = 10_000
    k, x, dk, dx = np.ones(n), np.linspace(-1, 1, n), np.zeros(n), np.zeros(n)
    ez.autodiff(ez.Reverse, _boundary, ez.Active, ez.Duplicated(k, dk), ez.Duplicated(x, dx))
    assert ez.last_tape_bytes() <= 8 * n + 64  # sin(x[i]) only
    w, x = rng.uniform(0.5, 2.0, 8), rng.uniform(-1.0, 1.0, 1 << 20)
    dw, dx = np.zeros(8), np.zeros(x.size)
    ez.autodiff(ez.Reverse, _far, ez.Active, ez.Duplicated(w, dw), ez.Duplicated(x, dx))
    assert ez.last_tape_bytes() == 0  # x and w loaded again, v chosen again
    v = np.ones(x.size)
    v[:8] = w
    np.testing.assert_allclose(dx, 2 * v * x, rtol=1e-14)
    np.testing.assert_allclose(dw, x[:8] ** 2, rtol=1e-14)
    check_reverse(_far, [w, x[:20]], [0, 1])


def _upwind(u0, nu, steps):
    """Burgers' equation, upwind by the sign of u[i]: a join per point whose predecessor's
    id goes to its place in the iteration's part of the room."""
    n = u0.shape[0]
    u = u0.copy()
    un = u0.copy()
    for _ in range(steps):
        for i in range(1, n - 1):
            if u[i] > 0.0:
                adv = u[i] * (u[i] - u[i - 1])
            else:
                adv = u[i] * (u[i + 1] - u[i])
            un[i] = u[i] - 0.01 * adv + nu * (u[i + 1] - 2.0 * u[i] + u[i - 1])
        u[:] = un
    return np.sum(u * u)


def _two_joins_and_a_break(x, y, limit):
    """Two joins in one iteration (nested and one after the other), a side leaving the loop,
    and a side reaching a block that is no join."""
    s = 0.0
    for i in range(x.shape[0]):
        if x[i] > 0.5:
            t = np.sin(x[i])
            if y[i] > 0.2:
                t = t * y[i]
        else:
            t = x[i] * x[i]
        if t > limit:
            break
        y[i] = t * y[i] if y[i] > 0.4 else t + y[i]
        s += t
    return s + np.sum(y)


def _break_beside_a_join(x, y, z, a, b):
    """A block whose successors are a join and the loop's exit (the other side stores, so
    LLVM keeps the branch): the exit's reverse must not pop the id the block wrote to the
    join's place."""
    s = 0.0
    for i in range(x.shape[0]):
        t = x[i]
        if t > a:
            if y[i] > b:
                break
        else:
            z[i] = t * y[i]
        s += t * z[i]
    return s


_XS, _YS = np.linspace(0.03, 0.96, 23), np.linspace(0.95, 0.05, 23)


@pytest.mark.parametrize(
    ("f", "args", "active"),
    [
        (_break_beside_a_join, (_XS, _YS, _XS + 0.5, 0.6, 0.3), (0, 1, 2)),
        (_break_beside_a_join, (_XS, _YS, _XS + 0.5, 0.6, 2.0), (0, 1, 2)),
        (_upwind, (0.5 + 0.3 * np.sin(np.linspace(-3.0, 3.0, 40)), 0.05, 6), (0, 1)),
        (_two_joins_and_a_break, (_XS, _YS, 0.8), (0, 1)),
        (_two_joins_and_a_break, (_XS, _YS, 9.0), (0, 1)),
    ],
    ids=[
        "break_beside_a_join",
        "no_break_beside_a_join",
        "upwind",
        "joins_and_break",
        "joins_no_break",
    ],
)
def test_a_loop_with_branches_keeps_the_ids_in_places(f, args, active, tmp_path):
    """The reverse sweep reads the id of the edge taken into each join from the iteration's
    place (no id popped in the loop), against central differences and by the dot test."""
    (diffe,) = (
        t for n, t in reverse_functions(f, args, active, tmp_path).items() if ".aliased" not in n
    )
    assert re.search(r"%pred\.id\d* = load i64, ptr %place", diffe)
    check_all(ez.enzyme_jit(f), list(args), list(active))


@numba.njit
def _sum_of_sines(v, k):
    r = 0.0
    for i in range(k):
        r += np.sin(v[(i + 2) % v.shape[0]] ** 3)
    return r


@ez.enzyme_jit
def _return_beside_an_inner_loop(x, y, a, n, stop):
    m = x.shape[0]
    s = 0.0
    w = np.empty(m)
    for i in range(4):
        x[:] = y * x
        t = y * 2.0
        w[:] = x * 0.5
        for _ in range(min(int(2.5 + 2.0 * np.tanh(_sum_of_sines(w, n))), m)):
            if i == stop:  # LLVM unswitches it: the inner loop's preheader may return
                return (s + t[1]) * w[2]
            s -= (w[i + 1] if i + 1 < m else 2.0) * a
    return s


@pytest.mark.parametrize("stop", [0, 2, 9])
def test_a_preheader_that_returns_instead_of_entering_its_loop(stop):
    """The room a loop's values take on the tape is taken only when the loop is entered
    (it was taken before the unswitched branch, never given back, and the reverse sweep
    read shadow pointers from the wrong cells: a segfault found by the property programs)."""
    rng = np.random.default_rng(stop)
    x, y = rng.uniform(0.5, 1.0, 11), rng.uniform(0.8, 1.1, 11)
    check_all(_return_beside_an_inner_loop, [x, y, 1.1, 8, stop], [0, 1, 2])
