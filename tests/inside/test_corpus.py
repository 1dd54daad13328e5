"""``ez.autodiff`` called inside Numba code, on functions of the corpus: the same tangents,
adjoints, shadows and primals as the Python API computes (on independent copies), the
forward tangents against central finite differences of the whole map, and forward against
reverse (both inside Numba) by the dot-product test."""

import corpus
import harness
import numba
import numpy as np
import pytest

import enzpy as ez

from .calls import annotations, forward_kinds, inside_call, reverse_kinds, values

IDS = [
    "arith_scalars",  # float scalars: Duplicated (forward), Active (reverse)
    "nested_loops_2d_c",  # 2-D, three arrays, mutation
    "transposed_arg",  # F layout
    "strided_view_arg",  # a strided view (layout A)
    "calls_jit_functions",  # callees, an active scalar
    "int_count",  # a plain int
    "float32_scalar",
    "returns_tuple",  # tuple return (forward), Const return (reverse), a Const array
]
CASES = {c.id: c for c in corpus.CASES if c.id in IDS}


def _same(a, b, what):
    """In-Numba and Python-API results: the same structure and (to rounding) values."""
    if b is None or isinstance(b, tuple):
        assert type(a) is type(b), f"{what}: {a!r} vs {b!r}"
        for k, (x, y) in enumerate(zip(a or (), b or (), strict=True)):
            _same(x, y, f"{what}[{k}]")
        return
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=what)


@pytest.mark.parametrize("cid", IDS)
def test_forward_inside_matches_python_api_and_fd(cid):
    case = CASES[cid]
    args, active = case.args(), case.active
    tol = {**harness.default_tols(args, active), **case.tols()}
    kinds = forward_kinds(args, active)
    rng = np.random.default_rng(7)
    tangents = {k: harness.random_like(args[k], rng) for k in active}

    runs = []
    for inside in (True, False):
        prim = harness.clone_args(args)
        sh = {k: harness.clone(t) for k, t in tangents.items()}
        if inside:
            res = inside_call("ForwardWithPrimal", case.fn, kinds)(*values(prim, sh, kinds))
        else:
            res = ez.autodiff(ez.ForwardWithPrimal, case.fn, *annotations(prim, sh, kinds))
        runs.append((res, prim, sh))
    (dz, z), prim, sh = runs[0]
    _same(runs[0][0], runs[1][0], "(tangent, primal)")
    for k in sh:
        if harness.is_float_array(args[k]):
            _same(sh[k], runs[1][2][k], f"shadow {k}")
    for k, a in enumerate(prim):
        if isinstance(a, np.ndarray):
            _same(a, runs[1][1][k], f"primal {k} after")

    arrays, ret = harness.fd_jvp(case.fn, args, active, tangents)
    if harness.ret_flatten(z).size:
        harness.assert_close(
            harness.ret_flatten(dz),
            harness.ret_flatten(ret),
            tol["rtol"],
            tol["atol"],
            "tangent vs FD",
        )
    for k, fd in arrays.items():
        if k in active:
            harness.assert_close(sh[k], fd, tol["rtol"], tol["atol"], f"shadow {k} vs FD")


@pytest.mark.parametrize("cid", IDS)
def test_reverse_inside_matches_python_api_and_dot_test(cid):
    case = CASES[cid]
    args, active = case.args(), case.active
    tol = {**harness.default_tols(args, active), **case.tols()}
    spec = harness.whole_map(case.fn, args, active).spec
    ret_act, zbar = harness.reverse_return_activity(spec)
    kinds = reverse_kinds(args, active)
    rng = np.random.default_rng(11)
    u = {k: harness.random_like(args[k], rng) for k in active}
    v = {k: harness.random_like(args[k], rng) for k in active if harness.is_float_array(args[k])}

    runs = []
    for inside in (True, False):
        prim = harness.clone_args(args)
        sh = {k: harness.clone(s) for k, s in v.items()}
        if inside:
            call = inside_call("ReverseWithPrimal", case.fn, kinds, ret_act.__name__)
            res = call(*values(prim, sh, kinds))
        else:
            res = ez.autodiff(ez.ReverseWithPrimal, case.fn, ret_act, *annotations(prim, sh, kinds))
        runs.append((res, sh))
    (adj, _), sh = runs[0]
    _same(runs[0][0], runs[1][0], "(adjoints, primal)")
    for k in sh:
        _same(sh[k], runs[1][1][k], f"shadow {k}")
    assert len(adj) == len(args)
    assert all((a is None) == (kinds[k] != "active") for k, a in enumerate(adj))

    # <v, J u> (forward inside Numba) == <J^T v, u> (reverse inside Numba)
    prim = harness.clone_args(args)
    fsh = {k: harness.clone(t) for k, t in u.items()}
    fkinds = forward_kinds(args, active)
    dz = inside_call("Forward", case.fn, fkinds)(*values(prim, fsh, fkinds))
    lhs = sum(float(np.vdot(v[k], fsh[k])) for k in v)
    if spec == "f":
        lhs += zbar * float(dz)
    rhs = sum(float(np.vdot(sh[k] if k in sh else adj[k], u[k])) for k in active)
    scale = max(abs(lhs), abs(rhs), 1.0)
    assert abs(lhs - rhs) <= tol["dot_rtol"] * scale, (lhs, rhs)


@numba.njit
def _call_with(m, f, x, dx):
    return ez.autodiff(m, f, ez.Duplicated(x, dx))


@pytest.mark.parametrize("mode", ["ForwardWithPrimal", "Reverse"])
def test_mode_and_function_passed_in_as_arguments(mode):
    m, f, x = getattr(ez, mode), corpus.sum_method, np.linspace(-1.0, 1.0, 7)
    d_in = harness.random_like(x, np.random.default_rng(3))
    d_py = d_in.copy()
    _same(_call_with(m, f, x.copy(), d_in), ez.autodiff(m, f, ez.Duplicated(x.copy(), d_py)), mode)
    _same(d_in, d_py, "shadow")
