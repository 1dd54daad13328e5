"""Loads of neighbouring cells whose adjoints a reverse loop carries in registers.

A counted loop reading `x[i - 1]`, `x[i]` and `x[i + 1]` adds, in its reverse, into three
neighbouring shadow cells per iteration, and each cell three times in three consecutive
iterations: a chain through memory from one iteration to the next. Counting down, cell
`i + c` gets its last addition in the iteration whose counter is `i`, where `c` is the
highest offset; so the reverse sweep can sum a window of cells in registers, slid down by
one cell per iteration, and add each cell into memory once, when it leaves the window.
The cells' addresses follow from one of the loads run in every iteration (the anchor):
the loop's accesses stay linear in its counter, and LLVM can vectorize it.

Delaying additions is right when nothing else in the loop reads those shadow cells: other
additions into them commute, but the reverse of a store reads its shadow cell (and zeroes
it). So a window is made, in an innermost loop counting up by one whose calls touch no
memory, for the active float loads of one base at `base + (i + c)` cells (constants `c`,
two or more, at most `MAX_SPAN` cells apart; the wraparound Numba adds for a negative index
0 from the counter's first value on), one of them in a block every iteration runs, when
every active float store of the loop writes memory known apart from the window's
(`pointers.apart`: memory the function allocates, an argument the caller checked apart, or
another of the arrays a loop rotates, `prev, cur, nxt = cur, nxt, prev`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..ir import Function, Instruction, Type, Value
from ..ir.types import size_in_bytes
from ..rules import effects
from ..rules.registry import PURE
from .activity import ActivityResult
from .affine import address, integer
from .cfg import CFG, dominators
from .loops import CountedLoop, dominated, loop_headers
from .pointers import apart, owner_or_rotation

MAX_SPAN = 8  # cells from the lowest to the highest offset of a window


@dataclass(frozen=True, eq=False)
class Window:
    """Loads of cells `base + (i + c)` for a few constants `c`: each load's position in the
    window (its `c` less the lowest), the cells' type and the loads' alignment; `anchor`, a
    load run in every iteration, and `always`, the positions such loads have."""

    positions: Mapping[Instruction, int]
    type: Type
    align: int | None
    anchor: Instruction
    always: frozenset[int]

    @property
    def size(self) -> int:
        return max(self.positions.values()) + 1


def windows(
    fn: Function,
    loops: Iterable[CountedLoop],
    graph: CFG,
    act: ActivityResult,
    distinct: frozenset[int],
) -> dict[str, tuple[Window, ...]]:
    """The windows of `fn`'s counted `loops`, by header (the module doc); `distinct`:
    positions of arguments whose memory does not overlap."""
    headers = loop_headers(graph)
    idom = dominators(graph)
    body = {b.name: b.instructions for b in fn.blocks}
    found = {}
    for lp in loops:
        if lp.counter.step != 1 or (headers & lp.blocks) - {lp.header}:
            continue
        leaving = [b for b in lp.blocks if set(graph.succs[b]) - lp.blocks]
        every = {  # the blocks every iteration runs (up to any exit it leaves by)
            b for b in lp.blocks if all(dominated(idom, e, b) for e in [lp.latch, *leaving])
        }
        made = _windows([i for b in lp.blocks for i in body[b]], lp, act, distinct, every)
        if made:
            found[lp.header] = made
    return found


def _windows(
    body: list[Instruction],
    lp: CountedLoop,
    act: ActivityResult,
    distinct: frozenset[int],
    every: set[str],
) -> tuple[Window, ...]:
    counter = lp.counter.phi
    stored: list[Value | None] = []  # the memory of each active float store
    cells: dict[tuple[int, Type], list[tuple[Instruction, Value, int]]] = {}
    for inst in body:
        op = inst.opcode
        if op == "call" and effects(inst) != PURE or op in ("atomicrmw", "cmpxchg", "opaque"):
            return ()
        if op == "store" and inst.operands[0].type.is_float and act.is_active(inst.operands[1]):
            stored.append(owner_or_rotation(inst.operands[1]))
        if not (op == "load" and inst.type.is_float and act.is_active(inst)):
            continue
        ptr = inst.operands[0]
        base, offset = address(ptr, (counter,))
        size = size_in_bytes(inst.type)
        if (
            ptr not in act.maybe_primal
            and offset.counter is counter
            and offset.coef == size
            and offset.const % size == 0
            and (offset.start is None or offset.start <= _first(lp))
            and not (isinstance(base, Instruction) and base.block_name in lp.blocks)
        ):
            cells.setdefault((id(base), inst.type), []).append((inst, base, offset.const // size))
    if None in stored:
        return ()
    made = []
    for (_, ty), loads in cells.items():
        offsets = {c for *_, c in loads}
        lowest = min(offsets)
        memory = owner_or_rotation(loads[0][1])
        always = sorted(
            ((c - lowest, load) for load, _, c in loads if load.block_name in every),
            key=lambda kl: kl[0],
        )
        if (
            not always
            or len(offsets) < 2
            or max(offsets) - lowest > MAX_SPAN
            or memory is None
            or any(not apart(memory, s, distinct) for s in stored)
        ):
            continue
        aligns = {load.align for load, *_ in loads}
        made.append(
            Window(
                {load: c - lowest for load, _, c in loads},
                ty,
                min(aligns) if None not in aligns else None,  # type: ignore[type-var]
                always[-1][1],
                frozenset(k for k, _ in always),
            )
        )
    return tuple(made)


def _first(lp: CountedLoop) -> int:
    """The loop counter's first value if it is a constant, else the lowest integer."""
    start = integer(lp.counter.start)
    return -(2**63) if start is None else start
