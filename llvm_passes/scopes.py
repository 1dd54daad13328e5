"""Alias scopes saying that primal and shadow memory never overlap (a shadow is allocated
apart from its primal, or given apart: the caller checks), so that LLVM may keep a primal
value in a register across a loop adding into shadows, and vectorize without checking the two
apart. Only accesses whose pointer is surely a shadow, or surely a primal, are marked."""

from __future__ import annotations

from .ir import Instruction, Module

PRIMAL, SHADOW = "primal", "shadow"
_FIRST = 7_340_000  # metadata numbers of our own (a module's numbering need not be dense)
_DEFINITIONS = (
    f'!{_FIRST} = distinct !{{!{_FIRST}, !"enzpy"}}',
    f'!{_FIRST + 1} = distinct !{{!{_FIRST + 1}, !{_FIRST}, !"enzpy.primal"}}',
    f'!{_FIRST + 2} = distinct !{{!{_FIRST + 2}, !{_FIRST}, !"enzpy.shadow"}}',
    f"!{_FIRST + 3} = !{{!{_FIRST + 1}}}",
    f"!{_FIRST + 4} = !{{!{_FIRST + 2}}}",
)
_ATTACHED = {
    PRIMAL: f"!alias.scope !{_FIRST + 3}, !noalias !{_FIRST + 4}",
    SHADOW: f"!alias.scope !{_FIRST + 4}, !noalias !{_FIRST + 3}",
}


def mark(module: Module, inst: Instruction, side: str) -> Instruction:
    """`inst` (a load or store) marked as accessing `side`'s memory (PRIMAL or SHADOW)."""
    module.globals.setdefault("enzpy.scopes", "\n".join(_DEFINITIONS))
    inst.aliasing = _ATTACHED[side]
    return inst
