"""Integers that are never negative (`transforms.sign_tests` folds the sign tests on them).

Numba wraps every array index for Python's negative indexing, `i + (i < 0 ? n : 0)`. Where
`i` counts up from a nonnegative start (a loop counter, `range(i + 1, d)`, a running offset
`idx += 1`), the test is always false; folding it leaves plain address arithmetic, which
LLVM's vectorizer understands, in both sweeps of a derivative. Overflow is not considered:
an index that adds and multiplies nonnegative values does not reach 2**63 in any program
that uses it to address memory.
"""

from __future__ import annotations

from collections.abc import Callable

from ..ir import Argument, Constant, Function, Instruction, Value

# results nonnegative when all (ALL), any (ANY) or the first (FIRST) of the integer operands
# are (the quotient of a nonnegative dividend; a remainder below either operand)
_ALL = frozenset({"add", "mul", "select", "phi", "sext", "llvm.smin"})
_ANY = frozenset({"and", "urem", "llvm.smax", "llvm.umin"})
_FIRST = frozenset({"udiv", "lshr"})


def nonnegative(fn: Function, assumed: frozenset[int]) -> Callable[[Value], bool]:
    """A test of whether an integer value of `fn` is never negative; arguments at positions
    `assumed` are known to be nonnegative (sizes). Loop-carried phis are taken nonnegative
    unless an incoming value may be negative (the largest consistent assumption)."""
    ok = {i for i in fn.instructions() if i.opcode == "phi" and i.type.kind == "int"}

    def test(v: Value, depth: int = 0) -> bool:
        if isinstance(v, Constant):
            return v.type.kind == "int" and v.text.isdigit()
        if isinstance(v, Argument):
            return v.index in assumed
        if not isinstance(v, Instruction) or depth > 32:
            return False
        op = v.opcode if v.opcode != "call" else ".".join(v.callee_name.split(".")[:2])
        if op == "phi":
            return v in ok
        if op == "zext" or op == "lshr" and _positive_constant(v.operands[1]):
            return True
        ints = v.operands[1:] if op == "select" else v.operands
        if op in _FIRST:
            return test(ints[0], depth + 1)
        if op in _ALL:
            return all(test(o, depth + 1) for o in ints)
        return op in _ANY and any(test(o, depth + 1) for o in ints)

    while True:
        bad = {p for p in ok if not all(test(o) for o in p.operands)}
        if not bad:
            return test
        ok -= bad


def _positive_constant(v: Value) -> bool:
    return isinstance(v, Constant) and v.text.isdigit() and v.text != "0"
