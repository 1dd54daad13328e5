"""Which integers carry the bits of floats: a small type analysis of memory.

LLVM moves floats through integers: `x.view(np.int64)`, a sign flipped by `xor` with the
sign bit, a float load and store that instcombine turned into an `i64` pair. A derivative
must follow them, so the engine needs to know which integer loads and stores touch float
memory. Memory is named by its root (an argument, an alloca, a runtime allocation, any
other pointer the function did not compute) and an `Offset` class inside it. A root's
layout holds which float types sit at which offsets; it is learned from the caller's facts
about pointer arguments (`facts`: what each points to), from float loads and stores, from
copies between memory (`memcpy`), and from integers carrying float bits stored into it.

An integer carries float bits (`FloatBits.values`) when it is a float bitcast to an integer,
a load of an integer of a float's width from float memory, a sign-bit operation (`xor`,
`and`, `or` with a constant) on such an integer, or a phi, select or freeze of those.
Knows nothing of activity or derivatives.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..ir import Constant, Function, Instruction, Type, Value
from ..ir.types import field_offset, float_type, size_in_bytes
from ..rules import effects
from .pointers import memory_key

_FLOAT_OF_WIDTH = {16: "half", 32: "float", 64: "double"}
_SIGN_OPS = ("xor", "and", "or")


@dataclass(frozen=True)
class Offset:
    """A set of byte offsets: exactly `residue` when `stride` is 0, else `residue` plus any
    multiple of `stride` (an index that varies)."""

    stride: int
    residue: int

    def plus(self, k: int, stride: int = 0) -> Offset:
        """Offsets moved by `k` plus any multiple of `stride`."""
        s = math.gcd(self.stride, stride)
        return Offset(s, (self.residue + k) % s if s else self.residue + k)

    def join(self, other: Offset) -> Offset:
        """The smallest class holding both."""
        s = math.gcd(self.stride, other.stride, abs(self.residue - other.residue))
        return Offset(s, self.residue % s if s else self.residue)

    def overlaps(self, other: Offset) -> bool:
        g = math.gcd(self.stride, other.stride)
        diff = self.residue - other.residue
        return diff == 0 if g == 0 else diff % g == 0


Layout = frozenset[tuple[Offset, Type]]  # float types at offset classes
MemoryFacts = dict[str, dict[int, Layout]]  # per function, per pointer argument: its layout


def scalar_fields(t: Type, base: int = 0) -> list[tuple[int, Type]]:
    """The scalar fields of `t` with their byte offsets."""
    if t.kind == "struct":
        return [
            f for k, e in enumerate(t.elems) for f in scalar_fields(e, base + field_offset(t, k))
        ]
    if t.kind in ("array", "vector"):
        size = size_in_bytes(t.elems[0])
        return [f for k in range(t.count) for f in scalar_fields(t.elems[0], base + k * size)]
    return [(base, t)]


def layout_of(t: Type) -> Layout:
    """The float fields of memory holding values of type `t`, one after another."""
    stride = size_in_bytes(t)
    return frozenset((Offset(stride, off % stride), f) for off, f in scalar_fields(t) if f.is_float)


@dataclass(frozen=True)
class FloatBits:
    """The integers of a function that carry float bits, and its integer loads and stores of
    float memory (each with the float type it touches)."""

    values: frozenset[Value]
    loads: Mapping[Instruction, Type]
    stores: Mapping[Instruction, Type]
    # per call instruction and pointer operand position, the layout the callee sees there
    calls: Mapping[tuple[Instruction, int], Layout]


def float_bits(fn: Function, facts: Mapping[int, Layout] | None = None) -> FloatBits:
    """Analyse `fn`; `facts` maps argument positions to the layout of the memory they point
    to (e.g. `layout_of(DOUBLE)` for an array of doubles)."""
    where = _locations(fn)
    layouts: dict[Value, set[tuple[Offset, Type]]] = {}
    for k, layout in (facts or {}).items():
        layouts.setdefault(fn.args[k], set()).update(layout)
    values: set[Value] = set()
    changed = True
    while changed:
        before = (len(values), sum(map(len, layouts.values())))
        for inst in fn.instructions():
            _visit(inst, where, layouts, values)
        changed = before != (len(values), sum(map(len, layouts.values())))
    loads, stores, calls = {}, {}, {}
    for inst in fn.instructions():
        if inst.opcode == "load" and inst.type.is_int:
            t = _float_at(where.get(inst.operands[0], {}), layouts, inst.type)
            if t is not None:
                loads[inst] = t
        elif inst.opcode == "store" and inst.operands[0].type.is_int:
            t = _float_at(where.get(inst.operands[1], {}), layouts, inst.operands[0].type)
            if t is not None:
                stores[inst] = t
        elif inst.opcode == "call":
            for k, o in enumerate(inst.operands):
                seen = _seen_from(where.get(o, {}), layouts)
                if seen:
                    calls[(inst, k)] = seen
    return FloatBits(frozenset(values), loads, stores, calls)


def _visit(
    inst: Instruction,
    where: Mapping[Value, dict[Value, Offset]],
    layouts: dict[Value, set[tuple[Offset, Type]]],
    values: set[Value],
) -> None:
    op, ops = inst.opcode, inst.operands
    if op == "bitcast" and inst.type.is_int and ops[0].type.is_float:
        values.add(inst)
    elif op == "load" and inst.type.is_int:
        if _float_at(where.get(ops[0], {}), layouts, inst.type) is not None:
            values.add(inst)
    elif op == "load" and inst.type.is_float:
        _record(where.get(ops[0], {}), layouts, inst.type)
    elif op == "atomicrmw" and inst.accumulation is not None:
        _record(where.get(ops[0], {}), layouts, ops[1].type)
    elif op == "store":
        value, ptr = ops
        if value.type.is_float:
            _record(where.get(ptr, {}), layouts, value.type)
        elif value in values and value.type.bits in _FLOAT_OF_WIDTH:
            _record(where.get(ptr, {}), layouts, float_type(_FLOAT_OF_WIDTH[value.type.bits]))
    elif op in _SIGN_OPS and ops[0] in values and isinstance(ops[1], Constant):
        values.add(inst)
    elif op in ("phi", "select", "freeze") and inst.type.is_int:
        data = ops[1:] if op == "select" else ops
        if all(v in values or isinstance(v, Constant) for v in data) and any(
            v in values for v in data
        ):
            values.add(inst)
    elif op == "call" and _copies(inst):
        dst, src = where.get(ops[0], {}), where.get(ops[1], {})
        for key, off in dst.items():
            layouts.setdefault(key, set()).update(_shifted(_seen_from(src, layouts), off))


def _copies(inst: Instruction) -> bool:
    fx = effects(inst)
    return fx is not None and fx.copies


def _record(
    at: Mapping[Value, Offset], layouts: dict[Value, set[tuple[Offset, Type]]], t: Type
) -> None:
    for key, off in at.items():
        layouts.setdefault(key, set()).add((off, t))


def _float_at(
    at: Mapping[Value, Offset], layouts: Mapping[Value, set[tuple[Offset, Type]]], int_type: Type
) -> Type | None:
    """The float type of `int_type`'s width stored at `at`, if any."""
    for key, off in at.items():
        for o, t in layouts.get(key, ()):
            if t.bits == int_type.bits and o.overlaps(off):
                return t
    return None


def _seen_from(
    at: Mapping[Value, Offset], layouts: Mapping[Value, set[tuple[Offset, Type]]]
) -> Layout:
    """The layout of memory as seen from a pointer at `at` (offsets relative to it)."""
    out = set()
    for key, off in at.items():
        for o, t in layouts.get(key, ()):
            if off.stride == 0:
                out.add((o.plus(-off.residue), t))
            else:  # the pointer moves: only the type's own alignment is known
                size = size_in_bytes(t)
                out.add((Offset(size, o.residue % size), t))
    return frozenset(out)


def _shifted(layout: Iterable[tuple[Offset, Type]], off: Offset) -> set[tuple[Offset, Type]]:
    return {(o.plus(off.residue, off.stride), t) for o, t in layout}


# ---- where pointers point -------------------------------------------------------------------
def _locations(fn: Function) -> dict[Value, dict[Value, Offset]]:
    """For each pointer of `fn`: its roots (memory keys) and the offset class inside each;
    a fixpoint over address arithmetic, phis and selects."""
    where: dict[Value, dict[Value, Offset]] = {}
    for a in fn.args:
        if a.type.is_ptr:
            where[a] = {a: Offset(0, 0)}
    insts = [i for i in fn.instructions() if i.type.is_ptr]
    changed = True
    while changed:
        changed = False
        for inst in insts:
            new = _locate(inst, where)
            if new != where.get(inst):
                where[inst] = new
                changed = True
    return where


def _locate(inst: Instruction, where: Mapping[Value, dict[Value, Offset]]) -> dict[Value, Offset]:
    op, ops = inst.opcode, inst.operands
    if op == "getelementptr":
        k, stride = _gep_offset(inst.aux_type, ops[1:])
        return {key: off.plus(k, stride) for key, off in _at(ops[0], where).items()}
    if op in ("bitcast", "addrspacecast", "freeze"):
        return dict(_at(ops[0], where))
    if op in ("phi", "select"):
        out: dict[Value, Offset] = {}
        for v in ops[1:] if op == "select" else ops:
            for key, off in _at(v, where).items():
                out[key] = out[key].join(off) if key in out else off
        return out
    return _own(inst)


def _at(v: Value, where: Mapping[Value, dict[Value, Offset]]) -> dict[Value, Offset]:
    """Where `v` points so far (nothing yet for an instruction not visited)."""
    if v in where:
        return where[v]
    return {} if isinstance(v, Instruction) else _own(v)


def _own(v: Value) -> dict[Value, Offset]:
    """A pointer that is its own root: keyed by the memory it addresses."""
    if isinstance(v, Constant):
        return {}
    return {memory_key(v): Offset(0, 0)}


def _gep_offset(source: Type | None, indices: Sequence[Value]) -> tuple[int, int]:
    """The constant byte offset of a GEP and the stride its variable indices add."""
    assert source is not None
    k, stride, t = 0, 0, source
    for n, idx in enumerate(indices):
        if n:
            if t.kind == "struct":
                k += field_offset(t, int(idx.text))  # type: ignore[attr-defined]
                t = t.elems[int(idx.text)]  # type: ignore[attr-defined]
                continue
            t = t.elems[0]
        size = size_in_bytes(t)
        if isinstance(idx, Constant) and idx.text.lstrip("-").isdigit():
            k += int(idx.text) * size
        else:
            stride = math.gcd(stride, size)
    return k, stride
