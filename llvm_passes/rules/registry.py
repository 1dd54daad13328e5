"""The one table of derivative rules: one entry per opcode, intrinsic or library call.

An entry (`Rule`) gives both modes of its operation, with one signature for every entry:
- `tangent(ctx) -> Value | None`: the result's tangent (forward mode), built with `ctx.b`
  where the primal instruction `ctx.inst` was copied; `ctx.args` are the operand values to
  use, `ctx.tangents[i]` the tangent (a float) or shadow (a pointer) of operand i, None for
  an inactive one. None when the result has zero tangent. An operation on memory does here
  to shadow memory what it does to memory (copy, allocate, release).
- `adjoint(ctx) -> list[Value | None]`: per operand, its contribution to that operand's
  adjoint (reverse mode), given `ctx.adj`, the adjoint of a float result; an operation on
  memory also reads and writes the shadows `ctx.shadows[i]` of its pointer operands.
- `keep(ctx) -> list[Kept]` (optional): values the augmented forward sweep saves for the
  adjoint just before the operation runs, given the shadows the adjoint will have
  (`ctx.shadows`); memory the adjoint reads as it is now, which may change before the
  reverse sweep, is saved by `ctx.saved(ptr, count, elem)` (a copy, or the memory itself
  where the engine knows nothing writes it before the reverse sweep). The adjoint gets them
  as `ctx.kept`, and the engine releases those with a `release` once the adjoint has run
  (or the tape is dropped).
- `effects`: what the operation does to memory (`Effects`), which the analyses and the
  synthesizers query instead of names.

Rules never ask about activity, tapes or caching; the synthesizers own those. Shorthands:
`smooth` (write the partials, both modes derived), `linear` (write tangent and transpose),
`no_derivative` (piecewise constant or integer-valued results), `custom` (anything, with
its effects), `alias` (more keys for a registered rule). The table is open: the bridge
registers the entries of its runtime, and users' rules, through these same functions.

A whole function defined in the module can have its derivatives given instead of derived
from its body (`FunctionRule`, registered with `function_rule`): each builder adds to the
module a function with the interface of the one the synthesizers would make (`forward.py`,
`reverse/__init__.py`) and returns its name. The body still answers the activity analysis.

A call that runs a function of the module once per chunk, concurrently, is registered with
`parallel_call` (`ParallelCall`): the analyses see through it to the chunk function, and the
synthesizers make the same call of the chunk's derivative.
"""

from __future__ import annotations

import dis
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..ir import Constant, Function, GlobalRef, Instruction, Module, Type, Value
from ..ir.builder import Builder


@dataclass
class Context:
    """What a rule builds with (see the module doc)."""

    b: Builder
    inst: Instruction
    args: Sequence[Value]
    tangents: Sequence[Value | None] = ()  # forward mode, per operand
    shadows: Sequence[Value | None] = ()  # reverse mode, per operand (pointers)
    adj: Value | None = None  # reverse mode: the adjoint of a float result
    kept: Sequence[Value] = ()  # reverse mode: what `Rule.keep` saved
    elem: Type | None = None  # the float type of the memory a copy moves
    # reverse mode: other calls of the function run concurrently (a parallel call's
    # chunks): what an adjoint adds into memory the operation does not write, it adds
    # atomically (rules that do so declare `Rule.concurrent`)
    concurrent: bool = False
    sibling: Value | None = None  # reverse mode: the primal's result of `Rule.sibling`
    result: Value | None = None  # forward mode: the primal result to use, if not `inst`
    # `keep`: `count` elements of type `elem` at `ptr`, as the adjoint will read them
    saved: Callable[[Value, Value, Type], Kept] | None = None


@dataclass(frozen=True)
class Kept:
    """A value saved for the adjoint; `release` names the function freeing it, if any."""

    value: Value
    release: str | None = None


@dataclass(frozen=True)
class Allocation:
    """An allocation's result is new memory: `release(p)` drops the reference it returns,
    `retain(p)`, if any, takes one more (the engine keeps memory alive that way)."""

    release: str
    retain: str | None = None


@dataclass(frozen=True)
class Effects:
    """What an operation does to memory. Operations without declared writes write nothing
    (math); calls without a rule write all their pointer operands' memory."""

    writes: tuple[int, ...] = ()  # pointer operands whose memory it writes
    inputs: tuple[int, ...] = ()  # operands (values or memory) what it writes is made of
    copies: bool = False  # writes operand 0 with operand 1's memory, element by element
    allocates: Allocation | None = None  # returns new memory
    lifetime: bool = False  # counts references to (or frees) operand 0's memory
    data_of: int | None = None  # returns a pointer into the memory of that operand


PURE = Effects()

Tangent = Callable[[Context], Value | None]
Adjoint = Callable[[Context], Sequence[Value | None]]


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
    # custom: the operands whose primal values the adjoint uses (None: all)
    uses: tuple[int, ...] | None = None
    # smooth: (family, partials(b, s)): the partials written with the result `s` of a call
    # of that family on the same operands, used when the primal makes one (sin's cos)
    sibling: tuple[str, Callable[..., Sequence[Value | None]]] | None = None
    keep: Callable[[Context], list[Kept]] | None = None
    effects: Effects = field(default=PURE)
    # smooth: a zero tangent or adjoint contributes exactly zero (see `scaled`)
    strong_zero: bool = False
    # as cheap as an instruction and without effects: the reverse sweep may call it again
    # rather than keep its result
    recomputable: bool = False
    # a value of the thread running the code (its index): the reverse sweep computes it,
    # and what is computed from it, again in the thread running the reverse sweep, never
    # from the tape (a chunk of a parallel call may run on another thread in each sweep)
    per_thread: bool = False
    # the adjoint honours `Context.concurrent` (a memory call's, inside a parallel call's
    # chunk; other memory calls reading memory with derivatives are refused there)
    concurrent: bool = False


RULES: dict[str, Rule] = {}


Pattern = tuple[bool, ...]


@dataclass(frozen=True)
class FunctionRule:
    """Derivatives of one function given instead of synthesized, for an activity pattern
    (per parameter, whether it has a shadow) and a batch width: `forward` builds the
    function `fwddiffe` would be, `reverse` the three of reverse mode (augmented forward
    sweep, reverse sweep, release of a tape whose reverse sweep never runs), returning their
    names; None where the engine derives them from the body. `inactive`: parameters that
    never carry a derivative, whatever the caller passes. `outputs`: parameters pointing to
    memory where the function may leave values made of its inputs (among them, those its
    body writes are taken as carrying derivatives whenever an input does, whatever the body
    computes). A reverse sweep function that fails reports it on the tape (`tape.fail`);
    the entry that ran the sweep returns the failure."""

    forward: Callable[[Module, Function, Pattern, int], str] | None = None
    reverse: Callable[[Module, Function, Pattern, int], tuple[str, str, str]] | None = None
    inactive: frozenset[int] = frozenset()
    outputs: frozenset[int] = frozenset()


FUNCTIONS: dict[str, FunctionRule] = {}


@dataclass(frozen=True)
class ParallelCall:
    """A call running a function of the module concurrently, once per chunk:
    `call (ptr @chunk, i64 %n, a1, ..., ak)` calls `@chunk(i64 c, a1, ..., ak)` for every
    `c` in [0, n), in any order and on any thread; an integer result is the first nonzero
    result of a chunk (0 when all return 0). Its effects are those of the chunks; the
    front end promises that the chunks are independent (memory one chunk writes no other
    concurrent chunk touches). Parameter 0 of the chunk (its index) carries no
    derivative; operand `first + k` is passed to parameter `k + 1`."""

    callee: int = 0  # the operand naming the chunk function
    count: int = 1  # the operand giving the number of chunks
    first: int = 2


PARALLEL: dict[str, ParallelCall] = {}


def parallel_call(name: str, call: ParallelCall = ParallelCall()) -> None:
    """Register `name` as a parallel call (see `ParallelCall`)."""
    PARALLEL[name] = call


def parallel_chunk(inst: Instruction) -> tuple[str, list[Value | None]] | None:
    """For a parallel call: the chunk function's name ('' when the call computes it) and,
    per chunk parameter, the operand passed to it (None for the chunk index). None for
    other instructions."""
    kind = PARALLEL.get(inst.callee_name) if inst.opcode == "call" else None
    if kind is None:
        return None
    chunk = inst.operands[kind.callee]
    name = chunk.name if isinstance(chunk, GlobalRef) else ""
    return name, [None, *inst.operands[kind.first :]]


def function_rule(name: str, rule: FunctionRule) -> None:
    """Register (or replace) the derivatives of the function `name`."""
    FUNCTIONS[name] = rule


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


def effects(inst: Instruction) -> Effects | None:
    """What a call does to memory: its rule's effects; None for a call without a rule."""
    rule = lookup(inst)
    return None if rule is None else rule.effects


def register(keys: Sequence[str], rule_for_key: Callable[[str], Rule]) -> None:
    for key in keys:
        if key in RULES:
            raise ValueError(f"derivative rule for {key!r} registered twice")
        RULES[key] = rule_for_key(key)


def alias(existing: str, *keys: str) -> None:
    """Register `keys` with the rule of `existing` (another spelling of the same function)."""
    rule = RULES[existing]
    register(keys, lambda k: Rule(**{**rule.__dict__, "key": k}))


def _sum(b: Builder, terms: list[Value]) -> Value | None:
    if not terms:
        return None
    total = terms[0]
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
    `reads[i]`, when given, lists what ∂_i reads (operand indices, "out"): the reverse
    sweep keeps only what the partials of active operands read (the others get `undef`).
    `sibling=(family, partials)`: the same partials from the result of a primal call of
    `family` on the same operands, which the reverse sweep keeps instead of calling that
    function again.
    """

    sibling_partials = sibling[1] if sibling is not None else None

    def deco(partials: Callable[..., Sequence[Value | None]]):
        def tangent(ctx: Context) -> Value | None:
            active = [(k, t) for k, t in enumerate(ctx.tangents) if t is not None]
            if not active:
                return None
            ps = partials(ctx.b, *ctx.args, out=ctx.inst)
            terms = [scaled(ctx.b, ps[k], t, "tan", strong_zero) for k, t in active]
            return _sum(ctx.b, [t for t in terms if t is not None])

        def adjoint(ctx: Context) -> Sequence[Value | None]:
            adj = ctx.adj
            assert adj is not None
            if ctx.sibling is None:
                ps = partials(ctx.b, *ctx.args, out=ctx.inst)
            else:  # the partials made of the primal's sibling call
                assert sibling_partials is not None
                ps = sibling_partials(ctx.b, ctx.sibling)
            return [scaled(ctx.b, p, adj, "adj", strong_zero) for p in ps]

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
    effects: Effects = PURE,
    uses: tuple[int, ...] | None = None,
    keep: Callable[[Context], list[Kept]] | None = None,
    concurrent: bool = False,
):
    """Register an op whose tangent needs the whole instruction (memory, allocation...),
    with what it does to memory (`effects`), the operands whose primal values its adjoint
    uses (`uses`, default all), what the forward sweep keeps for its adjoint (`keep`) and
    whether its adjoint honours `Context.concurrent`."""

    def deco(tangent: Tangent):
        doc = (tangent.__doc__ or "").strip()
        register(
            keys,
            lambda k: Rule(
                k,
                tangent,
                adjoint,
                doc,
                "custom",
                uses=uses,
                keep=keep,
                effects=effects,
                concurrent=concurrent,
            ),
        )
        return tangent

    return deco


def _no_tangent(ctx: Context) -> None:
    return None


def no_derivative(
    *keys: str,
    why: str = "piecewise constant",
    effects: Effects = PURE,
    recomputable: bool = False,
    per_thread: bool = False,
) -> None:
    """Register ops whose result carries no derivative (`recomputable`, `per_thread`: see
    `Rule`)."""
    register(
        keys,
        lambda k: Rule(
            k,
            _no_tangent,
            lambda ctx: [None] * len(ctx.args),
            why,
            "zero",
            effects=effects,
            recomputable=recomputable or per_thread,
            per_thread=per_thread,
        ),
    )
