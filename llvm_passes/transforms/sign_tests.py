"""Fold Numba's negative-index wraparound where an index is never negative: sign tests on
such integers (`analysis.ranges.nonnegative`) become constants, and selects on a constant
the arm they pick."""

from __future__ import annotations

from ..analysis.ranges import nonnegative
from ..ir import I1, Constant, Function, Instruction, Value

# (predicate, constant) -> the result of comparing a nonnegative value so
_SIGN_TESTS = {("slt", "0"): "false", ("sge", "0"): "true", ("sgt", "-1"): "true"}


def fold_sign_tests(fn: Function, assumed: frozenset[int]) -> int:
    """Replace `icmp slt x, 0` (and `sge x, 0`, `sgt x, -1`) on never-negative `x` by their
    constant result, and selects on a constant by the arm they pick; how many were folded."""
    test = nonnegative(fn, assumed)

    def fold(inst: Instruction, ops: list[Value]) -> Value | None:
        if inst.opcode == "icmp" and isinstance(ops[1], Constant):
            result = _SIGN_TESTS.get((inst.pred, ops[1].text))
            return Constant(I1, result) if result and test(ops[0]) else None
        if inst.opcode == "select" and isinstance(ops[0], Constant) and ops[0].type == I1:
            return ops[1] if ops[0].text == "true" else ops[2]
        return None

    known: dict[Value, Value] = {}
    changed = True
    while changed:  # a select may come before the test it depends on, in text order
        changed = False
        for inst in fn.instructions():
            value = (
                None if inst in known else fold(inst, [_resolve(known, o) for o in inst.operands])
            )
            if value is not None:
                known[inst], changed = value, True
    if not known:
        return 0
    for block in fn.blocks:
        block.instructions = [i for i in block.instructions if i not in known]
        for inst in block.instructions:
            inst.operands = [_resolve(known, o) for o in inst.operands]
    return len(known)


def _resolve(known: dict[Value, Value], v: Value) -> Value:
    while v in known:
        v = known[v]
    return v
