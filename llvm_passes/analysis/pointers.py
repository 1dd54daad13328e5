"""Where pointers point: the roots a pointer is computed from (arguments, allocations,
pointers loaded or returned by calls), the allocation behind a root, a key naming the
memory a root addresses, and the arrays a loop rotates. Used by the analyses of memory;
knows nothing of derivatives."""

from __future__ import annotations

from ..ir import Argument, Instruction, Value
from ..rules import effects

ADDRESS = ("getelementptr", "bitcast", "addrspacecast", "phi", "select")


def roots(v: Value) -> list[Value]:
    """The values pointer `v` is computed from, through GEPs, casts, phis and selects."""
    out, todo, seen = [], [v], {id(v)}
    while todo:
        p = todo.pop()
        if not (isinstance(p, Instruction) and p.opcode in ADDRESS):
            out.append(p)
            continue
        for q in {"select": p.operands[1:], "phi": p.operands}.get(p.opcode, p.operands[:1]):
            if id(q) not in seen:
                seen.add(id(q))
                todo.append(q)
    return out


def noalias(v: Value) -> bool:
    return isinstance(v, Argument) and "noalias" in v.attrs.split()


def allocates(v: Value) -> bool:
    """Whether `v` is a call returning new memory (its rule says so)."""
    fx = effects(v) if isinstance(v, Instruction) and v.opcode == "call" else None
    return fx is not None and fx.allocates is not None


def allocation(r: Value) -> Value | None:
    """The allocation a root pointer addresses: an alloca, a runtime allocation (also through
    the data pointer read from it) or a `noalias` argument; None when unknown."""
    if noalias(r) or isinstance(r, Instruction) and (r.opcode == "alloca" or allocates(r)):
        return r
    fx = effects(r) if isinstance(r, Instruction) and r.opcode == "call" else None
    if isinstance(r, Instruction) and (r.opcode == "load" or fx is not None and fx.data_of == 0):
        owners = roots(r.operands[0])
        if len(owners) == 1 and allocates(owners[0]):
            return owners[0]
    return None


def owner(p: Value) -> Value | None:
    """The allocation or argument pointer `p` points into, if it is one."""
    found = roots(p)
    if len(found) != 1:
        return None
    return found[0] if isinstance(found[0], Argument) else allocation(found[0])


def rotation(v: Value) -> tuple[frozenset[Instruction], frozenset[Value]] | None:
    """If `v` is one of a loop header's phis that rotate distinct allocations (`prev, cur,
    nxt = cur, nxt, prev`: each phi takes another's value from the latch and an allocation
    of its own from the preheader), those phis and their allocations: in every iteration
    the phis point into different allocations."""
    members: list[Instruction] = []
    p: Value = v
    while p not in members:
        if not (
            isinstance(p, Instruction)
            and p.opcode == "phi"
            and isinstance(v, Instruction)
            and p.block is v.block
            and len(p.operands) == 2
        ):
            return None
        members.append(p)
        inside = [o for o in p.operands if isinstance(o, Instruction) and o.block is p.block]
        if len(inside) != 1:
            return None
        p = inside[0]
    if p is not v:
        return None
    starts = [o for m in members for o in m.operands if o not in members]
    found = [roots(o) for o in starts]
    allocations = [allocation(r[0]) if len(r) == 1 else None for r in found]
    if None in allocations or len(set(map(id, allocations))) != len(members):
        return None
    return frozenset(members), frozenset(a for a in allocations if a is not None)


def owner_or_rotation(p: Value) -> Value | None:
    """`owner(p)`, else the rotating phi (`rotation`) `p` is an address into, if any."""
    found = owner(p)
    while found is None and isinstance(p, Instruction) and p.opcode == "getelementptr":
        p = p.operands[0]
    return found if found is not None or rotation(p) is None else p


def apart(memory: Value, other: Value | None, distinct: frozenset[int]) -> bool:
    """Whether memory `other` is known not to overlap `memory` (each an argument, an
    allocation or a rotating phi, `owner_or_rotation`; arguments by the caller's check that
    those in `distinct` are apart)."""
    if other is memory or other is None:
        return False
    turns = [r for r in (rotation(memory), rotation(other)) if r is not None]
    if len(turns) == 2:  # phis of one rotation
        return turns[0][0] == turns[1][0]
    if turns:  # a rotating phi, and memory apart from all it rotates
        return not ({memory, other} & turns[0][1])
    if isinstance(memory, Argument) and isinstance(other, Argument):
        return {memory.index, other.index} <= distinct
    return True


def memory_key(r: Value) -> Value:
    """What memory a root pointer addresses, for matching accesses: a runtime allocation's
    data (whichever of its data pointers is used), else the root itself."""
    a = allocation(r)
    return a if isinstance(a, Instruction) and a is not r and a.opcode == "call" else r
