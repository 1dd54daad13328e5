"""The augmented forward sweep `augmented_<f>(args, shadows, tape)`: the primal, the shadow
pointers (no tangents), and the pushes onto the tape that the `Plan` asks for (values the
reverse sweep needs, the ids of blocks left towards a join, the last counter of each counted
loop, the frame). One `visit_` per instruction kind, as in the forward synthesizer it
extends; what is pushed where is the plan's business, not this module's.

Memory the sweep allocates for its reverse sweep (shadows, kept copies) is logged on the
tape's escape record, so that an entry that runs out of memory can release it.

Batch mode (`width` N > 1): every active argument has N shadows, every pointer N shadows
(one per lane, as in forward mode), and a shadow item of the plan is N values on the tape,
in lane order.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import rules, scopes
from ..analysis.activity import ActivityResult
from ..errors import called_from
from ..forward import _FunctionForward
from ..ir import (
    I64,
    PTR,
    VOID,
    Argument,
    Block,
    Constant,
    Function,
    GlobalRef,
    Instruction,
    Type,
    Value,
)
from ..ir.builder import Builder
from ..ir.types import size_in_bytes
from ..ir.values import const
from ..rules import Context
from ..tape import (
    CALLOC,
    CHUNKS_ESCAPED,
    LOG,
    SAVED,
    coalesce,
    localize,
    place,
    push,
    reserve,
    storable,
    sync,
    take_room,
)
from .parallel import CHUNK_TAPE, Launch, trampoline
from .plan import MODE, LoopPlan, Plan, memory_call

Kept = list[tuple[Type, str | None]]  # per instruction: what it kept for its adjoint


# loop arithmetic of both sweeps, on the values of the sweep that builds it


def trip_count(b: Builder, loop: LoopPlan, start: Value, bound: Value) -> Value:
    """The iterations a reserved loop makes room for, from its counter's start and the
    bound of its latch's exit test (`LoopPlan.reserve`)."""
    span = b.binop("sub", bound, start, "trips")
    if loop.past:
        span = b.binop("add", span, const(I64, loop.past), "trips")
    trips = b.binop("sdiv", span, const(I64, loop.loop.counter.step), "trips")
    some = b.icmp("sgt", trips, const(I64, 0), "trips.some")
    return b.select(some, trips, const(I64, 0), "trips")


def last_counter(b: Builder, loop: LoopPlan, bound: Value) -> Value:
    """The counter of a loop's last iteration when its latch leaves, from the bound of the
    latch's exit test."""
    return b.binop("sub", bound, const(I64, loop.loop.counter.step - loop.past), "iv.last")


def iteration(b: Builder, loop: LoopPlan, iv: Value, start: Value) -> Value:
    """The number (from 0) of the iteration whose counter is `iv`, from the counter's
    start."""
    span = b.binop("sub", iv, start, "n")
    return b.binop("sdiv", span, const(I64, loop.loop.counter.step), "n")


class Augmented(_FunctionForward):
    """Builds `augmented_<f>.<bits>`; `run()` returns what each memory call kept."""

    mode = MODE

    def __init__(
        self,
        synth,
        fn,
        act: ActivityResult,
        name: str,
        plan: Plan,
        width: int = 1,
        shared: bool | Launch = False,
    ) -> None:
        super().__init__(synth, fn, act, name, width=width)
        self.plan = plan
        self.shared = shared  # a parallel call's chunk or what it calls (`derive`)
        self.kept: dict[Instruction, Kept] = {}
        self.rooms: dict[str, tuple[Value, Value]] = {}  # header -> the room its preheader
        # took, and the iterations it holds

    def run(self) -> dict[Instruction, Kept]:  # type: ignore[override]
        args = [Argument(a.type, a.name, a.attrs, a.index) for a in self.fn.args]
        for a, copy in zip(self.fn.args, args, strict=True):
            self.vmap[a] = copy
        for a in self.fn.args:
            if self.act.is_active(a):
                for tangents in self.lanes:
                    shadow = Argument(PTR, self.namer.fresh(f"{a.name}.shadow"), "", len(args))
                    args.append(shadow)
                    if a.type.is_ptr:
                        tangents[a] = shadow
        self.tape_arg = Argument(PTR, self.namer.fresh("tape"), "", len(args))
        args.append(self.tape_arg)
        self.new = Function(self.name, self.fn.ret_type, args, ret_attrs=self.fn.ret_attrs)
        self.build_blocks()
        return self.kept

    def build_blocks(self) -> None:
        new, plan = self.new, self.plan
        new.blocks = [Block(block.name) for block in self.fn.blocks]
        order = plan.graph.rpo
        rest = [b.name for b in self.fn.blocks if b.name not in set(order)]
        frame_items: dict[Value, list] = {}
        for item, k in plan.frame.items():
            frame_items.setdefault(item[1], []).append((item, k))
        for name in (*order, *rest):
            self.b.position_at_end(new.block(name))
            if name == self.fn.entry.name:
                self.open_frame()
                self.carry = {v: self.b.alloca(v.type, 8, f"{v.label}.carry") for v in plan.carried}
            for inst in self.fn.block(name).instructions:
                if inst.is_terminator:
                    self.before_terminator(inst)
                self.visit(inst)
                if inst in self.carry:
                    self.b.store(inst, self.carry[inst], 8)
                if inst in plan.kept_alive:  # until the reverse sweep passes it
                    allocation = rules.effects(inst).allocates  # type: ignore[union-attr]
                    self.b.call(allocation.retain, [inst], VOID)  # type: ignore[union-attr,arg-type]
                    self.log(inst, allocation.release)  # type: ignore[union-attr]
                for (kind, v), k in frame_items.get(inst, ()):
                    self.save(inst, kind, v, k)
                k = 0  # the values pushed so far after `inst`
                for kind, v in plan.step(inst).pushes:
                    self.push(inst, kind, v, k)
                    k += 1 if kind == "primal" else self.width
        for primal, tphi, lane in self.pending_phis:
            self.in_lane(lane)
            tphi.operands = [self.shadow_of(v, primal) for v in primal.operands]
        for inst in new.instructions():
            inst.operands = [self.vmap.get(v, v) for v in inst.operands]
        for block in new.blocks:
            coalesce(block, self.tape)
        self.module.add_function(new)

    # ---- the tape ------------------------------------------------------------------------
    def log(self, p: Value, release: str) -> None:
        """`p`, which `release` frees, is released if the forward sweep escapes."""
        if self.module.get(release) is None:
            self.module.add_function(Function(release, VOID, [Argument(PTR, "p", "", 0)]))
        self.b.call(LOG, [self.tape, p, GlobalRef(release, PTR)], VOID)

    def saved_values(self, inst: Instruction, kind: str, v: Value) -> list[Value]:
        """What an item of the plan is in this sweep: the primal value, or its shadow in
        each lane."""
        values = [v] if kind == "primal" else [lane.get(v) for lane in self.lanes]
        values = [Constant(PTR, "null") if x is None else x for x in values]
        for x in values:
            if not storable(x.type):
                raise self.fail(inst, f"a value of type {x.type} needed by the reverse pass")
        return values

    def push(self, inst: Instruction, kind: str, v: Value, k: int) -> None:
        """Push the values of `inst`'s item, or store them in their places in the iteration's
        part of the loop's room (`LoopPlan.places`; `k`: the values of `inst`'s items
        before this one)."""
        loop = self.plan.placed.get(inst.block_name)
        values = self.saved_values(inst, kind, v)
        if loop is None:
            for x in values:
                push(self.b, self.tape, x, reserved=inst.block_name in self.plan.unchecked)
            return
        first = loop.place(inst, self.width) + k
        self.store_placed(loop, {first + j: x for j, x in enumerate(values)})

    def store_placed(self, loop: LoopPlan, values: dict[int, Value]) -> None:
        """Store each value in its place (by column) of the current iteration's part of the
        room."""
        n = iteration(self.b, loop, loop.loop.counter.phi, loop.loop.counter.start)
        room, trips = self.rooms[loop.loop.header]
        for column, x in values.items():
            stored = self.b.store(x, place(self.b, room, n, trips, column), 8)
            scopes.mark(self.module, stored, scopes.TAPE)

    def open_frame(self) -> None:
        """The function's own view of the tape, and a stack slot per frame value (zero until
        its definition runs): the frame is pushed when the function returns."""
        self.tape = localize(self.b, self.tape_arg)
        self.frame: list[list[Instruction]] = []  # per frame item, a slot per value it is
        for kind, v in self.plan.frame:
            ty = PTR if kind == "shadow" else v.type
            slots = [
                self.b.alloca(ty, 8, f"{v.label}.frame")
                for _ in range(1 if kind == "primal" else self.width)
            ]
            for slot in slots:
                self.b.store(Builder.zero(ty), slot, 8)
            self.frame.append(slots)

    def save(self, inst: Instruction, kind: str, v: Value, k: int) -> None:
        for x, slot in zip(self.saved_values(inst, kind, v), self.frame[k], strict=True):
            self.b.store(x, slot, 8)

    def before_terminator(self, inst: Instruction) -> None:
        block = inst.block_name
        plan = self.plan
        for lp in plan.exits.get(block, ()):  # the loop's saved values, its last counter
            loop = plan.loops[lp.header]
            for kind, v in loop.saved:
                carry = self.carry.get(v) if kind == "primal" else None
                values = (
                    self.saved_values(inst, kind, v)
                    if carry is None
                    else [self.b.load(v.type, carry, 8, f"{v.label}.carried")]
                )
                for x in values:
                    push(self.b, self.tape, x)
            if loop.bound is None or loop.bound[0] != block:
                push(self.b, self.tape, lp.counter.phi)
        if inst.opcode == "ret":
            for (kind, v), slots in zip(plan.frame, self.frame, strict=True):
                ty = PTR if kind == "shadow" else v.type
                for slot in slots:
                    push(self.b, self.tape, self.b.load(ty, slot, 8, f"{v.label}.{kind}"))
        placed = plan.placed.get(block)
        if placed is not None and plan.pushes_id[block]:  # in the places of its joins
            id_ = const(I64, plan.index[block])
            joins = [s for s in self.fn.block(block).successors if s in placed.ids]
            self.store_placed(placed, {placed.id_place(s, self.width): id_ for s in joins})
        elif inst.opcode == "ret" and len(plan.rets) > 1 or plan.pushes_id[block]:
            id_ = const(I64, plan.index[block])
            push(self.b, self.tape, id_, reserved=block in plan.unchecked)
        if inst.opcode == "ret":
            sync(self.b, self.tape, self.tape_arg)
        entered = plan.entered_from(block)
        if entered is not None:
            self.reserve_loop(entered)

    def reserve_loop(self, loop: LoopPlan) -> None:
        """Make room for all the pushes of a loop whose trip count is known here, at once
        (the tape's storage may move only now), then take the room of its places, followed
        by its trip count if the tape keeps it."""
        assert loop.reserve is not None
        b = self.b
        trips = trip_count(b, loop, loop.loop.counter.start, loop.reserve[0])
        per_iteration = const(I64, 8 * loop.per_iteration(self.width))
        room = b.binop("mul", trips, per_iteration, "tape.room")
        kept = loop.places is not None and loop.keeps_trips
        reserve(b, self.tape, b.binop("add", room, const(I64, 8 * kept), "tape.room"))
        if loop.places is not None:
            self.rooms[loop.loop.header] = (take_room(b, self.tape, room), trips)
        if kept:
            push(b, self.tape, trips, reserved=True)

    # ---- instructions: tangents are not computed here, only pointer shadows --------------
    _SHADOWED = frozenset(
        {
            "load",
            "phi",
            "select",
            "extractvalue",
            "insertvalue",
            "freeze",
            "getelementptr",
            "alloca",
            "bitcast",
            "addrspacecast",
            "store",
            "call",
            "ptrtoint",
            "inttoptr",
            "atomicrmw",
        }
    )

    def visit(self, inst: Instruction) -> None:
        if inst.opcode in self._SHADOWED:
            return super().visit(inst)
        self.b.loc = inst.loc
        self.copy(inst)
        if self.act.is_active(inst) and rules.lookup(inst) is None and inst.type.is_float:
            raise self.fail(inst, f"instruction '{inst.opcode}'")

    def visit_ret(self, inst: Instruction) -> None:
        self.copy(inst)

    def visit_atomicrmw(self, inst: Instruction) -> None:
        self.copy(inst)  # (its derivative: the reverse sweep's)

    def visit_alloca(self, inst: Instruction) -> None:
        """Shadow stack memory must outlive this sweep: it is zeroed heap memory, freed when
        the reverse sweep passes the alloca."""
        self.copy(inst)
        if self.act.is_active(inst):
            if inst.operands:
                raise self.fail(inst, "a dynamically sized alloca holding derivatives")
            size = const(I64, size_in_bytes(inst.aux_type))  # type: ignore[arg-type]
            self.tan[inst] = self.b.call(CALLOC, [self.tape, size], PTR, self.hint(inst))

    def _pointer_only(self, inst: Instruction) -> bool:
        return inst.type.may_carry_derivative and not inst.type.contains(lambda t: t.is_float)

    def visit_phi(self, inst: Instruction) -> None:
        if self._pointer_only(inst):
            return super().visit_phi(inst)
        self.copy(inst)

    def visit_select(self, inst: Instruction) -> None:
        if self._pointer_only(inst):
            return super().visit_select(inst)
        self.copy(inst)

    def visit_load(self, inst: Instruction) -> None:
        if inst.type.is_float or not self.act.is_active(inst):
            scopes.mark(self.module, self.copy(inst), scopes.PRIMAL)
            return
        if inst.type.contains(lambda t: t.is_float):
            raise self.fail(inst, "loading an aggregate holding floats with derivatives")
        super().visit_load(inst)

    def visit_store(self, inst: Instruction) -> None:
        value, ptr = inst.operands
        if value.type.is_float or ptr not in self.tan:
            scopes.mark(self.module, self.copy(inst), scopes.PRIMAL)
            return
        if value.type.contains(lambda t: t.is_float):
            raise self.fail(inst, "storing an aggregate holding floats into shadowed memory")
        super().visit_store(inst)

    def _structural(self, inst: Instruction) -> None:
        if self._pointer_only(inst):
            return super()._structural(inst)
        self.copy(inst)
        if self.act.is_active(inst) and inst.type.contains(lambda t: t.is_float):
            raise self.fail(inst, f"'{inst.opcode}' on an aggregate holding floats")

    visit_extractvalue = visit_insertvalue = _structural

    def visit_freeze(self, inst: Instruction) -> None:
        if inst.type.is_float:
            self.copy(inst)  # its adjoint passes through (rule table)
        else:
            self._structural(inst)

    def visit_call(self, inst: Instruction) -> None:
        self.check_merged_operands(inst)
        summary = self.act.callees.get(inst)
        if summary is not None:
            return self.call_augmented(inst, summary)
        active = any(self.act.is_active(o) for o in inst.operands) or self.act.is_active(inst)
        rule = rules.lookup(inst)
        if not active or rule is not None and rule.effects.lifetime:
            self.copy(inst)  # shadows stay alive until the reverse sweep has used them
            return None
        if rule is None:
            return super().visit_call(inst)  # raises the named error
        if memory_call(self.act, inst):
            if not self.lane:  # (once: what it keeps is primal memory)
                self.keep(inst, rule)
            self.copy(inst)  # what it does to shadows is reversed in the reverse sweep
            return None
        fx = rule.effects
        if fx.writes:  # into memory without derivatives (Const): nothing to reverse
            self.copy(inst)
            return None
        if rule.kind != "custom":  # math: only the reverse sweep differentiates it
            self.copy(inst)
            return None
        super().visit_call(inst)  # shadows of allocations and of pointers into them
        if fx.allocates is not None and inst in self.tan:
            self.log(self.tan[inst], fx.allocates.release)
        return None

    def keep(self, inst: Instruction, rule: rules.Rule) -> None:
        """Push what `rule.keep` saves for the adjoint, before the call changes memory."""
        if rule.keep is None:
            return
        shadows = [
            self.shadow_of(o, inst) if o.type.is_ptr and self.act.is_active(o) else None
            for o in inst.operands
        ]  # (as the adjoint will have them: a factor only the other's adjoint reads)

        def saved(ptr: Value, count: Value, elem: Type) -> rules.Kept:
            if (inst, ptr) in self.plan.unchanged:  # read in place by the reverse sweep
                return rules.Kept(ptr)
            return rules.Kept(self.copied(ptr, count, elem), "free")

        kept = rule.keep(Context(self.b, inst, inst.operands, shadows=shadows, saved=saved))
        for k in kept:
            if k.release == "free":
                self.b.call(SAVED, [self.tape, k.value], VOID)  # no memory: escape
            elif k.release is not None:
                self.log(k.value, k.release)
            push(self.b, self.tape, k.value)
        self.kept[inst] = [(k.value.type, k.release) for k in kept]

    def copied(self, ptr: Value, count: Value, elem: Type) -> Value:
        """A fresh heap copy of `count` (i64) elements of type `elem` at `ptr` (null when no
        memory could be had: nothing is copied, and `SAVED` escapes the sweep)."""
        b = self.b
        size = b.binop("mul", count, const(I64, size_in_bytes(elem)), "saved.bytes")
        dst = b.call("malloc", [size], PTR, "saved")
        none = b.icmp("eq", dst, Constant(PTR, "null"), "saved.none")
        b.memcpy(dst, ptr, b.select(none, const(I64, 0), size, "saved.bytes"))
        return dst

    def call_augmented(self, inst: Instruction, summary: ActivityResult) -> None:
        """A call of a function the engine differentiates: its augmented forward sweep, on
        this function's tape (one call for all lanes)."""
        if self.lane:
            return
        if inst.callee_name in rules.PARALLEL:
            return self.parallel_augmented(inst, summary)
        with called_from(self.fn.name, inst.loc):
            aug, _ = self.synth.derive(
                self.module.functions[inst.callee_name],
                summary.pattern,
                shared=self.plan.sharing(inst, self.shared),
            )
        sync(self.b, self.tape, self.tape_arg)
        clone = self.copy(inst)
        shadows = self.call_shadows(inst, inst.operands, summary.pattern)
        clone.operands = [*inst.operands, *shadows, self.tape_arg]
        clone.arg_attrs = list(inst.arg_attrs) + [""] * (len(shadows) + 1)
        clone.callee, clone.fnty = GlobalRef(aug, PTR), ""
        sync(self.b, self.tape_arg, self.tape)

    def call_shadows(
        self, inst: Instruction, operands: Sequence[Value | None], pattern: Sequence[bool]
    ) -> list[Value]:
        """The shadows `inst` passes its callee's augmented forward sweep: per active
        operand, one per lane (null for a float, whose adjoint has no shadow)."""
        shadows: list[Value] = []
        for o, p in zip(operands, pattern, strict=True):
            if not p or o is None:
                continue
            for lane in range(self.width):
                self.in_lane(lane)
                shadows.append(
                    Constant(PTR, "null") if o.type.is_float else self.shadow_of(o, inst)
                )
        self.in_lane(0)
        return shadows

    def parallel_augmented(self, inst: Instruction, summary: ActivityResult) -> None:
        """A parallel call of the chunk's augmented forward sweep, each chunk on its own
        tape (`reverse/parallel.py`); the tapes' address pushed for the reverse sweep."""
        kind = rules.PARALLEL[inst.callee_name]
        chunk = rules.parallel_chunk(inst)
        assert chunk is not None
        if summary.fn.ret_type.is_float:
            raise self.fail(inst, "a parallel call of a chunk returning a float")
        with called_from(self.fn.name, inst.loc):
            shared = self.plan.sharing(inst, self.shared)
            aug, _ = self.synth.derive(summary.fn, summary.pattern, shared=shared)
        n = inst.operands[kind.count]
        size = self.b.binop("mul", n, const(I64, CHUNK_TAPE), "chunk.tapes.bytes")
        tapes = self.b.call(CALLOC, [self.tape, size], PTR, "chunk.tapes")
        clone = self.copy(inst)
        shadows = self.call_shadows(inst, chunk[1], summary.pattern)
        clone.operands[kind.callee] = GlobalRef(
            trampoline(self.module, aug, False, self.synth.nestable), PTR
        )
        clone.operands += [*shadows, tapes]
        clone.arg_attrs = list(clone.arg_attrs) + [""] * (len(shadows) + 1)
        self.b.call(CHUNKS_ESCAPED, [self.tape, tapes, n], VOID)
        push(self.b, self.tape, tapes)
