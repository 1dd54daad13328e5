"""Activity analysis: which values carry a derivative.

A value is *active* when it needs a tangent (floats) or a shadow (pointers to memory that
holds derivatives). Forward: a float result is active when an operand is; a load is active
when its pointer is. Backward: a pointer is made active when an active value is stored
through it, or when an active pointer is stored into memory, or when a callee writes
active data through it. Integers never are. Arguments the caller marked `CONST` are never
made active: derivatives stored into them are dropped (Enzyme's `Const` semantics).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from ..errors import NoDerivativeError, called_from
from ..ir import Argument, Constant, Function, GlobalRef, Instruction, Module, Value
from ..rules.registry import FUNCTIONS, FunctionRule, effects, lookup, parallel_chunk
from .pointers import allocation, roots
from .readonly import written_arguments

# integer operations that carry the bits of an active float along (see `tainted`)
_INT_PROPAGATE = {
    "add",
    "sub",
    "mul",
    "udiv",
    "sdiv",
    "urem",
    "srem",
    "shl",
    "lshr",
    "ashr",
    "and",
    "or",
    "xor",
    "trunc",
    "zext",
    "sext",
    "phi",
    "select",
    "freeze",
}
# pointers computed from pointers (a shadow computed the same way)
_ADDRESS_OF = {"getelementptr", "bitcast", "addrspacecast", "freeze", "select", "phi", "load"}
_PROPAGATE = {
    "fneg",
    "select",
    "phi",
    "extractvalue",
    "insertvalue",
    "freeze",
    "getelementptr",
    "bitcast",
    "fadd",
    "fsub",
    "fmul",
    "fdiv",
    "frem",
    "fpext",
    "fptrunc",
    "addrspacecast",
}


class Activity(enum.Enum):
    """Per-argument annotation given to the engine."""

    CONST = "const"
    DUP = "dup"
    DUP_NONEED = "dup_noneed"

    @property
    def active(self) -> bool:
        return self is not Activity.CONST


@dataclass(frozen=True)
class ActivityResult:
    """Active values of one function for one argument-activity pattern."""

    fn: Function
    pattern: tuple[bool, ...]
    active: frozenset[Value]
    reasons: dict[Value, str] = field(compare=False)
    needed_args: frozenset[int]  # CONST args into which active data flows
    callees: dict[Instruction, ActivityResult] = field(compare=False)
    # CONST args whose memory gets active data and is read back: that part of the derivative
    # is dropped (Const semantics); each with the first instruction writing such data
    dropped: dict[int, Instruction] = field(compare=False, default_factory=dict)
    # active pointers whose shadow may be their own primal: merges (select, phi) of memory
    # with and without derivatives, and addresses computed from them. Memory without
    # derivatives is its own shadow there; a load or store through such a pointer checks
    # `shadow == primal` (tangent 0, writes and accumulations skipped).
    maybe_primal: frozenset[Value] = frozenset()
    # pointer parameters whose memory it may read floats from (None: unknown, any)
    reads: frozenset[int] | None = None
    size: tuple[int, int] = (0, 0)  # `fn`'s blocks and instructions when it was analysed

    def is_active(self, v: Value) -> bool:
        return v in self.active


@dataclass
class _InProgress:
    """The summary of a function under analysis, as far as known: what a recursive call
    of it sees (`used` records that one did)."""

    guess: ActivityResult
    used: bool = False


Summaries = dict[tuple[str, tuple[bool, ...]], "ActivityResult | _InProgress"]


def given_outputs(module: Module, fn: Function, given: FunctionRule) -> frozenset[int]:
    """The parameters through which a function whose derivatives rules give leaves its
    results: the rules' `outputs` that its body may write (all of them when that is
    unknown)."""
    written = written_arguments(module, fn)
    return given.outputs if written is None else given.outputs & written


def activity(
    module: Module,
    fn: Function,
    pattern: Sequence[bool],
    has_rule: Callable[[Instruction], bool],
    cache: Summaries | None = None,
) -> ActivityResult:
    """Analyse `fn` with argument `pattern` (True = has a shadow/tangent).

    Recursion: a call of a function whose analysis is in progress sees the summary found so
    far (first: no argument needs a shadow); when the finished analysis needs more, it runs
    again (with the summaries that depended on the guess dropped), until nothing changes."""
    cache = {} if cache is None else cache
    key = (fn.name, tuple(pattern))
    known = cache.get(key)
    if isinstance(known, _InProgress):
        known.used = True
        return known.guess
    if known is not None:
        # the synthesizers rewrite functions before any analysis, never after
        assert known.fn is fn and known.size == _size(fn), f"@{fn.name} changed after analysis"
        return known
    before = set(cache)
    progress = cache[key] = _InProgress(
        ActivityResult(fn, tuple(pattern), frozenset(), {}, frozenset(), {})
    )
    while True:
        result = _Analysis(module, fn, tuple(pattern), has_rule, cache).run()
        if not progress.used or result.needed_args <= progress.guess.needed_args:
            break
        for k in set(cache) - before - {key}:
            del cache[k]
        progress.guess, progress.used = result, False
    result = cache[key] = replace(result, size=_size(fn))
    return result


def _size(fn: Function) -> tuple[int, int]:
    return len(fn.blocks), sum(len(b.instructions) for b in fn.blocks)


class _Analysis:
    def __init__(self, module, fn, pattern, has_rule, cache) -> None:
        self.module, self.fn, self.pattern = module, fn, pattern
        self.has_rule, self.cache = has_rule, cache
        self.active: set[Value] = set()
        self.reasons: dict[Value, str] = {}
        self.needed_args: set[int] = set()
        self.writes_to_const: dict[int, Instruction] = {}  # arg -> first active write
        self.at: Instruction | None = None  # the instruction being visited
        self.callees: dict[Instruction, ActivityResult] = {}
        self.changed = False
        self.visiting: set[Value] = set()
        # integers made of the bits of an active float (what `transforms.float_bits` did not
        # read back as float operations): refused where they become a float again
        self.tainted: set[Value] = set()

    def mark(self, v: Value, why: str) -> None:
        if v not in self.active:
            self.active.add(v)
            self.reasons[v] = why
            self.changed = True

    def run(self) -> ActivityResult:
        for a, act in zip(self.fn.args, self.pattern, strict=True):
            if act:
                self.mark(a, "argument has a shadow (Duplicated / tangent)")
        self.changed = True
        while self.changed:
            self.changed = False
            for inst in self.fn.instructions():
                self.at = inst
                self.visit(inst)
        read = self._read_args()
        dropped = {k: i for k, i in self.writes_to_const.items() if k in read}
        return ActivityResult(
            self.fn,
            self.pattern,
            frozenset(self.active),
            self.reasons,
            frozenset(self.needed_args),
            self.callees,
            dropped,
            self._maybe_primal(),
            frozenset(read),
        )

    def _maybe_primal(self) -> frozenset[Value]:
        """Active pointers merged from memory with and without a shadow, and addresses and
        pointers loaded through them (see `ActivityResult.maybe_primal`)."""
        out: set[Value] = set()
        changed = True
        while changed:
            changed = False
            for inst in self.fn.instructions():
                if inst in out or inst not in self.active or not inst.type.is_ptr:
                    continue
                op, ops = inst.opcode, inst.operands
                merged = op in ("select", "phi") and any(
                    o.type.is_ptr and o not in self.active and not isinstance(o, Constant)
                    for o in ops
                )
                if merged or op in _ADDRESS_OF and any(o in out for o in ops):
                    out.add(inst)
                    changed = True
        return frozenset(out)

    def _read_args(self) -> set[int]:
        """Pointer arguments whose memory the function reads floats from (loads, copies,
        calls that may read it)."""
        read: set[Value] = set()
        for inst in self.fn.instructions():
            if inst.opcode == "load" and inst.type.is_float:
                read.update(roots(inst.operands[0]))
            elif inst in self.callees and parallel_chunk(inst) is not None:
                # what the chunks read (their results are no pointers into that memory)
                chunk = parallel_chunk(inst)
                assert chunk is not None
                reads = self.callees[inst].reads
                params = chunk[1] if reads is not None else inst.operands[1:]
                for k in range(len(params)) if reads is None else reads:
                    p = params[k]
                    if p is not None and p.type.is_ptr:
                        read.update(roots(p))
            elif inst.opcode == "call":
                fx = effects(inst)
                if fx is not None and fx.lifetime:
                    continue
                overwritten = fx.writes if fx is not None and fx.copies else ()
                for k, o in enumerate(inst.operands):
                    if o.type.is_ptr and k not in overwritten:
                        read.update(roots(o))
        return {r.index for r in read if isinstance(r, Argument)}

    # ---- forward propagation -------------------------------------------------------------
    def visit(self, inst: Instruction) -> None:
        op = inst.opcode
        carries = inst.type.may_carry_derivative
        ops = inst.operands
        if inst.type.is_int or op == "bitcast":
            self.visit_bits(inst)
        if op in _PROPAGATE and carries:
            src = next((v for v in ops if v in self.active), None)
            if src is not None:
                self.mark(inst, f"operand {src.ref} is active")
                if op in ("phi", "select") and inst.type.is_ptr:
                    self.shadow_merged(ops)
        elif op == "load" and carries and ops[0] in self.active:
            self.mark(inst, f"loaded through active pointer {ops[0].ref}")
        elif op == "store":
            value, ptr = ops
            if value in self.active:
                self.need(ptr, f"active value stored through it: {inst.text()}")
            elif ptr in self.active and value.type.is_ptr:
                self.need(value, f"stored into active memory: {inst.text()}")
        elif op == "atomicrmw" and inst.accumulation is not None:
            ptr, value = inst.accumulation
            if value in self.active:
                self.need(ptr, f"active value added through it: {inst.text()}")
            if ptr in self.active:
                self.mark(inst, f"the old value of active memory {ptr.ref}")
        elif op == "call":
            self.visit_call(inst, carries)

    def visit_bits(self, inst: Instruction) -> None:
        """Follow the bits of active floats through integers; refuse them becoming a float."""
        op, ops = inst.opcode, inst.operands
        if op == "bitcast" and ops[0].type.is_float and ops[0] in self.active:
            self.tainted.add(inst)
        elif op in _INT_PROPAGATE and any(o in self.tainted for o in ops):
            self.tainted.add(inst)
        elif op == "bitcast" and inst.type.is_float and ops[0] in self.tainted:
            raise NoDerivativeError(
                "a float made of the bits of a float with a derivative, changed as an integer",
                inst.text(),
                self.fn.name,
                "activity analysis",
                inst.loc,
                "enzpy follows a float's bits through integers when they are copied, or when "
                "only the sign bit changes (xor, and, or with the sign bit: -x, |x|, -|x|); "
                "other integer arithmetic on them has no derivative. Compute it on floats.",
            )

    def visit_call(self, inst: Instruction, carries: bool) -> None:
        name = inst.callee_name
        chunk = parallel_chunk(inst)
        if chunk is not None:
            return self.visit_parallel(inst, *chunk)
        callee = self.module.get(name) if name else None
        if callee is not None and not callee.is_declaration and lookup(inst) is None:
            given = FUNCTIONS.get(name)
            never = given.inactive if given is not None else frozenset()
            pattern = tuple(
                v in self.active and k not in never for k, v in enumerate(inst.operands)
            )
            if not any(pattern):
                return
            # a null pointer's shadow is null: given one, the callee may store it beside
            # pointers with shadows (a new array's parent, in the array it returns)
            pattern = tuple(
                p or k not in never and isinstance(v, Constant) and v.type.is_ptr and v.is_zero
                for k, (p, v) in enumerate(zip(pattern, inst.operands, strict=True))
            )
            if given is not None and (given.forward or given.reverse):
                return self.given_derivative(inst, callee, given, pattern)
            with called_from(self.fn.name, inst.loc):
                summary = activity(self.module, callee, pattern, self.has_rule, self.cache)
            self.callees[inst] = summary
            for k in summary.needed_args:
                self.need(inst.operands[k], f"callee @{name} writes active data through it")
            if carries:
                self.mark(inst, f"call to @{name} with active arguments")
            return
        rule = lookup(inst)
        fx = rule.effects if rule is not None else None
        if fx is not None and fx.allocates is not None:
            return  # active only when needed
        if fx is not None and fx.writes:  # memory written from its inputs
            ins = (inst.operands[k] for k in fx.inputs)
            src = next((v for v in ins if v in self.active), None)
            if src is not None:
                for k in fx.writes:
                    self.need(inst.operands[k], f"@{name} writes data computed from {src.ref}")
            return
        src = next((v for v in inst.operands if v in self.active), None)
        if src is not None and carries and (rule is None or rule.kind != "zero"):
            self.mark(inst, f"argument {src.ref} of @{name or 'indirect call'} is active")

    def visit_parallel(self, inst: Instruction, name: str, params: list[Value | None]) -> None:
        """A parallel call: the chunk function analysed as called with `params`."""
        callee = self.module.get(name) if name else None
        if callee is None or callee.is_declaration or len(callee.args) != len(params):
            raise NoDerivativeError(
                f"a parallel call of {'@' + name if name else 'a computed function'}, which "
                "is not a function defined in the module taking the chunk index and the "
                "call's arguments",
                inst.text(),
                self.fn.name,
                "activity analysis",
                inst.loc,
            )
        pattern = tuple(p is not None and p in self.active for p in params)
        if not any(pattern):
            return
        with called_from(self.fn.name, inst.loc):
            summary = activity(self.module, callee, pattern, self.has_rule, self.cache)
        self.callees[inst] = summary
        for k in summary.needed_args:
            p = params[k]
            if p is not None:
                self.need(p, f"parallel chunk @{name} writes active data through it")

    def given_derivative(
        self, inst: Instruction, callee: Function, given: FunctionRule, pattern: tuple
    ) -> None:
        """A call of a function whose derivatives rules give: what it writes of its outputs
        carries derivatives (its body, which rules replace, does not tell)."""
        outputs = given_outputs(self.module, callee, given)
        for k in outputs:
            self.need(inst.operands[k], f"@{callee.name} (rules) writes it from its inputs")
        self.callees[inst] = ActivityResult(callee, pattern, frozenset(), {}, outputs, {})

    def shadow_merged(self, ops: Sequence[Value]) -> None:
        """Memory this function allocates, chosen (phi, select) with memory that has a
        shadow, gets one too (zero-filled): an array rebound in a loop, `x = x + dx`, starts
        as a constant array."""
        for o in ops:
            if (
                o.type.is_ptr
                and o not in self.active
                and not isinstance(o, Constant | GlobalRef)
                and all(isinstance(allocation(r), Instruction) for r in roots(o))
            ):
                self.need(o, "chosen with memory that has a shadow")

    # ---- backward: pointers that must get a shadow ----------------------------------------
    def need(self, v: Value, why: str) -> None:
        if v in self.active or isinstance(v, Constant | GlobalRef):
            return
        if isinstance(v, Argument):
            if v.type.is_ptr:
                self.needed_args.add(v.index)
                if self.at is not None:
                    self.writes_to_const.setdefault(v.index, self.at)
            return
        if not isinstance(v, Instruction) or not v.type.may_carry_derivative:
            return
        op = v.opcode
        fx = effects(v) if op == "call" else None
        if op == "alloca" or fx is not None and fx.allocates is not None:
            self.mark(v, f"memory needs a shadow: {why}")
        elif op in ("getelementptr", "bitcast", "phi", "select", "freeze", "addrspacecast"):
            if v in self.visiting:
                return
            self.visiting.add(v)
            pointers = [o for o in v.operands if o.type.is_ptr]
            for o in pointers:
                self.need(o, why)
            self.visiting.discard(v)
            if any(o in self.active for o in pointers):  # else rooted in Const memory
                self.mark(v, f"pointer needs a shadow: {why}")
        elif op == "load":
            self.mark(v, f"pointer loaded from memory that needs a shadow: {why}")
            self.need(v.operands[0], f"holds pointer {v.ref} that needs a shadow")
        elif op == "extractvalue":
            self.mark(v, f"needs a shadow: {why}")
            self.need(v.operands[0], why)
        elif fx is not None and fx.data_of is not None:
            self.mark(v, f"pointer needs a shadow: {why}")
            self.need(v.operands[fx.data_of], why)
