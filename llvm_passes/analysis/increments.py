"""Increments of memory: a store of `*p + v` (or `*p - v`) to the `p` it loaded from, nothing
written in between. Their reverse leaves `d p` as it is and adds it (or its negation) into
`v`'s adjoint, where the general one would zero `d p`, then add it back through the load: a
read instead of two read-modify-writes, and no store that the vectorizer must order against
the other shadows' (`out[i] += w * x[j]`, `C[i, j] += a * B[k, j]`). Knows nothing of
derivatives."""

from __future__ import annotations

from dataclasses import dataclass

from ..ir import Function, Instruction, Module, Value
from .readonly import users, written


@dataclass(frozen=True)
class Increment:
    """`store (load p) ± added, p`: the load, the addition and the sign of `added`."""

    load: Instruction
    add: Instruction
    added: Value
    negated: bool


def increments(module: Module, fn: Function) -> dict[Instruction, Increment]:
    """The stores of `fn` (in `module`) that increment the memory they write, by store."""
    used = users(fn)

    def only_use(v: Instruction, user: Instruction) -> bool:
        u = used.get(id(v), [])
        return len(u) == 1 and u[0] is user

    out: dict[Instruction, Increment] = {}
    for block in fn.blocks:
        at = {id(inst): k for k, inst in enumerate(block.instructions)}
        for k, store in enumerate(block.instructions):
            if store.opcode != "store" or store.flags or not store.operands[0].type.is_float:
                continue
            add, ptr = store.operands
            if not (isinstance(add, Instruction) and add.opcode in ("fadd", "fsub")):
                continue
            if id(add) not in at or not only_use(add, store):
                continue
            for j, load in enumerate(add.operands):
                if not (
                    isinstance(load, Instruction)
                    and load.opcode == "load"
                    and load.operands[0] is ptr
                    and not load.flags
                    and id(load) in at
                    and only_use(load, add)
                    and not (add.opcode == "fsub" and j == 1)
                    and add.operands[0] is not add.operands[1]
                ):
                    continue
                between = block.instructions[at[id(load)] + 1 : k]
                if all(i.opcode != "fence" and written(i, module) == [] for i in between):
                    out[store] = Increment(load, add, add.operands[1 - j], add.opcode == "fsub")
                break
    return out
