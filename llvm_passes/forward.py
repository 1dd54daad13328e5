"""Forward-mode synthesis: a function computing the primal and its tangents together.

`fwddiffe_<f>` takes f's arguments followed by one shadow (pointer) or tangent (float) per
active argument. It replays f's instructions unchanged and, after each active instruction,
emits its tangent: arithmetic and calls through the rule table, memory (load, store, gep,
alloca) and structure (phi, select, aggregates) by one method per instruction kind here.
Calls to functions defined in the module become calls to their own forward derivative,
which performs the callee's side effects once; a parallel call (`rules.ParallelCall`) calls
the chunk's forward derivative in parallel, the shadows of its arguments appended.

Batch (vector) mode, `width` N > 1: every active argument takes N shadows (or tangents) in a
row, and every active value has N tangents, one per lane: the primal is replayed once and
each tangent is emitted N times, once per lane (straight-line code LLVM may vectorize).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import rules, scopes
from .analysis.activity import Activity, ActivityResult, activity, given_outputs
from .analysis.calls import recursive
from .analysis.cfg import cfg
from .analysis.memtypes import MemoryFacts
from .analysis.readonly import store_base, write_only
from .errors import NoDerivativeError, called_from
from .ir import (
    Argument,
    Block,
    Constant,
    Function,
    GlobalRef,
    Instruction,
    Module,
    Type,
    Value,
    parse_module,
)
from .ir.builder import Builder, Namer
from .ir.types import I64, PTR, size_in_bytes, struct
from .ir.values import const
from .rules import Context
from .transforms.float_bits import follow_float_bits

MODE = "forward"


@dataclass(frozen=True)
class ForwardResult:
    """The module holding the derivative, its name, and the activity that shaped it."""

    module: Module
    fn_name: str
    activity: ActivityResult

    @property
    def module_text(self) -> str:
        """The module's text, of its definitions those the entry point reaches."""
        return self.module.text(roots=[self.fn_name])


def forward(
    module_text: str | Module,
    fn_name: str,
    activities: Sequence[Activity],
    pointee: Sequence[Type | None] | None = None,
    width: int = 1,
) -> ForwardResult:
    """Synthesize `fwddiffe_<fn_name>` for the given per-argument activities; `pointee`
    (optional) gives, per pointer argument, the type of the values its memory holds;
    `width` is the number of tangents carried per active value (batch mode)."""
    module, fn, _ = function_to_derive(module_text, fn_name, activities, pointee)
    # DuplicatedNoNeed: the caller does not need the primal memory behind these arguments
    # after the call; stores into it are dropped where nothing in the function reads it
    # (not in a recursive function: its own calls run the same derivative on other memory)
    unneeded: set[Value] = {
        a
        for a, act in zip(fn.args, activities, strict=True)
        if act is Activity.DUP_NONEED and a.type.is_ptr and write_only(fn, a)
    }
    if recursive(module, fn):
        unneeded = set()
    synth = _Synthesizer(module, unneeded, width)
    pattern = tuple(a.active for a in activities)
    name = synth.derive(fn, pattern, f"fwddiffe_{fn_name}")
    return ForwardResult(module, name, synth.results[(fn_name, pattern)])


def function_to_derive(
    module_text: str | Module,
    fn_name: str,
    activities: Sequence[Activity],
    pointee: Sequence[Type | None] | None = None,
) -> tuple[Module, Function, MemoryFacts]:
    """The parsed module and the defined function `fn_name`, checked against `activities`,
    with floats moved through integers rewritten as floats (`transforms.float_bits`), and
    what is known of the memory behind each function's pointer arguments."""
    module = parse_module(module_text) if isinstance(module_text, str) else module_text
    fn = module.get(fn_name)
    if fn is None or fn.is_declaration:
        raise KeyError(f"function @{fn_name} is not defined in the module")
    if len(activities) != len(fn.args):
        raise ValueError(
            f"@{fn_name} takes {len(fn.args)} arguments, got {len(activities)} activities"
        )
    return module, fn, follow_float_bits(module, fn_name, pointee)


def has_rule(inst: Instruction) -> bool:
    return rules.lookup(inst) is not None


def _derived_return(fn: Function, width: int) -> Type:
    """What `fwddiffe_<fn>` returns: a float return comes back with its `width` tangents."""
    return struct(*[fn.ret_type] * (1 + width)) if fn.ret_type.is_float else fn.ret_type


class _Synthesizer:
    """Derives forward functions for (function, activity pattern) pairs of one module."""

    def __init__(self, module: Module, unneeded: set[Value], width: int = 1) -> None:
        self.module = module
        self.width = width
        self.names: dict[tuple[str, tuple[bool, ...]], str] = {}
        self.results: dict[tuple[str, tuple[bool, ...]], ActivityResult] = {}
        self.cache: dict = {}
        self.unneeded = unneeded  # arguments of the root whose primal memory is not needed

    def derive(self, fn: Function, pattern: tuple[bool, ...], name: str | None = None) -> str:
        key = (fn.name, pattern)
        if key in self.names:
            return self.names[key]
        given = rules.FUNCTIONS.get(fn.name)
        if name is None and given is not None and given.forward is not None:
            if self.width > 1:
                self.check_lanes(fn, given)
            self.names[key] = given.forward(self.module, fn, pattern, self.width)
            return self.names[key]
        bits = "".join("d" if p else "c" for p in pattern)
        name = name or f"fwddiffe_{fn.name}.{bits}"
        self.names[key] = name
        act = activity(self.module, fn, pattern, has_rule, self.cache)
        self.results[key] = act
        _FunctionForward(self, fn, act, name, self.unneeded, self.width).run()
        return name

    def check_lanes(self, fn: Function, given: Any) -> None:
        """Raise unless a rule may be called once per lane: it writes nothing but `fn`'s
        result (calling it again changes nothing else)."""
        if given_outputs(self.module, fn, given) - {0}:  # (0: Numba's return slot)
            raise NoDerivativeError(
                f"a call to {fn.name}, whose forward derivative is a given rule that writes "
                f"its arguments, in batch mode (width {self.width})",
                f"define @{fn.name}",
                fn.name,
                MODE,
                hint="Such a rule gives one tangent per call and changes its arguments "
                "each time: call it once per tangent (width 1) instead.",
                given=True,
            )


class _FunctionForward:
    """Builds one forward function."""

    def __init__(
        self,
        synth: Any,
        fn: Function,
        act: ActivityResult,
        name: str,
        unneeded: set[Value] | frozenset = frozenset(),
        width: int = 1,
    ) -> None:
        self.synth, self.fn, self.act, self.name = synth, fn, act, name
        self.unneeded = unneeded  # pointers whose primal stores are skipped
        self.module = synth.module
        self.namer = Namer(fn)
        self.b = Builder(self.module, self.namer)
        self.vmap: dict[Value, Value] = {}  # primal value -> its copy in the new function
        self.clones: dict[Instruction, Instruction] = {}  # primal instruction -> its copy
        self.width = width
        # per lane: primal value -> tangent / shadow; `tan` is the lane being emitted
        self.lanes: list[dict[Value, Value]] = [{} for _ in range(width)]
        self.tan = self.lanes[0]
        self.lane = 0
        self.pending_phis: list[tuple[Instruction, Instruction, int]] = []
        self.new: Function  # the function being built

    # ---- setup ---------------------------------------------------------------------------
    def run(self) -> None:
        args = [Argument(a.type, a.name, a.attrs, a.index) for a in self.fn.args]
        for a, copy in zip(self.fn.args, args, strict=True):
            self.vmap[a] = copy
        for a in self.fn.args:
            if self.act.is_active(a):
                suffix = "shadow" if a.type.is_ptr else "tan"
                for tangents in self.lanes:
                    shadow = Argument(a.type, self.namer.fresh(f"{a.name}.{suffix}"), "", len(args))
                    args.append(shadow)
                    tangents[a] = shadow
        ret = _derived_return(self.fn, self.width)
        attrs = "" if ret != self.fn.ret_type else self.fn.ret_attrs
        new = Function(self.name, ret, args, ret_attrs=attrs)
        self.new = new
        new.blocks = [Block(block.name) for block in self.fn.blocks]
        order = cfg(self.fn).rpo  # definitions before uses
        rest = [b.name for b in self.fn.blocks if b.name not in set(order)]
        for name in (*order, *rest):
            self.b.position_at_end(new.block(name))
            for inst in self.fn.block(name).instructions:
                self.visit(inst)
        for primal, tphi, lane in self.pending_phis:
            self.in_lane(lane)
            tphi.operands = [self.shadow_of(v, primal) for v in primal.operands]
        for inst in new.instructions():
            inst.operands = [self.vmap.get(v, v) for v in inst.operands]
        self.module.add_function(new)

    def in_lane(self, lane: int) -> None:
        """Emit (and look up) the tangents of lane `lane` from now on."""
        self.lane, self.tan = lane, self.lanes[lane]

    # ---- helpers -------------------------------------------------------------------------
    def copy(self, inst: Instruction) -> Instruction:
        """The copy of the primal instruction `inst` (made once, by the first lane)."""
        done = self.clones.get(inst)
        if done is not None:
            return done
        clone = Instruction(
            inst.opcode,
            inst.type,
            list(inst.operands),
            inst.name,
            flags=inst.flags,
            pred=inst.pred,
            aux_type=inst.aux_type,
            indices=inst.indices,
            labels=list(inst.labels),
            callee=inst.callee,
            fnty=inst.fnty,
            arg_attrs=list(inst.arg_attrs),
            ret_attrs=inst.ret_attrs,
            fn_attrs=inst.fn_attrs,
            tail=inst.tail,
            align=inst.align,
            template=inst.template,
            loc=inst.loc,
        )
        self.b.insert(clone)
        self.vmap[inst] = self.clones[inst] = clone
        return clone

    mode = MODE

    def fail(self, inst: Instruction, what: str, hint: str = "") -> NoDerivativeError:
        return NoDerivativeError(what, inst.text(), self.fn.name, self.mode, inst.loc, hint)

    def tangent(self, v: Value) -> Value | None:
        return self.tan.get(v)

    def shadow_of(self, v: Value, at: Instruction) -> Value:
        """The tangent/shadow of `v`, or what stands for it when `v` is inactive: 0.0 for
        floats, the value itself for integers and constant pointers."""
        t = self.tan.get(v)
        if t is not None:
            return t
        ty = v.type
        if ty.is_float or ty.kind == "vector" and ty.scalar.is_float:
            return Builder.zero(ty)
        if ty.is_int or not ty.may_carry_derivative:
            return v
        if isinstance(v, Constant | GlobalRef):
            if ty.kind in ("struct", "array") and ty.contains(lambda t: t.is_float):
                empty = isinstance(v, Constant) and (v.is_zero or v.text in ("undef", "poison"))
                return Builder.zero(ty) if empty else v
            return v
        if ty.is_ptr and at in self.act.maybe_primal:
            return v  # memory without derivatives, merged with memory with: its own shadow
        if ty.is_ptr:
            raise self.fail(
                at,
                f"a pointer without derivative ({v.ref}) used where memory carries derivatives",
                "Mixing a Const array with Duplicated ones in one place (a branch, "
                "a container, a store) is not supported: make both Duplicated.",
            )
        out: Value = Constant(ty, "undef")
        for k in range(len(ty.elems) if ty.kind == "struct" else ty.count):
            field = self.b.extractvalue(v, k)
            out = self.b.insertvalue(out, self.shadow_of(field, at), k, hint="shadow")
        return out

    def hint(self, inst: Instruction) -> str:
        return f"{inst.name or 't'}.{'shadow' if inst.type.is_ptr else 'tan'}"

    def set_tangent(self, inst: Instruction, t: Value | None) -> None:
        if t is not None:
            if isinstance(t, Instruction) and t.name.startswith("tan") and inst.name:
                self.namer.used.discard(t.name)
                t.name = self.namer.fresh(self.hint(inst))
            self.tan[inst] = t

    # ---- dispatch ------------------------------------------------------------------------
    def visit(self, inst: Instruction) -> None:
        self.b.loc = inst.loc
        method = getattr(self, "visit_" + inst.opcode.replace("getelementptr", "gep"), None)
        for lane in range(self.width):
            self.in_lane(lane)
            (method or self.visit_rule)(inst)
        self.in_lane(0)

    def visit_rule(self, inst: Instruction) -> None:
        """An instruction differentiated by its entry in the rule table."""
        clone = self.copy(inst)
        if not self.act.is_active(inst) and not any(self.act.is_active(o) for o in inst.operands):
            return
        rule = rules.lookup(inst)
        if rule is None:
            raise self.fail(inst, f"instruction '{inst.opcode}'")
        tans = [self.tangent(o) for o in inst.operands]
        t = rule.tangent(Context(self.b, clone, inst.operands, tangents=tans))
        if self.act.is_active(inst):
            self.set_tangent(inst, t)

    def visit_phi(self, inst: Instruction) -> None:
        self.copy(inst)
        if self.act.is_active(inst):
            tphi = self.b.phi(inst.type, self.hint(inst))
            tphi.labels = list(inst.labels)
            self.pending_phis.append((inst, tphi, self.lane))
            self.tan[inst] = tphi

    def visit_select(self, inst: Instruction) -> None:
        self.copy(inst)
        if self.act.is_active(inst):
            c, x, y = inst.operands
            t = self.b.select(c, self.shadow_of(x, inst), self.shadow_of(y, inst), self.hint(inst))
            self.tan[inst] = t

    def visit_load(self, inst: Instruction) -> None:
        scopes.mark(self.module, self.copy(inst), scopes.PRIMAL)
        if self.act.is_active(inst):
            ptr = inst.operands[0]
            shadow = self.tan[ptr]
            t = self.b.load(inst.type, shadow, inst.align, self.hint(inst))
            if ptr in self.act.maybe_primal and inst.type.is_float:  # no derivative there
                t = self.b.select(
                    self.is_primal(shadow, ptr), Builder.zero(inst.type), t, self.hint(inst)
                )
            else:
                scopes.mark(self.module, t, scopes.SHADOW)
            self.tan[inst] = t

    def visit_store(self, inst: Instruction) -> None:
        if store_base(inst) not in self.unneeded:
            scopes.mark(self.module, self.copy(inst), scopes.PRIMAL)
        value, ptr = inst.operands
        shadow = self.tan.get(ptr)
        if shadow is not None:  # (into memory without derivatives: the primal's store only)
            if value in self.act.maybe_primal:
                raise self.fail(
                    inst, "storing a pointer to memory with or without derivatives", self.MERGED
                )
            t = self.shadow_of(value, inst)
            if ptr in self.act.maybe_primal:  # the primal's own store, again: nothing
                t = self.b.select(self.is_primal(shadow, ptr), value, t, "shadow.val")
                self.b.store(t, shadow, inst.align)
            else:
                scopes.mark(self.module, self.b.store(t, shadow, inst.align), scopes.SHADOW)

    MERGED = (
        "Memory with a derivative and memory without one (a Const array, a local array "
        "that holds no derivative) are chosen between here (a branch or a select); "
        "such a pointer may be loaded from and stored through, not stored, returned or "
        "passed to a function. Mark both Duplicated, or choose between the values "
        "instead of the arrays."
    )

    def is_primal(self, shadow: Value, ptr: Value) -> Value:
        """Whether a shadow address is the primal's own (memory without derivatives)."""
        return self.b.icmp("eq", shadow, ptr, "no.shadow")

    def check_merged_operands(self, inst: Instruction) -> None:
        """Refuse passing a pointer whose shadow may be its primal (see `maybe_primal`) to a
        call other than reference counting (applied to a real shadow only)."""
        counts = rules.effects(inst)
        if not (counts is not None and counts.lifetime) and any(
            o in self.act.maybe_primal for o in inst.operands
        ):
            raise self.fail(
                inst,
                f"a call to {inst.callee_name or 'a function'} with a "
                "pointer to memory with or without derivatives",
                self.MERGED,
            )

    def visit_atomicrmw(self, inst: Instruction) -> None:
        """old = *p; *p += v: the same on the shadow, with v's tangent (old's: the shadow's)"""
        self.copy(inst)
        shadow = self.tan.get(inst.operands[0]) if inst.operands else None
        if shadow is None:
            return
        if inst.accumulation is None:
            raise self.fail(
                inst, "an atomic operation other than a float add on memory with derivatives"
            )
        t = self.b.atomic_add(shadow, self.shadow_of(inst.operands[1], inst), self.hint(inst))
        if self.act.is_active(inst):
            self.tan[inst] = t

    def visit_gep(self, inst: Instruction) -> None:
        clone = self.copy(inst)
        if self.act.is_active(inst):
            base, *idx = inst.operands
            assert inst.aux_type is not None
            t = self.b.gep(
                inst.aux_type, self.tan[base], *idx, flags=clone.flags, hint=self.hint(inst)
            )
            self.tan[inst] = t

    def visit_alloca(self, inst: Instruction) -> None:
        self.copy(inst)
        if self.act.is_active(inst):
            count = 1
            if inst.operands:
                if not isinstance(inst.operands[0], Constant):
                    raise self.fail(inst, "a dynamically sized alloca holding derivatives")
                count = int(inst.operands[0].text)
            assert inst.aux_type is not None
            t = self.b.alloca(inst.aux_type, inst.align, self.hint(inst))
            size = size_in_bytes(inst.aux_type) * count
            self.b.memset(t, const(Type("int", "i8", 8), 0), const(I64, size))
            self.tan[inst] = t

    def _structural(self, inst: Instruction) -> None:
        self.copy(inst)
        if self.act.is_active(inst):
            ops = [
                self.shadow_of(o, inst) if o.type.may_carry_derivative else o for o in inst.operands
            ]
            t = Instruction(inst.opcode, inst.type, ops, indices=inst.indices, flags=inst.flags)
            self.tan[inst] = self.b.insert(t, self.hint(inst))

    visit_extractvalue = visit_insertvalue = _structural

    def visit_freeze(self, inst: Instruction) -> None:
        (self.visit_rule if inst.type.is_float else self._structural)(inst)

    def visit_bitcast(self, inst: Instruction) -> None:
        if inst.type.is_ptr or inst.operands[0].type.is_ptr:
            self._structural(inst)
        else:
            self.visit_generic(inst)

    visit_addrspacecast = visit_bitcast

    def visit_generic(self, inst: Instruction) -> None:
        self.copy(inst)
        if any(self.act.is_active(o) for o in inst.operands) and inst.type.may_carry_derivative:
            raise self.fail(inst, f"'{inst.opcode}' reinterpreting a value with a derivative")

    visit_ptrtoint = visit_inttoptr = visit_generic

    def visit_icmp(self, inst: Instruction) -> None:
        self.copy(inst)

    visit_fcmp = visit_br = visit_switch = visit_unreachable = visit_icmp

    def visit_ret(self, inst: Instruction) -> None:
        if not self.fn.ret_type.is_float:
            self.copy(inst)
            return
        if self.lane + 1 < self.width:  # the last lane returns them all
            return
        v = inst.operands[0]
        agg = self.b.insertvalue(Constant(_derived_return(self.fn, self.width), "undef"), v, 0)
        for lane in range(self.width):
            self.in_lane(lane)
            agg = self.b.insertvalue(agg, self.shadow_of(v, inst), 1 + lane, hint="ret")
        self.b.insert(Instruction("ret", operands=[agg]))

    def visit_call(self, inst: Instruction) -> None:
        self.check_merged_operands(inst)
        summary = self.act.callees.get(inst)
        if summary is not None:
            return self.call_derivative(inst, summary)
        if any(self.act.is_active(o) for o in inst.operands) or self.act.is_active(inst):
            if rules.lookup(inst) is None:
                callee = inst.callee_name or "an indirect call"
                raise self.fail(
                    inst,
                    f"a call to {callee}",
                    "No derivative rule exists for it: mark the arguments that "
                    "reach it Const, so that no derivative flows through it.",
                )
            try:
                return self.visit_rule_call(inst)
            except ValueError as e:
                raise self.fail(inst, f"a call to {inst.callee_name}", str(e)) from None
        self.copy(inst)

    def visit_rule_call(self, inst: Instruction) -> None:
        rule = rules.lookup(inst)
        assert rule is not None
        clone = self.copy(inst)
        tans = [self.tangent(o) for o in inst.operands]
        ptr = inst.operands[0] if inst.operands else None
        if rule.effects.lifetime and ptr in self.act.maybe_primal and tans[0] is not None:
            # memory without derivatives is its own shadow: counted (or freed) once
            null = Constant(PTR, "null")
            tans[0] = self.b.select(self.is_primal(tans[0], ptr), null, tans[0], "shadow")
        # an allocation is null once an earlier lane's shadow could not be made
        allocated = self.vmap[inst]
        t = rule.tangent(Context(self.b, clone, inst.operands, tangents=tans, result=allocated))
        if t is not None and rule.effects.allocates is not None:
            # an allocation whose shadow could not be made failed (the rule released it)
            null = Constant(PTR, "null")
            failed = self.b.icmp("eq", t, null, "no.shadow")
            self.vmap[inst] = self.b.select(failed, null, allocated, inst.name or "alloc")
        if self.act.is_active(inst):
            if t is None and inst.type.is_ptr:
                sources = [
                    o.callee_name
                    for o in inst.operands
                    if isinstance(o, Instruction) and o.opcode == "call"
                ]
                made = f" (into memory from @{sources[0]})" if sources else ""
                raise self.fail(
                    inst,
                    f"a call to {inst.callee_name} returning a pointer{made}",
                    "That memory has no shadow: derivatives stored into it would be lost.",
                )
            self.set_tangent(inst, t)

    def parallel_derivative(self, inst: Instruction, summary: ActivityResult) -> None:
        """A parallel call of the chunk's forward derivative, the shadows of its arguments
        appended: each chunk stores its tangents where it stores its values."""
        chunk = rules.parallel_chunk(inst)
        assert chunk is not None
        with called_from(self.fn.name, inst.loc):
            name = self.synth.derive(summary.fn, summary.pattern)
        kind = rules.PARALLEL[inst.callee_name]
        clone = self.copy(inst)
        shadows = []
        for o, p in zip(chunk[1], summary.pattern, strict=True):
            for lane in range(self.width) if p and o is not None else ():
                self.in_lane(lane)
                assert o is not None
                shadows.append(self.shadow_of(o, inst))
        self.in_lane(0)
        clone.operands[kind.callee] = GlobalRef(name, PTR)
        clone.operands += shadows
        clone.arg_attrs = list(clone.arg_attrs) + [""] * len(shadows)

    def call_derivative(self, inst: Instruction, summary: ActivityResult) -> None:
        """A call of the callee's forward derivative, made once for all lanes."""
        if self.lane:
            return
        if inst.callee_name in rules.PARALLEL:
            return self.parallel_derivative(inst, summary)
        callee = self.module.get(inst.callee_name)
        assert callee is not None
        with called_from(self.fn.name, inst.loc):
            name = self.synth.derive(callee, summary.pattern)
        clone = self.copy(inst)
        shadows = []
        for o, p in zip(inst.operands, summary.pattern, strict=True):
            for lane in range(self.width) if p else ():
                self.in_lane(lane)
                shadows.append(self.shadow_of(o, inst))
        clone.operands = list(inst.operands) + shadows
        clone.arg_attrs = list(inst.arg_attrs) + [""] * len(shadows)
        clone.callee = GlobalRef(name, clone.callee.type if clone.callee else inst.type)
        clone.fnty = ""
        ret = _derived_return(callee, self.width)
        if ret != inst.type:
            clone.type = ret
            clone.name = self.namer.fresh(f"{inst.name or 'call'}.pair")
            primal = self.b.extractvalue(clone, 0, hint=inst.name or "call")
            self.vmap[inst] = primal
            for lane in range(self.width) if self.act.is_active(inst) else ():
                self.in_lane(lane)
                self.tan[inst] = self.b.extractvalue(clone, 1 + lane, hint=self.hint(inst))
        self.in_lane(0)
