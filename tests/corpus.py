"""The derivative-test corpus: functions under ``@ez.enzyme_jit`` with seeded inputs.

Each ``Case`` has a stable ``id`` (used for pytest parametrization), the jitted function,
an input generator ``make(rng) -> tuple of args``, the indices of the active arguments
(float arrays become ``Duplicated``, float scalars ``Duplicated``/``Active``; everything
else ``Const``, ints passed plainly), optional tolerance overrides and tags.

Inputs stay inside each function's domain (log > 0, acosh > 1, ...) and at least ~1e-2
away from kinks (abs, min/max, floor, %, branch switches, changes of a trip count), so
central finite differences of the whole map are valid.  float32 cases are dtype-generic so
the harness can take finite differences on a float64 run of ``py_func``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np

import enzpy as ez


@dataclass(frozen=True)
class Case:
    id: str
    fn: Any
    make: Callable[[np.random.Generator], tuple]
    active: tuple[int, ...]
    tags: frozenset[str] = field(default_factory=frozenset)
    rtol: float | None = None
    atol: float | None = None
    seed: int = 0

    def args(self) -> tuple:
        return tuple(self.make(np.random.default_rng(self.seed)))

    def tols(self) -> dict:
        out = {}
        if self.rtol is not None:
            out["rtol"] = self.rtol
        if self.atol is not None:
            out["atol"] = self.atol
        return out


CASES: list[Case] = []


def case(id: str, make, active, tags=(), rtol=None, atol=None, seed=0):
    """Decorator registering an already-jitted function as a corpus case."""

    def reg(fn):
        s = zlib.crc32(id.encode()) + seed
        CASES.append(Case(id, fn, make, tuple(active), frozenset(tags), rtol, atol, seed=s))
        return fn

    return reg


def U(rng, lo, hi, n=None):
    return rng.uniform(lo, hi, n)


def away_from_zero(rng, n, lo=0.2, hi=1.5):
    return rng.uniform(lo, hi, n) * rng.choice([-1.0, 1.0], n)


# =========================================================================== scalar rules


@case("arith_scalars", lambda r: (U(r, 0.5, 2.0), U(r, 0.5, 2.0)), (0, 1), {"scalar", "arith"})
@ez.enzyme_jit
def arith_scalars(a, b):
    return (a + b) * (a - b) / (b * b + 1.0) - (-a) * 2.0 + a / b


@case(
    "frem_scalars",
    lambda r: (2.3 + U(r, -0.03, 0.03), 0.9 + U(r, -0.02, 0.02)),
    (0, 1),
    {"scalar", "arith", "frem"},
)
@ez.enzyme_jit
def frem_scalars(a, b):
    return a % b + a * (a % 0.7) - (b % 0.4)


@case("trig", lambda r: (U(r, -1.0, 1.0, 7),), (0,), {"math", "loop"})
@ez.enzyme_jit
def trig(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += math.sin(x[i]) * math.cos(x[i]) + math.tan(x[i])
    return s


@case("exps", lambda r: (U(r, -1.0, 1.0, 6),), (0,), {"math", "loop"})
@ez.enzyme_jit
def exps(x):
    s = 0.0
    for i in range(x.size):
        s += math.exp(x[i]) + math.exp2(x[i]) * 0.5 + math.expm1(x[i])
    return s


@case("logs", lambda r: (U(r, 0.5, 2.0, 6),), (0,), {"math", "loop"})
@ez.enzyme_jit
def logs(x):
    s = 0.0
    for i in range(x.size):
        s += math.log(x[i]) + math.log2(x[i]) + math.log10(x[i]) + math.log1p(x[i])
    return s


@case("powers", lambda r: (U(r, 0.5, 2.0, 5), 1.3 + U(r, -0.1, 0.1)), (0, 1), {"math", "pow"})
@ez.enzyme_jit
def powers(x, p):
    s = 0.0
    for i in range(x.size):
        v = x[i]
        s += math.sqrt(v) + v**2 + v**2.5 + v**p + math.pow(v, 1.5) + p**v
    return s


@case("powi_int_exponent", lambda r: (U(r, 0.5, 1.5, 5), 3), (0,), {"math", "pow", "int"})
@ez.enzyme_jit
def powi_int_exponent(x, n):
    s = 0.0
    for i in range(x.size):
        s += x[i] ** n + x[i] ** -2
    return s


@case("abs_fabs_neg", lambda r: (away_from_zero(r, 6),), (0,), {"math", "abs", "kink"})
@ez.enzyme_jit
def abs_fabs_neg(x):
    s = 0.0
    for i in range(x.size):
        s += math.fabs(x[i]) * x[i] + abs(x[i]) - (-x[i]) * 0.5
    return s


def _minmax_inputs(r):
    x = U(r, -1.0, 1.0, 6)
    y = x + away_from_zero(r, 6, 0.1, 0.5)
    return x, y


@case("min_max", _minmax_inputs, (0, 1), {"math", "minmax", "kink"})
@ez.enzyme_jit
def min_max(x, y):
    s = 0.0
    for i in range(x.size):
        s += min(x[i], y[i]) * 2.0 + max(x[i], y[i]) ** 2
    return s


@case("copysign", lambda r: (away_from_zero(r, 5), away_from_zero(r, 5)), (0, 1), {"math"})
@ez.enzyme_jit
def copysign(x, y):
    s = 0.0
    for i in range(x.size):
        s += math.copysign(x[i], y[i]) * x[i] + math.copysign(2.0, y[i]) * y[i]
    return s


def _rounding_inputs(r):
    # fractional parts in [0.15, 0.35]: away from the kinks of floor/ceil/trunc/round
    return (r.integers(-3, 4, 6) + U(r, 0.15, 0.35, 6),)


@case("rounding", _rounding_inputs, (0,), {"math", "int", "kink"})
@ez.enzyme_jit
def rounding(x):
    s = 0.0
    for i in range(x.size):
        v = x[i]
        s += math.floor(v) * v + math.ceil(v) * v * v + math.trunc(v) + round(v) * 3.0 * v
        s += v - math.floor(v) + np.floor(v) * np.ceil(v) * v
    return s


@case("hyperbolic", lambda r: (U(r, -1.5, 1.5, 6),), (0,), {"math"})
@ez.enzyme_jit
def hyperbolic(x):
    s = 0.0
    for i in range(x.size):
        s += math.tanh(x[i]) + math.sinh(x[i]) * 0.5 + math.cosh(x[i])
    return s


@case("inverse_trig", lambda r: (U(r, -0.8, 0.8, 6),), (0,), {"math"})
@ez.enzyme_jit
def inverse_trig(x):
    s = 0.0
    for i in range(x.size):
        s += math.asin(x[i]) + math.acos(x[i]) * x[i] + math.atan(3.0 * x[i])
    return s


@case("inverse_hyperbolic", lambda r: (U(r, -0.9, 0.9, 6),), (0,), {"math"})
@ez.enzyme_jit
def inverse_hyperbolic(x):
    s = 0.0
    for i in range(x.size):
        s += math.asinh(2.0 * x[i]) + math.acosh(1.5 + x[i] * x[i]) + math.atanh(0.9 * x[i])
    return s


@case(
    "atan2_hypot",
    lambda r: (away_from_zero(r, 5, 0.3, 2.0), away_from_zero(r, 5, 0.3, 2.0)),
    (0, 1),
    {"math"},
)
@ez.enzyme_jit
def atan2_hypot(x, y):
    s = 0.0
    for i in range(x.size):
        s += math.atan2(y[i], x[i]) + math.hypot(x[i], y[i])
    return s


@case("special", lambda r: (U(r, 0.6, 2.5, 6),), (0,), {"math", "special"})
@ez.enzyme_jit
def special(x):
    s = 0.0
    for i in range(x.size):
        s += math.erf(x[i] - 1.0) + math.erfc(0.5 * x[i]) + math.lgamma(x[i])
    return s


@case("cbrt", lambda r: (away_from_zero(r, 5, 0.3, 3.0),), (0,), {"math", "ufunc"})
@ez.enzyme_jit
def cbrt(x):
    s = 0.0
    for i in range(x.size):
        s += np.cbrt(x[i]) * x[i]
    return s


@case("np_ufuncs_on_scalars", lambda r: (U(r, 0.5, 1.5, 6),), (0,), {"ufunc", "math"})
@ez.enzyme_jit
def np_ufuncs_on_scalars(x):
    s = 0.0
    for i in range(x.size):
        v = x[i]
        s += np.sin(v) + np.exp(v) * np.cos(v) + np.log(v) + np.sqrt(v) + np.tanh(v)
        s += np.arctan(v) + np.power(v, 1.7) + np.expm1(v) + np.log1p(v) + np.square(v)
    return s


# =========================================================================== control flow


def _matrix_inputs(r, order="C"):
    A = np.asarray(U(r, -1.0, 1.0, (4, 3)), order=order)
    return A, U(r, -1.0, 1.0, 3), np.zeros(4)


@case("nested_loops_2d_c", _matrix_inputs, (0, 1, 2), {"loop", "nested", "2d", "mutation"})
@ez.enzyme_jit
def nested_loops_2d_c(A, x, y):
    m, n = A.shape
    for i in range(m):
        acc = 0.0
        for j in range(n):
            acc += A[i, j] * x[j]
        y[i] = acc
    s = 0.0
    for i in range(m):
        s += y[i] * y[i]
    return s


@case("nested_loops_2d_f", lambda r: _matrix_inputs(r, "F")[:2], (0, 1), {"loop", "2d", "forder"})
@ez.enzyme_jit
def nested_loops_2d_f(A, x):
    m, n = A.shape
    y = np.zeros(m)
    for j in range(n):
        for i in range(m):
            y[i] += A[i, j] * math.sin(x[j])
    s = 0.0
    for i in range(m):
        s += y[i] ** 2
    return s


def _branch_inputs(r):
    x = away_from_zero(r, 8, 0.1, 1.5)
    x[np.abs(np.abs(x) - 1.0) < 0.05] *= 0.8  # keep off the x == -1 switch
    return (x,)


@case("branches", _branch_inputs, (0,), {"branch", "loop"})
@ez.enzyme_jit
def branches(x):
    s = 0.0
    for i in range(x.size):
        if x[i] > 0.0:
            s += x[i] * x[i]
        elif x[i] < -1.0:
            s += math.exp(x[i])
        else:
            s -= math.sin(x[i]) * s
    return s


@case(
    "select_compare",
    lambda r: (away_from_zero(r, 6, 0.1, 1.0), U(r, -1.0, 1.0, 6)),
    (0, 1),
    {"branch", "select"},
)
@ez.enzyme_jit
def select_compare(x, y):
    s = 0.0
    for i in range(x.size):
        t = x[i] if x[i] > 0.0 else y[i] * 2.0
        s += t + (x[i] > 0.0) * x[i] * y[i] + (x[i] < 0.0) * x[i]
    return s


@case("newton_while", lambda r: (U(r, 0.5, 4.0, 5),), (0,), {"while", "datadep"})
@ez.enzyme_jit
def newton_while(a):
    """Cube roots by Newton iteration until the step is below 1e-13 (data-dependent count)."""
    s = 0.0
    for i in range(a.size):
        y = a[i]
        it = 0
        while it < 100:
            d = (y * y * y - a[i]) / (3.0 * y * y)
            y -= d
            it += 1
            if abs(d) < 1e-13 * abs(y):
                break
        s += y * (i + 1)
    return s


def _early_return_inputs(r):
    x = U(r, -1.0, 0.5, 8)
    x[5] = 2.0 + U(r, 0.0, 0.5)  # the first element above the threshold
    return (x,)


@case("early_return", _early_return_inputs, (0,), {"branch", "early-return"})
@ez.enzyme_jit
def early_return(x):
    s = 0.0
    for i in range(x.size):
        if x[i] > 1.0:
            return s * x[i]
        s += math.cos(x[i]) * x[i]
    return s


def _break_inputs(r):
    while True:
        x = U(r, 0.2, 1.0, 10)
        ps = np.cumsum(x * x)
        if ps[-1] > 3.3 and np.min(np.abs(ps - 3.0)) > 0.05:
            return (x,)


@case("loop_break", _break_inputs, (0,), {"loop", "break", "datadep"})
@ez.enzyme_jit
def loop_break(x):
    s = 0.0
    k = 0
    for i in range(x.size):
        s += x[i] * x[i]
        k = i
        if s > 3.0:
            break
    return s * x[k]


@case("while_datadep", _break_inputs, (0,), {"while", "datadep"})
@ez.enzyme_jit
def while_datadep(x):
    s = 0.0
    i = 0
    while s < 3.0 and i < x.size:
        s += x[i] * x[i]
        i += 1
    return s + math.sqrt(s)


@case(
    "division_unswitched",
    lambda r: (U(r, 0.1, 1.0, 7), 0.8 + U(r, -0.1, 0.1)),
    (0, 1),
    {"loop", "nested", "freeze"},
)
@ez.enzyme_jit
def division_unswitched(x, a):
    # LLVM unswitches the ZeroDivisionError check out of the loop: `freeze double %a`
    s = 0.0
    for i in range(x.shape[0]):
        for j in range(i % 3):
            s += x[i] / a + j
    return s


def _pick_inputs(r):
    return U(r, 0.1, 1.0, 7), U(r, 1.0, 2.0, 7), U(r, 0.5, 1.5, 7)


@case("local_or_argument", _pick_inputs, (0, 1), {"branch", "merge", "alloc"})
@ez.enzyme_jit
def local_or_argument(x, c, w):
    # LLVM loads through `select(x[i] > 0.5, tmp, c)`: memory without derivative and with
    tmp = np.zeros(x.shape[0])
    s = 0.0
    for i in range(x.shape[0]):
        if x[i] > 0.5:
            s += tmp[i] * x[i]
        else:
            s += c[i] * x[i]
    return s


@case("const_or_duplicated", _pick_inputs, (0, 2), {"branch", "merge", "mutation"})
@ez.enzyme_jit
def const_or_duplicated(x, c, w):
    s = 0.0
    for i in range(x.shape[0]):
        a = c if x[i] > 0.5 else w  # c is Const: loads give 0, writes stay primal
        s += a[i] * x[i]
        a[i] = a[i] * 0.5
    return s


# =========================================================================== mutation


@case(
    "mutate_mul",
    lambda r: (U(r, -1.0, 1.0, 6), U(r, -1.0, 1.0, 6)),
    (0, 1),
    {"mutation", "no-return"},
)
@ez.enzyme_jit
def mutate_mul(x, y):
    for i in range(x.size):
        x[i] = x[i] * y[i]


@case("mutate_twice", lambda r: (U(r, -1.0, 1.0, 6),), (0,), {"mutation", "overwrite"})
@ez.enzyme_jit
def mutate_twice(x):
    n = x.size
    for i in range(n):
        x[i] = math.sin(x[i])
        x[i] = x[i] * x[i] + 0.5 * x[(i + 1) % n]
    return x[0] + x[n - 1]


@case("recurrence_inplace", lambda r: (U(r, -0.8, 0.8, 7),), (0,), {"mutation", "loop"})
@ez.enzyme_jit
def recurrence_inplace(x):
    for i in range(1, x.size):
        x[i] = x[i] + 0.5 * x[i - 1] ** 2
    return x[x.size - 1]


@case(
    "mutate_with_const_input",
    lambda r: (U(r, -1.0, 1.0, 5), U(r, -1.0, 1.0, 5), 0.7),
    (0,),
    {"mutation", "const"},
)
@ez.enzyme_jit
def mutate_with_const_input(x, c, k):
    """c (array) and k (float) are Const: only x carries derivatives."""
    s = 0.0
    for i in range(x.size):
        x[i] = x[i] * c[i] + k * x[i] ** 2
        s += x[i] * k
    return s


# =========================================================================== layouts, views


def _strided_inputs(r):
    base = U(r, -1.0, 1.0, 12)
    return (base[::2],)


@case("strided_view_arg", _strided_inputs, (0,), {"strided", "mutation"})
@ez.enzyme_jit
def strided_view_arg(v):
    s = 0.0
    for i in range(v.size):
        s += math.sin(v[i])
        v[i] = v[i] * 2.0 + s
    return s


@case("strided_view_inside", lambda r: (U(r, -1.0, 1.0, 10),), (0,), {"strided", "mutation"})
@ez.enzyme_jit
def strided_view_inside(x):
    v = x[::2]
    for i in range(v.size):
        v[i] = v[i] ** 2 + 1.0
    s = 0.0
    for i in range(x.size):
        s += x[i] * (i + 1)
    return s


def _transposed_inputs(r):
    B = U(r, -1.0, 1.0, (3, 4))
    return (B.T,)  # F-contiguous view


@case("transposed_arg", _transposed_inputs, (0,), {"2d", "strided", "forder", "mutation"})
@ez.enzyme_jit
def transposed_arg(A):
    m, n = A.shape
    s = 0.0
    for i in range(m):
        for j in range(n):
            s += A[i, j] * math.cos(A[i, j]) * (i - j)
            A[i, j] = A[i, j] * s
    return s


@case("transpose_inside", lambda r: (U(r, -1.0, 1.0, (3, 4)),), (0,), {"2d", "strided"})
@ez.enzyme_jit
def transpose_inside(A):
    T = A.T
    s = 0.0
    for i in range(T.shape[0]):
        for j in range(T.shape[1]):
            s += T[i, j] * T[i, j] * (i + 2 * j + 1)
    return s


# =========================================================================== allocation


@case("local_arrays", lambda r: (U(r, -1.0, 1.0, 6),), (0,), {"alloc", "loop"})
@ez.enzyme_jit
def local_arrays(x):
    n = x.size
    a = np.empty(n)
    b = np.zeros(n)
    c = np.empty_like(x)
    acc = 0.0
    for i in range(n):
        acc += x[i]
        a[i] = acc
        b[i] = math.exp(0.3 * a[i])
        c[i] = a[i] * b[i]
    s = 0.0
    for i in range(n):
        s += c[i] - b[n - 1 - i] * x[i]
    return s


@case("returns_array", lambda r: (U(r, -1.0, 1.0, 6),), (0,), {"alloc", "array-return"})
@ez.enzyme_jit
def returns_array(x):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = x[i] ** 2 * math.sin(x[i]) + x[(i + 1) % x.size]
    return out


@case(
    "returns_tuple",
    lambda r: (U(r, -1.0, 1.0, 5), U(r, -1.0, 1.0, 5)),
    (0, 1),
    {"alloc", "tuple-return", "array-return"},
)
@ez.enzyme_jit
def returns_tuple(x, y):
    out = np.zeros(x.size)
    s = 0.0
    for i in range(x.size):
        out[i] = x[i] * y[i]
        s += math.exp(out[i])
    return s, out


@case("returns_float_tuple", lambda r: (U(r, -1.0, 1.0, 5),), (0,), {"tuple-return"})
@ez.enzyme_jit
def returns_float_tuple(x):
    s = 0.0
    p = 1.0
    for i in range(x.size):
        s += x[i]
        p *= 1.0 + 0.5 * x[i]
    return s, p


@case(
    "returns_2d_array",
    lambda r: (U(r, -1.0, 1.0, 4), U(r, -1.0, 1.0, 3)),
    (0, 1),
    {"alloc", "2d", "array-return"},
)
@ez.enzyme_jit
def returns_2d_array(x, y):
    M = np.empty((x.size, y.size))
    for i in range(x.size):
        for j in range(y.size):
            M[i, j] = x[i] * math.tanh(y[j])
    return M


@case("grow_by_rebinding", lambda r: (U(r, -1.0, 1.0, 3), 6), (0,), {"alloc", "loop"})
@ez.enzyme_jit
def grow_by_rebinding(x, n):
    # a local array rebound in a loop, the argument first
    for i in range(x.shape[0], n):
        y = np.empty(i + 1)
        y[:i] = x[:i]
        y[i] = np.sin(y[i - 1]) + y[0]
        x = y
    return (x * x).sum()


# =========================================================================== array expressions


@case("array_expr", lambda r: (U(r, -1.0, 1.0, 6), U(r, -1.0, 1.0, 6)), (0, 1), {"arrayexpr"})
@ez.enzyme_jit
def array_expr(x, y):
    return (np.exp(x) * y).sum()


@case(
    "array_expr_returns_array",
    lambda r: (U(r, -1.0, 1.0, 6), U(r, 0.5, 1.0, 6)),
    (0, 1),
    {"arrayexpr", "array-return"},
)
@ez.enzyme_jit
def array_expr_returns_array(x, y):
    return np.exp(x) * y + np.sin(y) / y - x**2


@case("sum_method", lambda r: (U(r, -1.0, 1.0, 7),), (0,), {"arrayexpr", "reduction"})
@ez.enzyme_jit
def sum_method(x):
    return (x * x).sum() + x.sum() + np.sum(np.sin(x)) * 2.0


@case("sum_2d", lambda r: (U(r, -1.0, 1.0, (3, 4)),), (0,), {"arrayexpr", "reduction", "2d"})
@ez.enzyme_jit
def sum_2d(A):
    return (A * A).sum() + np.tanh(A).sum()


@case("dot_vectors", lambda r: (U(r, -1.0, 1.0, 6), U(r, -1.0, 1.0, 6)), (0, 1), {"blas"})
@ez.enzyme_jit
def dot_vectors(x, y):
    return np.dot(x, y) + np.dot(x, x) * 0.5


@case("dot_matvec", lambda r: (U(r, -1.0, 1.0, (4, 3)), U(r, -1.0, 1.0, 3)), (0, 1), {"blas", "2d"})
@ez.enzyme_jit
def dot_matvec(A, x):
    z = np.dot(A, x)
    return np.dot(z, z)


# =========================================================================== calls


@ez.enzyme_jit
def _sq_norm_helper(x):
    s = 0.0
    for i in range(x.size):
        s += x[i] * x[i]
    return s


@numba.njit
def _plain_njit_helper(a, b):
    return math.sin(a) * b + a * a


@ez.enzyme_jit
def _scale_inplace_helper(x, k):
    for i in range(x.size):
        x[i] *= k


@case(
    "calls_jit_functions",
    lambda r: (U(r, -1.0, 1.0, 5), 1.3 + U(r, -0.1, 0.1)),
    (0, 1),
    {"call", "mutation"},
)
@ez.enzyme_jit
def calls_jit_functions(x, k):
    s = _sq_norm_helper(x)
    t = 0.0
    for i in range(x.size):
        t += _plain_njit_helper(x[i], k)
    _scale_inplace_helper(x, k)
    return s * t + _sq_norm_helper(x)


# =========================================================================== types, ints


@case(
    "float32_loop",
    lambda r: (U(r, -1.0, 1.0, 6).astype(np.float32), U(r, 0.5, 1.5, 6).astype(np.float32)),
    (0, 1),
    {"float32", "mutation"},
)
@ez.enzyme_jit
def float32_loop(x, y):
    s = x[0] * 0
    for i in range(x.size):
        x[i] = x[i] * y[i] + np.sin(x[i])
        s += x[i] * x[i] / y[i]
    return s


def _float32_scalar_inputs(r):
    return np.float32(U(r, 0.5, 1.5)), U(r, 0.5, 1.5, 4).astype(np.float32)


@case("float32_scalar", _float32_scalar_inputs, (0, 1), {"float32", "scalar"})
@ez.enzyme_jit
def float32_scalar(a, x):
    s = a * 0
    for i in range(x.size):
        s += np.exp(a * x[i]) + a * a
    return s


@case("int_count", lambda r: (U(r, -1.0, 1.0, 8), 5), (0,), {"int", "loop"})
@ez.enzyme_jit
def int_count(x, n):
    s = 0.0
    for i in range(n):
        s += x[i] * x[i + 1] * (i + 1)
    return s


def _int_cast_inputs(r):
    # 3*x stays >= 0.1 away from an integer
    return ((r.integers(0, 6, 6) + U(r, 0.1, 0.9, 6)) / 3.0,)


@case("int_cast", _int_cast_inputs, (0,), {"int", "kink"})
@ez.enzyme_jit
def int_cast(x):
    s = 0.0
    for i in range(x.size):
        k = int(x[i] * 3.0)
        s += k * x[i] + float(k) + x[i]
    return s


@case(
    "int_array_const",
    lambda r: (U(r, -1.0, 1.0, 6), np.array([3, 1, 4, 1, 5, 2])),
    (0,),
    {"int", "const", "gather"},
)
@ez.enzyme_jit
def int_array_const(x, idx):
    s = 0.0
    for i in range(idx.size):
        s += x[idx[i]] * x[i] + 0.1 * x[idx[i]] ** 3
    return s


@case("fastmath_loop", lambda r: (U(r, 0.5, 1.5, 6),), (0,), {"fastmath", "loop"}, rtol=1e-5)
@ez.enzyme_jit(fastmath=True)
def fastmath_loop(x):
    s = 0.0
    for i in range(x.size):
        s += x[i] * math.log(x[i]) + 1.0 / x[i]
    return s


# =========================================================================== float bits
# floats moved through integers: views as integers, sign-bit operations, copies as words

_SIGN64 = np.int64(-9223372036854775808)
_MAG64 = np.int64(0x7FFFFFFFFFFFFFFF)


@case(
    "sign_flip_by_xor",
    lambda r: (U(r, -1.0, 1.0, 6), U(r, 0.5, 1.5, 6)),
    (0, 1),
    {"bits", "mutation"},
)
@ez.enzyme_jit
def sign_flip_by_xor(x, w):
    xi = x.view(np.int64)
    for i in range(x.size):
        if i % 2 == 0:
            xi[i] = xi[i] ^ _SIGN64
    return (x * x * x * w).sum()


@case(
    "abs_by_mask",
    lambda r: (away_from_zero(r, 6), U(r, 0.5, 1.5, 6)),
    (0, 1),
    {"bits", "kink", "mutation"},
)
@ez.enzyme_jit
def abs_by_mask(x, w):
    xi = x.view(np.int64)
    s = 0.0
    for i in range(x.size):
        xi[i] = xi[i] & _MAG64
        s += w[i] * x[i] * x[i] * x[i]
    return s


@case("neg_abs_of_copy", lambda r: (away_from_zero(r, 5),), (0,), {"bits", "kink", "alloc"})
@ez.enzyme_jit
def neg_abs_of_copy(x):
    y = x.copy()
    yi = y.view(np.int64)
    for i in range(y.size):
        yi[i] = yi[i] | _SIGN64
    return (y * x).sum() + y[0]


@case("copy_as_words", lambda r: (U(r, -1.0, 1.0, 6),), (0,), {"bits", "alloc"})
@ez.enzyme_jit
def copy_as_words(x):
    y = np.empty_like(x)
    xi, yi = x.view(np.int64), y.view(np.int64)
    for i in range(x.size):
        yi[i] = xi[(i + 1) % x.size]
    return (y * y * x).sum()


@case("copy_then_flip", lambda r: (np.zeros(3), U(r, 0.5, 1.5, 3)), (0, 1), {"bits", "mutation"})
@ez.enzyme_jit
def copy_then_flip(o, b):
    o[0] = b[0]
    v = o.view(np.int64)
    v[0] = v[0] ^ _SIGN64
    o[1] = o[0] * b[1]


CASE_IDS = [c.id for c in CASES]
assert len(set(CASE_IDS)) == len(CASE_IDS), "duplicate corpus ids"


def by_id(id: str) -> Case:
    for c in CASES:
        if c.id == id:
            return c
    raise KeyError(id)
