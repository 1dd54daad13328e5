"""Loads a parallel call's chunk owns: cells no other concurrently running chunk loads.

A chunk declares its part `[lo, hi]` of a partition of the iteration space with
`enzpy.partition(row, 2)` (`rules.parallel`); a loop counting up by 1 from `lo` then visits
indices `i` no other chunk visits. A float load from `B + i` (a GEP of one index over the
loaded type) owns its cell when

- `B` is the same in every chunk: computed from parameters other than the chunk index
  (the index multiplied by a parameter the call passes 0 is 0), and from no load;
- every other access of `B`'s memory in the chunk is a load from `B + i` too (one `B`, one
  `i`): no other iteration, so no other chunk, reads the cell; and every other float load,
  or call given a pointer, reads memory apart from `B`'s: memory the chunk allocates, or a
  parameter the call passes apart from every other operand (`Launch.apart`, or `B`'s is).

Stores need no such care: the front end promises that memory one chunk writes no other
chunk touches. Used by the reverse sweep to add the adjoints of owned loads without
atomics; knows nothing of derivatives.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..ir import I64, Argument, Constant, Function, Instruction, Value
from ..rules import lookup
from ..rules.parallel import PARTITION
from .loops import counted_loops
from .pointers import allocation, roots

_INTEGER = ("getelementptr", "add", "sub", "mul", "shl", "sext", "zext", "trunc")


def owned_loads(
    fn: Function, constants: Mapping[int, int], apart: frozenset[int]
) -> frozenset[Instruction]:
    """The float loads of the chunk `fn` whose cells no other chunk loads (see the module's
    docstring); `constants`: integer constants the call passes to parameters (by index),
    `apart`: parameters the call passes memory no other operand reaches."""
    counters = _counters(fn, constants)
    if not counters:
        return frozenset()
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
                return frozenset()  # (a pointer loaded or returned: may reach anything)
            params = {r.index for r in rs if isinstance(r, Argument)}
            if inst.opcode == "load" and len(rs) == 1 and params:
                by_root.setdefault(params.pop(), []).append(inst)
            else:
                others.append(p)
    owned: set[Instruction] = set()
    for param, loads in by_root.items():
        forms = {_form(ld, counters, constants) for ld in loads}
        if len(forms) != 1 or None in forms:
            continue
        if all(_apart(param, q, apart) for q in by_root if q != param) and all(
            _apart(param, r.index, apart)
            for p in others
            for r in roots(p)
            if isinstance(r, Argument)
        ):
            owned.update(loads)
    return frozenset(owned)


def _counters(fn: Function, constants: Mapping[int, int]) -> set[Instruction]:
    """The induction variables counting up by 1 from the `lo` a partition row declares."""
    rows = [
        i.operands[0]
        for i in fn.instructions()
        if i.callee_name == PARTITION and _constant(i.operands[1], constants) == 2
    ]
    if len(rows) != 1:
        return set()
    return {
        ind.phi
        for loop in counted_loops(fn)
        for ind in loop.inductions
        if ind.step == 1
        and isinstance(ind.start, Instruction)
        and ind.start.opcode == "load"
        and ind.start.type == I64
        and ind.start.operands[0] is rows[0]
    }


def _form(load: Instruction, counters: set[Instruction], constants: Mapping[int, int]):
    """(B, i) for a load from `getelementptr T, B, i` (T the loaded type, i a counter,
    B the same in every chunk), else None."""
    p = load.operands[0]
    if not (
        isinstance(p, Instruction)
        and p.opcode == "getelementptr"
        and len(p.operands) == 2
        and p.aux_type == load.type
        and p.operands[1] in counters
        and _invariant(p.operands[0], constants)
    ):
        return None
    return (p.operands[0], p.operands[1])


def _invariant(v: Value, constants: Mapping[int, int], depth: int = 0) -> bool:
    """Whether `v` is the same in every chunk: constants and parameters other than the chunk
    index (parameter 0), integer arithmetic of those; the index times 0."""
    if isinstance(v, Constant):
        return True
    if isinstance(v, Argument):
        return v.index != 0
    if not isinstance(v, Instruction) or v.opcode not in _INTEGER or depth > 8:
        return False
    if v.opcode == "mul" and any(_constant(o, constants) == 0 for o in v.operands):
        return True
    return all(_invariant(o, constants, depth + 1) for o in v.operands)


def integer(v: Value | None) -> int | None:
    """The integer constant `v` is, if it is one."""
    if isinstance(v, Constant) and v.type.is_int and v.text.lstrip("-").isdigit():
        return int(v.text)
    return None


def _constant(v: Value, constants: Mapping[int, int]) -> int | None:
    """The integer `v` is: a constant, or a parameter the call passes one."""
    if isinstance(v, Argument):
        return constants.get(v.index)
    return integer(v)


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
