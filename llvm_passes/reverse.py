"""Reverse-mode synthesis: gradients with Enzyme's shadow-memory semantics.

For each (function, activity pattern) two functions are made:
- `augmented_<f>(args, shadows, tape)`: the primal, plus the shadow pointers, plus pushes
  onto the tape of every value the reverse sweep needs and of the control-flow path taken;
- `diffe_<f>(args, shadows, tape[, dret])`: the reverse sweep, popping the tape in reverse
  order, replaying the blocks backwards and adding adjoints (`+=`) into shadow memory.
The entry point `diffe_<f>(args, shadows[, dret])` owns the tape and calls both.

In reverse mode the shadow of a float scalar argument is a pointer to its adjoint
accumulator. A store's reverse reads the shadow into the stored value's adjoint and zeroes
it; a load's reverse adds the loaded value's adjoint into the shadow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from . import rules
from .analysis.activity import Activity, ActivityResult, activity
from .analysis.cfg import CFG, cfg, dominators, reachable
from .analysis.loops import (
    CountedLoop,
    Induction,
    count_iterations,
    counted_loops,
    loop_headers,
    split_exit_edges,
)
from .analysis.memtypes import MemoryFacts
from .analysis.readonly import allocations, element_type, invariant_loads, reloadable_loads
from .errors import NoDerivativeError, called_from
from .forward import _FunctionForward, function_to_derive, has_rule
from .ir import (
    BINARY,
    CASTS,
    I8,
    I32,
    I64,
    PTR,
    VOID,
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
from .ir.types import size_in_bytes
from .ir.values import const
from .rules.memory import DATA_POINTER, RAW_FREE, REFCOUNT, RELEASE
from .tape import (
    ARM,
    CALLOC,
    DROP,
    ESCAPE_AT,
    ESCAPE_TYPE,
    ESCAPED,
    FORGET,
    FREE,
    KEEP,
    LOG,
    SAVED,
    SETJMP,
    TAKE,
    TAPE_TYPE,
    UNWIND,
    ensure_runtime,
    frame_slot,
    localize,
    pop,
    push,
    reserve,
    storable,
    sync,
)

MODE = "reverse"
# instructions the reverse sweep may recompute instead of taking from the tape
_PURE = (
    BINARY
    | CASTS
    | {"fneg", "icmp", "fcmp", "select", "getelementptr", "extractvalue", "insertvalue", "freeze"}
)


@dataclass(frozen=True)
class ReverseResult:
    """The module holding the gradient entry point, its name, and the root's activity."""

    module: Module
    fn_name: str  # combined: diffe_<f>; split: augment_<f>
    activity: ActivityResult
    split_names: tuple[str, ...] = ()  # split: (reverse_<f>, release_<f>)
    # combined, with `distinct` arguments: the entry to call when their memory overlaps
    # (None when assuming it does not changed nothing)
    aliased_name: str | None = None
    # `i64 drop_tapes_<f>()` frees the storage (tapes, logs) the entries keep between
    # calls and returns how many bytes it held
    drop_name: str | None = None

    @property
    def module_text(self) -> str:
        return self.module.text()


def reverse(
    module_text: str | Module,
    fn_name: str,
    activities: Sequence[Activity],
    tape_bytes_at: int | None = None,
    split: bool = False,
    distinct: frozenset[int] = frozenset(),
    pointee: Sequence[Type | None] | None = None,
    out_of_memory: str | None = None,
) -> ReverseResult:
    """Synthesize the gradient of `fn_name` (contract: see module doc).

    Combined (default): `diffe_<f>(args, shadows)` owning its tape. Split: three entry points
    sharing a caller-owned, zero-initialized tape (`TAPE_TYPE`): `augment_<f>(args, shadows,
    tape)` runs the forward sweep, `reverse_<f>(args, shadows, tape)` the reverse sweep,
    `release_<f>(args, shadows, tape)` only frees what a forward sweep left on the tape (for
    a tape whose reverse sweep never runs); the last two free the tape's storage.

    With `tape_bytes_at` (an address of an int64), each forward sweep stores there the number
    of bytes it put on the tape. `distinct` (combined mode): positions of pointer arguments
    assumed to address non-overlapping memory; when that assumption lets the reverse sweep
    load memory again, a second entry `diffe_<f>.aliased` does without it, for the caller
    to use when the memory does overlap. `pointee` as in `forward`.

    `out_of_memory`: IR text defining a function with the parameters and return type of
    `fn_name`, which says that memory ran out (for Numba: a `MemoryError`). When memory for
    the tape or for what a forward sweep allocates cannot be had, the entry points that run
    a forward sweep release what it allocated and return what that function returns; without
    it, the process aborts."""
    module, fn, facts = function_to_derive(module_text, fn_name, activities, pointee)
    ensure_runtime(module)
    oom = None
    if out_of_memory is not None:
        hook = parse_module(out_of_memory)
        module.merge(hook)
        oom = next(f.name for f in hook.functions.values() if not f.is_declaration)
    synth = _Synthesizer(
        module,
        facts,
        reload=None if split else fn.name,
        distinct=frozenset() if split else distinct,
    )
    pattern = tuple(a.active for a in activities)
    aug, rev = synth.derive(fn, pattern)
    entries = _Entries(module, fn, pattern, tape_bytes_at, oom)
    aliased = None
    if split:
        names = (
            entries.augment(aug),
            entries.finish("reverse", rev),
            entries.finish("release", synth.release(fn, pattern)),
        )
    else:
        names = (entries.combined(aug, rev),)
        if synth.plans[(fn.name, pattern)].assumes_distinct:
            aliased = entries.combined(*synth.derive(fn, pattern, aliased=True), ".aliased")
    return ReverseResult(
        module,
        names[0],
        synth.results[(fn.name, pattern)],
        names[1:],
        aliased,
        entries.drop_tapes(),
    )


class _Entries:
    """The exported entry points: the primal's arguments, then one shadow per active one."""

    def __init__(
        self,
        module: Module,
        fn: Function,
        pattern: tuple[bool, ...],
        tape_bytes_at: int | None,
        out_of_memory: str | None,
    ) -> None:
        self.module, self.fn, self.tape_bytes_at = module, fn, tape_bytes_at
        self.out_of_memory = out_of_memory
        self.cells: list[GlobalRef] = []  # where the combined entries keep tape storage
        self.args = [Argument(a.type, a.name, a.attrs, a.index) for a in fn.args]
        self.shadows = [
            Argument(PTR, f"{a.name}.shadow", "", 0)
            for a, p in zip(fn.args, pattern, strict=True)
            if p
        ]
        # a float-returning (non-Numba) function takes the return's cotangent last
        self.dret = [Argument(fn.ret_type, "dret", "", 0)] if fn.ret_type.is_float else []

    def _begin(self, name: str, ret_type, extra: list[Argument]) -> Builder:
        params = [*self.args, *self.shadows, *extra]
        params = [Argument(a.type, a.name, a.attrs, k) for k, a in enumerate(params)]
        self.params = params
        entry = self.entry = Function(name, ret_type, params)
        entry.blocks.append(Block("entry"))
        self.module.add_function(entry)
        return Builder(self.module, Namer(entry), entry.blocks[0])

    def _branch(self, b: Builder, cond: Value, then: str, other: str) -> tuple[Block, Block]:
        """End the current block with `br cond`; the two new blocks."""
        blocks = Block(then), Block(other)
        self.entry.blocks.extend(blocks)
        b.insert(Instruction("br", operands=[cond], labels=[blk.name for blk in blocks]))
        return blocks

    def _cell(self, name: str) -> GlobalRef:
        """A global where an entry keeps storage between calls (freed by `drop_tapes`)."""
        cell = GlobalRef(name, PTR)
        self.module.globals[cell.name] = f"{cell.ref} = internal global ptr null"
        self.cells.append(cell)
        return cell

    def _forward_sweep(self, b: Builder, aug: str, tape: Value) -> Value:
        """Call the forward sweep. With an `out_of_memory` function, memory the sweep cannot
        have ends it: what it allocated is released and that function's result returned."""
        if self.out_of_memory is None:
            b.store(Constant(PTR, "null"), b.gep(I8, tape, const(I64, ESCAPE_AT)), 8)
        else:
            record = b.alloca(ESCAPE_TYPE, 16, "escape")
            log = self._cell(f"enzpy.tape.log.{self.entry.name}")
            b.call(ARM, [tape, record, log], VOID)
            jumped = b.icmp("ne", b.call(SETJMP, [record], I32, "jumped"), const(I32, 0))
            oom, sweep = self._branch(b, jumped, "out.of.memory", "sweep")
            b.position_at_end(oom)
            b.call(UNWIND, [tape, record], VOID)
            self._ret(
                b,
                b.call(
                    self.out_of_memory, self.params[: len(self.args)], self.fn.ret_type, "status"
                ),
            )
            b.position_at_end(sweep)
        r = b.call(
            aug,
            self.params[: len(self.args) + len(self.shadows)] + [tape],
            self.fn.ret_type,
            "primal",
        )
        if self.out_of_memory is not None:
            b.call(FORGET, [tape, log], VOID)
        if self.tape_bytes_at is not None:
            size = b.load(I64, b.gep(I64, tape, const(I64, 1)), 8, "tape.bytes")
            b.store(size, Constant(PTR, f"inttoptr (i64 {self.tape_bytes_at} to ptr)"), 8)
        return r

    def _ret(self, b: Builder, r: Value | None) -> None:
        b.insert(Instruction("ret", operands=[r] if r is not None else []))

    def combined(self, aug: str, rev: str, suffix: str = "") -> str:
        name = f"diffe_{self.fn.name}{suffix}"
        b = self._begin(name, self.fn.ret_type, self.dret)
        # the tape's storage is kept between calls: no fresh pages to fault in each time
        cell = self._cell(f"enzpy.tape.cell.{self.fn.name}{suffix}")
        tape = b.alloca(TAPE_TYPE, 8, "tape")
        b.call(TAKE, [tape, cell], VOID)
        r = self._forward_sweep(b, aug, tape)
        n = len(self.args) + len(self.shadows)
        b.call(rev, [*self.params[:n], tape, *self.params[n:]], VOID)
        b.call(KEEP, [tape, cell], VOID)
        self._ret(b, r)
        return name

    def drop_tapes(self) -> str | None:
        """`i64 drop_tapes_<f>()`: free the storage the entries keep; its bytes."""
        if not self.cells:
            return None
        name = f"drop_tapes_{self.fn.name}"
        fn = Function(name, I64, [])
        fn.blocks.append(Block("entry"))
        self.module.add_function(fn)
        b = Builder(self.module, Namer(fn), fn.blocks[0])
        total: Value = const(I64, 0)
        for cell in self.cells:
            total = b.binop("add", total, b.call(DROP, [cell], I64, "bytes"), "total")
        self._ret(b, total)
        return name

    def augment(self, aug: str) -> str:
        name = f"augment_{self.fn.name}"
        b = self._begin(name, self.fn.ret_type, [Argument(PTR, "tape", "", 0)])
        self._ret(b, self._forward_sweep(b, aug, self.params[-1]))
        return name

    def finish(self, kind: str, sweep: str) -> str:
        """`reverse_<f>` / `release_<f>`: run `sweep` on the tape, then free its storage."""
        name = f"{kind}_{self.fn.name}"
        dret = self.dret if kind == "reverse" else []
        b = self._begin(name, VOID, [Argument(PTR, "tape", "", 0), *dret])
        tape = self.params[len(self.args) + len(self.shadows)]
        escape = b.load(PTR, b.gep(I8, tape, const(I64, ESCAPE_AT)), 8, "escape")
        escaped = b.icmp("eq", escape, Constant(PTR, ESCAPED))  # nothing left to sweep
        done, run = self._branch(b, escaped, "escaped", "sweep")
        b.position_at_end(done)
        self._ret(b, None)
        b.position_at_end(run)
        b.call(sweep, self.params, VOID)
        b.call(FREE, [tape], VOID)
        self._ret(b, None)
        return name


class _Synthesizer:
    """Derives augmented/reverse function pairs for (function, pattern) keys."""

    def __init__(
        self,
        module: Module,
        facts: MemoryFacts,
        reload: str | None,
        distinct: frozenset[int] = frozenset(),
    ) -> None:
        self.module, self.facts = module, facts
        self.distinct = distinct  # the root's arguments whose memory does not overlap
        # combined mode: memory nothing writes may be loaded again in the reverse sweep of
        # the root function `reload` (in split mode the caller may change the arguments
        # between the sweeps; a callee's caller may change memory after the callee returns)
        self.reload = reload
        self.names: dict[tuple[str, tuple[bool, ...]], tuple[str, str]] = {}
        self.results: dict[tuple[str, tuple[bool, ...]], ActivityResult] = {}
        self.plans: dict[tuple[str, tuple[bool, ...]], _Plan] = {}
        self.released: dict[tuple[str, tuple[bool, ...]], str] = {}
        self.cache: dict = {}

    def derive(
        self, fn: Function, pattern: tuple[bool, ...], aliased: bool = False
    ) -> tuple[str, str]:
        """The augmented forward and the reverse sweep of `fn` for `pattern`; `aliased`: for
        the root, without assuming its `distinct` arguments apart."""
        key = (fn.name, pattern) if not aliased else (fn.name, pattern, "aliased")
        if key in self.names:
            return self.names[key]
        bits = "".join("d" if p else "c" for p in pattern) + (".aliased" if aliased else "")
        names = (f"augmented_{fn.name}.{bits}", f"diffe_{fn.name}.{bits}")
        self.names[key] = names
        count_iterations(fn)
        split_exit_edges(fn)
        act = activity(self.module, fn, pattern, has_rule, self.cache)
        self.results[key] = act
        root = self.reload == fn.name
        distinct = self.distinct if root and not aliased else frozenset()
        plan = self.plans[key] = _Plan(self.module, fn, act, root, distinct, self.facts)
        _Augmented(self, fn, act, names[0], plan).run()
        _Reverse(self, fn, act, names[1], plan).run()
        return names

    def release(self, fn: Function, pattern: tuple[bool, ...]) -> str:
        """`release_<f>.<bits>(args, shadows, tape)`: the reverse sweep reduced to popping the
        tape and freeing what the forward sweep allocated (shadows, cached inputs)."""
        key = (fn.name, pattern)
        if key not in self.released:
            self.derive(fn, pattern)
            name = self.released[key] = self.names[key][1].replace("diffe_", "release_", 1)
            _Reverse(self, fn, self.results[key], name, self.plans[key], release=True).run()
        return self.released[key]


# ---- what the reverse sweep needs -----------------------------------------------------------
def _is_active_float(act: ActivityResult, v: Value) -> bool:
    return v.type.is_float and act.is_active(v)


def _overwrites_shadow(act: ActivityResult, inst: Instruction) -> bool:
    """A memset, memcpy or memmove into memory with derivatives: reversed by its rule's
    adjoint (the destination's adjoints are zeroed, or moved to an active source)."""
    name = inst.callee_name or ""
    return name.startswith(("llvm.memset", "llvm.memcpy", "llvm.memmove")) and act.is_active(
        inst.operands[0]
    )


class _Plan:
    """Per instruction, the values the reverse sweep needs from the forward sweep, in push
    order: ('primal', v) or ('shadow', v). Arguments and constants are never pushed."""

    def __init__(
        self,
        module: Module,
        fn: Function,
        act: ActivityResult,
        reload: bool,
        distinct: frozenset[int],
        facts: MemoryFacts,
    ) -> None:
        self.module, self.fn, self.act, self.facts = module, fn, act, facts
        self.graph: CFG = cfg(fn)
        self.index = {b.name: k for k, b in enumerate(fn.blocks)}
        # counted loops are replayed by counting their induction variable down: their
        # headers need no path from the tape, and the induction variable is free inside
        self.loops = {lp.header: lp for lp in counted_loops(fn, self.graph)}
        once = self._once_blocks()
        # combined mode, root function: memory nothing writes after a load is loaded again;
        # runtime allocations read so are kept alive until the reverse sweep passes them
        self.reload, self.kept_alive = self._reloads(module, distinct, once, reload)
        # loads reading one value per execution of a loop are saved like values defined
        # before it; `carried` are those kept in a slot by the forward sweep until the exit
        self.hoisted = invariant_loads(module, fn, self.loops.values(), distinct)
        self.assumes_distinct = bool(distinct) and (
            self.reload != self._reloads(module, frozenset(), once, reload)[0]
            or self.hoisted != invariant_loads(module, fn, self.loops.values())
        )
        self.carried: dict[Value, None] = {}
        self.inductions: dict[Value, tuple[CountedLoop, Induction]] = {
            ind.phi: (lp, ind) for lp in self.loops.values() for ind in lp.inductions
        }
        self.exits: dict[str, list[CountedLoop]] = {}  # exit edge block -> loops it leaves
        for b in fn.blocks:
            left = [
                lp
                for lp in self.loops.values()
                if b.name not in lp.blocks and any(p in lp.blocks for p in self.graph.preds[b.name])
            ]
            if left:
                self.exits[b.name] = left
        # values defined outside a counted loop and needed inside: saved once per execution
        # of the loop, on its exit edges, instead of pushed at every iteration
        self.invariants: dict[str, dict[tuple[str, Value], None]] = {h: {} for h in self.loops}
        self.saved_in: dict[tuple[str, Value], list[CountedLoop]] = {}
        self.needs: dict[Instruction, list[tuple[str, Value]]] = {}
        self.pushes: dict[Instruction, list[tuple[str, Value]]] = {}
        if len(once) == len(fn.blocks):  # no loop: every value is pushed at most once anyway
            once = set()
        self.rets = [b.name for b in fn.blocks if b.terminator.opcode == "ret"]
        # values computed at most once per call live in a frame of tape slots, saved once
        # where they are defined instead of pushed at every use inside loops
        self.frame: dict[tuple[str, Value], int] = {}
        self.recompute: set[Instruction] = set()  # rematerialized in the reverse sweep
        self.recompute_shadow: set[Instruction] = set()  # GEPs whose shadow is rebuilt
        self.library_calls: set[Instruction] = set()  # memory-writing calls to reverse
        self.copy_types: dict[Instruction, Type] = {}  # memcpy/memmove -> element type
        self.siblings: dict[Instruction, Instruction] = {}  # sin -> the primal's cos(x)...
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
                self.invariants[lp.header][("primal", ind.start)] = None
                self.saved_in.setdefault(("primal", ind.start), []).append(lp)
        for block in fn.blocks:
            needs = {
                inst: self._needs(inst) + ([("primal", inst)] if inst in self.kept_alive else [])
                for inst in block.instructions
            }
            position = block.instructions.index
            for inst in needs:  # a sibling defined after its user is saved where it is made
                sibling = self.siblings.get(inst)
                if sibling is not None and position(sibling) > position(inst):
                    needs[sibling] = [*needs[sibling], ("primal", sibling)]
            pushed: set[tuple[str, Value]] = set()  # by instructions later in the block
            for inst in reversed(block.instructions):
                items = [
                    (k, v)
                    for k, v in dict.fromkeys(needs[inst])
                    if not isinstance(v, Argument | Constant | GlobalRef)
                ]
                if items:
                    self.needs[inst] = items
                    leaves: list[tuple[str, Value]] = []
                    for item in items:
                        self._resolve(item, block.name, once, leaves, 0, pushed)
                    fresh = [item for item in dict.fromkeys(leaves) if item not in pushed]
                    pushed.update(fresh)
                    if fresh:
                        self.pushes[inst] = fresh
        # a loop left by its latch's test `iv + step == bound`: the reverse sweep computes
        # the last iv as `bound - step` when it has `bound` for free, instead of popping it
        self.bounds: dict[tuple[str, str], Value] = {}  # (exit block, header) -> bound
        self.latch_exits = {h: _latch_exit(fn, lp) for h, lp in self.loops.items()}
        for lp in self.loops.values():
            found = self.latch_exits[lp.header]
            if found is not None and self._take_free(found[1], found[0], once):
                self.bounds[(found[0], lp.header)] = found[1]
        self.reserved = self._reservations()
        self.unchecked = {b for lp, _, _ in self.reserved.values() for b in lp.blocks}

    def _reservations(self) -> dict[str, tuple[CountedLoop, Value, int]]:
        """Innermost counted loops whose trip count the preheader knows (`bound` defined
        before the loop) and whose pushes are all their own (no callee, no library call):
        preheader -> (loop, bound, pushes per iteration). The forward sweep makes room for all
        the iterations at once; the loop's pushes need no capacity check (LLVM can
        vectorize)."""
        headers = loop_headers(self.graph)
        out = {}
        for lp in self.loops.values():
            found = self.latch_exits[lp.header]
            insts = [i for b in lp.blocks for i in self.fn.block(b).instructions]
            if (
                found is None
                or headers & lp.blocks != {lp.header}
                or any(i in self.act.callees or i in self.library_calls for i in insts)
            ):
                continue
            bound = found[1]
            if (
                isinstance(bound, Instruction)
                and bound.block is not None
                and bound.block.name in lp.blocks
            ):
                continue
            per_iteration = sum(len(self.pushes.get(i, ())) for i in insts) + sum(
                self.pushes_id[b] for b in lp.blocks
            )
            if per_iteration:
                out[lp.preheader] = (lp, bound, per_iteration)
        return out

    def _reloads(
        self, module: Module, distinct: frozenset[int], once: set[str], root: bool
    ) -> tuple[set[Instruction], dict[Instruction, None]]:
        """The loads to load again (from arguments, or from runtime allocations made at most
        once per call), and those allocations."""
        loads, kept = set(), {}
        for ld in reloadable_loads(module, self.fn, distinct) if root else ():
            allocs = allocations(ld.operands[0])
            if all(a.block is not None and a.block.name in once for a in allocs):
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
            and v.opcode in _PURE
            and all(self._free(o, block, once, depth + 1) for o in v.operands)
        )

    def _take_free(self, v: Value, block: str, once: set[str]) -> bool:
        """If `v` is free at `block` (see `_free`), arrange for the reverse sweep to have it
        there (frame or recomputation) and say so."""
        if not self._free(v, block, once):
            return False
        leaves: list[tuple[str, Value]] = []
        self._resolve(("primal", v), block, once, leaves, 0)
        assert not leaves, (v, leaves)
        return True

    def _resolve(
        self,
        item: tuple[str, Value],
        block: str,
        once: set[str],
        leaves: list[tuple[str, Value]],
        depth: int,
        pushed: frozenset | set = frozenset(),
    ) -> None:
        """Decide how the reverse sweep gets a value: free (argument, constant), from the
        frame (computed once per call), recomputed from its operands (a pure instruction of
        the same block), or pushed (appended to `leaves`)."""
        kind, v = item
        if isinstance(v, Argument | Constant | GlobalRef) or item in self.frame:
            return
        if kind == "primal" and v in self.inductions and block in self.inductions[v][0].blocks:
            return  # follows from the reverse sweep's loop counter
        if not isinstance(v, Instruction) or v.block is None or v.opcode == "phi":
            self._leaf(item, block, leaves)
        elif v.block.name in once:
            self.frame[item] = len(self.frame)
        elif depth < 16 and (
            kind == "primal"
            and (v.opcode in _PURE or v in self.reload)
            or v.opcode == "getelementptr"
        ):
            inner: list[tuple[str, Value]] = []
            for k, o in enumerate(v.operands):  # a shadow GEP: the base's shadow, same indices
                sub = "shadow" if kind == "shadow" and k == 0 else "primal"
                self._resolve((sub, o), block, once, inner, depth + 1, pushed)
            # recompute if that saves tape: from at most one new value of the same block, or
            # (for a value of another block) from what the reverse sweep has for free
            fresh = set(inner) - set(leaves) - pushed
            if len(fresh) <= (1 if v.block.name == block else 0):
                (self.recompute if kind == "primal" else self.recompute_shadow).add(v)
                leaves.extend(inner)
            else:
                self._leaf(item, block, leaves)
        else:
            self._leaf(item, block, leaves)

    def _leaf(self, item: tuple[str, Value], block: str, leaves: list[tuple[str, Value]]) -> None:
        """A value to save: pushed where it is needed, or, when it is defined outside a
        counted loop that holds `block`, saved on the exits of the outermost such loop."""
        v = item[1]
        home = v.block.name if isinstance(v, Instruction) and v.block is not None else None
        hoist = self.hoisted.get(v) if item[0] == "primal" else None  # type: ignore[arg-type]
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
        self.invariants[lp.header][item] = None
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

    def frame_items_of(self, inst: Instruction) -> list[tuple[tuple[str, Value], int]]:
        return [(item, k) for item, k in self.frame.items() if item[1] is inst]

    def pops_id(self, block: str) -> bool:
        return (
            block not in self.loops
            and block not in self.decided
            and any(self.pushes_id[p] for p in self.graph.preds[block])
        )

    def _needs(self, inst: Instruction) -> list[tuple[str, Value]]:
        act, op, ops = self.act, inst.opcode, inst.operands
        if op in ("load", "store"):
            ptr = ops[0] if op == "load" else ops[1]
            if not (
                _is_active_float(act, inst)
                if op == "load"
                else act.is_active(ptr) and ops[0].type.is_float
            ):
                return []
            # through a merge of memory with and without derivatives: which one, at run time
            return [("shadow", ptr)] + ([("primal", ptr)] if ptr in act.maybe_primal else [])
        if op == "select":
            return [("primal", ops[0])] if _is_active_float(act, inst) else []
        if op == "call":
            if inst in act.callees:
                pattern = act.callees[inst].pattern
                return (
                    [("primal", v) for v in ops]  # a float's adjoint needs no shadow
                    + [
                        ("shadow", v)
                        for v, p in zip(ops, pattern, strict=True)
                        if p and not v.type.is_float
                    ]
                )
            name = inst.callee_name
            if _overwrites_shadow(act, inst):
                if name.startswith("llvm.memset") or not act.is_active(ops[1]):
                    return [("shadow", ops[0]), ("primal", ops[2])]
                elem = element_type(self.module, self.fn, ops[:2], self.facts)
                if elem is None or ops[2].type != I64 or not name.startswith("llvm.memcpy"):
                    raise NoDerivativeError(
                        f"a call to {name}",
                        inst.text(),
                        self.fn.name,
                        MODE,
                        inst.loc,
                        "A copy between memory with derivatives is reversed only as a memcpy "
                        "of memory this function reads or writes as one float type (its "
                        "derivatives are moved back element by element).",
                    )
                self.copy_types[inst] = elem
                return [("shadow", ops[0]), ("shadow", ops[1]), ("primal", ops[2])]
            rule = rules.lookup(inst)
            if name in rules.WRITES:  # library call writing memory: reversed by its rule
                if not any(act.is_active(v) for v in ops if v.type.is_ptr):
                    return []
                self.library_calls.add(inst)
                return [("primal", v) for v in ops] + [
                    ("shadow", v) for v in ops if v.type.is_ptr and act.is_active(v)
                ]
            if (
                rule is not None
                and rule.kind == "custom"
                and act.is_active(inst)
                and inst.type.is_ptr
                and name not in REFCOUNT | DATA_POINTER
            ):
                return [("shadow", inst)]
        if op == "alloca":
            return [("shadow", inst)] if act.is_active(inst) else []
        if op in ("phi", "getelementptr", "br", "switch", "ret"):
            return []
        if not _is_active_float(act, inst):
            return []
        rule = rules.lookup(inst)
        if rule is None or rule.kind in ("linear", "zero"):
            return []
        sibling = _sibling(inst, rule)
        if sibling is not None:
            self.siblings[inst] = sibling
            return [("primal", sibling)]
        if rule.reads is None:
            return [("primal", v) for v in ops] + ([("primal", inst)] if rule.needs_out else [])
        read = dict.fromkeys(
            r for k, v in enumerate(ops) if _is_active_float(act, v) for r in rule.reads[k]
        )
        return [("primal", inst if r == "out" else ops[r]) for r in read]  # type: ignore[index]


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


def _latch_exit(fn: Function, lp: CountedLoop) -> tuple[str, Value] | None:
    """The exit edge block by which `lp`'s latch leaves when `iv + step == bound`, and the
    bound (None when the latch does not test its counter that way)."""
    term = fn.block(lp.latch).terminator
    test = term.operands[0] if term.opcode == "br" and len(term.labels) == 2 else None
    if not (isinstance(test, Instruction) and test.opcode == "icmp" and test.pred in ("eq", "ne")):
        return None
    step = dict(zip(lp.counter.phi.labels, lp.counter.phi.operands, strict=True))[lp.latch]
    a, b = test.operands
    bound = b if a is step else a if b is step else None
    leave = term.labels[0 if test.pred == "eq" else 1]
    return None if bound is None or leave in lp.blocks else (leave, bound)


# ---- the augmented forward sweep --------------------------------------------------------------
class _Augmented(_FunctionForward):
    """The primal with shadow pointers (no tangents) and tape pushes."""

    mode = MODE

    def __init__(self, synth, fn, act, name, plan: _Plan) -> None:
        super().__init__(synth, fn, act, name)  # type: ignore[arg-type]
        self.plan = plan

    def run(self) -> None:
        args = [Argument(a.type, a.name, a.attrs, a.index) for a in self.fn.args]
        for a, new in zip(self.fn.args, args, strict=True):
            self.vmap[a] = new
        for a in self.fn.args:
            if self.act.is_active(a):
                shadow = Argument(PTR, self.namer.fresh(f"{a.name}.shadow"), "", len(args))
                args.append(shadow)
                if a.type.is_ptr:
                    self.tan[a] = shadow
        self.tape_arg = Argument(PTR, self.namer.fresh("tape"), "", len(args))
        args.append(self.tape_arg)
        self.new = Function(self.name, self.fn.ret_type, args, ret_attrs=self.fn.ret_attrs)
        self.build_blocks()

    def build_blocks(self) -> None:
        new = self.new
        new.blocks = [Block(block.name) for block in self.fn.blocks]
        order = self.plan.graph.rpo
        rest = [b.name for b in self.fn.blocks if b.name not in set(order)]
        frame_items = {}
        for item, k in self.plan.frame.items():
            frame_items.setdefault(item[1], []).append((item, k))
        for name in (*order, *rest):
            self.b.position_at_end(new.block(name))
            if name == self.fn.entry.name:
                self.reserve_frame()
                self.carry = {
                    v: self.b.alloca(v.type, 8, f"{v.name}.carry") for v in self.plan.carried
                }
            for inst in self.fn.block(name).instructions:
                if inst.is_terminator:
                    self.before_terminator(inst)
                self.visit(inst)
                if inst in self.carry:
                    self.b.store(inst, self.carry[inst], 8)
                if inst in self.plan.kept_alive:  # until the reverse sweep passes it
                    self.b.call("NRT_incref", [inst], VOID)
                    self.log(inst, "NRT_decref")
                for (kind, v), k in frame_items.get(inst, ()):
                    self.save(inst, kind, v, k)
                for kind, v in self.plan.pushes.get(inst, ()):
                    self.push(inst, kind, v)
        for primal, tphi in self.pending_phis:
            tphi.operands = [self.shadow_of(v, primal) for v in primal.operands]
        for inst in new.instructions():
            inst.operands = [self.vmap.get(v, v) for v in inst.operands]
        self.module.add_function(new)

    def log(self, p: Value, release: str) -> None:
        """`p`, which `release` frees, is released if the forward sweep escapes."""
        if self.module.get(release) is None:
            self.module.add_function(Function(release, VOID, [Argument(PTR, "p", "", 0)]))
        self.b.call(LOG, [self.tape, p, GlobalRef(release, PTR)], VOID)

    def saved_value(self, inst: Instruction, kind: str, v: Value) -> Value:
        value = self.tan.get(v) if kind == "shadow" else v
        if value is None:
            value = Constant(PTR, "null")
        if not storable(value.type):
            raise self.fail(inst, f"a value of type {value.type} needed by the reverse pass")
        return value

    def push(self, inst: Instruction, kind: str, v: Value) -> None:
        push(
            self.b,
            self.tape,
            self.saved_value(inst, kind, v),
            reserved=inst.block.name in self.plan.unchecked,
        )  # type: ignore[union-attr]

    def reserve_frame(self) -> None:
        self.tape = localize(self.b, self.tape_arg)
        self.frame_offset = self.b.load(
            I64, self.b.gep(I64, self.tape, const(I64, 1)), 8, "frame.offset"
        )
        for _ in self.plan.frame:
            push(self.b, self.tape, const(I64, 0))

    def save(self, inst: Instruction, kind: str, v: Value, k: int) -> None:
        self.b.store(
            self.saved_value(inst, kind, v), frame_slot(self.b, self.tape, self.frame_offset, k), 8
        )

    def before_terminator(self, inst: Instruction) -> None:
        block = inst.block.name  # type: ignore[union-attr]
        for lp in self.plan.exits.get(block, ()):  # the loop's invariants, its last iv
            for kind, v in self.plan.invariants[lp.header]:
                carry = self.carry.get(v) if kind == "primal" else None
                value = (
                    self.saved_value(inst, kind, v)
                    if carry is None
                    else self.b.load(v.type, carry, 8, f"{v.name}.carried")
                )
                push(self.b, self.tape, value)
            if (block, lp.header) not in self.plan.bounds:
                push(self.b, self.tape, lp.counter.phi)
        if inst.opcode == "ret" and self.plan.frame:
            push(self.b, self.tape, self.frame_offset)
        if inst.opcode == "ret" and len(self.plan.rets) > 1 or self.plan.pushes_id[block]:
            push(
                self.b,
                self.tape,
                const(I64, self.plan.index[block]),
                reserved=block in self.plan.unchecked,
            )
        if inst.opcode == "ret":
            sync(self.b, self.tape, self.tape_arg)
        if block in self.plan.reserved:  # room for every push of the loop it enters
            lp, bound, per_iteration = self.plan.reserved[block]
            c = lp.counter
            trips = self.b.binop(
                "sdiv", self.b.binop("sub", bound, c.start, "trips"), const(I64, c.step), "trips"
            )
            trips = self.b.select(
                self.b.icmp("sgt", trips, const(I64, 0), "trips.some"),
                trips,
                const(I64, 0),
                "trips",
            )
            reserve(
                self.b,
                self.tape,
                self.b.binop("mul", trips, const(I64, 8 * per_iteration), "tape.room"),
            )

    # tangents are not computed in this sweep: only pointer shadows
    def visit(self, inst: Instruction) -> None:
        opcode = inst.opcode
        if opcode in (
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
        ):
            return super().visit(inst)
        self.b.loc = inst.loc
        self.copy(inst)
        if self.act.is_active(inst) and rules.lookup(inst) is None and inst.type.is_float:
            raise self.fail(inst, f"instruction '{opcode}'")

    def visit_ret(self, inst: Instruction) -> None:
        self.copy(inst)

    def visit_alloca(self, inst: Instruction) -> None:
        """Shadow stack memory must outlive this sweep: it is zeroed heap memory, freed when
        the reverse sweep passes the alloca."""
        self.copy(inst)
        if self.act.is_active(inst):
            if inst.operands:
                raise self.fail(inst, "a dynamically sized alloca holding derivatives")
            size = const(I64, size_in_bytes(inst.aux_type))
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
            self.copy(inst)
            return
        if inst.type.contains(lambda t: t.is_float):
            raise self.fail(inst, "loading an aggregate holding floats with derivatives")
        super().visit_load(inst)

    def visit_store(self, inst: Instruction) -> None:
        value, ptr = inst.operands
        if value.type.is_float or ptr not in self.tan:
            self.copy(inst)
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
            with called_from(self.fn.name, inst.loc):
                aug, _ = self.synth.derive(self.module.get(inst.callee_name), summary.pattern)
            sync(self.b, self.tape, self.tape_arg)
            clone = self.copy(inst)
            shadows = [
                Constant(PTR, "null") if o.type.is_float else self.shadow_of(o, inst)
                for o, p in zip(inst.operands, summary.pattern, strict=True)
                if p
            ]
            clone.operands = [*inst.operands, *shadows, self.tape_arg]
            clone.arg_attrs = list(inst.arg_attrs) + [""] * (len(shadows) + 1)
            clone.callee, clone.fnty = GlobalRef(aug, PTR), ""
            sync(self.b, self.tape_arg, self.tape)
            return None
        name = inst.callee_name
        active = any(self.act.is_active(o) for o in inst.operands) or self.act.is_active(inst)
        if not active or name in REFCOUNT | RAW_FREE:
            self.copy(inst)  # shadows stay alive until the reverse sweep has used them
            return None
        rule = rules.lookup(inst)
        if rule is None:
            return super().visit_call(inst)  # raises the named error
        if rule.kind == "custom" and name.startswith("llvm.mem"):
            if _overwrites_shadow(self.act, inst):
                self.copy(inst)  # the shadows are reversed in the reverse sweep
                return None
            raise self.fail(
                inst,
                f"a call to {name}",
                "A copy of memory holding derivatives into memory judged without them.",
            )
        if rule.kind == "custom" and name not in rules.WRITES:
            super().visit_call(inst)  # allocation and data pointers of shadows
            if name in RELEASE and inst in self.tan:
                self.log(self.tan[inst], RELEASE[name])
            return None
        if rule.cache is not None and inst in self.plan.library_calls:
            for saved in rule.cache(self.b, inst, inst.operands):  # before memory changes
                self.b.call(SAVED, [self.tape, saved], VOID)
                push(self.b, self.tape, saved)
        self.copy(inst)
        return None


# ---- the reverse sweep ---------------------------------------------------------------------------
class _Reverse:
    """Builds `diffe_<f>.<bits>(args, shadows, tape[, dret])`: the blocks replayed backwards."""

    def __init__(
        self,
        synth,
        fn: Function,
        act: ActivityResult,
        name: str,
        plan: _Plan,
        release: bool = False,
    ) -> None:
        self.synth, self.fn, self.act, self.name, self.plan = synth, fn, act, name, plan
        self.release = release  # only pop the tape and free, no adjoints
        self.module = synth.module
        self.namer = Namer(fn)
        self.b = Builder(self.module, self.namer)
        self.slots: dict[Value, Value] = {}  # active float value -> adjoint slot
        self.accumulators: dict[Value, Value] = {}  # float arg -> its adjoint pointer
        self.shadow_args: dict[Value, Value] = {}

    def fail(self, inst: Instruction, what: str, hint: str = "") -> NoDerivativeError:
        return NoDerivativeError(what, inst.text(), self.fn.name, MODE, inst.loc, hint)

    def is_primal(self, shadow: Value, ptr: Value) -> Value:
        return self.b.icmp("eq", shadow, ptr, "no.shadow")

    def run(self) -> None:
        fn = self.fn
        args: list[Argument] = [Argument(a.type, a.name, a.attrs, a.index) for a in fn.args]
        self.vmap: dict[Value, Value] = dict(zip(fn.args, args, strict=True))
        for a in fn.args:
            if self.act.is_active(a):
                s = Argument(PTR, self.namer.fresh(f"{a.name}.shadow"), "", len(args))
                args.append(s)
                (self.shadow_args if a.type.is_ptr else self.accumulators)[a] = s
        self.tape_arg = Argument(PTR, self.namer.fresh("tape"), "", len(args))
        args.append(self.tape_arg)
        self.dret = None
        if fn.ret_type.is_float and not self.release:
            self.dret = Argument(fn.ret_type, self.namer.fresh("dret"), "", len(args))
            args.append(self.dret)
        new = Function(self.name, VOID, args)
        entry = self.entry = Block(self.namer.fresh("entry.rev"))
        new.blocks.append(entry)
        self.rev_blocks = {b.name: Block(self.namer.fresh(f"{b.name}.rev")) for b in fn.blocks}
        self.b.position_at_end(entry)
        for inst in fn.instructions():
            if _is_active_float(self.act, inst) and not self.release:
                slot = self.b.alloca(inst.type, None, f"{inst.name or 'v'}.adj")
                self.b.store(Builder.zero(inst.type), slot)
                self.slots[inst] = slot
        self.counters = {h: self.b.alloca(I64, 8, f"{h}.iv") for h in self.plan.loops}
        self.invariant_slots = {
            (h, kind, v): self.b.alloca(
                PTR if kind == "shadow" else v.type, 8, f"{v.name}.{kind}.slot"
            )
            for h, items in self.plan.invariants.items()
            for kind, v in items
        }
        rets = self.plan.rets
        self.tape = localize(self.b, self.tape_arg)
        exit_id = pop(self.b, self.tape, I64, "exit.id") if len(rets) > 1 else None
        self.frame_values: dict[tuple[str, Value], Value] = {}
        if self.plan.frame:  # complete by now: read once, so LLVM sees loop invariants
            offset = pop(self.b, self.tape, I64, "frame.offset")
            for (kind, v), k in self.plan.frame.items():
                ty = PTR if kind == "shadow" else v.type
                self.frame_values[(kind, v)] = self.b.load(
                    ty, frame_slot(self.b, self.tape, offset, k), 8, f"{v.name}.{kind}"
                )
        self.dispatch(rets, exit_id)
        for block in fn.blocks:
            new.blocks.append(self.rev_blocks[block.name])
            self.reverse_block(block, new)
        for inst in new.instructions():
            inst.operands = [self.vmap.get(v, v) for v in inst.operands]
        self.module.add_function(new)

    # ---- adjoints ------------------------------------------------------------------------
    def add_adjoint(self, v: Value, contribution: Value | None) -> None:
        """adjoint(v) += contribution (dropped for inactive values)."""
        if contribution is None or not _is_active_float(self.act, v):
            return
        target = self.slots.get(v) or self.accumulators.get(v)
        if target is None:
            return
        old = self.b.load(v.type, target, None, "adj")
        self.b.store(self.b.fadd(old, contribution, "adj"), target)

    def take_adjoint(self, inst: Instruction) -> Value:
        """Read the adjoint of `inst` and reset it (the definition is being reversed)."""
        slot = self.slots[inst]
        adj = self.b.load(inst.type, slot, None, f"{inst.name or 'v'}.adj")
        self.b.store(Builder.zero(inst.type), slot)
        return adj

    # ---- control flow --------------------------------------------------------------------
    def dispatch(self, candidates: list[str], block_id: Value | None) -> None:
        """Branch to the reverse of the block `block_id` names."""
        if len(candidates) == 1:
            self.b.insert(Instruction("br", labels=[self.rev_blocks[candidates[0]].name]))
            return
        cases = [const(I64, self.plan.index[c]) for c in candidates[1:]]
        self.b.insert(
            Instruction(
                "switch",
                operands=[block_id, *cases],
                labels=[self.rev_blocks[c].name for c in candidates],
            )
        )

    def reverse_block(self, block: Block, new: Function) -> None:
        self.b.position_at_end(self.rev_blocks[block.name])
        self.block = block.name
        self.block_values: dict[tuple[str, Value], Value] = {}
        for lp in reversed(self.plan.exits.get(block.name, ())):  # entering the loops backwards
            bound = self.plan.bounds.get((block.name, lp.header))
            last = (
                pop(self.b, self.tape, I64, "iv.last")
                if bound is None
                else self.b.binop(
                    "sub", self.value("primal", bound), const(I64, lp.counter.step), "iv.last"
                )
            )
            self.b.store(last, self.counters[lp.header], 8)
            for kind, v in reversed(self.plan.invariants[lp.header]):
                ty = PTR if kind == "shadow" else v.type
                self.b.store(
                    pop(self.b, self.tape, ty, f"{v.name}.saved"),
                    self.invariant_slots[(lp.header, kind, v)],
                    8,
                )
        if self.dret is not None and block.terminator.opcode == "ret":
            self.add_adjoint(block.terminator.operands[0], self.dret)
        for inst in reversed(block.instructions):
            if inst.opcode != "phi" and not inst.is_terminator:
                self.b.loc = inst.loc
                self.reverse_instruction(inst)
        preds = list(self.plan.graph.preds.get(block.name, ()))
        phis = [p for p in block.phis if p in self.slots]
        if not preds:
            for _ in self.plan.frame:  # release the frame
                pop(self.b, self.tape, I64, "frame")
            sync(self.b, self.tape, self.tape_arg)
            self.b.insert(Instruction("ret"))
            return
        adjs = [(p, self.take_adjoint(p)) for p in phis]
        if block.name in self.plan.loops:
            self.count_down(self.plan.loops[block.name], adjs, new)
            return
        if block.name in self.plan.decided:
            self.decide(block.name, adjs, new)
            return
        if not self.plan.pops_id(block.name):
            self.transfer(adjs, preds[0])
            self.b.insert(Instruction("br", labels=[self.rev_blocks[preds[0]].name]))
            return
        if len(preds) == 1:
            pop(self.b, self.tape, I64, "pred.id")
            self.transfer(adjs, preds[0])
            self.b.insert(Instruction("br", labels=[self.rev_blocks[preds[0]].name]))
            return
        pred_id = pop(self.b, self.tape, I64, "pred.id")
        edges = []
        for p in preds:
            edge = Block(self.namer.fresh(f"{block.name}.from.{p}"))
            new.blocks.append(edge)
            edges.append(edge)
        cases = [const(I64, self.plan.index[p]) for p in preds[1:]]
        self.b.insert(
            Instruction("switch", operands=[pred_id, *cases], labels=[e.name for e in edges])
        )
        for p, edge in zip(preds, edges, strict=True):
            self.b.position_at_end(edge)
            self.transfer(adjs, p)
            self.b.insert(Instruction("br", labels=[self.rev_blocks[p].name]))

    def induction(self, lp: CountedLoop, ind: Induction) -> Value:
        """An induction variable of `lp` in the current iteration, from the loop's counter."""
        iv = self.b.load(I64, self.counters[lp.header], 8, "iv")
        if ind is lp.counter:
            return iv
        c = lp.counter
        k = self.b.binop(
            "sdiv",
            self.b.binop("sub", iv, self.value("primal", c.start), "k"),
            const(I64, c.step),
            "k",
        )
        step = self.b.binop("mul", k, const(I64, ind.step), "k")
        return self.b.binop("add", self.value("primal", ind.start), step, "iv")

    def count_down(
        self, lp: CountedLoop, adjs: list[tuple[Instruction, Value]], new: Function
    ) -> None:
        """Leave a counted loop's header backwards: to the preheader after the first
        iteration, else to the latch of the iteration before."""
        counter = self.counters[lp.header]
        iv = self.b.load(I64, counter, 8, "iv")
        first = self.b.icmp("eq", iv, self.value("primal", lp.counter.start), "iv.first")
        back, out = (
            Block(self.namer.fresh(f"{lp.header}.from.{p}")) for p in (lp.latch, lp.preheader)
        )
        new.blocks += [back, out]
        self.b.insert(Instruction("br", operands=[first], labels=[out.name, back.name]))
        self.b.position_at_end(back)
        self.b.store(self.b.binop("sub", iv, const(I64, lp.counter.step), "iv.prev"), counter, 8)
        for edge, pred in ((back, lp.latch), (out, lp.preheader)):
            self.b.position_at_end(edge)
            self.back_to(pred, adjs)

    def decide(self, join: str, adjs: list[tuple[Instruction, Value]], new: Function) -> None:
        """Leave a join backwards to the predecessor its dominator's branch chose."""
        cond, preds = self.plan.decided[join]
        c = self.value("primal", cond)
        edges = [Block(self.namer.fresh(f"{join}.from.{p}")) for p in preds]
        new.blocks += edges
        self.b.insert(Instruction("br", operands=[c], labels=[e.name for e in edges]))
        for edge, pred in zip(edges, preds, strict=True):
            self.b.position_at_end(edge)
            self.back_to(pred, adjs)

    def back_to(self, pred: str, adjs: list[tuple[Instruction, Value]]) -> None:
        """Branch to the reverse of `pred`, the edge's phi adjoints transferred."""
        if self.plan.pushes_id[pred]:  # pushed for another successor's sake
            pop(self.b, self.tape, I64, "pred.id")
        self.transfer(adjs, pred)
        self.b.insert(Instruction("br", labels=[self.rev_blocks[pred].name]))

    def transfer(self, adjs: list[tuple[Instruction, Value]], pred: str) -> None:
        """Phi adjoints flow to the incoming values of the edge taken."""
        for phi, adj in adjs:
            for v, label in phi.incoming:
                if label == pred:
                    self.add_adjoint(v, adj)
                    break

    # ---- instructions --------------------------------------------------------------------
    def popped(self, inst: Instruction) -> tuple[dict[Value, Value], dict[Value, Value]]:
        """The values `inst`'s reverse needs: popped now, or earlier in this block's reverse
        by a later instruction that needed them too."""
        for kind, v in reversed(self.plan.pushes.get(inst, [])):
            ty = PTR if kind == "shadow" else v.type
            name = f"{getattr(v, 'name', '') or 'v'}.{kind}"
            self.block_values[(kind, v)] = pop(self.b, self.tape, ty, name)
        primal: dict[Value, Value] = {}
        shadow: dict[Value, Value] = dict(self.shadow_args)
        for kind, v in self.plan.needs.get(inst, []):
            (shadow if kind == "shadow" else primal)[v] = self.value(kind, v)
        return primal, shadow

    def value(self, kind: str, v: Value) -> Value:
        """A forward-sweep value inside the reverse sweep: popped, read from the frame, or
        recomputed (once per block) from its operands."""
        if isinstance(v, Argument) and kind == "shadow":
            return self.shadow_args[v]
        if isinstance(v, Argument | Constant | GlobalRef):
            return v
        got = self.block_values.get((kind, v))
        if got is not None:
            return got
        saved = [lp for lp in self.plan.saved_in.get((kind, v), ()) if self.block in lp.blocks]
        if saved:
            ty = PTR if kind == "shadow" else v.type
            slot = self.invariant_slots[(saved[0].header, kind, v)]
            got = self.b.load(ty, slot, 8, f"{v.name}.{kind}")
        elif kind == "primal" and v in self.plan.inductions:
            got = self.induction(*self.plan.inductions[v])
        elif (kind, v) in self.frame_values:
            got = self.frame_values[(kind, v)]
        else:
            recomputed = self.plan.recompute if kind == "primal" else self.plan.recompute_shadow
            assert isinstance(v, Instruction) and v in recomputed, (kind, v)
            ops = [
                self.value("shadow" if kind == "shadow" and k == 0 else "primal", o)
                for k, o in enumerate(v.operands)
            ]
            got = self.b.insert(
                Instruction(
                    v.opcode,
                    v.type,
                    ops,
                    flags=v.flags,
                    pred=v.pred,
                    aux_type=v.aux_type,
                    indices=v.indices,
                ),
                f"{v.name or 't'}.{'shadow' if kind == 'shadow' else 're'}",
            )
        self.block_values[(kind, v)] = got
        return got

    def reverse_instruction(self, inst: Instruction) -> None:
        op = inst.opcode
        primal, shadow = self.popped(inst)
        args = [primal.get(v, v) for v in inst.operands]
        if inst in self.plan.kept_alive:  # kept alive for the loads loaded again
            self.b.call("NRT_decref", [primal[inst]], VOID)
        if self.free_shadow(inst, shadow):
            return
        if self.release:
            self.release_instruction(inst, args, shadow)
        elif op == "load":
            if _is_active_float(self.act, inst):
                ptr = inst.operands[0]
                dp = shadow[ptr]
                adj = self.take_adjoint(inst)
                if ptr in self.act.maybe_primal:  # memory without derivatives: nothing
                    adj = self.b.select(
                        self.is_primal(dp, primal[ptr]), Builder.zero(inst.type), adj, "adj"
                    )
                old = self.b.load(inst.type, dp, inst.align, "shadow.val")
                self.b.store(self.b.fadd(old, adj, "shadow.val"), dp, inst.align)
        elif op == "store":
            value, ptr = inst.operands
            if ptr in shadow and value.type.is_float:
                dp = shadow[ptr]
                got = self.b.load(value.type, dp, inst.align, "shadow.val")
                zero: Value = Builder.zero(value.type)
                if ptr in self.act.maybe_primal:  # memory without derivatives: kept as it is
                    same = self.is_primal(dp, primal[ptr])
                    got, zero = (
                        self.b.select(same, zero, got, "shadow.val"),
                        self.b.select(same, got, zero, "shadow.val"),
                    )
                self.b.store(zero, dp, inst.align)
                self.add_adjoint(value, got)
        elif op == "select":
            if _is_active_float(self.act, inst):
                c = args[0]
                adj = self.take_adjoint(inst)
                zero = Builder.zero(inst.type)
                self.add_adjoint(inst.operands[1], self.b.select(c, adj, zero, "adj"))
                self.add_adjoint(inst.operands[2], self.b.select(c, zero, adj, "adj"))
        elif op == "call" and inst in self.act.callees:
            self.reverse_call(inst, args, shadow)
        elif op == "call" and _overwrites_shadow(self.act, inst):
            rules.lookup(inst).adjoint(
                self.b,
                inst,
                args,  # type: ignore[union-attr]
                [shadow.get(v) for v in inst.operands[:2]],
                elem=self.plan.copy_types.get(inst),
            )
        elif op == "call" and inst in self.plan.library_calls:
            rule = rules.lookup(inst)
            if rule is None or rule.adjoint is None:
                raise self.fail(
                    inst,
                    f"a call to {inst.callee_name}",
                    "It has a forward rule but no reverse rule yet.",
                )
            shadows = [shadow.get(v) if v.type.is_ptr else None for v in inst.operands]
            if rule.cache is None:
                rule.adjoint(self.b, inst, args, shadows)
            else:
                rule.adjoint(self.b, inst, args, shadows, cached=self.pop_cached(rule, inst, args))
        elif _is_active_float(self.act, inst):
            rule = rules.lookup(inst)
            if rule is None or rule.adjoint is None:
                raise self.fail(inst, f"'{inst.opcode}' {inst.callee_name}".strip())
            adj = self.take_adjoint(inst)
            out = primal.get(inst, inst)
            if rule.reads is not None:  # what no active partial reads was not kept: undef,
                # for the partials whose contribution is dropped
                args = [
                    Constant(v.type, "undef") if a is v and isinstance(v, Instruction) else a
                    for v, a in zip(inst.operands, args, strict=True)
                ]
                out = Constant(inst.type, "undef") if out is inst else out
            sibling = self.plan.siblings.get(inst)  # the partials from the primal's cos...
            kept = {} if sibling is None else {"sibling": primal[sibling]}
            contribs = rule.adjoint(
                self.b, out if isinstance(out, Instruction | Constant) else inst, args, adj, **kept
            )
            for v, c in zip(inst.operands, contribs, strict=False):
                self.add_adjoint(v, c)

    def free_shadow(self, inst: Instruction, shadow: dict) -> bool:
        """Free the shadow of stack memory or of a runtime allocation; whether `inst` was one."""
        if inst not in shadow:
            return False
        if inst.opcode == "alloca":
            self.b.call("free", [shadow[inst]], VOID)
        elif inst.opcode == "call" and inst.callee_name in RELEASE:
            self.b.call(RELEASE[inst.callee_name], [shadow[inst]], VOID)  # the shadow dies
        else:
            return False
        return True

    def pop_cached(self, rule: rules.Rule, inst: Instruction, args: list[Value]) -> list[Value]:
        """The copies `rule.cache` saved for `inst` in the forward sweep (malloc'ed)."""
        scratch = Builder(self.module, Namer(), Block("scratch"))
        count = len(rule.cache(scratch, inst, args))  # type: ignore[misc]
        return [pop(self.b, self.tape, PTR, "cached") for _ in range(count)][::-1]

    def release_instruction(self, inst: Instruction, args: list[Value], shadow: dict) -> None:
        """Release mode: free what the forward sweep of `inst` left (callees release theirs)."""
        if inst.opcode != "call":
            return
        if inst in self.act.callees:
            self.reverse_call(inst, args, shadow)
        elif inst in self.plan.library_calls:
            rule = rules.lookup(inst)
            if rule is not None and rule.cache is not None:
                for p in self.pop_cached(rule, inst, args):
                    self.b.call("free", [p], VOID)

    def reverse_call(self, inst: Instruction, args: list[Value], shadow: dict) -> None:
        summary = self.act.callees[inst]
        callee = self.module.get(inst.callee_name)
        if self.release:
            shadows = [
                Constant(PTR, "null") if o.type.is_float else shadow.get(o) or Constant(PTR, "null")
                for o, p in zip(inst.operands, summary.pattern, strict=True)
                if p
            ]
            sync(self.b, self.tape, self.tape_arg)
            self.b.call(
                self.synth.release(callee, summary.pattern), [*args, *shadows, self.tape_arg], VOID
            )
            sync(self.b, self.tape_arg, self.tape)
            return
        _, rev = self.synth.derive(callee, summary.pattern)
        shadows, accumulated = [], []
        for o, p in zip(inst.operands, summary.pattern, strict=True):
            if p and o.type.is_float:
                acc = Instruction("alloca", PTR, [], aux_type=o.type, name=self.namer.fresh("acc"))
                self.entry.instructions.insert(0, acc)
                acc.block = self.entry
                self.b.store(Builder.zero(o.type), acc)
                shadows.append(acc)
                accumulated.append((o, acc))
            elif p:
                shadows.append(shadow.get(o) or Constant(PTR, "null"))
        sync(self.b, self.tape, self.tape_arg)
        self.b.call(rev, [*args, *shadows, self.tape_arg], VOID)
        sync(self.b, self.tape_arg, self.tape)
        for o, acc in accumulated:
            self.add_adjoint(o, self.b.load(o.type, acc, None, "adj"))
