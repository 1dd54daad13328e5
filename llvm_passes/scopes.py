"""Alias scopes saying that primal, shadow and tape memory never overlap (a shadow is
allocated apart from its primal, or given apart: the caller checks; the tape's storage is
its runtime's), so that LLVM may keep a primal value in a register across a loop adding into
shadows or storing into the tape, and vectorize without checking them apart. Only accesses
whose pointer surely addresses one of them are marked.

Two kinds of shadows are apart from each other too: those the caller gave (the shadows of
arguments, `GIVEN`) and those of memory the function allocates (`MADE`), which did not exist
when the caller's did; a reverse loop adding into an argument's shadow while reading a
temporary's (`C[i, j] += a * B[k, j]` into a new `C`) vectorizes without checking the two
apart.

A loop whose iterations are independent (`analysis.independent`) is marked parallel: its
loads and stores in an access group its latch's `!llvm.loop` lists as parallel accesses, so
that LLVM vectorizes it without proving the cells its iterations touch apart."""

from __future__ import annotations

from .ir import Instruction, Module

PRIMAL, SHADOW, TAPE, GIVEN, MADE = "primal", "shadow", "tape", "given", "made"
_SIDES = (PRIMAL, SHADOW, TAPE, GIVEN, MADE)
# the sides each side's memory never overlaps (by position; each pair said once suffices)
_APART = {PRIMAL: (1, 2), SHADOW: (0, 2), TAPE: (0, 1), GIVEN: (0, 2, 4), MADE: (0, 2, 3)}
_DOMAIN = 7_340_000  # metadata numbers of our own (a module's numbering need not be dense)
_PARALLEL = 7_350_000  # and those of parallel loops


def _scope(k: int) -> int:
    return _DOMAIN + 1 + k


def _list(ks: tuple[int, ...]) -> int:  # the node listing the scopes `ks`
    return _DOMAIN + 10 + sum(1 << k for k in ks)


_LISTS = {(k,) for k in range(len(_SIDES))} | set(_APART.values())
_DEFINITIONS = "\n".join(
    [
        f'!{_DOMAIN} = distinct !{{!{_DOMAIN}, !"enzpy"}}',
        *(
            f'!{_scope(k)} = distinct !{{!{_scope(k)}, !{_DOMAIN}, !"enzpy.{side}"}}'
            for k, side in enumerate(_SIDES)
        ),
        *(f"!{_list(ks)} = !{{{', '.join(f'!{_scope(k)}' for k in ks)}}}" for ks in sorted(_LISTS)),
    ]
)
_ATTACHED = {
    side: f"!alias.scope !{_list((k,))}, !noalias !{_list(_APART[side])}"
    for k, side in enumerate(_SIDES)
}


def mark(module: Module, inst: Instruction, side: str) -> Instruction:
    """`inst` (a load or store) marked as accessing `side`'s memory (PRIMAL, SHADOW, TAPE,
    or the shadows GIVEN or MADE)."""
    module.globals.setdefault("enzpy.scopes", _DEFINITIONS)
    inst.attached = _ATTACHED[side]
    return inst


def parallel_loop(module: Module, accesses: list[Instruction], latch: Instruction) -> None:
    """Mark the loop whose loads and stores are `accesses` and whose latch ends with the
    branch `latch` as having independent iterations (see the module doc)."""
    k = sum(1 for name in module.globals if name.startswith("enzpy.parallel."))
    group, loop, listed = (_PARALLEL + 3 * k + j for j in range(3))
    module.globals[f"enzpy.parallel.{k}"] = (
        f"!{group} = distinct !{{}}\n"
        f'!{listed} = !{{!"llvm.loop.parallel_accesses", !{group}}}\n'
        f"!{loop} = distinct !{{!{loop}, !{listed}}}"
    )
    for inst in accesses:
        tag = f"!llvm.access.group !{group}"
        inst.attached = f"{inst.attached}, {tag}" if inst.attached else tag
    latch.attached = f"!llvm.loop !{loop}"
