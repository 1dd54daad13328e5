"""Rules for the gamma family, whose derivatives need digamma ψ (which libm lacks).

d lgamma(x) = ψ(x) dx and d Γ(x) = Γ(x) ψ(x) dx, keyed by the C spellings (`lgamma`,
`tgamma` and their `f` forms; a front end adds its own helpers' names with `alias`). erf and
erfc live in `math.py`.

ψ itself is an LLVM IR function, `@enzpy.digamma.f64` (and `@enzpy.digamma.f32`, which
widens to double), added to the module the first time a rule needs it. It is `internal`,
`nounwind willreturn memory(none)`, so LLVM may inline it, hoist it and merge repeated calls:
- x < 0: reflection, ψ(x) = ψ(1 - x) - π / tan(π x), with π x reduced exactly to
  π (x - round(x)) first;
- then the recurrence ψ(x) = ψ(x + 1) - 1/x, as a loop, until x ≥ 6;
- then the asymptotic series ψ(x) = ln x - 1/(2x) - Σ_{k=1..12} B₂ₖ / (2k x²ᵏ), whose first
  omitted term is below 4e-16 at x = 6 (about 2e-16 of ψ(6)).
Depends only on the registry, the builder and the IR parser.
"""

from __future__ import annotations

import math
from fractions import Fraction

from ..ir import DOUBLE, Module, Value, parse_module
from ..ir.builder import Builder
from ..ir.values import float_literal
from .registry import smooth

DIGAMMA = {"double": "enzpy.digamma.f64", "float": "enzpy.digamma.f32"}
DIGAMMA_ATTRS = "nounwind willreturn memory(none)"
SHIFT_TO = 6.0  # the recurrence runs until x reaches this; the series takes over

# B₂ₖ for k = 1..12 (Bernoulli numbers)
_BERNOULLI = (
    Fraction(1, 6),
    Fraction(-1, 30),
    Fraction(1, 42),
    Fraction(-1, 30),
    Fraction(5, 66),
    Fraction(-691, 2730),
    Fraction(7, 6),
    Fraction(-3617, 510),
    Fraction(43867, 798),
    Fraction(-174611, 330),
    Fraction(854513, 138),
    Fraction(-236364091, 2730),
)
SERIES = tuple(float(bk / (2 * k)) for k, bk in enumerate(_BERNOULLI, start=1))


def _d(x: float) -> str:
    return float_literal(x, DOUBLE)


def _series_lines() -> list[str]:
    """Horner's rule for Σ c_k z^k, c_k = B₂ₖ/(2k), z = 1/x²: the sum is %h1."""
    lines = [f"%h{len(SERIES)} = fmul double %z, {_d(SERIES[-1])}"]
    for k in range(len(SERIES) - 1, 0, -1):
        lines.append(f"%g{k} = fadd double %h{k + 1}, {_d(SERIES[k - 1])}")
        lines.append(f"%h{k} = fmul double %z, %g{k}")
    return lines


def digamma_ir() -> str:
    """IR text of `@enzpy.digamma.f64`, `@enzpy.digamma.f32` and the intrinsics they use."""
    pi = _d(math.pi)
    series = "\n  ".join(_series_lines())
    return f"""
declare double @llvm.round.f64(double)
declare double @llvm.tan.f64(double)
declare double @llvm.log.f64(double)

define internal double @{DIGAMMA["double"]}(double %x) {DIGAMMA_ATTRS} {{
entry:
  %neg = fcmp olt double %x, 0.0
  br i1 %neg, label %reflect, label %shift

reflect:
  %n = call double @llvm.round.f64(double %x)
  %r = fsub double %x, %n
  %pir = fmul double %r, {pi}
  %tan = call double @llvm.tan.f64(double %pir)
  %cot = fdiv double {pi}, %tan
  %refl = fneg double %cot
  %mirror = fsub double 1.0, %x
  br label %shift

shift:
  %x0 = phi double [ %x, %entry ], [ %mirror, %reflect ]
  %acc0 = phi double [ 0.0, %entry ], [ %refl, %reflect ]
  br label %loop

loop:
  %xi = phi double [ %x0, %shift ], [ %xnext, %step ]
  %acc = phi double [ %acc0, %shift ], [ %accnext, %step ]
  %small = fcmp olt double %xi, {_d(SHIFT_TO)}
  br i1 %small, label %step, label %asymptotic

step:
  %inv = fdiv double 1.0, %xi
  %accnext = fsub double %acc, %inv
  %xnext = fadd double %xi, 1.0
  br label %loop

asymptotic:
  %ln = call double @llvm.log.f64(double %xi)
  %rx = fdiv double 1.0, %xi
  %z = fmul double %rx, %rx
  {series}
  %half = fmul double %rx, 0.5
  %a = fsub double %ln, %half
  %b = fsub double %a, %h1
  %psi = fadd double %b, %acc
  ret double %psi
}}

define internal float @{DIGAMMA["float"]}(float %x) {DIGAMMA_ATTRS} {{
entry:
  %xd = fpext float %x to double
  %psi = call double @{DIGAMMA["double"]}(double %xd)
  %r = fptrunc double %psi to float
  ret float %r
}}
"""


def add_digamma(module: Module, type_name: str) -> str:
    """Define ψ for float type `type_name` in `module` (with what it calls) unless present;
    returns its name."""
    name = DIGAMMA.get(type_name)
    if name is None:
        raise ValueError(f"no digamma for type {type_name} (double and float only)")
    existing = module.get(name)
    if existing is not None and not existing.is_declaration:
        return name
    helpers = parse_module(digamma_ir())
    todo = [name]
    while todo:
        fn = helpers.functions[todo.pop()]
        have = module.get(fn.name)
        if have is not None and (fn.is_declaration or not have.is_declaration):
            continue
        module.add_function(fn)
        todo += [i.callee_name for i in fn.instructions() if i.opcode == "call"]
    return name


def digamma(b: Builder, x: Value) -> Value:
    """ψ(x), calling the module's digamma function (added on first use)."""
    name = add_digamma(b.module, x.type.name)
    return b.call(name, [x], x.type, "digamma", fn_attrs=DIGAMMA_ATTRS)


@smooth("lgamma", "lgammaf")
def lgamma(b, x, out):
    """d lgamma(x) = ψ(x) dx   (ψ = digamma)"""
    return (digamma(b, x),)


@smooth("tgamma", "tgammaf")
def tgamma(b, x, out):
    """d Γ(x) = Γ(x) ψ(x) dx   (ψ = digamma)"""
    return (b.fmul(out, digamma(b, x)),)
