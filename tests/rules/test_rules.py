"""Every float rule of the table, checked against finite differences in both modes.

Parametrized over `llvm_passes.rules.RULES`: a registered smooth / linear / zero rule needs
an entry in `rule_inputs.INPUTS` (or fails `test_every_rule_has_inputs`). Each entry's
hand-written function is differentiated three ways and compared with central differences
(Richardson-extrapolated, taken in double):
- `test_tangent`: the rule's tangent alone, through the straight-line driver, one operand
  active at a time and all together along a fixed direction;
- `test_adjoint`: the rule's adjoint alone, seeded with a non-unit adjoint;
- `test_engine_forward`: the forward synthesizer `llvm_passes.forward` (skipped if absent).
float32 variants run the rule in float at float-rounded points against the double reference.
"""

from __future__ import annotations

import ctypes
import functools
import math

import pytest

from llvm_passes.ir import parse_module
from llvm_passes.rules import RULES

from .rule_driver import CTYPES, Jit, adjoint_module, call_with_out, forward_wrapper
from .rule_driver import tangent_module as tangent_text
from .rule_inputs import INPUTS, NOT_FLOAT_MATH

FLOAT_KINDS = ("smooth", "linear", "zero")
CASES = [(k, p) for k in sorted(INPUTS) for p in INPUTS[k].precisions]
IDS = [f"{k}-{p}" for k, p in CASES]
DIRECTION = (0.6, -1.1, 0.35)
SEED = 0.75
ATOL = {"double": 1e-10, "float": 1e-5}


def test_every_rule_has_inputs():
    missing = sorted(
        k
        for k, r in RULES.items()
        if r.kind in FLOAT_KINDS
        and k not in INPUTS
        and k not in NOT_FLOAT_MATH
        and not k.startswith("_ZN")  # users' rules on jitted functions, from other tests
    )
    assert not missing, (
        f"rules without test inputs: {missing}; add a function applying each to "
        "tests/rules/rule_inputs.py INPUTS (or, for a non-float rule, to NOT_FLOAT_MATH)"
    )
    stale = sorted(k for k in INPUTS if k not in RULES)
    assert not stale, f"test inputs for unregistered keys: {stale}"


def test_every_rule_has_a_formula():
    assert not [k for k, r in RULES.items() if not r.formula], "rules need a docstring"


# ---- references --------------------------------------------------------------------------
@functools.cache
def _primal(key: str, prec: str, reference: bool = False):
    case = INPUTS[key]
    jit = Jit(case.text(prec, reference))
    ct = CTYPES[prec]
    return jit, jit.fn("f", [ct] * case.n, ct)


def _round(prec: str, point) -> tuple[float, ...]:
    ct = CTYPES[prec]
    return tuple(ct(v).value for v in point)


def fd_gradient(key: str, point) -> list[float]:
    """∂f/∂x_i by central differences on the double reference, one Richardson step."""
    _, f = _primal(key, "double", reference=True)
    grad = []
    for i in range(len(point)):

        def d(h, i=i):
            hi = list(point)
            lo = list(point)
            hi[i] += h
            lo[i] -= h
            return (f(*hi) - f(*lo)) / (2 * h)

        h = 1e-4 * (1 + abs(point[i]))
        grad.append((4 * d(h / 2) - d(h)) / 3)
    return grad


def assert_close(actual, expected, prec, rtol, what):
    scale = max(abs(e) for e in expected) if expected else 0.0
    for a, e in zip(actual, expected, strict=True):
        tol = ATOL[prec] + rtol * (abs(e) + scale)
        assert abs(a - e) <= tol, f"{what}: got {actual}, expected {expected}"


def _points(key, prec):
    return [_round(prec, p) for p in INPUTS[key].points]


# ---- the hand-written primals ------------------------------------------------------------
@pytest.mark.parametrize("key,prec", CASES, ids=IDS)
def test_primal_compiles_and_fd_is_finite(key, prec):
    _, f = _primal(key, prec)
    for p in _points(key, prec):
        assert math.isfinite(f(*p))
        assert all(math.isfinite(g) for g in fd_gradient(key, p))


# ---- the rules alone ---------------------------------------------------------------------
@functools.cache
def _tangent_fn(key, prec, active):
    case = INPUTS[key]
    jit = Jit(tangent_text(case.text(prec), "f", active))
    n_tan = sum(active)
    return jit, jit.fn("tan_f", [CTYPES[prec]] * (case.n + n_tan) + [ctypes.c_void_p])


@pytest.mark.parametrize("key,prec", CASES, ids=IDS)
def test_tangent(key, prec):
    case = INPUTS[key]
    n, ct, rtol = case.n, CTYPES[prec], case.rtol[prec]
    for p in _points(key, prec):
        grad = fd_gradient(key, p)
        for i in range(n):  # one operand active, the others without tangent
            active = tuple(k == i for k in range(n))
            _, fn = _tangent_fn(key, prec, active)
            prim, tan = call_with_out(fn, ct, [*p, 1.0], 2)
            assert_close([tan], [grad[i]], prec, rtol, f"{key} ∂/∂arg{i} at {p}")
        _, fn = _tangent_fn(key, prec, (True,) * n)
        u = DIRECTION[:n]
        prim, tan = call_with_out(fn, ct, [*p, *u], 2)
        expected = sum(g * d for g, d in zip(grad, u, strict=True))
        assert_close([tan], [expected], prec, rtol, f"{key} along {u} at {p}")
        _, f = _primal(key, prec)
        assert prim == f(*p), "the driver changed the primal"


@pytest.mark.parametrize("key,prec", CASES, ids=IDS)
def test_adjoint(key, prec):
    case = INPUTS[key]
    ct = CTYPES[prec]
    jit = Jit(adjoint_module(case.text(prec), "f"))
    fn = jit.fn("adj_f", [ct] * (case.n + 1) + [ctypes.c_void_p])
    for p in _points(key, prec):
        got = call_with_out(fn, ct, [*p, SEED], case.n + 1)[1:]
        expected = [SEED * g for g in fd_gradient(key, p)]
        assert_close(got, expected, prec, case.rtol[prec], f"{key} adjoint at {p}")


# ---- the forward synthesizer -------------------------------------------------------------
@pytest.mark.parametrize("key,prec", CASES, ids=IDS)
def test_engine_forward(key, prec):
    llvm_passes = pytest.importorskip("llvm_passes")
    forward = getattr(llvm_passes, "forward", None)
    if forward is None:
        pytest.skip("llvm_passes.forward not available yet")
    case = INPUTS[key]
    n, ct = case.n, CTYPES[prec]
    res = forward(case.text(prec), "f", [llvm_passes.Activity.DUP] * n)
    assert res.fn_name == "fwddiffe_f"
    ret = parse_module(res.module_text).get("fwddiffe_f").ret_type
    assert str(ret) == f"{{ {prec}, {prec} }}", (
        f"fwddiffe_f returns {ret}: a float return gives {{T, T}} (primal, tangent), "
        "also when the tangent is zero (docs/architecture.md)"
    )
    jit = Jit(res.module_text + "\n" + forward_wrapper("f", prec, n))
    fn = jit.fn("call_fwd", [ct] * (2 * n) + [ctypes.c_void_p])
    units = [tuple(float(k == i) for k in range(n)) for i in range(n)]
    for p in _points(key, prec):
        grad = fd_gradient(key, p)
        for u in [*units, DIRECTION[:n]]:
            _, tan = call_with_out(fn, ct, [*p, *u], 2)
            expected = sum(g * d for g, d in zip(grad, u, strict=True))
            assert_close([tan], [expected], prec, case.rtol[prec], f"{key} along {u} at {p}")
