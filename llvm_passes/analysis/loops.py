"""Counted loops: natural loops whose header counts iterations with induction variables
`iv = phi [start, preheader], [iv + step, latch]` (i64, a nonzero constant step; also
pointers walking by a constant number of bytes, `getelementptr`, after at least one i64).
The reverse sweep replays such a loop by counting its first induction variable back instead
of reading the path taken from the tape (the others follow from it); it learns the last
value on the loop's exit edges, which `transforms.loops.split_exit_edges` gives blocks of
their own."""

from __future__ import annotations

from dataclasses import dataclass

from ..ir import I64, PTR, Block, Constant, Function, Instruction, Value
from ..ir.types import size_in_bytes
from .cfg import CFG, cfg, dominators


@dataclass(frozen=True)
class Induction:
    """`phi = phi [start, preheader], [phi + step, latch]` (for a pointer, `step` bytes)."""

    phi: Instruction
    start: Value  # defined before the loop
    step: int  # a nonzero constant


@dataclass(frozen=True)
class CountedLoop:
    header: str
    preheader: str  # the header's one predecessor outside the loop
    latch: str  # the header's one predecessor inside the loop
    blocks: frozenset[str]
    inductions: tuple[Induction, ...]  # the first one is the loop's counter

    @property
    def counter(self) -> Induction:
        return self.inductions[0]

    def __hash__(self) -> int:
        return hash(self.header)


def dominated(idom: dict[str, str | None], block: str, by: str) -> bool:
    b: str | None = block
    while b is not None:
        if b == by:
            return True
        b = idom.get(b)
    return False


def _natural_loop(g: CFG, header: str, latch: str) -> frozenset[str]:
    body, todo = {header, latch}, [latch] if latch != header else []
    while todo:
        for p in g.preds[todo.pop()]:
            if p not in body:
                body.add(p)
                todo.append(p)
    return frozenset(body)


def _inductions(header: Block, pre: str, latch: str) -> tuple[Induction, ...]:
    """The header's induction variables: the i64 ones first, then pointers (none without an
    i64 one to count by)."""
    counters: list[Induction] = []
    pointers: list[Induction] = []
    for phi in header.phis:
        if len(phi.labels) != 2 or phi.type not in (I64, PTR):
            continue
        inc = dict(zip(phi.labels, phi.operands, strict=True))
        start, step = inc.get(pre), inc.get(latch)
        if start is None or not isinstance(step, Instruction):
            continue
        by = _step(phi, step)
        if by:
            (counters if phi.type == I64 else pointers).append(Induction(phi, start, by))
    return (*counters, *pointers) if counters else ()


def _step(phi: Instruction, step: Instruction) -> int:
    """The constant `phi` grows by in `step` (`add` for an i64, bytes of a one-index
    `getelementptr` for a pointer); 0 when it is not one."""
    if phi.type == I64 and step.opcode == "add" and phi in step.operands:
        c = step.operands[1] if step.operands[0] is phi else step.operands[0]
        return _constant(c)
    if step.opcode == "getelementptr" and step.operands[0] is phi and len(step.operands) == 2:
        assert step.aux_type is not None
        return size_in_bytes(step.aux_type) * _constant(step.operands[1])
    return 0


def _constant(v: Value) -> int:
    return int(v.text) if isinstance(v, Constant) and v.text.lstrip("-").isdigit() else 0


def counted_loops(fn: Function, g: CFG | None = None) -> list[CountedLoop]:
    """The counted loops of `fn`, outer loops before the loops they contain."""
    g = g or cfg(fn)
    idom = dominators(g)
    out = []
    for header in g.rpo:
        latches = [p for p in g.preds[header] if p in idom and dominated(idom, p, header)]
        outside = [p for p in g.preds[header] if p not in latches]
        if len(latches) != 1 or len(outside) != 1:
            continue
        found = _inductions(fn.block(header), outside[0], latches[0])
        if found:
            body = _natural_loop(g, header, latches[0])
            out.append(CountedLoop(header, outside[0], latches[0], body, found))
    return out


def loop_headers(g: CFG) -> set[str]:
    """Headers of the natural loops of a CFG (targets of edges from blocks they dominate)."""
    idom = dominators(g)
    return {s for b in g.rpo for s in g.succs[b] if s in idom and dominated(idom, b, s)}


def only_counted_loops(fn: Function) -> bool:
    """Whether every loop of `fn` is a counted loop (the reverse sweep replays those without
    the path on the tape; other loops cost an id per iteration)."""
    g = cfg(fn)
    return loop_headers(g) <= {lp.header for lp in counted_loops(fn, g)}


def latch_exit(fn: Function, lp: CountedLoop) -> tuple[str, Value, int] | None:
    """The exit edge block by which `lp`'s latch leaves when `iv + step == bound + past`
    (the latch tests `iv + step == bound`, past 0, or `iv == bound`, past the step), the
    bound and past (None when the latch does not test its counter that way)."""
    term = fn.block(lp.latch).terminator
    test = term.operands[0] if term.opcode == "br" and len(term.labels) == 2 else None
    if not (isinstance(test, Instruction) and test.opcode == "icmp" and test.pred in ("eq", "ne")):
        return None
    c = lp.counter
    step = dict(zip(c.phi.labels, c.phi.operands, strict=True))[lp.latch]
    leave = term.labels[0 if test.pred == "eq" else 1]
    for counted, past in ((step, 0), (c.phi, c.step)):
        a, b = test.operands
        bound = b if a is counted else a if b is counted else None
        if bound is not None and leave not in lp.blocks:
            return leave, bound, past
    return None
