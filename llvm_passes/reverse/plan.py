"""What the reverse sweep of one function needs from its forward sweep, decided before either
is built: the `Plan` (frozen), made by `plan()`.

A value the reverse sweep needs is an `Item`: ('primal', v) or ('shadow', v). It gets each
one the cheapest way that is correct:
- for free: arguments, constants; induction variables of counted loops (counted down);
- from the frame: values computed at most once per call, kept in a stack slot and pushed
  once when the function returns;
- recomputed from their operands (pure instructions, shadow GEPs), or loaded again from
  memory nothing writes after the load (combined mode, root function); a phi of a join
  decided by a recomputed condition, from the incoming value of the side it picks;
- saved on the exits of a counted loop when defined outside it (or read once per execution
  of it, `invariant_loads`) but needed inside;
- else pushed onto the tape right after the instruction that needs it, and popped in the
  reverse sweep just before that instruction's reverse.
Control flow: counted loops are replayed by counting their counter down; a join whose
dominator's branch condition is free is decided by recomputing it; other joins read the id
of the predecessor taken from the tape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from .. import rules
from ..analysis.activity import ActivityResult
from ..analysis.cfg import CFG, cfg, dominators, reachable
from ..analysis.independent import independent_loops
from ..analysis.loops import CountedLoop, Induction, counted_loops, latch_exit, loop_headers
from ..analysis.memtypes import MemoryFacts
from ..analysis.partition import Border
from ..analysis.pointers import allocation, roots
from ..analysis.readonly import (
    allocations,
    argument_memory,
    element_type,
    invariant_loads,
    reloadable_loads,
    unchanged_after,
)
from ..analysis.windows import Window, windows
from ..errors import NoDerivativeError
from ..ir import (
    BINARY,
    CASTS,
    I64,
    Argument,
    Constant,
    Function,
    GlobalRef,
    Instruction,
    Module,
    Type,
    Value,
)
from .parallel import Launch, launch, unchanged_operands

MODE = "reverse"
Item = tuple[str, Value]  # ('primal' | 'shadow', value)
# the arguments the reverse sweep of a call's callee reads, given the call and its `Launch`
Reads = Callable[[Instruction, Launch | None], frozenset[int] | None]
# instructions the reverse sweep may recompute instead of taking from the tape
PURE = (
    BINARY
    | CASTS
    | {"fneg", "icmp", "fcmp", "select", "getelementptr", "extractvalue", "insertvalue", "freeze"}
)


def pure(v: Instruction) -> bool:
    """An instruction the reverse sweep may recompute from its operands (calls: as their
    rules say)."""
    if v.opcode == "call":
        rule = rules.lookup(v)
        return rule is not None and rule.recomputable
    return v.opcode in PURE


@dataclass(frozen=True)
class Step:
    """What the reverse of one instruction uses: `needs` (in order), of which `pushes` are
    pushed right after the instruction in the forward sweep; the primal's `sibling` call
    giving its partials; `elem`, the element type of a copy; `memory`: a call writing
    memory with derivatives, reversed by its rule's adjoint."""

    needs: tuple[Item, ...] = ()
    pushes: tuple[Item, ...] = ()
    sibling: Instruction | None = None
    elem: Type | None = None
    memory: bool = False


@dataclass(frozen=True)
class LoopPlan:
    """A counted loop: the items saved on its exits (defined outside, needed inside), the
    bound of its latch's exit test when the reverse sweep has it for free (the last counter
    is `bound + past - step`), and the room its preheader reserves on the tape (the bound, and the
    primal and shadow items pushed per iteration: a shadow item is one push per lane) when
    the loop pushes only its own values.

    `places`, for such a loop: where each pushing instruction's values go in an iteration's
    part of the room, as the primal and shadow items of the iteration placed before them.
    The forward sweep stores them there and the reverse sweep loads them from there, by the
    iteration's number: no tape header changes inside the loop, whose sweeps LLVM can then
    vectorize. `ids`: a join's place for the id of the predecessor that led to it, counted
    from the end of the iteration's part (the body of an iteration has no cycle: the last id
    written there before the join ran is that of the edge taken into it).

    `independent`: the loop's reverse iterations are independent (`analysis.independent`)
    and pop nothing (its values have places, or it pushes none): the reverse sweep marks its
    reverse loop parallel.

    `windows`: loads of neighbouring cells whose adjoints the reverse loop sums in
    registers (`analysis.windows`)."""

    loop: CountedLoop
    saved: tuple[Item, ...]
    bound: tuple[str, Value] | None  # (exit block, bound)
    reserve: tuple[Value, int, int] | None
    places: Mapping[Instruction, tuple[int, int]] | None = None
    ids: Mapping[str, int] = field(default_factory=dict)
    past: int = 0  # the latch leaves when `iv + step == bound + past`
    independent: bool = False
    windows: tuple[Window, ...] = ()

    @property
    def keeps_trips(self) -> bool:
        """Whether the tape keeps the trip count of a loop whose values have places (for
        its reverse sweep to give the room back): unless the reverse sweep has the counter's
        start and the bound for free on the loop's exits."""
        return self.bound is None or ("primal", self.loop.counter.start) in self.saved

    def per_iteration(self, width: int) -> int:
        """The values an iteration pushes (`width` lanes per shadow item)."""
        assert self.reserve is not None
        _, primals, shadows = self.reserve
        return primals + shadows * width

    def place(self, inst: Instruction, width: int) -> int:
        """Where `inst`'s first value goes in its iteration's part of the room (`places`)."""
        assert self.places is not None
        primals, shadows = self.places[inst]
        return primals + shadows * width

    def id_place(self, join: str, width: int) -> int:
        """Where the id of the block that led to `join` goes in its iteration's part."""
        return self.per_iteration(width) - self.ids[join]


@dataclass(frozen=True)
class Plan:
    """The frozen result of `plan()` (see the module doc)."""

    graph: CFG
    index: Mapping[str, int]  # block -> its id on the tape
    rets: tuple[str, ...]
    steps: Mapping[Instruction, Step]
    loops: Mapping[str, LoopPlan]  # header -> plan
    exits: Mapping[str, tuple[CountedLoop, ...]]  # exit edge block -> loops it leaves
    inductions: Mapping[Value, tuple[CountedLoop, Induction]]
    saved_in: Mapping[Item, tuple[CountedLoop, ...]]  # item -> loops saving it on exit
    carried: tuple[Value, ...]  # values kept in a slot by the forward sweep until the exit
    frame: Mapping[Item, int]  # item -> its place in the frame
    recompute: frozenset[Instruction]
    recompute_shadow: frozenset[Instruction]  # GEPs whose shadow is rebuilt
    chosen: frozenset[Instruction]  # phis of decided joins, recomputed on the side taken
    decided: Mapping[str, tuple[Value, tuple[str, str]]]  # join -> (condition, preds)
    pushes_id: Mapping[str, bool]  # block -> it pushes its id for a successor
    kept_alive: tuple[Instruction, ...]  # allocations kept for the loads loaded again
    unchanged: frozenset[tuple[Instruction, Value]]  # memory a call's adjoint reads in place
    unchecked: frozenset[str]  # blocks whose pushes need no capacity check
    assumes_distinct: bool  # the `distinct` assumption changed something
    launches: Mapping[Instruction, Launch]  # parallel call -> what it tells its chunks
    owned: Mapping[Instruction, Border | None]  # a chunk's loads owning their cells

    def sharing(self, call: Instruction, shared: bool | Launch) -> bool | Launch:
        """How the function `call` calls is derived, from a function derived `shared`
        (`_Synthesizer.derive`): a parallel call's chunk with its `Launch`."""
        return self.launches.get(call) or bool(shared)

    @cached_property
    def placed(self) -> dict[str, LoopPlan]:
        """Block -> the loop holding it, if that loop's values have places."""
        return {
            b: lp for lp in self.loops.values() if lp.places is not None for b in lp.loop.blocks
        }

    @cached_property
    def _entered(self) -> dict[str, LoopPlan]:
        out: dict[str, LoopPlan] = {}
        for lp in self.loops.values():
            if lp.reserve is not None:
                assert lp.loop.preheader not in out, "two loops entered from one preheader"
                out[lp.loop.preheader] = lp
        return out

    def entered_from(self, preheader: str) -> LoopPlan | None:
        """The loop with reserved room that `preheader` enters (every loop has a preheader of
        its own: `transforms.loops.dedicated_preheaders`)."""
        return self._entered.get(preheader)

    def step(self, inst: Instruction) -> Step:
        return self.steps.get(inst, _NOTHING)

    def pops_id(self, block: str) -> bool:
        return (
            block not in self.loops
            and block not in self.decided
            and any(self.pushes_id[p] for p in self.graph.preds[block])
        )


_NOTHING = Step()


def plan(
    module: Module,
    fn: Function,
    act: ActivityResult,
    reload: bool | frozenset[Instruction],
    distinct: frozenset[int],
    facts: MemoryFacts,
    reads: Reads = lambda call, launch: None,
    owned: Mapping[Instruction, Border | None] = {},  # noqa: B006 (read only)
    changing: frozenset[int] = frozenset(),
) -> Plan:
    """The plan of `fn`'s reverse sweep for activity `act`. `reload`: memory nothing writes
    after a load may be loaded again (combined mode, root function), or the loads that may
    be (a parallel call's chunk, `parallel.Launch.reloadable`); `distinct`: positions
    of pointer arguments whose memory does not overlap; `facts`: memory types; `reads`:
    the arguments the reverse sweep of a call's callee reads (None: unknown, all), given
    the call and, for a parallel call, its `Launch`; `owned`: for a parallel call's chunk,
    the loads owning their cells (`Launch.owned_loads`); `changing`: positions of arguments
    whose memory the caller may change before the reverse sweep (not loaded again)."""
    args = (module, fn, act, reload, distinct, facts, reads, owned, changing)
    planner = _Planner(*args)
    if planner.reloaded != set(planner.reload):  # keep alive only what is loaded again
        planner = _Planner(*args, planner.reloaded)
    return planner.result()


def is_active_float(act: ActivityResult, v: Value) -> bool:
    return v.type.is_float and act.is_active(v)


def memory_call(act: ActivityResult, inst: Instruction) -> bool:
    """A call writing memory with derivatives, reversed by its rule's adjoint."""
    fx = rules.effects(inst) if inst.opcode == "call" else None
    return fx is not None and any(act.is_active(inst.operands[k]) for k in fx.writes)


class _Planner:
    """Builds a `Plan` (its attributes are the plan under construction)."""

    def __init__(
        self,
        module: Module,
        fn: Function,
        act: ActivityResult,
        reload: bool | frozenset[Instruction],
        distinct: frozenset[int],
        facts: MemoryFacts,
        reads: Reads,
        owned: Mapping[Instruction, Border | None],
        changing: frozenset[int],
        only: set[Instruction] | None = None,
    ) -> None:
        """`only`: of the loads that may be loaded again, those the plan may load again."""
        self.module, self.fn, self.act, self.facts = module, fn, act, facts
        self.reads, self.owned, self.changing = reads, owned, changing
        self.thread_values: dict[Instruction, bool] = {}  # `_per_thread`
        self.graph = cfg(fn)
        self.index = {b.name: k for k, b in enumerate(fn.blocks)}
        self.loops = {lp.header: lp for lp in counted_loops(fn, self.graph)}
        once = self._once_blocks()
        self.reload, self.kept_alive = self._reloads(distinct, reload, only)
        self.reloaded: set[Instruction] = set()  # the loads the plan does load again
        self.hoisted = invariant_loads(module, fn, self.loops.values(), distinct)
        self.unchanged = self._unchanged(distinct) if reload is True else frozenset()
        self.kept_alive.update((a, None) for _, p in self.unchanged for a in allocations(p))
        self.launches = self._launches(distinct, reload is True)
        self.independent = independent_loops(fn, self.loops.values(), self.graph, act, distinct)
        self.windows = windows(fn, self.loops.values(), self.graph, act, distinct)
        self.assumes_distinct = bool(distinct) and (
            self.reload != self._reloads(frozenset(), reload, only)[0]
            or self.independent
            != independent_loops(fn, self.loops.values(), self.graph, act, frozenset())
            or _windowed(self.windows)
            != _windowed(windows(fn, self.loops.values(), self.graph, act, frozenset()))
            or self.hoisted != invariant_loads(module, fn, self.loops.values())
            or self.unchanged != (self._unchanged(frozenset()) if reload is True else frozenset())
            or self.launches != self._launches(frozenset(), reload is True)
        )
        self.carried: dict[Value, None] = {}
        self.inductions: dict[Value, tuple[CountedLoop, Induction]] = {
            ind.phi: (lp, ind) for lp in self.loops.values() for ind in lp.inductions
        }
        self.exits: dict[str, tuple[CountedLoop, ...]] = {}
        for b in fn.blocks:
            left = tuple(
                lp
                for lp in self.loops.values()
                if b.name not in lp.blocks and any(p in lp.blocks for p in self.graph.preds[b.name])
            )
            if left:
                self.exits[b.name] = left
        self.saved: dict[str, dict[Item, None]] = {h: {} for h in self.loops}
        self.saved_in: dict[Item, list[CountedLoop]] = {}
        self.steps: dict[Instruction, Step] = {}
        if len(once) == len(fn.blocks):  # no loop: every value is pushed at most once anyway
            once = set()
        self.frame: dict[Item, int] = {}
        self.recompute: set[Instruction] = set()
        self.recompute_shadow: set[Instruction] = set()
        self.chosen: set[Instruction] = set()
        self.decided = self._decided_joins(once)
        self.pushes_id = {
            b.name: any(
                len(self.graph.preds[s]) > 1 and s not in self.loops and s not in self.decided
                for s in b.successors
            )
            for b in fn.blocks
        }
        for lp, ind in self.inductions.values():  # where the reverse sweep's counting starts
            if not self._take_free(ind.start, lp.header, once):
                self.saved[lp.header][("primal", ind.start)] = None
                self.saved_in.setdefault(("primal", ind.start), []).append(lp)
        for block in fn.blocks:
            self._plan_block(block.instructions, block.name, once)
        self.bounds: dict[str, tuple[str, Value]] = {}
        self.latch_exits = {h: latch_exit(fn, lp) for h, lp in self.loops.items()}
        for header, found in self.latch_exits.items():
            if found is not None and self._take_free(found[1], found[0], once):
                self.bounds[header] = found[:2]
        self.reserved = self._reservations()

    def result(self) -> Plan:
        reserved = self.reserved
        places = {h: self._places(h) for h in self.loops}
        ids = {h: self._id_places[h] if places[h] is not None else {} for h in self.loops}
        return Plan(
            graph=self.graph,
            index=self.index,
            rets=tuple(b.name for b in self.fn.blocks if b.terminator.opcode == "ret"),
            steps=self.steps,
            loops={
                h: LoopPlan(
                    lp,
                    tuple(self.saved[h]),
                    self.bounds.get(h),
                    reserved.get(h),
                    places[h],
                    ids[h],
                    (self.latch_exits[h] or (None, None, 0))[2],
                    h in self.independent and (places[h] is not None or not self._pushes(h)),
                    self.windows.get(h, ()),
                )
                for h, lp in self.loops.items()
            },
            exits=self.exits,
            inductions=self.inductions,
            saved_in={item: tuple(lps) for item, lps in self.saved_in.items()},
            carried=tuple(self.carried),
            frame=self.frame,
            recompute=frozenset(self.recompute),
            recompute_shadow=frozenset(self.recompute_shadow),
            chosen=frozenset(self.chosen),
            decided=self.decided,
            pushes_id=self.pushes_id,
            kept_alive=tuple(self.kept_alive),
            unchanged=self.unchanged,
            unchecked=frozenset(b for h in reserved for b in self.loops[h].blocks),
            assumes_distinct=self.assumes_distinct,
            launches=self.launches,
            owned=self.owned,
        )

    # ---- per instruction -----------------------------------------------------------------
    def _plan_block(self, insts: list[Instruction], block: str, once: set[str]) -> None:
        """The needs of each instruction, and what is pushed after it (a value needed by
        several instructions of the block is pushed once, after the last)."""
        steps = {inst: self._step(inst) for inst in insts}
        position = insts.index
        for inst, step in list(steps.items()):  # a sibling made after its user is saved
            if step.sibling is not None and position(step.sibling) > position(inst):
                s = steps[step.sibling]
                steps[step.sibling] = Step(
                    (*s.needs, ("primal", step.sibling)), s.pushes, s.sibling, s.elem, s.memory
                )
        pushed: set[Item] = set()  # by instructions later in the block
        for inst in reversed(insts):
            step = steps[inst]
            items = tuple(
                (k, v)
                for k, v in dict.fromkeys(step.needs)
                if not isinstance(v, Argument | Constant | GlobalRef)
            )
            leaves: list[Item] = []
            for item in items:
                self._resolve(item, block, once, leaves, 0, pushed)
            fresh = tuple(item for item in dict.fromkeys(leaves) if item not in pushed)
            pushed.update(fresh)
            if items or step != _NOTHING:
                self.steps[inst] = Step(items, fresh, step.sibling, step.elem, step.memory)

    def _step(self, inst: Instruction) -> Step:
        """What `inst`'s reverse uses (before deciding how the reverse sweep gets it)."""
        act, op, ops = self.act, inst.opcode, inst.operands
        if op in ("load", "store"):
            ptr = ops[0] if op == "load" else ops[1]
            if not (
                is_active_float(act, inst)
                if op == "load"
                else act.is_active(ptr) and ops[0].type.is_float
            ):
                return _NOTHING
            # through a merge of memory with and without derivatives: which one, at run time
            merged = (("primal", ptr),) if ptr in act.maybe_primal else ()
            border = self.owned.get(inst) if op == "load" else None
            tested = tuple(("primal", v) for v in border.reads) if border else ()
            return Step((("shadow", ptr), *merged, *tested))
        if op == "select":
            return Step((("primal", ops[0]),) if is_active_float(act, inst) else ())
        if op == "atomicrmw":  # *p += v: reads d p
            return Step((("shadow", ops[0]),) if act.is_active(ops[0]) else ())
        if op == "alloca":
            return Step((("shadow", inst),) if act.is_active(inst) else ())
        if op == "call":
            return self._call_step(inst)
        if op in ("phi", "getelementptr", "br", "switch", "ret") or not is_active_float(act, inst):
            return _NOTHING
        return self._rule_step(inst)

    def _call_step(self, inst: Instruction) -> Step:
        act, ops = self.act, inst.operands
        alive = (("primal", inst),) if inst in self.kept_alive else ()  # released in reverse
        if inst in act.callees:
            pattern = act.callees[inst].pattern
            chunk = rules.parallel_chunk(inst)
            # a parallel call: the number of chunks, and the chunk's parameters
            params: list[Value | None] = list(ops) if chunk is None else chunk[1]
            count = (
                () if chunk is None else (("primal", ops[rules.PARALLEL[inst.callee_name].count]),)
            )
            shadows = [
                ("shadow", v)
                for v, p in zip(params, pattern, strict=True)
                if p and v is not None and not v.type.is_float  # a float's adjoint: no shadow
            ]
            read = self.reads(inst, self.launches.get(inst))  # what its reverse sweep reads
            primals = [
                ("primal", v)
                for k, v in enumerate(params)
                if v is not None and (read is None or k in read)
            ]
            return Step((*count, *primals, *shadows))
        rule = rules.lookup(inst)
        fx = rule.effects if rule is not None else None
        if rule is not None and fx is not None and memory_call(act, inst):
            used = range(len(ops)) if rule.uses is None else rule.uses
            shadows = [("shadow", v) for v in ops if v.type.is_ptr and act.is_active(v)]
            elem = self._copy_type(inst) if fx.copies and act.is_active(ops[1]) else None
            return Step((*(("primal", ops[k]) for k in used), *shadows), elem=elem, memory=True)
        if fx is not None and fx.allocates is not None and act.is_active(inst):
            return Step((("shadow", inst), *alive))  # the shadow is released in the reverse
        if not is_active_float(act, inst) or rule is None:
            return Step(alive)
        return self._rule_step(inst)

    def _copy_type(self, inst: Instruction) -> Type:
        """The float type a copy between memory with derivatives moves (its adjoint moves
        the derivatives back element by element)."""
        elem = element_type(self.module, self.fn, inst.operands[:2], self.facts)
        if elem is None or inst.operands[2].type != I64:
            raise NoDerivativeError(
                f"a call to {inst.callee_name}",
                inst.text(),
                self.fn.name,
                MODE,
                inst.loc,
                "A copy between memory with derivatives is reversed only as a copy of memory "
                "read or written as one float type (its derivatives are moved back element "
                "by element).",
            )
        return elem

    def _rule_step(self, inst: Instruction) -> Step:
        """What the adjoint of a float-valued rule reads: its operands and result, only those
        its active partials read (`Rule.reads`), or the primal's sibling call."""
        act, ops = self.act, inst.operands
        rule = rules.lookup(inst)
        if rule is None or rule.kind in ("linear", "zero"):
            return _NOTHING
        sibling = _sibling(inst, rule)
        if sibling is not None:
            return Step((("primal", sibling),), sibling=sibling)
        if rule.reads is None:
            out = (("primal", inst),) if rule.needs_out else ()
            return Step((*(("primal", v) for v in ops), *out))
        read = dict.fromkeys(
            r for k, v in enumerate(ops) if is_active_float(act, v) for r in rule.reads[k]
        )
        return Step(tuple(("primal", inst if r == "out" else ops[r]) for r in read))  # type: ignore[index]

    # ---- how the reverse sweep gets each value -------------------------------------------
    def _unchanged(self, distinct: frozenset[int]) -> frozenset[tuple[Instruction, Value]]:
        """(memory call, pointer operand) pairs whose memory nothing writes from the call on,
        argument memory or runtime allocations that can be kept alive (until the reverse
        sweep passes the allocation): its adjoint may read that memory itself rather than a
        copy."""
        calls = [i for i in self.fn.instructions() if memory_call(self.act, i)]
        accesses = [(i, o) for i in calls for o in i.operands if o.type.is_ptr]
        found = unchanged_after(self.module, self.fn, accesses, distinct)
        return frozenset(
            a
            for a in found
            if (argument_memory(a[1]) or _keepable(a[1])) and not self._changes(a[1])
        )

    def _changes(self, ptr: Value) -> bool:
        """Whether `ptr` may point into an argument's memory the caller may change before
        the reverse sweep."""
        return any(isinstance(r, Argument) and r.index in self.changing for r in roots(ptr))

    def _launches(self, distinct: frozenset[int], root: bool) -> dict[Instruction, Launch]:
        """What each parallel call tells its chunks (`parallel.Launch`); in the root function
        of combined mode, the memory nothing writes from the call on."""
        return {
            call: launch(call, self._unchanged_operands(call, distinct) if root else None)
            for call in self.fn.instructions()
            if rules.parallel_chunk(call) is not None
        }

    def _unchanged_operands(self, call: Instruction, distinct: frozenset[int]) -> frozenset[int]:
        """`parallel.unchanged_operands`, but for memory the caller may change."""
        params = rules.parallel_chunk(call)[1]  # type: ignore[index]
        found = unchanged_operands(self.module, self.fn, call, distinct)
        return frozenset(k for k in found if not self._changes(params[k]))  # type: ignore[arg-type]

    def _reloads(
        self, distinct: frozenset[int], reload, only=None
    ) -> tuple[set[Instruction], dict[Instruction, None]]:
        """The loads to load again (from arguments, or from runtime allocations that can be
        kept alive, each object until the reverse sweep passes its allocation; among `only`
        if given; `reload` as in `plan`), and those allocations."""
        loads, kept = set(), {}
        if reload is True:
            reload = reloadable_loads(self.module, self.fn, distinct)
        for ld in reload or ():
            if only is not None and ld not in only or self._changes(ld.operands[0]):
                continue
            allocs = allocations(ld.operands[0])
            if all(a.block is not None and _retained(a) for a in allocs):
                loads.add(ld)
                kept.update(dict.fromkeys(allocs))
        return loads, kept

    def _decided_joins(self, once: set[str]) -> dict[str, tuple[Value, tuple[str, str]]]:
        """Joins whose predecessor the reverse sweep tells from a branch it recomputes
        instead of an id on the tape: the join's immediate dominator branches on a condition
        the reverse sweep has for free, and each of the join's two predecessors lies on one
        side of that branch only. Join -> (condition, (predecessor if true, if false))."""
        g, idom, out = self.graph, dominators(self.graph), {}
        for join, preds in g.preds.items():
            top = idom.get(join)
            if len(set(preds)) != 2 or join in self.loops or top is None:
                continue
            term = self.fn.block(top).terminator
            if term.opcode != "br" or len(set(term.labels)) != 2:
                continue
            sides = [
                {
                    p
                    for p in preds
                    if p == top and label == join or p in reachable(g, [label], {top, join})
                }
                for label in term.labels
            ]
            if (
                all(len(side) == 1 for side in sides)
                and sides[0] != sides[1]
                and self._take_free(term.operands[0], join, once)
            ):
                out[join] = (term.operands[0], (sides[0].pop(), sides[1].pop()))
        return out

    def _free(self, v: Value, block: str, once: set[str], depth: int = 0) -> bool:
        """Whether the reverse sweep has `v` at `block` without the tape's help (beyond the
        frame): constants, arguments, induction variables, pure values of those."""
        if isinstance(v, Argument | Constant | GlobalRef):
            return True
        if not isinstance(v, Instruction) or v.block is None:
            return False
        if v in self.inductions:
            return block in self.inductions[v][0].blocks
        if v.opcode == "phi":
            return False
        return (
            v.block.name in once
            or depth < 8
            and pure(v)
            and all(self._free(o, block, once, depth + 1) for o in v.operands)
        )

    def _take_free(self, v: Value, block: str, once: set[str]) -> bool:
        """If `v` is free at `block` (see `_free`), arrange for the reverse sweep to have it
        there (frame or recomputation) and say so."""
        if not self._free(v, block, once):
            return False
        leaves: list[Item] = []
        self._resolve(("primal", v), block, once, leaves, 0)
        assert not leaves, (v, leaves)
        return True

    def _resolve(
        self,
        item: Item,
        block: str,
        once: set[str],
        leaves: list[Item],
        depth: int,
        pushed: frozenset | set = frozenset(),
    ) -> None:
        """Decide how the reverse sweep gets a value: free (argument, constant), from the
        frame (computed once per call), recomputed from its operands (a pure instruction of
        the same block), or pushed (appended to `leaves`)."""
        kind, v = item
        if isinstance(v, Argument | Constant | GlobalRef) or item in self.frame:
            return
        if isinstance(v, Instruction) and self._per_thread(v):
            if v.opcode == "phi" or kind == "shadow" and v.opcode != "getelementptr":
                raise NoDerivativeError(
                    f"a value computed from the running thread's index through '{v.opcode}'",
                    v.text(),
                    self.fn.name,
                    MODE,
                    v.loc,
                    hint="The reverse sweep computes such values again in the thread running "
                    "it; it does so through pure instructions and addresses only.",
                )
            for k, o in enumerate(v.operands):  # the thread running the reverse sweep's
                sub = "shadow" if kind == "shadow" and k == 0 else "primal"
                self._resolve((sub, o), block, once, leaves, depth + 1, pushed)
            (self.recompute if kind == "primal" else self.recompute_shadow).add(v)
            return
        if v in self.inductions and block in self.inductions[v][0].blocks:
            if kind == "primal":
                return  # follows from the reverse sweep's loop counter
            if v.type.is_ptr:  # a pointer walking through memory: its start's shadow, moved
                start = self.inductions[v][1].start
                self._resolve(("shadow", start), block, once, leaves, depth + 1, pushed)
                return
        if kind == "primal" and depth < 16 and self._choose(v, block, once, leaves, depth, pushed):
            return
        if not isinstance(v, Instruction) or v.block is None or v.opcode == "phi":
            self._leaf(item, block, leaves)
        elif v.block.name in once and not _from_arguments(v, kind):
            self.frame[item] = len(self.frame)
        elif depth < 16 and (
            kind == "primal" and (pure(v) or v in self.reload) or v.opcode == "getelementptr"
        ):
            inner: list[Item] = []
            for k, o in enumerate(v.operands):  # a shadow GEP: the base's shadow, same indices
                sub = "shadow" if kind == "shadow" and k == 0 else "primal"
                self._resolve((sub, o), block, once, inner, depth + 1, pushed)
            # recompute if that saves tape: from at most one new value of the same block, or
            # (for a value of another block) from what the reverse sweep has for free
            fresh = set(inner) - set(leaves) - pushed
            if len(fresh) <= (1 if v.block.name == block else 0):
                (self.recompute if kind == "primal" else self.recompute_shadow).add(v)
                if v in self.reload:
                    self.reloaded.add(v)
                leaves.extend(inner)
            else:
                self._leaf(item, block, leaves)
        else:
            self._leaf(item, block, leaves)

    def _choose(
        self,
        v: Value,
        block: str,
        once: set[str],
        leaves: list[Item],
        depth: int,
        pushed: frozenset | set,
    ) -> bool:
        """Recompute a phi of a join the reverse sweep decides, needed in the join itself,
        when each incoming value is a constant or recomputed from what the reverse sweep has
        for free (`chosen`: computed on the side the condition picks, where a value loaded
        again is valid), and say so."""
        if not (
            isinstance(v, Instruction)
            and v.opcode == "phi"
            and v.block_name == block
            and block in self.decided
            and all(
                isinstance(w, Argument | Constant | GlobalRef)
                or isinstance(w, Instruction)
                and (pure(w) or w in self.reload)
                for w in v.operands
            )
        ):
            return False
        inner: list[Item] = []
        for w in v.operands:
            self._resolve(("primal", w), block, once, inner, depth + 1, pushed)
        if set(inner) - set(leaves) - pushed:
            return False
        self.chosen.add(v)
        leaves.extend(inner)
        return True

    def _per_thread(self, v: Instruction) -> bool:
        """Whether `v` is computed from the running thread's index (a `per_thread` rule's
        call), through pure instructions and phis."""
        memo = self.thread_values
        if v not in memo:
            memo[v] = False  # (a cycle through phis adds nothing)
            if v.opcode == "call":
                rule = rules.lookup(v)
                memo[v] = rule is not None and rule.per_thread
            elif v.opcode in PURE or v.opcode == "phi":
                memo[v] = any(
                    isinstance(o, Instruction) and self._per_thread(o) for o in v.operands
                )
        return memo[v]

    def _leaf(self, item: Item, block: str, leaves: list[Item]) -> None:
        """A value to save: pushed where it is needed, or, when it is defined outside a
        counted loop that holds `block`, saved on the exits of the outermost such loop."""
        v = item[1]
        home = v.block.name if isinstance(v, Instruction) and v.block is not None else None
        hoist = self.hoisted.get(v) if item[0] == "primal" and isinstance(v, Instruction) else None
        outer = [
            lp
            for lp in self.loops.values()
            if block in lp.blocks
            and home is not None
            and (home not in lp.blocks or hoist is not None and lp.blocks <= hoist.blocks)
        ]
        if not outer:
            leaves.append(item)
            return
        lp = max(outer, key=lambda lp: len(lp.blocks))
        if home in lp.blocks:
            self.carried[v] = None
        self.saved[lp.header][item] = None
        if lp not in self.saved_in.setdefault(item, []):
            self.saved_in[item].append(lp)

    def _once_blocks(self) -> set[str]:
        """Blocks on no cycle of the CFG: each runs at most once per call."""
        succs = self.graph.succs
        once = set()
        for start in succs:
            seen, todo = set(), list(succs[start])
            while todo:
                b = todo.pop()
                if b not in seen:
                    seen.add(b)
                    todo.extend(succs[b])
            if start not in seen:
                once.add(start)
        return once

    def _reservations(self) -> dict[str, tuple[Value, int, int]]:
        """Innermost counted loops whose trip count the preheader knows (`bound` defined
        before the loop) and whose pushes are all their own (no callee, no memory call):
        header -> (bound, pushes per iteration). The forward sweep makes room for all the
        iterations at once; the loop's pushes need no capacity check (LLVM can
        vectorize)."""
        headers = loop_headers(self.graph)
        out = {}
        for lp in self.loops.values():
            found = self.latch_exits[lp.header]
            insts = [i for b in lp.blocks for i in self.fn.block(b).instructions]
            if (
                found is None
                or headers & lp.blocks != {lp.header}
                or any(i in self.act.callees or memory_call(self.act, i) for i in insts)
            ):
                continue
            bound = found[1]
            if (
                isinstance(bound, Instruction)
                and bound.block is not None
                and bound.block.name in lp.blocks
            ):
                continue
            kinds = [k for i in insts if i in self.steps for k, _ in self.steps[i].pushes]
            ids = max(sum(self.pushes_id[b] for b in lp.blocks), len(self._id_places[lp.header]))
            primals = kinds.count("primal") + ids
            shadows = kinds.count("shadow")
            if primals or shadows:
                out[lp.header] = (bound, primals, shadows)
        return out

    def _pushes(self, header: str) -> bool:
        """Whether the loop pushes anything (values or block ids)."""
        blocks = self.loops[header].blocks
        return any(
            self.pushes_id[b] or i in self.steps and self.steps[i].pushes
            for b in blocks
            for i in self.fn.block(b).instructions
        )

    @cached_property
    def _id_places(self) -> dict[str, dict[str, int]]:
        """Header -> `LoopPlan.ids`: the loop's joins whose predecessors push their ids, each
        a place from the end of the iteration's part (the last ones, its room's id count)."""
        out = {}
        for header, lp in self.loops.items():
            joins = [
                b.name
                for b in self.fn.blocks
                if b.name in lp.blocks
                and len(self.graph.preds[b.name]) > 1
                and b.name not in self.loops
                and b.name not in self.decided
            ]
            out[header] = dict(zip(joins, range(len(joins), 0, -1), strict=True))
        return out

    def _places(self, header: str) -> dict[Instruction, tuple[int, int]] | None:
        """`LoopPlan.places` of a loop with reserved room, else None."""
        blocks = self.loops[header].blocks
        if header not in self.reserved:
            return None
        places, primals, shadows = {}, 0, 0
        for inst in (i for b in self.fn.blocks if b.name in blocks for i in b.instructions):
            kinds = [k for k, _ in self.steps[inst].pushes] if inst in self.steps else []
            if kinds:
                places[inst] = (primals, shadows)
                primals += kinds.count("primal")
                shadows += kinds.count("shadow")
        return places


def _from_arguments(v: Instruction, kind: str) -> bool:
    """An address (or a pure primal value) computed from arguments and constants only: the
    reverse sweep recomputes it rather than keep it (a nested derivative's engine would
    otherwise see a pointer into memory without derivatives stored on the tape)."""
    computed = v.opcode == "getelementptr" or kind == "primal" and pure(v)
    return computed and all(isinstance(o, Argument | Constant | GlobalRef) for o in v.operands)


def _keepable(ptr: Value) -> bool:
    """Whether `ptr` points into runtime allocations of the function only, each of which
    can be kept alive."""
    allocs = [allocation(r) for r in roots(ptr)]
    return all(isinstance(a, Instruction) and a.opcode == "call" and _retained(a) for a in allocs)


def _retained(alloc: Instruction) -> bool:
    """Whether an allocation can be kept alive one reference longer."""
    fx = rules.effects(alloc)
    return fx is not None and fx.allocates is not None and fx.allocates.retain is not None


def _sibling(inst: Instruction, rule: rules.Rule) -> Instruction | None:
    """A call of the same block, on the same operands, of the function whose result gives
    `rule`'s partials (`rule.sibling`), if the primal makes one."""
    if rule.sibling is None or inst.block is None:
        return None
    family = rules.RULES[rule.sibling[0]].tangent
    for other in inst.block.instructions:
        found = rules.lookup(other) if other.opcode == "call" else None
        if (
            found is not None
            and found.tangent is family
            and other.type == inst.type
            and len(other.operands) == len(inst.operands)
            and all(a is b for a, b in zip(other.operands, inst.operands, strict=True))
        ):
            return other
    return None


def _windowed(found: Mapping[str, tuple[Window, ...]]) -> frozenset[Instruction]:
    """The loads of the windows `found`."""
    return frozenset(load for ws in found.values() for w in ws for load in w.positions)
