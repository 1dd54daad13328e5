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

The shadows of distinct allocations of one function are apart from each other as well, in a
second domain of one scope per allocation (`Allocations`): every shadow a forward sweep
allocates lives until the reverse sweep passes its allocation, so the shadows of two
allocations the reverse sweep reads were both alive at the end of the forward sweep, in
different places. A reverse loop adding into the shadow of `x * x` from that of `(x * x)
.sum(axis=1)` vectorizes, and the cell it adds from stays in a register.

A loop whose iterations are independent (`analysis.independent`) is marked parallel: its
loads and stores in an access group its latch's `!llvm.loop` lists as parallel accesses, so
that LLVM vectorizes it without proving the cells its iterations touch apart."""

from __future__ import annotations

from collections.abc import Sequence

from .ir import Instruction, Module

PRIMAL, SHADOW, TAPE, GIVEN, MADE = "primal", "shadow", "tape", "given", "made"
_SIDES = (PRIMAL, SHADOW, TAPE, GIVEN, MADE)
# the sides each side's memory never overlaps (by position; each pair said once suffices)
_APART = {PRIMAL: (1, 2), SHADOW: (0, 2), TAPE: (0, 1), GIVEN: (0, 2, 4), MADE: (0, 2, 3)}
_DOMAIN = 7_340_000  # metadata numbers of our own (a module's numbering need not be dense)
_PARALLEL = 7_350_000  # and those of parallel loops
_ALLOCATIONS = 7_360_000  # and those of allocations' shadows
_MOST = 64  # allocations apart from each other in one function
_NUMBERS = 1000  # metadata numbers per function


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
    or the shadows GIVEN or MADE), or a side of `Allocations`."""
    module.globals.setdefault("enzpy.scopes", _DEFINITIONS)
    inst.attached = _ATTACHED.get(side, side)
    return inst


class Allocations:
    """The sides of shadows of memory one function allocates, in a second domain of one
    scope per allocation (`sites`, at most `_MOST`): a shadow of what some of the sites
    allocated is MADE, and apart from the shadows of what the others allocated."""

    def __init__(self, module: Module, sites: Sequence[object]) -> None:
        self.module, self.index = module, {site: i for i, site in enumerate(sites)}
        k = sum(1 for name in module.globals if name.startswith("enzpy.allocations."))
        self.key, self.domain = f"enzpy.allocations.{k}", _ALLOCATIONS + k * _NUMBERS
        self.sides: dict[frozenset[int], str] = {}
        self.lines = [f'!{self.domain} = distinct !{{!{self.domain}, !"enzpy.allocations"}}']
        self.lines += [
            f"!{self.domain + 1 + i} = distinct !{{!{self.domain + 1 + i}, !{self.domain}, "
            f'!"enzpy.allocation.{i}"}}'
            for i in range(len(sites))
        ]

    def side(self, among: Sequence[object]) -> str:
        """The side of a shadow of memory one of the sites `among` allocated."""
        ks = frozenset(self.index[site] for site in among)
        if ks in self.sides:
            return self.sides[ks]
        n = len(self.index)
        node = self.domain + 1 + n + 2 * len(self.sides)  # its scopes, then the others'
        if not 2 <= n <= _MOST or node + 1 >= self.domain + _NUMBERS:
            return MADE
        scopes = [_scope(_SIDES.index(MADE))] + [self.domain + 1 + i for i in sorted(ks)]
        others = [_scope(_SIDES.index(s)) for s in (PRIMAL, TAPE, GIVEN)]
        others += [self.domain + 1 + i for i in range(n) if i not in ks]
        self.lines += [
            f"!{node} = !{{{', '.join(f'!{m}' for m in scopes)}}}",
            f"!{node + 1} = !{{{', '.join(f'!{m}' for m in others)}}}",
        ]
        self.module.globals[self.key] = "\n".join(self.lines)
        self.sides[ks] = f"!alias.scope !{node}, !noalias !{node + 1}"
        return self.sides[ks]


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
