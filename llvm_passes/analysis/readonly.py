"""What memory may be written, and where: which pointers may alias (allocations of the
function have identities; arguments may overlap unless the caller says they do not), what
an instruction may write, which loads read memory nothing writes after them (the reverse
sweep of combined mode loads them again instead of saving them on the tape), and which
loads read one value during a whole loop (saved once per execution of the loop).

Conservative: a write through a pointer of unknown origin may alias anything, a call that
writes unknown memory blocks every conclusion."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from .. import rules
from ..ir import Argument, Constant, Function, Instruction, Module, Type, Value
from .cfg import cfg, reachable
from .loops import CountedLoop
from .memtypes import MemoryFacts
from .pointers import ADDRESS, allocation, memory_key, noalias, roots

# address computations from one pointer operand (no phi or select)
_CARRIES = tuple(op for op in ADDRESS if op not in ("phi", "select"))


def _local(v: Value) -> bool:
    """Whether pointer `v` addresses memory allocated by the function (stack or runtime) or
    a `noalias` argument (a return slot): memory no other argument reaches."""
    return all(allocation(r) is not None for r in roots(v))


def _roots_may_alias(
    ras: list[Value],
    rbs: list[Value],
    distinct: frozenset[int],
    allocation: Callable[[Value], Value | None] = allocation,
) -> bool:
    """Whether pointers with these roots may address the same memory: not when they come
    from distinct allocations of the function, or one from such an allocation and the other
    from an argument (memory that existed before the call), or from two arguments whose
    positions are in `distinct` (the caller checked that their memory does not overlap)."""
    for ra in ras:
        for rb in rbs:
            ia, ib = allocation(ra), allocation(rb)
            if ia is not None and (ib is not None and ib is not ia or isinstance(rb, Argument)):
                continue
            if ib is not None and isinstance(ra, Argument):
                continue
            if (
                isinstance(ra, Argument)
                and isinstance(rb, Argument)
                and ra is not rb
                and ra.index in distinct
                and rb.index in distinct
            ):
                continue
            return True
    return False


def written(inst: Instruction, module: Module, seen: set[str] | None = None) -> list[Value] | None:
    """Pointers to the memory `inst` may write ([] for none); None when unknown."""
    op = inst.opcode
    if op == "store":
        return [inst.operands[1]]
    if op in ("atomicrmw", "cmpxchg"):
        return [inst.operands[0]] if inst.operands and inst.operands[0].type.is_ptr else None
    if op != "call":
        return []
    chunk = rules.parallel_chunk(inst)
    if chunk is not None:
        return _written_by_chunks(module, *chunk)
    name = inst.callee_name
    callee = module.get(name)
    if isinstance(callee, Function) and not callee.is_declaration:
        return [] if writes_only_local(module, callee, seen) else None
    fx = rules.effects(inst)
    if fx is not None:
        return [inst.operands[k] for k in fx.writes]
    if name.startswith("llvm."):
        return []
    return [o for o in inst.operands if o.type.is_ptr]


def _written_by_chunks(
    module: Module, name: str, operands: Sequence[Value | None]
) -> list[Value] | None:
    """The operands of a parallel call whose memory its chunks may write (None: unknown)."""
    chunk = module.get(name)
    writes = _writes(module, chunk) if chunk is not None and not chunk.is_declaration else None
    if writes is None:
        return None
    out: list[Value] = []
    for r in (r for rs in writes for r in rs):
        operand = operands[r.index] if isinstance(r, Argument) else None
        if operand is not None:
            out.append(operand)
        elif allocation(r) is None:  # (else memory the chunk allocated)
            return None
    return out


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


def _writes(
    module: Module, fn: Function, blocks: frozenset[str] | None = None
) -> list[list[Value]] | None:
    """The roots of every pointer written in `fn` (in `blocks` only, if given), a pointer
    loaded from a stack slot traced to the pointers stored there; None when something
    writes unknown memory."""
    return _writes_in(_writes_by_block(module, fn), blocks)


def _writes_by_block(module: Module, fn: Function) -> dict[str, list[list[Value]] | None]:
    """Per block of `fn`, what `_writes` finds there."""
    out: dict[str, list[list[Value]] | None] = {}
    slots = _stack_slots(module, fn)
    for block in fn.blocks:
        found: list[list[Value]] = []
        for inst in block.instructions:
            w = written(inst, module)
            if w is None:
                out[block.name] = None
                break
            found += [_stored_roots(p, slots) for p in w]
        else:
            out[block.name] = found
    return out


def _writes_in(
    by_block: dict[str, list[list[Value]] | None], blocks: frozenset[str] | None
) -> list[list[Value]] | None:
    """`_writes` of `blocks` (all if None) from `_writes_by_block`."""
    out: list[list[Value]] = []
    for name, found in by_block.items():
        if blocks is None or name in blocks:
            if found is None:
                return None
            out += found
    return out


def _stack_slots(module: Module, fn: Function) -> dict[int, list[Value]]:
    """The allocas of `fn` that only stores write, and nothing else keeps the address of:
    for each (by id), the pointers stored into it (where Numba keeps an array's data pointer
    in a struct whose address a runtime call takes)."""
    stored: dict[int, list[Value]] = {}
    opaque: set[int] = set()

    def slots(p: Value) -> list[Value]:
        return [r for r in roots(p) if _is(r, "alloca")]

    for inst in fn.instructions():
        if inst.opcode == "alloca":
            stored.setdefault(id(inst), [])
        elif inst.opcode == "store":
            value, address = inst.operands
            if value.type.is_ptr:
                opaque.update(id(a) for a in slots(value))  # (its address escapes)
                for a in slots(address):
                    stored.setdefault(id(a), []).append(value)
            elif not (value.type.is_int or value.type.is_float) or _pointer_bits(value):
                opaque.update(id(a) for a in slots(address))  # (a pointer it may hold)
        elif inst.opcode not in ("load", *ADDRESS):
            pointers = [o for o in inst.operands if o.type.is_ptr]
            if not pointers:
                continue
            w = written(inst, module) if inst.opcode == "call" else None
            writes = None if w is None else {id(a) for p in w for a in slots(p)}
            for a in (a for p in pointers for a in slots(p)):
                if writes is None or id(a) in writes or inst.opcode != "call":
                    opaque.add(id(a))
    return {k: v for k, v in stored.items() if k not in opaque}


def _stored_roots(p: Value, slots: dict[int, list[Value]]) -> list[Value]:
    """The roots of pointer `p`, a pointer loaded from stack slots (`_stack_slots`) replaced
    by the roots of the pointers stored there."""
    out, todo, seen = [], [p], {id(p)}
    while todo:
        for r in roots(todo.pop()):
            held = _slot_contents(r, slots)
            if held is None:
                out.append(r)
            for v in held or ():
                if id(v) not in seen:
                    seen.add(id(v))
                    todo.append(v)
    return out


def _slot_contents(r: Value, slots: dict[int, list[Value]]) -> list[Value] | None:
    """The pointers that load `r` may read from stack slots; None when `r` is no such load."""
    if not (isinstance(r, Instruction) and r.opcode == "load" and r.type.is_ptr):
        return None
    at = roots(r.operands[0])
    if not all(id(a) in slots for a in at):
        return None
    return [v for a in at for v in slots[id(a)]]


def _is(v: Value, opcode: str) -> bool:
    return isinstance(v, Instruction) and v.opcode == opcode


def _pointer_bits(v: Value) -> bool:
    """Whether integer `v` is a pointer's address."""
    return _is(v, "ptrtoint") or isinstance(v, Constant) and "ptrtoint" in v.text


def written_arguments(module: Module, fn: Function) -> frozenset[int] | None:
    """The parameters of `fn` whose memory it may write; None when unknown (something
    writes unknown memory, or a pointer neither a parameter nor memory `fn` allocated, one
    loaded from an array, say, which may address a parameter's memory)."""
    writes = _writes(module, fn)
    if writes is None:
        return None
    written = [r for rs in writes for r in rs]
    if not all(isinstance(r, Argument) or _local(r) for r in written):
        return None
    return frozenset(r.index for r in written if isinstance(r, Argument))


def allocations(ptr: Value) -> list[Instruction]:
    """The runtime allocation calls whose memory `ptr` may point into."""
    found = {
        id(a): a
        for a in map(allocation, roots(ptr))
        if isinstance(a, Instruction) and a.opcode == "call"
    }
    return list(found.values())


def _reloadable_memory(ptr: Value) -> bool:
    """Argument memory (not a return slot) or runtime allocations: memory that outlives the
    function's frame."""
    return all(
        isinstance(r, Argument)
        and not noalias(r)
        or isinstance(a := allocation(r), Instruction)
        and a.opcode == "call"
        for r in roots(ptr)
    )


def reloadable_loads(
    module: Module, fn: Function, distinct: frozenset[int] = frozenset()
) -> set[Instruction]:
    """The float and integer loads of `fn` whose memory nothing may write once they have
    read it (no write that may alias is reachable from them, in `fn` or its callees): when
    `fn` returns, that memory holds what they read — unless it was freed (a runtime
    allocation of `fn`). `distinct`: positions of arguments whose memory does not overlap."""
    loads = [
        (inst, inst.operands[0])
        for inst in fn.instructions()
        if inst.opcode == "load"
        and (inst.type.is_float or inst.type.is_int)
        and _reloadable_memory(inst.operands[0])
    ]
    return {inst for inst, _ in unchanged_after(module, fn, loads, distinct)}


def unchanged_after(
    module: Module,
    fn: Function,
    accesses: Iterable[tuple[Instruction, Value]],
    distinct: frozenset[int] = frozenset(),
) -> set[tuple[Instruction, Value]]:
    """The (instruction, pointer) pairs of `accesses` whose memory nothing may write from the
    instruction on (no write that may alias is reachable, the instruction's own included,
    in `fn` or its callees). `distinct` as in `reloadable_loads`.

    Memory allocated in a loop is new at each iteration: once its allocation has run again,
    a write into the new object (through a pointer derived from the allocation's result
    without a phi or select) does not change what the access read."""
    g = cfg(fn)
    writes: dict[str, list[tuple[int, list[Value] | None, Value | None]]] = {}
    position: dict[int, tuple[str, int]] = {}
    for block in fn.blocks:
        for k, inst in enumerate(block.instructions):
            position[id(inst)] = (block.name, k)
            w = written(inst, module)
            for p in [None] if w is None else w:
                writes.setdefault(block.name, []).append((k, None if p is None else roots(p), p))
    later: dict[str, set[str]] = {}
    before: dict[tuple[str, str], set[str]] = {}  # (block, allocation's) -> reached first
    changed_later: dict[tuple, bool] = {}  # (block, roots) -> a later block may write there

    allocations: dict[Value, Value | None] = {}

    def allocated(r: Value) -> Value | None:
        if r not in allocations:
            allocations[r] = allocation(r)
        return allocations[r]

    def may_write(ws: Iterable[tuple], rs: list[Value]) -> bool:
        return any(w is None or _roots_may_alias(w, rs, distinct, allocated) for _, w, _ in ws)

    out = set()
    for inst, ptr in accesses:
        name, k = position[id(inst)]
        rs = roots(ptr)
        key = (name, *map(id, rs))
        if key not in changed_later:  # (the same for every access of the block to rs)
            if name not in later:
                later[name] = reachable(g, g.succs[name])
            renewed = []  # per allocation running again: (it, its block, index, blocks before)
            for alloc, (ab, ka) in _allocated_again(rs, position, later[name]):
                if (name, ab) not in before:
                    before[name, ab] = reachable(g, g.succs[name], {ab})
                renewed.append((alloc, ab, ka, before[name, ab]))
            changed_later[key] = may_write(
                (w for b in later[name] for w in writes.get(b, ()) if not _into_new(b, w, renewed)),
                rs,
            )
        if not changed_later[key] and not may_write(
            (w for w in writes.get(name, ()) if w[0] >= k), rs
        ):
            out.add((inst, ptr))
    return out


def _into_new(b: str, w: tuple, renewed: list) -> bool:
    """Whether write `w` of block `b` is into an object allocated after the access: one of
    the allocations `renewed` ran again first (every path from the access to `b` passes
    it), and `w` writes through its result (no phi or select, which may carry the old one)."""
    return any(
        b not in first and (b != ab or w[0] > ka) and w[2] is not None and _fresh(w[2], alloc)
        for alloc, ab, ka, first in renewed
    )


def _allocated_again(
    rs: list[Value], position: dict[int, tuple[str, int]], later: set[str]
) -> list[tuple[Instruction, tuple[str, int]]]:
    """The runtime allocations `rs` address and their positions, when each of them runs
    again after the access (in a block of `later`); none otherwise."""
    found = {id(a): a for a in map(allocation, rs)}.values()
    if not all(
        isinstance(a, Instruction) and a.opcode == "call" and position[id(a)][0] in later
        for a in found
    ):
        return []
    return [(a, position[id(a)]) for a in found]  # type: ignore[misc]


def _fresh(p: Value, alloc: Instruction) -> bool:
    """Whether pointer `p` points into the object `alloc` returned last: derived from its
    result through GEPs, casts and the object's data pointer, no phi or select (which may
    carry an earlier object)."""
    data = True  # `p` may still be derived from the data pointer
    while p is not alloc:
        if not isinstance(p, Instruction):
            return False
        fx = rules.effects(p) if p.opcode == "call" else None
        if p.opcode in _CARRIES:
            p = p.operands[0]
        elif data and (p.opcode == "load" or fx is not None and fx.data_of == 0):
            p, data = p.operands[0], False
        else:
            return False
    return True


def argument_memory(ptr: Value) -> bool:
    """Whether `ptr` addresses memory of the caller's arguments (not a return slot)."""
    return all(isinstance(r, Argument) and not noalias(r) for r in roots(ptr))


def element_type(
    module: Module,
    fn: Function,
    ptrs: Sequence[Value],
    facts: MemoryFacts | None = None,
    depth: int = 0,
) -> Type | None:
    """The one float type of the memory of `ptrs`: what the loads and stores of `fn` (and of
    the functions it passes that memory to) that reach it read or write, and what `facts`
    say of `fn`'s pointer arguments among its roots; None when nothing tells, or when
    several types do."""
    facts = facts or {}
    keys = {id(memory_key(r)) for p in ptrs for r in roots(p)}
    found: set[Type | None] = set()
    for r in (r for p in ptrs for r in roots(p)):
        if isinstance(r, Argument):
            found.update(t for _, t in facts.get(fn.name, {}).get(r.index, ()))
    for i in fn.instructions():
        if i.opcode in ("load", "store"):
            addr, ty = (
                (i.operands[0], i.type)
                if i.opcode == "load"
                else (i.operands[1], i.operands[0].type)
            )
            if any(id(memory_key(r)) in keys for r in roots(addr)):
                found.add(ty)
        elif i.opcode == "call" and depth < 4:
            callee = module.get(i.callee_name)
            if callee is None or callee.is_declaration:
                continue
            for param, o in zip(callee.args, i.operands, strict=False):
                if o.type.is_ptr and any(id(memory_key(r)) in keys for r in roots(o)):
                    found.add(element_type(module, callee, [param], facts, depth + 1))
    types = {t for t in found if t is not None}
    one = next(iter(types)) if len(types) == 1 else None
    return one if one is not None and one.is_float else None


def users(fn: Function) -> dict[int, list[Instruction]]:
    """The instructions using each value of `fn` (keyed by `id`)."""
    out: dict[int, list[Instruction]] = {}
    for inst in fn.instructions():
        for o in inst.operands:
            out.setdefault(id(o), []).append(inst)
    return out


def write_only(fn: Function, arg: Argument) -> bool:
    """Whether `fn` only stores through pointer `arg` (and addresses derived from it): no
    load, no call and no copy of the pointer reads that memory or lets it escape."""
    used_by, seen = users(fn), {id(arg)}
    todo: list[Value] = [arg]
    while todo:
        v = todo.pop()
        for u in used_by.get(id(v), ()):
            if u.opcode == "store" and u.operands[1] is v and u.operands[0] is not v:
                continue  # a store into the memory
            if u.opcode not in ADDRESS:
                return False  # a load, a call, a copy of the pointer
            if id(u) not in seen:
                seen.add(id(u))
                todo.append(u)
    return True


def store_base(inst: Instruction) -> Value:
    """The root of a store's address (through address computations with one pointer)."""
    v = inst.operands[1]
    while isinstance(v, Instruction) and v.opcode in _CARRIES:
        v = v.operands[0]
    return v


ADDRESS_ARITHMETIC = frozenset(
    {
        "getelementptr",
        "bitcast",
        "addrspacecast",
        "add",
        "sub",
        "mul",
        "shl",
        "sext",
        "zext",
        "trunc",
    }
)


def _outside(v: Value, blocks: frozenset[str], depth: int = 0) -> bool:
    """Whether `v` has one value during a whole execution of the loop made of `blocks`:
    defined outside it, or address arithmetic of such values."""
    if not isinstance(v, Instruction) or v.block is None or v.block.name not in blocks:
        return True
    return (
        depth < 8
        and v.opcode in ADDRESS_ARITHMETIC
        and all(_outside(o, blocks, depth + 1) for o in v.operands)
    )


def invariant_loads(
    module: Module,
    fn: Function,
    loops: Iterable[CountedLoop],
    distinct: frozenset[int] = frozenset(),
) -> dict[Instruction, CountedLoop]:
    """Float loads that read one value during a whole execution of a loop: the address is
    the same in every iteration and nothing in the loop may write there (`distinct` as in
    `reloadable_loads`). Each is mapped to the outermost such loop."""
    loads = [i for i in fn.instructions() if i.opcode == "load" and i.type.is_float]
    out: dict[Instruction, CountedLoop] = {}
    by_block: dict[str, list[list[Value]] | None] | None = None  # (when a loop needs it)
    for lp in sorted(loops, key=lambda lp: -len(lp.blocks)):
        inside = [
            ld
            for ld in loads
            if ld not in out and ld.block_name in lp.blocks and _outside(ld.operands[0], lp.blocks)
        ]
        if not inside:
            continue
        by_block = by_block if by_block is not None else _writes_by_block(module, fn)
        writes = _writes_in(by_block, lp.blocks)
        if writes is None:
            continue
        for ld in inside:
            rs = roots(ld.operands[0])
            if not any(_roots_may_alias(w, rs, distinct) for w in writes):
                out[ld] = lp
    return out
