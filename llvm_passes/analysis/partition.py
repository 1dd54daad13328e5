"""Loads a parallel call's chunk owns: cells no other concurrently running chunk loads.

A chunk declares its part `[lo, hi]` of a partition of the iteration space with
`enzpy.partition(row, 2, first)` (`rules.parallel`): a loop counting up by 1 from `lo`
visits indices `i` in `[lo, hi]`, which no other chunk visits, and every chunk's part
starts at or above `first`. The float loads from one base `B` form a family when

- `B` is the same in every chunk: computed from parameters other than the chunk index
  (the index multiplied by a parameter the call passes 0 is 0), and from no load;
- each loads `B + (i + c)` cells of its type (one counter `i`, a constant `c`, plus
  wraparound terms: selects between 0 and another value by a comparison of `i` with a
  constant, 0 for every `i` at or above some `start`, as Numba makes `x[i - 1]`), and every
  other access of `B`'s memory in the chunk is one of them;
- every other float load, and call given a pointer, reads memory apart from `B`'s: memory
  the chunk allocates, or a parameter the call passes apart from every other operand
  (`Launch.apart`, or `B`'s is).

Every chunk runs the same loads, so when no wraparound term is taken the cell `i + c` is
loaded by the iterations `i + c - c'` (`c'` ranging over the family's offsets) and nothing
else: a load owns its cell when they all lie in `[lo, hi]`. With one offset and no
wraparound that holds at every iteration (the load is owned); otherwise it is a test at
run time (`Border`). Stores need no such care: the front end promises that memory one chunk
writes no other chunk touches. Used by the reverse sweep to add the adjoints of owned loads
without atomics; knows nothing of derivatives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..ir import I64, Argument, Constant, Function, Instruction, Value
from ..ir.types import size_in_bytes
from ..rules import lookup
from ..rules.parallel import PARTITION
from .affine import address, constant, integer
from .loops import counted_loops
from .pointers import allocation, roots

_INTEGER = ("getelementptr", "add", "sub", "mul", "shl", "sext", "zext", "trunc")


@dataclass(frozen=True)
class Border:
    """A load owning its cell at iterations `i` with `lo <= i + below` and `i + above <= hi`,
    when `first` (the lowest start of any chunk's part) is at least `start` (None: always)."""

    counter: Instruction
    lo: Value
    hi: Value
    first: Value
    below: int
    above: int
    start: int | None

    @property
    def reads(self) -> tuple[Value, ...]:
        """The values the test reads."""
        return (self.counter, self.lo, self.hi, self.first)


@dataclass(frozen=True)
class _Row:
    """A chunk's declared part: its counters (phi -> `lo`), `hi` if the chunk loads it, and
    `first`."""

    counters: Mapping[Instruction, Value]
    hi: Value | None
    first: Value


@dataclass(frozen=True)
class _Access:
    """A load of the cell `base + (counter + at)` (cells of `size` bytes), for counters at
    or above `start` (its wraparound terms then 0)."""

    base: Value
    counter: Instruction
    at: int
    size: int
    start: int | None


def owned_loads(
    fn: Function, constants: Mapping[int, int], apart: frozenset[int]
) -> dict[Instruction, Border | None]:
    """The float loads of the chunk `fn` that own their cells (see the module's docstring):
    None for a load owning its cell at every iteration, else the `Border` test; `constants`:
    integer constants the call passes to parameters (by index), `apart`: parameters the call
    passes memory no other operand reaches."""
    row = _row(fn, constants)
    if row is None or not row.counters:
        return {}
    blocks = {id(b) for b in fn.blocks}
    by_root: dict[int, list[Instruction]] = {}  # parameter -> the float loads from it
    others: list[Value] = []  # pointers of other float loads and of calls
    for inst in fn.instructions():
        if inst.opcode == "load" and inst.type.is_float:
            pointers = [inst.operands[0]]
        elif inst.opcode == "call" and not _without_derivative(inst):
            pointers = [o for o in inst.operands if o.type.is_ptr]
        else:
            continue
        for p in pointers:
            rs = roots(p)
            if any(not _known(r, blocks) for r in rs):
                return {}  # (a pointer loaded or returned: may reach anything)
            params = {r.index for r in rs if isinstance(r, Argument)}
            if inst.opcode == "load" and len(rs) == 1 and params:
                by_root.setdefault(params.pop(), []).append(inst)
            else:
                others.append(p)
    owned: dict[Instruction, Border | None] = {}
    for param, loads in by_root.items():
        if any(not _apart(param, q, apart) for q in by_root if q != param) or any(
            not _apart(param, r.index, apart)
            for p in others
            for r in roots(p)
            if isinstance(r, Argument)
        ):
            continue
        owned.update(_family(loads, row, constants))
    return owned


def _family(
    loads: list[Instruction], row: _Row, constants: Mapping[int, int]
) -> dict[Instruction, Border | None]:
    """The ownership of the loads from one parameter's memory (none if they are no family)."""
    accesses = [_access(ld, row, constants) for ld in loads]
    if any(a is None for a in accesses):
        return {}
    family = [a for a in accesses if a is not None]
    if len({(id(a.base), id(a.counter), a.size) for a in family}) != 1:
        return {}
    offsets = [a.at for a in family]
    starts = [a.start for a in family if a.start is not None]
    start = max(starts) if starts else None
    if start is None and min(offsets) == max(offsets):
        return dict.fromkeys(loads)
    if row.hi is None:
        return {}
    c = family[0].counter
    lo = row.counters[c]
    return {
        ld: Border(c, lo, row.hi, row.first, a.at - max(offsets), a.at - min(offsets), start)
        for ld, a in zip(loads, family, strict=True)
    }


def _row(fn: Function, constants: Mapping[int, int]) -> _Row | None:
    """The chunk's declared 1-D part: the induction variables counting up by 1 from its
    `lo`, its `hi` (a load of the row's second entry), its `first`."""
    marks = [i for i in fn.instructions() if i.callee_name == PARTITION]
    if len(marks) != 1 or constant(marks[0].operands[1], constants) != 2:
        return None
    row, _, first = marks[0].operands
    counters = {
        ind.phi: ind.start
        for loop in counted_loops(fn)
        for ind in loop.inductions
        if ind.step == 1
        and isinstance(ind.start, Instruction)
        and ind.start.opcode == "load"
        and ind.start.type == I64
        and ind.start.operands[0] is row
    }
    his = [
        i
        for i in fn.instructions()
        if i.opcode == "load"
        and i.type == I64
        and (p := i.operands[0]) is not row
        and isinstance(p, Instruction)
        and p.opcode == "getelementptr"
        and p.operands[0] is row
        and len(p.operands) == 2
        and p.aux_type is not None
        and (k := integer(p.operands[1])) is not None
        and k * size_in_bytes(p.aux_type) == 8
    ]
    return _Row(counters, his[0] if his else None, first)


def _access(load: Instruction, row: _Row, constants: Mapping[int, int]) -> _Access | None:
    """The cell `load` reads as an `_Access`, if it is one."""
    size = size_in_bytes(load.type)
    p, offset = address(load.operands[0], row.counters, constants)
    if (
        offset.counter is None
        or offset.coef != size
        or offset.const % size
        or not _invariant(p, constants)
    ):
        return None
    return _Access(p, offset.counter, offset.const // size, size, offset.start)


def _invariant(v: Value, constants: Mapping[int, int], depth: int = 0) -> bool:
    """Whether `v` is the same in every chunk: constants and parameters other than the chunk
    index (parameter 0), integer arithmetic of those; the index times 0."""
    if isinstance(v, Constant):
        return True
    if isinstance(v, Argument):
        return v.index != 0
    if not isinstance(v, Instruction) or v.opcode not in _INTEGER or depth > 8:
        return False
    if v.opcode == "mul" and any(constant(o, constants) == 0 for o in v.operands):
        return True
    return all(_invariant(o, constants, depth + 1) for o in v.operands)


def _known(r: Value, blocks: set[int]) -> bool:
    """A root whose memory is known: a parameter, or memory allocated in the chunk (whose
    blocks are `blocks`)."""
    if isinstance(r, Argument):
        return True
    a = allocation(r)
    return isinstance(a, Instruction) and id(a.block) in blocks


def _without_derivative(call: Instruction) -> bool:
    """A call whose rule gives no derivative (it adds no adjoint into memory)."""
    rule = lookup(call)
    return rule is not None and rule.kind == "zero"


def _apart(p: int, q: int, apart: frozenset[int]) -> bool:
    return p != q and (p in apart or q in apart)
