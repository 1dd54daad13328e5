"""Counted loops whose reverse iterations are independent: LLVM may run them in any order
(vectorize them) without checking the shadow cells they touch apart.

The reverse of an iteration reads the tape and primal memory (nothing in the reverse sweep
writes either), and touches the shadow of each active float access of the loop: a load's
shadow cell gets `+=` its adjoint, a store's is read (and zeroed). Iterations are
independent when, in an innermost counted loop whose calls touch no memory (their rules'
effects):

- every active load addresses `base + (i + c)` cells of its type (`i` the loop's counter,
  `c` a constant, `base` defined before the loop; no wraparound terms): one statement's
  `+=` then touches a cell per iteration, never twice, and additions into a cell commute
  (summed in another order, as a reduction); one `c` per base (loops adding into
  neighbouring cells, `x[i - 1]` and `x[i + 1]`, are left to LLVM: vectorized, their
  overlapping vector updates stall on store-to-load forwarding);
- the shadow memory of a store is touched by that iteration only: every active access of
  its memory has the store's address, and the memory is apart from every other the loop's
  active accesses reach (`pointers.apart`: memory the function allocates, arguments the
  caller checked apart, arrays a time loop rotates).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..ir import Function, Instruction, Value
from ..ir.types import size_in_bytes
from ..rules import effects
from ..rules.registry import PURE
from .activity import ActivityResult
from .affine import address
from .cfg import CFG
from .loops import CountedLoop, loop_headers
from .pointers import apart, owner_or_rotation


def independent_loops(
    fn: Function,
    loops: Iterable[CountedLoop],
    graph: CFG,
    act: ActivityResult,
    distinct: frozenset[int],
) -> frozenset[str]:
    """The headers of `fn`'s counted `loops` whose reverse iterations are independent (the
    module doc); `distinct`: positions of arguments whose memory does not overlap."""
    headers = loop_headers(graph)
    body = {b.name: b.instructions for b in fn.blocks}
    return frozenset(
        lp.header
        for lp in loops
        if not (headers & lp.blocks) - {lp.header}
        and _independent([i for b in lp.blocks for i in body[b]], lp, act, distinct)
    )


def _independent(
    body: list[Instruction], lp: CountedLoop, act: ActivityResult, distinct: frozenset[int]
) -> bool:
    counter = lp.counter.phi
    cells: dict[Value, list[tuple[bool, Value, int, int]]] = {}  # memory -> accesses
    for inst in body:
        op = inst.opcode
        if op == "call":
            if effects(inst) != PURE:  # (None: no rule, a callee with a derivative)
                return False
            continue
        if op in ("atomicrmw", "cmpxchg", "fence", "va_arg") or op == "opaque":
            return False
        if op == "load" and inst.type.is_float and act.is_active(inst):
            ptr, stored = inst.operands[0], False
        elif op == "store" and inst.operands[0].type.is_float and act.is_active(inst.operands[1]):
            ptr, stored = inst.operands[1], True
        else:
            continue
        if ptr in act.maybe_primal:
            return False
        elem = inst.type if op == "load" else inst.operands[0].type
        base, offset = address(ptr, (counter,))
        size = size_in_bytes(elem)
        if (
            offset.counter is not counter
            or abs(offset.coef) != size
            or offset.const % size
            or offset.start is not None
            or (isinstance(base, Instruction) and base.block_name in lp.blocks)
        ):
            return False
        memory = owner_or_rotation(base)
        if memory is None:
            return False
        cells.setdefault(memory, []).append((stored, base, offset.coef, offset.const))
    for memory, accesses in cells.items():
        shifted: dict[int, set[tuple[int, int]]] = {}
        for _, base, coef, at in accesses:
            shifted.setdefault(id(base), set()).add((coef, at))
        if any(len(offsets) > 1 for offsets in shifted.values()):
            return False
        if not any(stored for stored, *_ in accesses):
            continue
        if len({(id(base), coef, at) for _, base, coef, at in accesses}) != 1:
            return False
        if any(other is not memory and not apart(memory, other, distinct) for other in cells):
            return False
    return True
