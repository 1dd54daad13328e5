"""Which memory a function never writes: the reverse sweep of combined mode may load such
memory again instead of saving the loaded values on the tape.

Conservative: a function qualifies when everything it writes (stores, memory intrinsics,
library calls that write, and the same in the functions it calls) is memory it allocated
itself (or its return slot); then every load from memory reached through its arguments
reads in the reverse sweep what it read in the forward sweep."""

from __future__ import annotations

from .. import rules
from ..ir import Argument, Function, Instruction, Module, Value
from ..rules.memory import ALLOCATORS, DATA_POINTER, REFCOUNT

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


def _local(v: Value) -> bool:
    """Whether pointer `v` addresses memory allocated by the function (stack or runtime) or
    a `noalias` argument (a return slot): memory no other argument reaches."""
    for r in _roots(v):
        if _noalias(r) or isinstance(r, Instruction) and (
                r.opcode == "alloca" or r.opcode == "call" and r.callee_name in ALLOCATORS):
            continue
        # the data pointer of a runtime allocation: returned by the runtime, or a field
        if isinstance(r, Instruction) and (r.opcode == "load" or r.opcode == "call"
                                           and r.callee_name in DATA_POINTER):  # fmt: skip
            if _local(r.operands[0]):
                continue
        return False
    return True


def _writes_outside(inst: Instruction, module: Module, seen: set[str]) -> bool:
    op = inst.opcode
    if op == "store":
        return not _local(inst.operands[1])
    if op != "call":
        return False
    name = inst.callee_name
    callee = module.get(name)
    if isinstance(callee, Function) and not callee.is_declaration:
        return not writes_only_local(module, callee, seen)
    if name.startswith(_MEMORY_INTRINSICS):
        return not _local(inst.operands[0])
    if name in rules.WRITES:
        return not _local(inst.operands[rules.WRITES[name][0]])
    if name in REFCOUNT | ALLOCATORS | DATA_POINTER or name.startswith("llvm."):
        return False
    rule = rules.lookup(inst)
    if rule is not None and rule.kind != "custom":  # math: reads its arguments only
        return False
    return any(o.type.is_ptr and not _local(o) for o in inst.operands)


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
