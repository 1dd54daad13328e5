"""Removal of instructions whose results nothing uses."""

from __future__ import annotations

from collections.abc import Collection

from ..ir import Function, Instruction


def drop_dead(fn: Function, opcodes: Collection[str]) -> None:
    """Remove the instructions of `fn` with an opcode in `opcodes` (operations without side
    effects) whose results nothing uses, and then those only they used."""
    uses: dict[int, int] = {}
    for inst in fn.instructions():
        for o in inst.operands:
            uses[id(o)] = uses.get(id(o), 0) + 1
    dead: set[int] = set()
    work = [i for i in fn.instructions() if i.opcode in opcodes and id(i) not in uses]
    while work:
        inst = work.pop()
        if id(inst) in dead:
            continue
        dead.add(id(inst))
        for o in inst.operands:
            uses[id(o)] -= 1
            if uses[id(o)] == 0 and isinstance(o, Instruction) and o.opcode in opcodes:
                work.append(o)
    if dead:
        for block in fn.blocks:
            block.instructions = [i for i in block.instructions if id(i) not in dead]
