"""Strong zero: a zero tangent or adjoint contributes exactly zero, also where a partial is
infinite or NaN (sqrt at 0, a quotient by 0, an overflowed exponential, log at 0...).

Parametrized over every smooth rule of the table whose `strong_zero` is on (all but the
product): at its sample points and at its edge points (`EDGES`), a zero seed must give an
exact 0.0, never NaN. Where a partial is 0/0 the table picks a value (`CONVENTIONS`):
checked here too, against the one-sided limit along the axes.
"""

from __future__ import annotations

import ctypes
import math

import pytest

from llvm_passes.rules import RULES

from .rule_driver import CTYPES, Jit, adjoint_module, call_with_out
from .rule_inputs import INPUTS
from .test_rules import _tangent_fn

# points where a partial may be infinite or NaN, or the primal overflow: per rule family
_EDGE = {
    "sqrt": ((0.0,),),
    "cbrt": ((0.0,),),
    "asin": ((1.0,), (-1.0,)),
    "acos": ((1.0,), (-1.0,)),
    "acosh": ((1.0,),),
    "atanh": ((1.0,),),
    "log": ((0.0,),),
    "log2": ((0.0,),),
    "log10": ((0.0,),),
    "log1p": ((-1.0,),),
    "exp": ((800.0,),),
    "exp2": ((2000.0,),),
    "exp10": ((400.0,),),
    "expm1": ((800.0,),),
    "sinh": ((800.0,),),
    "cosh": ((800.0,),),
    "tan": ((math.pi / 2,),),
    "pow": ((0.0, 0.5), (0.0, 0.0), (0.0, 2.0), (1e300, 2.0)),
    "atan2": ((0.0, 0.0),),
    "hypot": ((0.0, 0.0),),
    "fdiv": ((1.0, 0.0), (0.0, 0.0)),
    "frem": ((1.0, 0.0),),
    "fmod": ((1.0, 0.0),),
    "lgamma": ((0.0,), (-2.0,)),
    "tgamma": ((0.0,), (-2.0,), (200.0,)),
    "gamma": ((0.0,),),
    "powi": ((0.0, 0.0),),
}


def _family(key: str) -> str:
    name = key.removeprefix("llvm.").removeprefix("numba_")
    return name[:-1] if name.endswith("f") and name[:-1] in _EDGE else name


STRONG = sorted(k for k, r in RULES.items() if r.strong_zero and k in INPUTS)
CASES = [(k, p) for k in STRONG for p in INPUTS[k].precisions]


def _points(key: str) -> list[tuple[float, ...]]:
    return [*INPUTS[key].points, *_EDGE.get(_family(key), ())]


def test_only_the_product_opts_out():
    """Every smooth rule but the product, whose partials are finite wherever its operands
    are, has strong zero."""
    assert sorted(k for k, r in RULES.items() if r.kind == "smooth" and not r.strong_zero) == [
        "fmul"
    ]


@pytest.mark.parametrize("key,prec", CASES, ids=[f"{k}-{p}" for k, p in CASES])
def test_zero_seed_gives_exact_zero(key, prec):
    case = INPUTS[key]
    ct = CTYPES[prec]
    jit = Jit(adjoint_module(case.text(prec), "f"))
    adj = jit.fn("adj_f", [ct] * (case.n + 1) + [ctypes.c_void_p])
    for p in _points(key):
        got = call_with_out(adj, ct, [*p, 0.0], case.n + 1)[1:]
        assert got == [0.0] * case.n, f"{key} adjoint with a zero seed at {p}: {got}"
        _, tan = _tangent_fn(key, prec, (True,) * case.n)
        _, t = call_with_out(tan, ct, [*p, *[0.0] * case.n], 2)
        assert t == 0.0, f"{key} tangent with zero tangents at {p}: {t}"


# (rule, point, ∂f/∂x_i at the point): where a partial has the form 0/0 or 0 · ∞
CONVENTIONS = [
    ("llvm.pow", (0.0, 0.0), (0.0, 0.0)),  # x^0 = 1 for every x; 0^y = 0 for y > 0 (JAX's)
    ("pow", (2.0, 0.0), (0.0, math.log(2.0))),
    ("pow", (0.0, 2.0), (0.0, 0.0)),
    ("llvm.atan2", (0.0, 0.0), (0.0, 0.0)),
    ("hypot", (0.0, 0.0), (0.0, 0.0)),
]


@pytest.mark.parametrize("key,point,expected", CONVENTIONS)
def test_conventions_where_partials_are_undefined(key, point, expected):
    case = INPUTS[key]
    ct = CTYPES["double"]
    jit = Jit(adjoint_module(case.text("double"), "f"))  # alive while its code runs
    adj = jit.fn("adj_f", [ct] * (case.n + 1) + [ctypes.c_void_p])
    got = call_with_out(adj, ct, [*point, 1.0], case.n + 1)[1:]
    assert got == list(expected)


def test_powi_zero_exponent():
    """d x^0 = 0, also at x = 0 (not 0 · 0^-1)."""
    text = (
        "define double @f(double %x) {\nentry:\n"
        "  %r = call double @llvm.powi.f64.i32(double %x, i32 0)\n  ret double %r\n}\n"
        "declare double @llvm.powi.f64.i32(double, i32)\n"
    )
    ct = CTYPES["double"]
    jit = Jit(adjoint_module(text, "f"))
    adj = jit.fn("adj_f", [ct, ct, ctypes.c_void_p])
    assert call_with_out(adj, ct, [0.0, 1.0], 2)[1:] == [0.0]
