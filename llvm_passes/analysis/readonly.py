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


def _pointer_operands(v: Instruction) -> list[Value]:
    """The operands an address computation takes its pointer from."""
    return {"select": v.operands[1:], "phi": v.operands}.get(v.opcode, v.operands[:1])


def _local(v: Value, seen: set[int] | None = None) -> bool:
    """Whether pointer `v` addresses memory allocated by the function (stack or runtime) or
    a `noalias` argument (a return slot): memory no other argument reaches."""
    seen = seen if seen is not None else set()
    if id(v) in seen:
        return True
    seen.add(id(v))
    if isinstance(v, Argument):
        return "noalias" in v.attrs.split()
    if not isinstance(v, Instruction):
        return False
    if v.opcode == "alloca":
        return True
    if v.opcode == "call":
        name = v.callee_name
        return name in ALLOCATORS or name in DATA_POINTER and _local(v.operands[0], seen)
    if v.opcode == "load":  # a field of a runtime allocation (its data pointer)
        return _local(v.operands[0], seen)
    if v.opcode in _ADDRESS:
        return all(_local(p, seen) for p in _pointer_operands(v))
    return False


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


def _argument_memory(v: Value, seen: set[int] | None = None) -> bool:
    """Whether pointer `v` addresses memory reached through (non-`noalias`) arguments only."""
    seen = seen if seen is not None else set()
    if id(v) in seen:
        return True
    seen.add(id(v))
    if isinstance(v, Argument):
        return "noalias" not in v.attrs.split()
    if isinstance(v, Instruction) and v.opcode in _ADDRESS:
        return all(_argument_memory(p, seen) for p in _pointer_operands(v))
    return False


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
                continue
            if u.opcode not in _ADDRESS or id(u) in seen:
                if u.opcode in _ADDRESS:
                    continue
                return False
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
