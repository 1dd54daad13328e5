"""Rules for math intrinsics and libm calls: one entry per function, keyed by every spelling.

Intrinsics are keyed by family (`llvm.sin` covers `llvm.sin.f64` and `llvm.sin.f32`), C math
functions by both spellings (`tanh`, `tanhf`). Partials reuse the primal result `out` where
it helps (d exp = out) and build constants in the operand's float type, so every rule serves
float32 and float64.

The gamma family (`lgamma`, `tgamma`) lives in `special.py` with its digamma.
Depends only on the registry and the builder.
"""

from __future__ import annotations

import math

from ..ir.builder import Builder
from .registry import no_derivative, smooth

LN2 = math.log(2.0)
LN10 = math.log(10.0)
TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _libm(*names: str) -> tuple[str, ...]:
    """Both C spellings of each function: `tanh` -> (`tanh`, `tanhf`)."""
    return tuple(s for n in names for s in (n, n + "f"))


def _one(b: Builder, x):
    return b.fconst(x, 1.0)


def _recip(b: Builder, v):
    return b.fdiv(_one(b, v), v)


def _sq(b: Builder, v):
    return b.fmul(v, v)


def _unless_zero(b: Builder, v, partial):
    """`partial`, or 0 where `v` is 0 (a partial of the form 0/0 there)."""
    zero = b.fconst(v, 0.0)
    return b.select(b.fcmp("oeq", v, zero), zero, partial)


def _sign(b: Builder, v):
    """±1 with the sign bit of v."""
    return b.intrinsic("copysign", _one(b, v), v)


# ---- trigonometric -----------------------------------------------------------------------
@smooth("llvm.sin", *_libm("sin"), sibling=("llvm.cos", lambda b, c: (c,)))
def sin(b, x, out):
    """d sin(x) = cos(x) dx"""
    return (b.intrinsic("cos", x),)


@smooth("llvm.cos", *_libm("cos"), sibling=("llvm.sin", lambda b, s: (b.fneg(s),)))
def cos(b, x, out):
    """d cos(x) = -sin(x) dx"""
    return (b.fneg(b.intrinsic("sin", x)),)


@smooth("llvm.tan", *_libm("tan"))
def tan(b, x, out):
    """d tan(x) = (1 + tan(x)²) dx"""
    return (b.fadd(_one(b, x), _sq(b, out)),)


@smooth("llvm.asin", *_libm("asin"))
def asin(b, x, out):
    """d asin(x) = dx / sqrt(1 - x²)"""
    return (_recip(b, b.intrinsic("sqrt", b.fsub(_one(b, x), _sq(b, x)))),)


@smooth("llvm.acos", *_libm("acos"))
def acos(b, x, out):
    """d acos(x) = -dx / sqrt(1 - x²)"""
    return (b.fneg(_recip(b, b.intrinsic("sqrt", b.fsub(_one(b, x), _sq(b, x))))),)


@smooth("llvm.atan", *_libm("atan"))
def atan(b, x, out):
    """d atan(x) = dx / (1 + x²)"""
    return (_recip(b, b.fadd(_one(b, x), _sq(b, x))),)


@smooth("llvm.atan2", *_libm("atan2"))
def atan2(b, y, x, out):
    """d atan2(y, x) = (x dy - y dx) / (x² + y²)   (0 at the origin)"""
    r2 = b.fadd(_sq(b, x), _sq(b, y))
    return _unless_zero(b, r2, b.fdiv(x, r2)), _unless_zero(b, r2, b.fneg(b.fdiv(y, r2)))


@smooth(*_libm("hypot"))
def hypot(b, x, y, out):
    """d hypot(x, y) = (x dx + y dy) / hypot(x, y)   (0 at the origin)"""
    return _unless_zero(b, out, b.fdiv(x, out)), _unless_zero(b, out, b.fdiv(y, out))


# ---- hyperbolic --------------------------------------------------------------------------
@smooth("llvm.sinh", *_libm("sinh"), sibling=("llvm.cosh", lambda b, c: (c,)))
def sinh(b, x, out):
    """d sinh(x) = cosh(x) dx"""
    return (b.libm("cosh", x),)


@smooth("llvm.cosh", *_libm("cosh"), sibling=("llvm.sinh", lambda b, s: (s,)))
def cosh(b, x, out):
    """d cosh(x) = sinh(x) dx"""
    return (b.libm("sinh", x),)


@smooth("llvm.tanh", *_libm("tanh"))
def tanh(b, x, out):
    """d tanh(x) = (1 - tanh(x)²) dx"""
    return (b.fsub(_one(b, x), _sq(b, out)),)


@smooth(*_libm("asinh"))
def asinh(b, x, out):
    """d asinh(x) = dx / sqrt(x² + 1)"""
    return (_recip(b, b.intrinsic("sqrt", b.fadd(_sq(b, x), _one(b, x)))),)


@smooth(*_libm("acosh"))
def acosh(b, x, out):
    """d acosh(x) = dx / (sqrt(x - 1) sqrt(x + 1))"""
    lo = b.intrinsic("sqrt", b.fsub(x, _one(b, x)))
    hi = b.intrinsic("sqrt", b.fadd(x, _one(b, x)))
    return (_recip(b, b.fmul(lo, hi)),)


@smooth(*_libm("atanh"))
def atanh(b, x, out):
    """d atanh(x) = dx / (1 - x²)"""
    return (_recip(b, b.fsub(_one(b, x), _sq(b, x))),)


# ---- exponentials and logarithms ---------------------------------------------------------
@smooth("llvm.exp", *_libm("exp"))
def exp(b, x, out):
    """d exp(x) = exp(x) dx"""
    return (out,)


@smooth("llvm.exp2", *_libm("exp2"))
def exp2(b, x, out):
    """d 2^x = ln(2) 2^x dx"""
    return (b.fmul(out, b.fconst(x, LN2)),)


@smooth("llvm.exp10", *_libm("exp10"))
def exp10(b, x, out):
    """d 10^x = ln(10) 10^x dx"""
    return (b.fmul(out, b.fconst(x, LN10)),)


@smooth(*_libm("expm1"))
def expm1(b, x, out):
    """d expm1(x) = (expm1(x) + 1) dx"""
    return (b.fadd(out, _one(b, x)),)


@smooth("llvm.log", *_libm("log"))
def log(b, x, out):
    """d log(x) = dx / x"""
    return (_recip(b, x),)


@smooth("llvm.log2", *_libm("log2"))
def log2(b, x, out):
    """d log2(x) = dx / (ln(2) x)"""
    return (_recip(b, b.fmul(x, b.fconst(x, LN2))),)


@smooth("llvm.log10", *_libm("log10"))
def log10(b, x, out):
    """d log10(x) = dx / (ln(10) x)"""
    return (_recip(b, b.fmul(x, b.fconst(x, LN10))),)


@smooth(*_libm("log1p"))
def log1p(b, x, out):
    """d log1p(x) = dx / (1 + x)"""
    return (_recip(b, b.fadd(_one(b, x), x)),)


# ---- powers and roots --------------------------------------------------------------------
@smooth("llvm.sqrt", *_libm("sqrt"))
def sqrt(b, x, out):
    """d sqrt(x) = dx / (2 sqrt(x))"""
    return (_recip(b, b.fmul(b.fconst(x, 2.0), out)),)


@smooth(*_libm("cbrt"))
def cbrt(b, x, out):
    """d cbrt(x) = dx / (3 cbrt(x)²)"""
    return (_recip(b, b.fmul(b.fconst(x, 3.0), _sq(b, out))),)


@smooth("llvm.pow", *_libm("pow"))
def pow(b, x, y, out):
    """d x^y = y x^(y-1) dx + x^y log(x) dy   (∂x is 0 where y = 0, ∂y where x = 0)"""
    one = _one(b, y)
    is_zero = b.fcmp("oeq", y, b.fconst(y, 0.0))
    dx = b.fmul(y, b.intrinsic("pow", x, b.select(is_zero, one, b.fsub(y, one))))
    base = b.select(b.fcmp("oeq", x, b.fconst(x, 0.0)), _one(b, x), x)
    return dx, b.fmul(out, b.intrinsic("log", base))


@smooth("llvm.powi")
def powi(b, x, n, out):
    """d x^n = n x^(n-1) dx   (integer n; 0 where n = 0)"""
    one = b.const(n.type, 1)
    n1 = b.select(b.icmp("eq", n, b.const(n.type, 0)), one, b.binop("sub", n, one))
    return b.fmul(b.cast("sitofp", n, x.type), b.powi(x, n1)), None


@smooth("llvm.ldexp", *_libm("ldexp"))
def ldexp(b, x, n, out):
    """d (x 2^n) = 2^n dx   (integer n)"""
    return b.libm("ldexp", _one(b, x), n), None


# ---- sign, magnitude, fused arithmetic ---------------------------------------------------
@smooth("llvm.fabs", *_libm("fabs"))
def fabs(b, x, out):
    """d |x| = sign(x) dx"""
    return (_sign(b, x),)


@smooth("llvm.copysign", *_libm("copysign"))
def copysign(b, x, y, out):
    """d copysign(x, y) = sign(x) sign(y) dx   (y only chooses a sign)"""
    return b.fmul(_sign(b, x), _sign(b, y)), None


@smooth("llvm.fma", "llvm.fmuladd", *_libm("fma"))
def fma(b, x, y, z, out):
    """d (x y + z) = y dx + x dy + dz"""
    return y, x, _one(b, z)


@smooth(*_libm("fmod"))
def fmod(b, x, y, out):
    """d fmod(x, y) = dx - trunc(x / y) dy"""
    return _one(b, x), b.fneg(b.intrinsic("trunc", b.fdiv(x, y)))


@smooth(
    "llvm.minnum",
    "llvm.maxnum",
    "llvm.minimum",
    "llvm.maximum",
    "llvm.minimumnum",
    "llvm.maximumnum",
    *_libm("fmin", "fmax"),
)
def min_max(b, x, y, out):
    """d min(x, y) = dx where the result is x (ties: x), else dy; alike for max"""
    is_x = b.fcmp("oeq", out, x)
    one, zero = _one(b, x), b.fconst(x, 0.0)
    return b.select(is_x, one, zero), b.select(is_x, zero, one)


# ---- special functions -------------------------------------------------------------------
@smooth(*_libm("erf"))
def erf(b, x, out):
    """d erf(x) = 2/sqrt(pi) exp(-x²) dx"""
    return (b.fmul(b.fconst(x, TWO_OVER_SQRT_PI), b.intrinsic("exp", b.fneg(_sq(b, x)))),)


@smooth(*_libm("erfc"))
def erfc(b, x, out):
    """d erfc(x) = -2/sqrt(pi) exp(-x²) dx"""
    return (b.fmul(b.fconst(x, -TWO_OVER_SQRT_PI), b.intrinsic("exp", b.fneg(_sq(b, x)))),)


# ---- piecewise constant ------------------------------------------------------------------
no_derivative(
    "llvm.floor",
    "llvm.ceil",
    "llvm.trunc",
    "llvm.rint",
    "llvm.nearbyint",
    "llvm.round",
    "llvm.roundeven",
    "llvm.lround",
    "llvm.llround",
    "llvm.lrint",
    "llvm.llrint",
    *_libm(
        "floor",
        "ceil",
        "trunc",
        "rint",
        "nearbyint",
        "round",
        "roundeven",
        "lround",
        "llround",
        "lrint",
        "llrint",
    ),
    why="piecewise constant (rounding to an integer value)",
)
