"""Which memory a function never writes: the reverse sweep of combined mode may load such
memory again instead of saving the loaded values on the tape.

Conservative: a function qualifies when everything it writes (stores, memory intrinsics,
library calls that write, and the same in the functions it calls) is memory it allocated
itself (or its return slot); then every load from memory reached through its arguments
reads in the reverse sweep what it read in the forward sweep."""

from __future__ import annotations

from collections.abc import Iterable

from .. import rules
from ..ir import Argument, Function, Instruction, Module, Value
from ..rules.memory import ALLOCATORS, DATA_POINTER, REFCOUNT
from .loops import CountedLoop

_MEMORY_INTRINSICS = ("llvm.memset", "llvm.memcpy", "llvm.memmove")
_ADDRESS = ("getelementptr", "bitcast", "addrspacecast", "phi", "select")


def _roots(v: Value) -> list[Value]:
    """The values pointer `v` is computed from, through GEPs, casts, phis and selects."""
    out, todo, seen = [], [v], {id(v)}
    while todo:
        p = todo.pop()
        if not (isinstance(p, Instruction) and p.opcode in _ADDRESS):
            out.append(p)
            continue
        for q in {"select": p.operands[1:], "phi": p.operands}.get(p.opcode, p.operands[:1]):
            if id(q) not in seen:
                seen.add(id(q))
                todo.append(q)
    return out


def _noalias(v: Value) -> bool:
    return isinstance(v, Argument) and "noalias" in v.attrs.split()


def _allocation(r: Value) -> Value | None:
    """The allocation a root pointer addresses: an alloca, a runtime allocation (also through
    the data pointer read from it) or a `noalias` argument; None when unknown."""
    if _noalias(r) or isinstance(r, Instruction) and (
            r.opcode == "alloca" or r.opcode == "call" and r.callee_name in ALLOCATORS):
        return r
    if isinstance(r, Instruction) and (r.opcode == "load" or r.opcode == "call"
                                       and r.callee_name in DATA_POINTER):  # fmt: skip
        owners = _roots(r.operands[0])
        if len(owners) == 1 and isinstance(owners[0], Instruction) and owners[0].opcode == "call" \
                and owners[0].callee_name in ALLOCATORS:
            return owners[0]
    return None


def _local(v: Value) -> bool:
    """Whether pointer `v` addresses memory allocated by the function (stack or runtime) or
    a `noalias` argument (a return slot): memory no other argument reaches."""
    return all(_allocation(r) is not None for r in _roots(v))


def may_alias(a: Value, b: Value) -> bool:
    """Whether pointers `a` and `b` may address the same memory: not when they come from
    distinct allocations of the function, or one from such an allocation and the other from
    an argument (memory that existed before the call)."""
    for ra in _roots(a):
        for rb in _roots(b):
            ia, ib = _allocation(ra), _allocation(rb)
            if ia is not None and (ib is not None and ib is not ia or isinstance(rb, Argument)):
                continue
            if ib is not None and isinstance(ra, Argument):
                continue
            return True
    return False


def written(inst: Instruction, module: Module, seen: set[str] | None = None
            ) -> list[Value] | None:  # fmt: skip
    """Pointers to the memory `inst` may write ([] for none); None when unknown."""
    op = inst.opcode
    if op == "store":
        return [inst.operands[1]]
    if op != "call":
        return []
    name = inst.callee_name
    callee = module.get(name)
    if isinstance(callee, Function) and not callee.is_declaration:
        return [] if writes_only_local(module, callee, seen) else None
    if name.startswith(_MEMORY_INTRINSICS):
        return [inst.operands[0]]
    if name in rules.WRITES:
        return [inst.operands[rules.WRITES[name][0]]]
    if name in REFCOUNT | ALLOCATORS | DATA_POINTER or name.startswith("llvm."):
        return []
    rule = rules.lookup(inst)
    if rule is not None and rule.kind != "custom":  # math: reads its arguments only
        return []
    return [o for o in inst.operands if o.type.is_ptr]


def _writes_outside(inst: Instruction, module: Module, seen: set[str]) -> bool:
    out = written(inst, module, seen)
    return out is None or not all(_local(p) for p in out)


def writes_only_local(module: Module, fn: Function, seen: set[str] | None = None) -> bool:
    """Whether `fn` (and every function it calls) writes only memory it allocated."""
    seen = seen if seen is not None else set()
    if fn.name in seen:
        return True
    seen.add(fn.name)
    return not any(_writes_outside(i, module, seen) for i in fn.instructions())


def _argument_memory(v: Value) -> bool:
    """Whether pointer `v` addresses memory reached through (non-`noalias`) arguments only."""
    return all(isinstance(r, Argument) and not _noalias(r) for r in _roots(v))


def reloadable_loads(module: Module, fn: Function) -> set[Instruction]:
    """The float loads of `fn` whose memory holds, after `fn` returned, what they read."""
    if not writes_only_local(module, fn):
        return set()
    return {i for i in fn.instructions() if i.opcode == "load" and i.type.is_float
            and _argument_memory(i.operands[0])}  # fmt: skip


def _users(fn: Function) -> dict[int, list[Instruction]]:
    users: dict[int, list[Instruction]] = {}
    for inst in fn.instructions():
        for o in inst.operands:
            users.setdefault(id(o), []).append(inst)
    return users


def write_only(fn: Function, arg: Argument) -> bool:
    """Whether `fn` only stores through pointer `arg` (and addresses derived from it): no
    load, no call and no copy of the pointer reads that memory or lets it escape."""
    users, todo, seen = _users(fn), [arg], {id(arg)}
    while todo:
        v = todo.pop()
        for u in users.get(id(v), ()):
            if u.opcode == "store" and u.operands[1] is v and u.operands[0] is not v:
                continue  # a store into the memory
            if u.opcode not in _ADDRESS:
                return False  # a load, a call, a copy of the pointer
            if id(u) not in seen:
                seen.add(id(u))
                todo.append(u)
    return True


def store_base(inst: Instruction) -> Value:
    """The root of a store's address (through address computations with one pointer)."""
    v = inst.operands[1]
    while isinstance(v, Instruction) and v.opcode in ("getelementptr", "bitcast",
                                                       "addrspacecast"):
        v = v.operands[0]
    return v


_ADDRESS_ARITHMETIC = frozenset({"getelementptr", "bitcast", "addrspacecast", "add", "sub",
                                 "mul", "shl", "sext", "zext", "trunc"})


def _outside(v: Value, blocks: frozenset[str], depth: int = 0) -> bool:
    """Whether `v` has one value during a whole execution of the loop made of `blocks`:
    defined outside it, or address arithmetic of such values."""
    if not isinstance(v, Instruction) or v.block is None or v.block.name not in blocks:
        return True
    return depth < 8 and v.opcode in _ADDRESS_ARITHMETIC and all(
        _outside(o, blocks, depth + 1) for o in v.operands)


def invariant_loads(module: Module, fn: Function, loops: Iterable[CountedLoop]
                    ) -> dict[Instruction, CountedLoop]:  # fmt: skip
    """Float loads that read one value during a whole execution of a loop: the address is
    the same in every iteration and nothing in the loop may write there. Each is mapped to
    the outermost such loop."""
    loads = [i for i in fn.instructions() if i.opcode == "load" and i.type.is_float]
    out: dict[Instruction, CountedLoop] = {}
    for lp in sorted(loops, key=lambda lp: -len(lp.blocks)):
        inside = [ld for ld in loads if ld not in out and ld.block.name in lp.blocks
                  and _outside(ld.operands[0], lp.blocks)]  # fmt: skip
        if not inside:
            continue
        writes: list[Value] = []
        for inst in fn.instructions():
            if inst.block.name in lp.blocks:
                w = written(inst, module)
                if w is None:
                    break
                writes += w
        else:
            for ld in inside:
                if not any(may_alias(w, ld.operands[0]) for w in writes):
                    out[ld] = lp
    return out
