"""Alias scopes saying that primal, shadow and tape memory never overlap (a shadow is
allocated apart from its primal, or given apart: the caller checks; the tape's storage is
its runtime's), so that LLVM may keep a primal value in a register across a loop adding into
shadows or storing into the tape, and vectorize without checking them apart. Only accesses
whose pointer surely addresses one of them are marked."""

from __future__ import annotations

from .ir import Instruction, Module

PRIMAL, SHADOW, TAPE = "primal", "shadow", "tape"
_SIDES = (PRIMAL, SHADOW, TAPE)
_DOMAIN = 7_340_000  # metadata numbers of our own (a module's numbering need not be dense)


def _scope(k: int) -> int:
    return _DOMAIN + 1 + k


def _list(ks: tuple[int, ...]) -> int:  # the node listing the scopes `ks`
    return _DOMAIN + 10 + sum(1 << k for k in ks)


_DEFINITIONS = "\n".join(
    [
        f'!{_DOMAIN} = distinct !{{!{_DOMAIN}, !"enzpy"}}',
        *(
            f'!{_scope(k)} = distinct !{{!{_scope(k)}, !{_DOMAIN}, !"enzpy.{side}"}}'
            for k, side in enumerate(_SIDES)
        ),
        *(
            f"!{_list(ks)} = !{{{', '.join(f'!{_scope(k)}' for k in ks)}}}"
            for ks in [(k,) for k in range(3)] + [(1, 2), (0, 2), (0, 1)]
        ),
    ]
)
_ATTACHED = {
    side: f"!alias.scope !{_list((k,))}, !noalias !{_list(tuple(j for j in range(3) if j != k))}"
    for k, side in enumerate(_SIDES)
}


def mark(module: Module, inst: Instruction, side: str) -> Instruction:
    """`inst` (a load or store) marked as accessing `side`'s memory (PRIMAL, SHADOW or
    TAPE)."""
    module.globals.setdefault("enzpy.scopes", _DEFINITIONS)
    inst.aliasing = _ATTACHED[side]
    return inst
