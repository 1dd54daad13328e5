"""The reverse sweep `diffe_<f>(args, shadows, tape[, dret])`: the blocks replayed backwards,
popping the tape in exactly the reverse order of the augmented forward sweep's pushes, and
adding adjoints (`+=`) into adjoint slots and shadow memory. One `visit_` per instruction
kind, mirroring the forward synthesizer; arithmetic and calls go through the rule table.

`Release` is the same walk reduced to popping the tape and freeing what the forward sweep
left on it (shadows, kept copies): for a tape whose reverse sweep never runs.

Batch mode (`width` N > 1): N shadows per active argument (and N cotangents of a float
return), N adjoints per active float value; each instruction's reverse is emitted once per
lane, the tape popped once for all of them.

A `shared` function (a parallel call's chunk, or what it calls) adds the adjoints of its
loads and of its float arguments with `atomicrmw fadd`: other chunks may add into the same
cells concurrently.
"""

from __future__ import annotations

from functools import cached_property

from .. import rules, scopes
from ..analysis.activity import ActivityResult
from ..analysis.increments import increments
from ..analysis.loops import CountedLoop, Induction
from ..analysis.partition import Border
from ..analysis.pointers import allocation, roots
from ..analysis.windows import Window
from ..errors import NoDerivativeError
from ..ir import (
    I1,
    I8,
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
from ..ir.builder import Builder, Namer
from ..ir.values import const
from ..rules import Context
from ..tape import give_back, localize, place, pop, sync
from ..transforms.dead import drop_dead
from .augmented import Kept, iteration, last_counter, trip_count
from .parallel import Launch, trampoline
from .plan import MODE, PURE, LoopPlan, Plan, is_active_float


class Reverse:
    """Builds `diffe_<f>.<bits>(args, shadows, tape[, dret])`."""

    def __init__(
        self,
        synth,
        fn: Function,
        act: ActivityResult,
        name: str,
        plan: Plan,
        kept,
        width=1,
        shared: bool | Launch = False,
    ) -> None:
        self.synth, self.fn, self.act, self.name, self.plan = synth, fn, act, name, plan
        # a parallel call's chunk or what it calls (`derive`): adjoints of loads and of float
        # arguments are added atomically (other chunks may add into the same cells), but for
        # the loads a chunk owns (`plan.owned`)
        self.shared = shared
        self.kept: dict[Instruction, Kept] = kept
        self.module = synth.module
        self.namer = Namer(fn)
        self.b = Builder(self.module, self.namer)
        self.width = width
        # per lane: active float value -> adjoint slot; float arg -> its adjoint pointer;
        # pointer arg -> its shadow; the return's cotangent. `in_lane` picks one.
        self.lane_slots: list[dict[Value, Value]] = [{} for _ in range(width)]
        self.lane_accumulators: list[dict[Value, Value]] = [{} for _ in range(width)]
        self.lane_shadow_args: list[dict[Value, Value]] = [{} for _ in range(width)]
        self.drets: list[Argument] = []
        self.in_lane(0)
        # stores incrementing active memory: reversed as a read of its shadow (`visit_store`),
        # their loads and additions not at all
        self.increments = {
            store: inc
            for store, inc in increments(self.module, fn).items()
            if store.operands[1] not in act.maybe_primal
            and is_active_float(act, inc.load)
            and is_active_float(act, inc.add)
        }
        self.bypassed = {v for inc in self.increments.values() for v in (inc.load, inc.add)}

    def in_lane(self, lane: int) -> None:
        """Read and add the adjoints (and shadows) of lane `lane` from now on."""
        self.lane = lane
        self.slots = self.lane_slots[lane]
        self.accumulators = self.lane_accumulators[lane]
        self.shadow_args = self.lane_shadow_args[lane]
        self.dret = self.drets[lane] if self.drets else None

    def fail(self, inst: Instruction, what: str, hint: str = "") -> NoDerivativeError:
        return NoDerivativeError(what, inst.text(), self.fn.name, MODE, inst.loc, hint)

    def run(self) -> None:
        fn = self.fn
        args: list[Argument] = [Argument(a.type, a.name, a.attrs, a.index) for a in fn.args]
        self.vmap: dict[Value, Value] = dict(zip(fn.args, args, strict=True))
        for a in fn.args:
            if self.act.is_active(a):
                for lane in range(self.width):
                    s = Argument(PTR, self.namer.fresh(f"{a.name}.shadow"), "", len(args))
                    args.append(s)
                    kept = self.lane_shadow_args if a.type.is_ptr else self.lane_accumulators
                    kept[lane][a] = s
        self.tape_arg = Argument(PTR, self.namer.fresh("tape"), "", len(args))
        args.append(self.tape_arg)
        if fn.ret_type.is_float and self.differentiates:
            for _ in range(self.width):
                self.drets.append(Argument(fn.ret_type, self.namer.fresh("dret"), "", len(args)))
                args.append(self.drets[-1])
        self.in_lane(0)
        new = self.new = Function(self.name, VOID, args)
        entry = self.entry = Block(self.namer.fresh("entry.rev"))
        new.blocks.append(entry)
        self.rev_blocks = {b.name: Block(self.namer.fresh(f"{b.name}.rev")) for b in fn.blocks}
        self.b.position_at_end(entry)
        self.make_slots()
        plan = self.plan
        self.tape = localize(self.b, self.tape_arg)
        exit_id = pop(self.b, self.tape, I64, "exit.id") if len(plan.rets) > 1 else None
        self.frame_values: dict[tuple, Value] = {}
        for kind, v in reversed(list(plan.frame)):  # pushed on return: read first
            self.frame_values.update(self.pop_item(kind, v, f"{v.label}.{kind}"))
        self.dispatch(list(plan.rets), exit_id)
        made: dict[str, list[Block]] = {}  # primal block -> the blocks its reverse made
        self.latches: dict[str, Instruction] = {}  # loop header -> its reverse's back edge
        for block in fn.blocks:
            start = len(new.blocks)
            new.blocks.append(self.rev_blocks[block.name])
            self.reverse_block(block, new)
            made[block.name] = new.blocks[start:]
        if not self.shared and self.width == 1:  # (atomics; several lanes' shadows)
            self.mark_independent(made)
        for inst in new.instructions():
            inst.operands = [self.vmap.get(v, v) for v in inst.operands]
        drop_dead(new, PURE)  # the partials of inactive operands (a nested derivative's
        # engine would differentiate them)
        self.module.add_function(new)

    differentiates = True  # adjoints are computed (`Release` only frees)

    def mark_independent(self, made: dict[str, list[Block]]) -> None:
        """Mark parallel the reverse of each loop whose reverse iterations are independent:
        its loads and stores other than the sweep's own stack slots (LLVM promotes those to
        registers; one left in memory keeps the loop from counting as parallel)."""
        for header, lp in self.plan.loops.items():
            if not lp.independent:
                continue
            accesses = [
                inst
                for b in lp.loop.blocks
                for block in made[b]
                for inst in block.instructions
                if inst.opcode in ("load", "store") and not _on_stack(inst)
            ]
            scopes.parallel_loop(self.module, accesses, self.latches[header])

    def make_slots(self) -> None:
        """An adjoint slot per active float value and float argument and lane, loop
        counters, slots for saved values."""
        adjoined = [i for i in self.fn.instructions() if is_active_float(self.act, i)]
        for slots, accumulators in zip(self.lane_slots, self.lane_accumulators, strict=True):
            for v in [*adjoined, *accumulators] if self.differentiates else ():
                slots[v] = self.b.alloca(v.type, None, f"{v.label}.adj")
                self.b.store(_no_adjoint(v.type), slots[v])
        self.counters = {h: self.b.alloca(I64, 8, f"{h}.iv") for h in self.plan.loops}
        self.rooms = {  # the room of a loop whose values have places, its iterations
            h: (self.b.alloca(PTR, 8, f"{h}.room"), self.b.alloca(I64, 8, f"{h}.trips"))
            for h, lp in self.plan.loops.items()
            if lp.places is not None
        }
        # a window's sum and whether anything was summed, by the position of the cell, and
        # its anchor's shadow address (`analysis.windows`)
        windowed = self.differentiates and not self.shared and self.width == 1
        self.window_slots = {
            w: [
                (self.b.alloca(w.type, None, "window"), self.b.alloca(I1, None, "window.summed"))
                for _ in range(w.size)
            ]
            for lp in self.plan.loops.values()
            if windowed
            for w in lp.windows
        }
        self.window_of = {load: w for w in self.window_slots for load in w.positions}
        self.anchors = {w: self.b.alloca(PTR, 8, "window.anchor") for w in self.window_slots}
        self.saved_slots = {
            (h, *key): self.b.alloca(PTR if kind == "shadow" else v.type, 8, f"{v.label}.slot")
            for h, lp in self.plan.loops.items()
            for kind, v in lp.saved
            for key in self.item_keys(kind, v)
        }

    def item_keys(self, kind: str, v: Value) -> list[tuple]:
        """The values an item of the plan is: its primal, or its shadow in each lane."""
        return [(kind, v, None)] if kind == "primal" else [(kind, v, k) for k in range(self.width)]

    def key(self, kind: str, v: Value) -> tuple:
        """The item's value in the current lane."""
        return (kind, v, None if kind == "primal" else self.lane)

    def pop_item(self, kind: str, v: Value, name: str) -> list[tuple[tuple, Value]]:
        """Pop an item's values off the tape (pushed in lane order)."""
        ty = PTR if kind == "shadow" else v.type
        return [(k, pop(self.b, self.tape, ty, name)) for k in reversed(self.item_keys(kind, v))]

    # ---- adjoints ------------------------------------------------------------------------
    def add_adjoint(self, v: Value, contribution: Value | None) -> None:
        """adjoint(v) += contribution (dropped for inactive values)."""
        if contribution is None or not is_active_float(self.act, v):
            return
        target = self.slots.get(v)
        if target is None:
            return
        old = self.b.load(v.type, target, None, "adj")
        self.b.store(self.b.binop("fadd", old, contribution, "adj", _SUMMED), target)

    def give_accumulated(self) -> None:
        """The adjoints of float arguments, summed in local slots, added to the caller's
        accumulators (atomically in a parallel call's chunk: other chunks add theirs)."""
        for lane in range(self.width) if self.differentiates else ():
            self.in_lane(lane)
            for a, acc in self.accumulators.items():
                total = self.b.load(a.type, self.slots[a], None, f"{a.label}.adj")
                self.add(acc, total, None, bool(self.shared))
        self.in_lane(0)

    def take_adjoint(self, inst: Instruction, lane: int | None = None) -> Value:
        """Read the adjoint of `inst` (in `lane`, by default the current one) and reset it
        (the definition is being reversed)."""
        slot = (self.slots if lane is None else self.lane_slots[lane])[inst]
        adj = self.b.load(inst.type, slot, None, f"{inst.name or 'v'}.adj")
        self.b.store(_no_adjoint(inst.type), slot)
        return adj

    # ---- control flow --------------------------------------------------------------------
    def dispatch(self, candidates: list[str], block_id: Value | None) -> None:
        """Branch to the reverse of the block `block_id` names."""
        if len(candidates) == 1:
            self.b.insert(Instruction("br", labels=[self.rev_blocks[candidates[0]].name]))
            return
        cases = [const(I64, self.plan.index[c]) for c in candidates[1:]]
        labels = [self.rev_blocks[c].name for c in candidates]
        self.b.insert(Instruction("switch", operands=[block_id, *cases], labels=labels))  # type: ignore[list-item]

    def reverse_block(self, block: Block, new: Function) -> None:
        self.b.position_at_end(self.rev_blocks[block.name])
        self.block = block.name
        self.block_values: dict[tuple[str, Value], Value] = {}
        for lp in reversed(self.plan.exits.get(block.name, ())):  # entering loops backwards
            self.enter_loop(block.name, lp)
        if self.drets and block.terminator.opcode == "ret":
            for lane in range(self.width):
                self.in_lane(lane)
                self.add_adjoint(block.terminator.operands[0], self.dret)
            self.in_lane(0)
        for inst in reversed(block.instructions):
            if inst.opcode != "phi" and not inst.is_terminator:
                self.b.loc = inst.loc
                self.reverse_instruction(inst)
        preds = list(self.plan.graph.preds.get(block.name, ()))
        phis = [p for p in block.phis if p in self.slots]
        if not preds:
            self.give_accumulated()
            sync(self.b, self.tape, self.tape_arg)
            self.b.insert(Instruction("ret"))
            return
        adjs = [(p, lane, self.take_adjoint(p, lane)) for p in phis for lane in range(self.width)]
        if block.name in self.plan.loops:
            self.count_down(self.plan.loops[block.name].loop, adjs, new)
            return
        if block.name in self.plan.decided:
            self.decide(block.name, adjs, new)
            return
        if not self.plan.pops_id(block.name) or len(preds) == 1:
            self.back_to(preds[0], adjs)
            return
        placed = self.plan.placed.get(block.name)
        if placed is None:
            pred_id = pop(self.b, self.tape, I64, "pred.id")
        else:
            (at,) = self.places_of(placed, [placed.id_place(block.name, self.width)])
            pred_id = self.b.load(I64, at, 8, "pred.id")
        edges = [Block(self.namer.fresh(f"{block.name}.from.{p}")) for p in preds]
        new.blocks.extend(edges)
        cases = [const(I64, self.plan.index[p]) for p in preds[1:]]
        self.b.insert(
            Instruction("switch", operands=[pred_id, *cases], labels=[e.name for e in edges])
        )
        for p, edge in zip(preds, edges, strict=True):
            self.b.position_at_end(edge)
            self.transfer(adjs, p)
            self.b.insert(Instruction("br", labels=[self.rev_blocks[p].name]))

    def enter_loop(self, block: str, lp: CountedLoop) -> None:
        """Entering a counted loop backwards through exit edge `block`: its last counter,
        and the values saved on its exits."""
        loop = self.plan.loops[lp.header]
        last: Value
        if loop.bound is not None and loop.bound[0] == block:
            last = last_counter(self.b, loop, self.value("primal", loop.bound[1]))
        else:
            last = pop(self.b, self.tape, I64, "iv.last")
        self.b.store(last, self.counters[lp.header], 8)
        for w in self.windows(lp.header):
            for k in range(w.size):
                self.clear(w, k)
        for kind, v in reversed(loop.saved):
            for key, saved in self.pop_item(kind, v, f"{v.label}.saved"):
                self.b.store(saved, self.saved_slots[(lp.header, *key)], 8)
        if loop.places is None:
            return
        # the room its preheader took, given back (the reverse sweep pushes nothing, so the
        # room's values stay where they are)
        trips = (
            pop(self.b, self.tape, I64, "trips")
            if loop.keeps_trips
            else trip_count(
                self.b,
                loop,
                self.value("primal", lp.counter.start),
                self.value("primal", loop.bound[1]),  # type: ignore[index]
            )
        )
        per_iteration = const(I64, 8 * loop.per_iteration(self.width))
        room = give_back(self.b, self.tape, self.b.binop("mul", trips, per_iteration, "room"))
        self.b.store(room, self.rooms[lp.header][0], 8)
        self.b.store(trips, self.rooms[lp.header][1], 8)

    def induction(self, lp: CountedLoop, ind: Induction, kind: str = "primal") -> Value:
        """An induction variable of `lp` in the current iteration, from the loop's counter
        (a pointer's shadow: its start's shadow, moved as far)."""
        iv = self.b.load(I64, self.counters[lp.header], 8, "iv")
        if ind is lp.counter:
            return iv
        k = iteration(
            self.b, self.plan.loops[lp.header], iv, self.value("primal", lp.counter.start)
        )
        step = self.b.binop("mul", k, const(I64, ind.step), "k")
        start = self.value(kind, ind.start)
        if ind.phi.type.is_ptr:
            return self.b.gep(I8, start, step, hint="iv")
        return self.b.binop("add", start, step, "iv")

    def count_down(
        self, lp: CountedLoop, adjs: list[tuple[Instruction, int, Value]], new: Function
    ) -> None:
        """Leave a counted loop's header backwards: to the preheader after the first
        iteration, else to the latch of the iteration before."""
        counter = self.counters[lp.header]
        windows = self.windows(lp.header)
        for w in windows:  # the highest cell gets nothing more
            self.flush(w, w.size - 1, w.size - 1 in w.always)
        iv = self.b.load(I64, counter, 8, "iv")
        first = self.b.icmp("eq", iv, self.value("primal", lp.counter.start), "iv.first")
        back, out = (
            Block(self.namer.fresh(f"{lp.header}.from.{p}")) for p in (lp.latch, lp.preheader)
        )
        new.blocks += [back, out]
        self.b.insert(Instruction("br", operands=[first], labels=[out.name, back.name]))
        self.b.position_at_end(back)
        self.b.store(self.b.binop("sub", iv, const(I64, lp.counter.step), "iv.prev"), counter, 8)
        for w in windows:
            self.slide(w)
        self.back_to(lp.latch, adjs)
        self.b.position_at_end(out)
        for w in windows:  # what is left in the window
            for k in range(w.size - 1):
                self.flush(w, k)
        self.back_to(lp.preheader, adjs)
        self.latches[lp.header] = back.terminator

    # ---- windows of neighbouring cells (`analysis.windows`) --------------------------------
    def windows(self, header: str) -> tuple[Window, ...]:
        """The windows of a loop's reverse (none in a batch or a parallel call's chunk)."""
        return tuple(w for w in self.plan.loops[header].windows if w in self.window_slots)

    def carry(self, w: Window, load: Instruction, cell: Value, adj: Value) -> None:
        """The reverse of `load`, one of `w`'s (`cell` its shadow address): its window's sum
        at its position += adj."""
        total, summed = self.window_slots[w][w.positions[load]]
        self.b.store(self.b.fadd(self.b.load(w.type, total, None, "window"), adj, "window"), total)
        self.b.store(Constant(I1, "true"), summed)
        if load is w.anchor:
            self.b.store(cell, self.anchors[w], 8)

    def flush(self, w: Window, k: int, always: bool = False) -> None:
        """The cell at position `k` += its sum, if anything was summed (`always`: it was)."""
        total, summed = self.window_slots[w][k]
        done = None
        if not always:
            then, done = (Block(self.namer.fresh(f"window.{s}")) for s in ("flush", "flushed"))
            self.new.blocks += [then, done]
            cond = self.b.load(I1, summed, None, "window.summed")
            self.b.insert(Instruction("br", operands=[cond], labels=[then.name, done.name]))
            self.b.position_at_end(then)
        anchor = self.b.load(PTR, self.anchors[w], 8, "window.anchor")
        cell = self.b.gep(w.type, anchor, const(I64, k - w.positions[w.anchor]), hint="cell")
        self.add(
            cell, self.b.load(w.type, total, None, "window"), w.align, False, w.anchor.operands[0]
        )
        if done is not None:
            self.b.insert(Instruction("br", labels=[done.name]))
            self.b.position_at_end(done)

    def slide(self, w: Window) -> None:
        """The window one cell down (the next iteration's): each cell moves up a position,
        the lowest starts empty."""
        slots = self.window_slots[w]
        for k in reversed(range(1, w.size)):
            for slot, below, ty in zip(slots[k], slots[k - 1], (w.type, I1), strict=True):
                self.b.store(self.b.load(ty, below, None, "window"), slot)
        self.clear(w, 0)

    def clear(self, w: Window, k: int) -> None:
        """The window's position `k` empty: nothing summed (-0.0, the sum's identity)."""
        total, summed = self.window_slots[w][k]
        self.b.store(Constant(w.type, "-0.0"), total)
        self.b.store(Constant(I1, "false"), summed)

    def decide(self, join: str, adjs: list[tuple[Instruction, int, Value]], new: Function) -> None:
        """Leave a join backwards to the predecessor its dominator's branch chose."""
        cond, preds = self.plan.decided[join]
        c = self.value("primal", cond)
        edges = [Block(self.namer.fresh(f"{join}.from.{p}")) for p in preds]
        new.blocks += edges
        self.b.insert(Instruction("br", operands=[c], labels=[e.name for e in edges]))
        for edge, pred in zip(edges, preds, strict=True):
            self.b.position_at_end(edge)
            self.back_to(pred, adjs)

    def back_to(self, pred: str, adjs: list[tuple[Instruction, int, Value]]) -> None:
        """Branch to the reverse of `pred`, the edge's phi adjoints transferred."""
        if self.plan.pushes_id[pred] and pred not in self.plan.placed:
            pop(self.b, self.tape, I64, "pred.id")  # pushed for another successor's sake
        self.transfer(adjs, pred)
        self.b.insert(Instruction("br", labels=[self.rev_blocks[pred].name]))

    def transfer(self, adjs: list[tuple[Instruction, int, Value]], pred: str) -> None:
        """Phi adjoints (per lane) flow to the incoming values of the edge taken."""
        for phi, lane, adj in adjs:
            self.in_lane(lane)
            for v, label in phi.incoming:
                if label == pred:
                    self.add_adjoint(v, adj)
                    break
        self.in_lane(0)

    # ---- forward-sweep values ------------------------------------------------------------
    def popped(self, inst: Instruction) -> tuple[dict[Value, Value], list[dict[Value, Value]]]:
        """The values `inst`'s reverse needs (primal values, shadows per lane): popped now,
        or earlier in this block's reverse by a later instruction that needed them too."""
        step = self.plan.step(inst)
        loop = self.plan.placed.get(inst.block_name)
        if loop is not None and step.pushes:
            self.block_values.update(self.placed(inst, loop))
        for kind, v in reversed(step.pushes if loop is None else ()):
            self.block_values.update(self.pop_item(kind, v, f"{v.label}.{kind}"))
        primal: dict[Value, Value] = {}
        shadows = [dict(lane) for lane in self.lane_shadow_args]
        for kind, v in step.needs:
            if kind == "primal":
                primal[v] = self.value(kind, v)
                continue
            for lane, shadow in enumerate(shadows):
                self.in_lane(lane)
                shadow[v] = self.value(kind, v)
        self.in_lane(0)
        return primal, shadows

    def places_of(self, loop: LoopPlan, columns: list[int]) -> list[Value]:
        """The addresses of the places `columns` of the current iteration's part of the
        room."""
        iv = self.b.load(I64, self.counters[loop.loop.header], 8, "iv")
        n = iteration(self.b, loop, iv, self.value("primal", loop.loop.counter.start))
        room = self.b.load(PTR, self.rooms[loop.loop.header][0], 8, "room")
        trips = self.b.load(I64, self.rooms[loop.loop.header][1], 8, "trips")
        return [place(self.b, room, n, trips, column) for column in columns]

    def placed(self, inst: Instruction, loop: LoopPlan) -> list[tuple[tuple, Value]]:
        """The values pushed after `inst`, loaded from their places in the iteration's part
        of the loop's room (`LoopPlan.places`)."""
        first = loop.place(inst, self.width)
        keys = [k for kind, v in self.plan.step(inst).pushes for k in self.item_keys(kind, v)]
        places = self.places_of(loop, [first + j for j in range(len(keys))])
        return [
            (
                key,
                scopes.mark(
                    self.module,
                    self.b.load(
                        PTR if key[0] == "shadow" else key[1].type,
                        at,
                        8,
                        f"{key[1].label}.{key[0]}",
                    ),
                    scopes.TAPE,
                ),
            )
            for key, at in zip(keys, places, strict=True)
        ]

    def value(self, kind: str, v: Value) -> Value:
        """A forward-sweep value inside the reverse sweep: popped, read from the frame or a
        loop's saved slot, or recomputed (once per block) from its operands."""
        if isinstance(v, Argument) and kind == "shadow":
            return self.shadow_args[v]
        if isinstance(v, Argument | Constant | GlobalRef):
            return v
        key = self.key(kind, v)
        got = self.block_values.get(key)
        if got is not None:
            return got
        plan = self.plan
        saved = [lp for lp in plan.saved_in.get((kind, v), ()) if self.block in lp.blocks]
        if saved:
            ty = PTR if kind == "shadow" else v.type
            slot = self.saved_slots[(saved[0].header, *key)]
            got = self.b.load(ty, slot, 8, f"{v.label}.{kind}")
        elif v in plan.inductions and (kind == "primal" or v.type.is_ptr):
            got = self.induction(*plan.inductions[v], kind)
        elif key in self.frame_values:
            got = self.frame_values[key]
        elif kind == "primal" and v in plan.chosen:
            got = self.choose(v)
        else:
            recomputed = plan.recompute if kind == "primal" else plan.recompute_shadow
            assert isinstance(v, Instruction) and v in recomputed, (kind, v)
            ops = [
                self.value("shadow" if kind == "shadow" and k == 0 else "primal", o)
                for k, o in enumerate(v.operands)
            ]
            copy = Instruction(
                v.opcode,
                v.type,
                ops,
                flags=v.flags,
                pred=v.pred,
                aux_type=v.aux_type,
                indices=v.indices,
                callee=v.callee,  # (a pure call)
                fnty=v.fnty,
                arg_attrs=v.arg_attrs,
            )
            got = self.b.insert(copy, f"{v.label}.{'shadow' if kind == 'shadow' else 're'}")
            if v.opcode == "load" and kind == "primal":  # loaded again
                scopes.mark(self.module, copy, scopes.PRIMAL)
        self.block_values[key] = got
        return got

    def choose(self, phi: Instruction) -> Instruction:
        """A phi of a decided join, recomputed: each incoming value computed on the side of
        the recomputed condition that took its edge (a load there may be valid only there)."""
        cond, preds = self.plan.decided[phi.block_name]
        sides = [Block(self.namer.fresh(f"{phi.label}.{p}")) for p in preds]
        join = Block(self.namer.fresh(f"{phi.label}.chosen"))
        self.new.blocks += [*sides, join]
        c = self.value("primal", cond)
        self.b.insert(Instruction("br", operands=[c], labels=[s.name for s in sides]))
        incoming = dict((label, w) for w, label in phi.incoming)
        outer = self.block_values
        values, labels = [], []
        for p, side in zip(preds, sides, strict=True):
            self.b.position_at_end(side)
            self.block_values = dict(outer)  # (what a side computes does not reach the join)
            values.append(self.value("primal", incoming[p]))
            assert self.b.block is not None
            labels.append(self.b.block.name)
            self.b.insert(Instruction("br", labels=[join.name]))
        self.block_values = outer
        self.b.position_at_end(join)
        return self.b.insert(Instruction("phi", phi.type, values, labels=labels), f"{phi.label}.re")

    def is_primal(self, shadow: Value, ptr: Value) -> Value:
        """Whether a shadow address is the primal's own (memory without derivatives)."""
        return self.b.icmp("eq", shadow, ptr, "no.shadow")

    # ---- instructions --------------------------------------------------------------------
    def reverse_instruction(self, inst: Instruction) -> None:
        primal, shadows = self.popped(inst)
        if inst in self.plan.kept_alive:  # kept alive for the loads loaded again
            self.b.call(self.allocation(inst).release, [primal[inst]], VOID)
        if inst in self.act.callees:  # one call of the callee's reverse sweep for all lanes
            self.reverse_call(inst, primal, shadows)
            return
        if inst in self.bypassed:
            return
        memory = inst.opcode == "call" and self.plan.step(inst).memory
        self.kept_now = self.pop_kept(inst) if memory else []
        method = getattr(self, f"visit_{inst.opcode}", self.visit_rule)
        for lane, shadow in enumerate(shadows):
            self.in_lane(lane)
            if not self.free_shadow(inst, shadow):
                method(inst, primal, shadow)
        self.in_lane(0)
        self.release_kept(self.kept_now)

    def allocation(self, inst: Instruction) -> rules.Allocation:
        return rules.effects(inst).allocates  # type: ignore[union-attr,return-value]

    def free_shadow(self, inst: Instruction, shadow: dict) -> bool:
        """Free the shadow of stack memory or of a runtime allocation; whether `inst` was one."""
        if inst not in shadow:
            return False
        if inst.opcode == "alloca":
            self.b.call("free", [shadow[inst]], VOID)
        elif inst.opcode == "call" and (fx := rules.effects(inst)) and fx.allocates is not None:
            self.b.call(fx.allocates.release, [shadow[inst]], VOID)  # the shadow dies
        else:
            return False
        return True

    def visit_load(self, inst: Instruction, primal: dict, shadow: dict) -> None:
        """d p += adjoint (zero through a pointer to memory without derivatives)"""
        if not is_active_float(self.act, inst):
            return
        ptr = inst.operands[0]
        dp = shadow[ptr]
        adj = self.take_adjoint(inst)
        if ptr in self.act.maybe_primal:
            zero = Builder.zero(inst.type)
            adj = self.b.select(self.is_primal(dp, primal[ptr]), zero, adj, "adj")
        if inst in self.window_of:
            self.carry(self.window_of[inst], inst, dp, adj)
            return
        border = self.plan.owned.get(inst)
        if border is None:  # another chunk may load the cell unless the chunk owns it
            atomic = bool(self.shared) and inst not in self.plan.owned
            self.add(dp, adj, inst.align, atomic, ptr)
            return
        owned, shared, join = (
            Block(self.namer.fresh(f"cell.{k}")) for k in ("own", "shared", "in")
        )
        self.new.blocks += [owned, shared, join]
        self.b.insert(
            Instruction("br", operands=[self.owns(border)], labels=[owned.name, shared.name])
        )
        for block, atomic in ((owned, False), (shared, True)):
            self.b.position_at_end(block)
            self.add(dp, adj, inst.align, atomic)
            self.b.insert(Instruction("br", labels=[join.name]))
        self.b.position_at_end(join)

    def add(
        self,
        ptr: Value,
        v: Value,
        align: int | None,
        atomic: bool = False,
        primal: Value | None = None,
    ) -> None:
        """*ptr += v (atomically: other chunks may add into the cell); `ptr` the shadow of
        `primal`, if given (`on_shadow`)."""
        if atomic:
            self.b.atomic_add(ptr, v)
            return
        old = self.b.load(v.type, ptr, align, "shadow.val")
        new = self.b.store(self.b.fadd(old, v, "shadow.val"), ptr, align)
        if primal is not None:
            self.on_shadow(old, primal)
            self.on_shadow(new, primal)

    def on_shadow(self, access: Instruction, primal: Value) -> Instruction:
        """`access` (a load or store of the shadow of `primal`) marked as on shadow memory,
        unless `primal` may be its own shadow."""
        if primal in self.act.maybe_primal:
            return access
        # (whose shadow it is, in the root only: a derivative running once per call, whose
        # arguments' memory existed before anything it allocates)
        side = self._side(primal) if self.synth.reload == self.fn.name else scopes.SHADOW
        return scopes.mark(self.module, access, side)

    def _side(self, primal: Value) -> str:
        """The shadows the shadow of pointer `primal` is among (`scopes`): the arguments'
        (GIVEN), those of some allocations of the function (apart from the others'), or
        any."""
        root = roots(primal)
        if root and all(isinstance(r, Argument) for r in root):
            return scopes.GIVEN
        sites = [allocation(r) for r in root]
        if not sites or any(s not in self._allocations.index for s in sites):
            return scopes.SHADOW
        return self._allocations.side(sites)

    @cached_property
    def _allocations(self) -> scopes.Allocations:
        sites = [i for i in self.fn.instructions() if allocation(i) is i]
        return scopes.Allocations(self.module, sites)

    def owns(self, border: Border) -> Value:
        """Whether the chunk owns the cell a load with `border` reads in this iteration."""
        b, i = self.b, self.value("primal", border.counter)

        def shifted(by: int) -> Value:
            return b.binop("add", i, const(I64, by), "iv.reach")

        lo, hi = (self.value("primal", v) for v in (border.lo, border.hi))
        owns = b.binop(
            "and",
            b.icmp("sge", shifted(border.below), lo, "reach.lo"),
            b.icmp("sle", shifted(border.above), hi, "reach.hi"),
            "owns",
        )
        if border.start is None:
            return owns
        first = self.value("primal", border.first)
        unwrapped = b.icmp("sge", first, const(I64, border.start), "unwrapped")
        return b.binop("and", owns, unwrapped, "owns")

    def visit_store(self, inst: Instruction, primal: dict, shadow: dict) -> None:
        """adjoint(value) += d p; d p = 0 (memory without derivatives kept as it is); an
        increment `*p = *p ± v`: adjoint(v) ±= d p, d p as it is"""
        value, ptr = inst.operands
        if ptr not in shadow or not value.type.is_float:
            return
        dp = shadow[ptr]
        got = self.on_shadow(self.b.load(value.type, dp, inst.align, "shadow.val"), ptr)
        increment = self.increments.get(inst)
        if increment is not None:
            self.add_adjoint(increment.added, self.b.fneg(got) if increment.negated else got)
            return
        zero: Value = Builder.zero(value.type)
        if ptr in self.act.maybe_primal:
            same = self.is_primal(dp, primal[ptr])
            got, zero = (
                self.b.select(same, zero, got, "shadow.val"),
                self.b.select(same, got, zero, "shadow.val"),
            )
        self.on_shadow(self.b.store(zero, dp, inst.align), ptr)
        self.add_adjoint(value, got)

    def visit_atomicrmw(self, inst: Instruction, primal: dict, shadow: dict) -> None:
        """old = *p; *p += v: adjoint(v) += d p; then d p += adjoint(old), as for a load"""
        ptr = inst.operands[0]
        if ptr not in shadow:
            return
        if inst.accumulation is None:
            raise self.fail(inst, "an atomic operation other than a float add")
        value = inst.operands[1]
        dp = shadow[ptr]
        if is_active_float(self.act, value):
            self.add_adjoint(value, self.b.load(value.type, dp, None, "shadow.val"))
        if is_active_float(self.act, inst):
            adj = self.take_adjoint(inst)
            self.add(dp, adj, None, bool(self.shared))

    def visit_select(self, inst: Instruction, primal: dict, shadow: dict) -> None:
        """the adjoint goes to the operand the condition chose"""
        if not is_active_float(self.act, inst):
            return
        c = primal.get(inst.operands[0], inst.operands[0])
        adj = self.take_adjoint(inst)
        zero = Builder.zero(inst.type)
        self.add_adjoint(inst.operands[1], self.b.select(c, adj, zero, "adj"))
        self.add_adjoint(inst.operands[2], self.b.select(c, zero, adj, "adj"))

    def visit_call(self, inst: Instruction, primal: dict, shadow: dict) -> None:
        if self.plan.step(inst).memory:
            return self.visit_memory_call(inst, primal, shadow)
        return self.visit_rule(inst, primal, shadow)

    def visit_memory_call(self, inst: Instruction, primal: dict, shadow: dict) -> None:
        """A call writing memory with derivatives: its rule's adjoint, on the shadows and
        what the forward sweep kept (`kept_now`, released after the last lane)."""
        rule = rules.lookup(inst)
        assert rule is not None
        read = [
            k
            for k, v in enumerate(inst.operands)
            if v.type.is_ptr and self.act.is_active(v) and k not in rule.effects.writes
        ]
        if self.shared and read and not rule.concurrent:  # (what a chunk writes, it owns)
            raise self.fail(
                inst,
                f"a call to {inst.callee_name} inside a parallel call's chunk, reading memory "
                "with derivatives",
                "Its adjoint adds into memory other chunks may share, without atomics.",
            )
        if rule.adjoint is None:
            raise self.fail(
                inst, f"a call to {inst.callee_name}", "It has a forward rule but no reverse rule."
            )
        kept = self.kept_now
        ctx = Context(
            self.b,
            inst,
            [primal.get(v, v) for v in inst.operands],
            shadows=[shadow.get(v) if v.type.is_ptr else None for v in inst.operands],
            kept=[v for v, _ in kept],
            elem=self.plan.step(inst).elem,
            concurrent=bool(self.shared),
        )
        try:
            rule.adjoint(ctx)
        except ValueError as e:
            raise self.fail(inst, f"a call to {inst.callee_name}", str(e)) from None

    def pop_kept(self, inst: Instruction) -> list[tuple[Value, str | None]]:
        """What the forward sweep kept for `inst`'s adjoint, in order, with its release."""
        kept = self.kept.get(inst, [])
        values = [pop(self.b, self.tape, ty, "kept") for ty, _ in reversed(kept)][::-1]
        return [(v, release) for v, (_, release) in zip(values, kept, strict=True)]

    def release_kept(self, kept: list[tuple[Value, str | None]]) -> None:
        for v, release in kept:
            if release is not None:
                self.b.call(release, [v], VOID)

    def visit_rule(self, inst: Instruction, primal: dict, shadow: dict) -> None:
        """A float-valued operation: its rule's adjoint distributes the result's adjoint over
        the operands."""
        if not is_active_float(self.act, inst):
            return
        rule = rules.lookup(inst)
        if rule is None or rule.adjoint is None:
            raise self.fail(inst, f"'{inst.opcode}' {inst.callee_name}".strip())
        adj = self.take_adjoint(inst)
        args = [primal.get(v, v) for v in inst.operands]
        out = primal.get(inst, inst)
        if rule.reads is not None:  # what no active partial reads was not kept: undef,
            # for the partials whose contribution is dropped
            args = [
                Constant(v.type, "undef") if a is v and isinstance(v, Instruction) else a
                for v, a in zip(inst.operands, args, strict=True)
            ]
            out = Constant(inst.type, "undef") if out is inst else out
        sibling = self.plan.step(inst).sibling  # the partials from the primal's cos...
        ctx = Context(
            self.b,
            out if isinstance(out, Instruction | Constant) else inst,  # type: ignore[arg-type]
            args,
            adj=adj,
            sibling=None if sibling is None else primal[sibling],
        )
        for v, c in zip(inst.operands, rule.adjoint(ctx), strict=False):
            self.add_adjoint(v, c)

    def call_sweep(
        self, inst: Instruction, sweep: str, args: list[Value], shadows: list[Value]
    ) -> None:
        """The callee's reverse or release `sweep`, on this function's tape; for a parallel
        call, the chunks' sweeps in parallel, each on its own tape, then the tapes freed."""
        if rules.parallel_chunk(inst) is None:
            sync(self.b, self.tape, self.tape_arg)
            self.b.call(sweep, [*args, *shadows, self.tape_arg], VOID)
            sync(self.b, self.tape_arg, self.tape)
            return
        tapes = pop(self.b, self.tape, PTR, "chunk.tapes")
        args[rules.PARALLEL[inst.callee_name].callee] = GlobalRef(
            trampoline(self.module, sweep, True, self.synth.nestable), PTR
        )
        self.launch(inst, [*args, *shadows, tapes])
        self.b.call("free", [tapes], VOID)

    def launch(self, inst: Instruction, operands: list[Value]) -> None:
        """The parallel call `inst` made again with `operands` (its status ignored)."""
        call = Instruction(
            "call",
            inst.type,
            operands,
            callee=inst.callee,
            fnty=inst.fnty,
            arg_attrs=[""] * len(operands),
        )
        self.b.insert(call, "launched")

    def call_arguments(self, inst: Instruction, primal: dict) -> list[Value]:
        """A call's primal arguments in the reverse sweep: `undef` for those the plan did
        not keep (the callee's reverse sweep does not read them)."""
        return [
            primal[v]
            if v in primal
            else v
            if isinstance(v, Argument | Constant | GlobalRef)
            else Constant(v.type, "undef")
            for v in inst.operands
        ]

    def reverse_call(self, inst: Instruction, primal: dict, lanes: list[dict]) -> None:
        """A call of a function the engine differentiates: its reverse sweep, on this
        function's tape, for all lanes (a parallel call: the chunks' reverse sweeps, each on
        its own tape, `reverse/parallel.py`); float arguments' adjoints come back through
        accumulators."""
        summary = self.act.callees[inst]
        chunk = rules.parallel_chunk(inst)
        args = self.call_arguments(inst, primal)
        _, rev = self.synth.derive(
            summary.fn, summary.pattern, shared=self.plan.sharing(inst, self.shared)
        )
        params = inst.operands if chunk is None else chunk[1]
        shadows: list[Value] = []
        accumulated = []
        for o, p in zip(params, summary.pattern, strict=True):
            for lane, shadow in enumerate(lanes) if p and o is not None else ():
                assert o is not None
                if not o.type.is_float:
                    shadows.append(shadow.get(o) or Constant(PTR, "null"))
                    continue
                acc = Instruction("alloca", PTR, [], aux_type=o.type, name=self.namer.fresh("acc"))
                self.entry.instructions.insert(0, acc)
                acc.block = self.entry
                self.b.store(Builder.zero(o.type), acc)
                shadows.append(acc)
                accumulated.append((o, lane, acc))
        self.call_sweep(inst, rev, args, shadows)
        for o, lane, acc in accumulated:
            self.in_lane(lane)
            self.add_adjoint(o, self.b.load(o.type, acc, None, "adj"))
        self.in_lane(0)


class Release(Reverse):
    """`release_<f>.<bits>(args, shadows, tape)`: the reverse sweep reduced to popping the
    tape and freeing what the forward sweep allocated (callees release theirs)."""

    differentiates = False

    def reverse_instruction(self, inst: Instruction) -> None:
        primal, shadows = self.popped(inst)
        if inst in self.plan.kept_alive:
            self.b.call(self.allocation(inst).release, [primal[inst]], VOID)
        if any([self.free_shadow(inst, shadow) for shadow in shadows]) or inst.opcode != "call":
            return
        if inst in self.act.callees:
            self.release_call(inst, primal, shadows)
        elif self.plan.step(inst).memory:
            self.release_kept(self.pop_kept(inst))

    def release_call(self, inst: Instruction, primal: dict, lanes: list[dict]) -> None:
        """The callee's release (a parallel call's chunks: each on its tape, in parallel,
        then the tapes freed)."""
        summary = self.act.callees[inst]
        chunk = rules.parallel_chunk(inst)
        params = inst.operands if chunk is None else chunk[1]
        args = self.call_arguments(inst, primal)
        null = Constant(PTR, "null")
        shadows = [
            null if o.type.is_float else shadow.get(o) or null
            for o, p in zip(params, summary.pattern, strict=True)
            if p and o is not None
            for shadow in lanes
        ]
        shared = self.plan.sharing(inst, self.shared)
        release = self.synth.release(summary.fn, summary.pattern, shared)
        self.call_sweep(inst, release, args, shadows)


# an adjoint is a sum whose order the derivative does not fix: LLVM may reassociate it (and
# so vectorize a loop summing into a float's adjoint, as a reduction)
_SUMMED = ("reassoc",)


def _no_adjoint(ty: Type) -> Value:
    """An adjoint slot's value before any contribution: -0.0 for a float, the identity of
    `fadd` (LLVM folds `x + -0.0` to `x`, not `x + 0.0`: x may be -0.0), so the first
    contribution costs no addition."""
    return const(ty, -0.0) if ty.is_float else Builder.zero(ty)


def _on_stack(access: Instruction) -> bool:
    """Whether a load or store addresses a stack slot."""
    ptr = access.operands[1 if access.opcode == "store" else 0]
    return any(isinstance(r, Instruction) and r.opcode == "alloca" for r in roots(ptr))
