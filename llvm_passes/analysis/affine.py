"""Addresses linear in a loop counter: `base + coef * counter + const` bytes, as Numba
indexes arrays (`x[i + c]`), with the wraparound terms it adds for negative indices
(selects between 0 and another value by a comparison of the counter with a constant, 0 for
every counter at or above some `start`). Used to tell apart the cells loop iterations
touch (`partition`, `independent`)."""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass

from ..ir import Argument, Constant, Instruction, Value
from ..ir.types import size_in_bytes


@dataclass(frozen=True)
class Linear:
    """`coef * counter + const`, plus wraparound terms that are 0 for `counter >= start`."""

    counter: Instruction | None = None
    coef: int = 0
    const: int = 0
    start: int | None = None

    def __add__(self, o: Linear) -> Linear | None:
        if self.counter is not None and o.counter is not None and self.counter is not o.counter:
            return None
        starts = [s for s in (self.start, o.start) if s is not None]
        return Linear(
            self.counter or o.counter,
            self.coef + o.coef,
            self.const + o.const,
            max(starts) if starts else None,
        )

    def times(self, k: int) -> Linear:
        return Linear(self.counter, self.coef * k, self.const * k, self.start)


def address(
    ptr: Value,
    counters: Container[Value],
    constants: Mapping[int, int] = {},  # noqa: B006
) -> tuple[Value, Linear]:
    """`ptr` as a base (the first pointer whose GEP indices are not linear in one of
    `counters`) plus a `Linear` offset in bytes; `constants`: integer constants some
    parameters are known to hold (by index)."""
    p, offset = ptr, Linear()
    while isinstance(p, Instruction) and p.opcode == "getelementptr" and len(p.operands) == 2:
        if p.aux_type is None:
            break
        term = linear(p.operands[1], counters, constants)
        if term is None:
            break  # (an index without the counter: part of the base)
        total = offset + term.times(size_in_bytes(p.aux_type))
        if total is None:
            break
        p, offset = p.operands[0], total
    return p, offset


def linear(
    v: Value, counters: Container[Value], constants: Mapping[int, int], depth: int = 0
) -> Linear | None:
    """`v` as a `Linear` in one of `counters`, if it is one."""
    k = constant(v, constants)
    if k is not None:
        return Linear(const=k)
    if not isinstance(v, Instruction) or depth > 8:
        return None
    if v in counters:
        return Linear(v, 1)
    ops = v.operands
    if v.opcode in ("add", "sub"):
        a, b = (linear(o, counters, constants, depth + 1) for o in ops)
        if a is None or b is None:
            return None
        return a + (b.times(-1) if v.opcode == "sub" else b)
    if v.opcode == "select":
        zero = [integer(o) == 0 for o in ops[1:]]
        if zero.count(True) != 1:
            return None
        start = _start(ops[0], zero[0], counters, constants)
        return None if start is None else Linear(start=start)
    return None


_SWAPPED = {"sgt": "slt", "sge": "sle", "slt": "sgt", "sle": "sge"}
_NEGATED = {"sgt": "sle", "sge": "slt", "slt": "sge", "sle": "sgt"}


def _start(
    cond: Value, zero_when: bool, counters: Container[Value], constants: Mapping[int, int]
) -> int | None:
    """The lowest counter value from which a comparison `cond` is `zero_when` for good: a
    comparison of `counter + k` with a constant (signed)."""
    if not (isinstance(cond, Instruction) and cond.opcode == "icmp" and cond.pred in _SWAPPED):
        return None
    a, b = (linear(o, counters, constants) for o in cond.operands)
    pred = cond.pred
    if a is not None and a.counter is None:
        a, b, pred = b, a, _SWAPPED[pred]
    if (
        a is None
        or b is None
        or (a.coef, b.coef) != (1, 0)
        or a.start is not None
        or b.start is not None
    ):
        return None
    if not zero_when:
        pred = _NEGATED[pred]
    bound = b.const - a.const  # zero when counter `pred` bound
    return {"sgt": bound + 1, "sge": bound}.get(pred)


def integer(v: Value | None) -> int | None:
    """The integer constant `v` is, if it is one."""
    if isinstance(v, Constant) and v.type.is_int and v.text.lstrip("-").isdigit():
        return int(v.text)
    return None


def constant(v: Value, constants: Mapping[int, int]) -> int | None:
    """The integer `v` is: a constant, or a parameter known to hold one."""
    if isinstance(v, Argument):
        return constants.get(v.index)
    return integer(v)
