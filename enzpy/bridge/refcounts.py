"""Drop the reference counting of argument arrays whose references cannot leave the call.

Numba increfs an array's meminfo whenever it makes a view of it (`cams[i]`) and decrefs it
when the view dies; once small callees are inlined, that is two atomic operations per view
in the primal's loops, which the derivative would replay in its forward and its reverse
sweep. For an argument the caller holds a reference during the whole call, so while no
reference is stored or passed on (the meminfo is used only by `NRT_incref`/`NRT_decref`),
the count never reaches zero inside the call and these calls change nothing observable:
they are removed before differentiation. A meminfo used in any other way (returned,
stored, passed to a callee that was not inlined) keeps all of its counting.
"""

from __future__ import annotations

from collections.abc import Iterable

from llvm_passes.ir import Function

from .runtime import REFCOUNT


def drop_argument_refcounts(fn: Function, meminfos: Iterable[int]) -> int:
    """Remove the `NRT_incref`/`NRT_decref` calls on the meminfo arguments at positions
    `meminfos` of `fn` whose only uses they are; the number of calls removed."""
    uses: dict[int, list] = {p: [] for p in meminfos}
    by_arg = {id(fn.args[p]): p for p in uses}
    for inst in fn.instructions():
        for v in (*inst.operands, inst.callee):
            if id(v) in by_arg:
                uses[by_arg[id(v)]].append(inst)
    dead = {
        id(inst)
        for insts in uses.values()
        if all(i.callee_name in REFCOUNT and len(i.operands) == 1 for i in insts)
        for inst in insts
    }
    for block in fn.blocks:
        block.instructions = [i for i in block.instructions if id(i) not in dead]
    return len(dead)
