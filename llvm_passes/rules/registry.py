"""The one table of derivative rules: one entry per opcode, intrinsic or library call.

An entry gives both modes:
- `tangent(b, inst, args, tangents) -> Value | None`: the result's tangent (forward mode),
  built with builder `b` at the primal instruction `inst`; `args` are the primal operand
  values to use, `tangents[i]` the tangent (float) or shadow (pointer) of operand i, `None`
  when that operand is inactive (zero). Returns `None` when the result has zero tangent.
- `adjoint(b, inst, args, adj) -> list[Value | None]`: contributions to each operand's
  adjoint given the result's adjoint `adj` (reverse mode); `None` for no contribution.

Rules never ask about activity, tapes or caching; the synthesizers own those. Shorthands:
`smooth` (write the partials, both modes derived), `linear` (write tangent and transpose),
`no_derivative` (piecewise constant or integer-valued results).
"""

from __future__ import annotations

import dis
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..ir import Constant, Instruction, Value
from ..ir.builder import Builder

Tangent = Callable[[Builder, Instruction, Sequence[Value], Sequence[Value | None]], Value | None]
Adjoint = Callable[[Builder, Instruction, Sequence[Value], Value], Sequence[Value | None]]


@dataclass(frozen=True)
class Rule:
    """Tangent and adjoint of one operation; `formula` documents it."""

    key: str
    tangent: Tangent
    adjoint: Adjoint | None
    formula: str
    kind: str  # smooth | linear | zero | custom
    needs_out: bool = True  # the adjoint uses the primal result
    # smooth: per operand, what its partial reads (operand indices, "out" for the result);
    # None: every operand (and the result if `needs_out`)
    reads: tuple[tuple[int | str, ...], ...] | None = None
    # smooth: (family, partials(b, s)): the partials written with the result `s` of a call
    # of that family on the same operands, used when the primal makes one (sin's cos)
    sibling: tuple[str, Callable[..., Sequence[Value | None]]] | None = None
    # memory calls: emits, before the call in the forward sweep, copies of the memory the
    # adjoint will read (returns pointers); the adjoint gets them as `cached=` and frees them
    cache: Callable[[Builder, Instruction, Sequence[Value]], list[Value]] | None = None
    # smooth: a zero tangent or adjoint contributes exactly zero (see `scaled`)
    strong_zero: bool = False


RULES: dict[str, Rule] = {}
# callee -> (output pointer argument, input arguments): memory the callee writes from its
# inputs (BLAS-like library calls); activity analysis gives the output a shadow.
WRITES: dict[str, tuple[int, tuple[int, ...]]] = {}


def rule_key(inst: Instruction) -> str:
    """The table key of an instruction: its opcode, or for a call the callee's family name
    (`llvm.sin.f64` -> `llvm.sin`, `llvm.memcpy.p0.p0.i64` -> `llvm.memcpy`)."""
    if inst.opcode != "call":
        return inst.opcode
    name = inst.callee_name
    if name.startswith("llvm."):
        return "llvm." + name.split(".")[1]
    return name


def lookup(inst: Instruction) -> Rule | None:
    return RULES.get(rule_key(inst))


def register(keys: Sequence[str], rule_for_key: Callable[[str], Rule]) -> None:
    for key in keys:
        if key in RULES:
            raise ValueError(f"derivative rule for {key!r} registered twice")
        RULES[key] = rule_for_key(key)


def _sum(b: Builder, terms: list[Value]) -> Value | None:
    total = terms[0] if terms else None
    for t in terms[1:]:
        total = b.fadd(total, t, "tan")
    return total


def scaled(
    b: Builder, partial: Value | None, t: Value, hint: str, strong_zero: bool = True
) -> Value | None:
    """partial · t; None when the partial is the constant zero. With `strong_zero`, exactly
    zero where the tangent or adjoint `t` is zero: no NaN from 0 · ∞ where a partial is
    infinite (sqrt's at 0, a quotient's where the divisor is 0) or where the primal
    overflowed and was then discarded (`where(x > 0, log(x), 0)`)."""
    if partial is None or isinstance(partial, Constant) and partial.is_zero:
        return None
    if isinstance(partial, Constant) and partial.float_value == 1.0:
        return t
    prod = b.fmul(partial, t, hint)
    if (
        not strong_zero
        or isinstance(partial, Constant)
        and math.isfinite(partial.float_value or math.nan)
    ):  # a finite constant times zero is zero
        return prod
    zero = Constant(t.type, "0.0")
    return b.select(b.fcmp("oeq", t, zero), zero, prod, hint)


def smooth(
    *keys: str,
    reads: tuple[tuple[int | str, ...], ...] | None = None,
    sibling: tuple[str, Callable[..., Sequence[Value | None]]] | None = None,
    strong_zero: bool = True,
):
    """Register a differentiable op by its partial derivatives.

    The decorated function `partials(b, *args, out) -> tuple` returns ∂out/∂arg_i for each
    operand (`None` for operands without a derivative, e.g. integer exponents). Tangent:
    Σ_i ∂_i · ṫ_i. Adjoint: ā_i += ∂_i · ā_out. A zero tangent or adjoint contributes
    exactly zero, whatever the partial (`scaled`), unless `strong_zero=False`: for
    products, whose partials (the other factor) are finite wherever the operands are.
    `reads[i]`, when given, lists what ∂_i
    reads (operand indices, "out"): the reverse sweep keeps only what the partials of active
    operands read (the others get `undef`). `sibling=(family, partials)`: the same partials
    from the result of a primal call of `family` on the same operands, which the reverse
    sweep keeps instead of calling that function again.
    """

    sibling_partials = sibling[1] if sibling is not None else None

    def deco(partials: Callable[..., Sequence[Value | None]]):
        def tangent(b, inst, args, tans):
            active = [k for k, t in enumerate(tans) if t is not None]
            if not active:
                return None
            ps = partials(b, *args, out=inst)
            terms = [scaled(b, ps[k], tans[k], "tan", strong_zero) for k in active]
            return _sum(b, [t for t in terms if t is not None])

        def adjoint(b, inst, args, adj, sibling=None):
            """`sibling`: the result of the primal's sibling call, when the reverse sweep
            kept it (the partials are then made of it)."""
            ps = partials(b, *args, out=inst) if sibling is None else sibling_partials(b, sibling)
            return [scaled(b, p, adj, "adj", strong_zero) for p in ps]

        doc = (partials.__doc__ or "").strip()
        uses_out = any(
            i.opname.startswith("LOAD_FAST") and i.argval == "out"
            for i in dis.get_instructions(partials)
        )
        register(
            keys,
            lambda k: Rule(
                k,
                tangent,
                adjoint,
                doc,
                "smooth",
                uses_out,
                reads=reads,
                sibling=sibling,
                strong_zero=strong_zero,
            ),
        )
        return partials

    return deco


def linear(*keys: str, transpose: Adjoint):
    """Register an op linear in its float operands: the decorated function is the tangent
    (applied to the operand tangents), `transpose` maps the result adjoint back."""

    def deco(tangent: Tangent):
        doc = (tangent.__doc__ or "").strip()
        register(keys, lambda k: Rule(k, tangent, transpose, doc, "linear"))
        return tangent

    return deco


def custom(
    *keys: str,
    adjoint: Adjoint | None = None,
    writes: tuple[int, tuple[int, ...]] | None = None,
    cache: Callable[..., list[Value]] | None = None,
):
    """Register an op whose tangent needs the whole instruction (memory, allocation...).
    `writes=(out, ins)` declares that the call writes memory at argument `out` computed
    from the memory or values of arguments `ins`; `cache` saves, in the forward sweep, the
    input memory its adjoint reads (memory may change before the reverse sweep)."""

    def deco(tangent: Tangent):
        if writes is not None:
            WRITES.update(dict.fromkeys(keys, writes))
        doc = (tangent.__doc__ or "").strip()
        register(keys, lambda k: Rule(k, tangent, adjoint, doc, "custom", cache=cache))
        return tangent

    return deco


def no_derivative(*keys: str, why: str = "piecewise constant") -> None:
    """Register ops whose result carries no derivative."""
    register(
        keys,
        lambda k: Rule(
            k, lambda b, i, a, t: None, lambda b, i, a, adj: [None] * len(a), why, "zero"
        ),
    )
