"""Reverse mode of a parallel call (`rules.ParallelCall`): one tape per chunk.

The forward sweep allocates `n` zeroed tapes and runs, in parallel, the chunk's augmented
forward sweep, chunk `c` on tape `c`; the reverse sweep, at the call's position, runs the
chunk's reverse sweep, chunk `c` on tape `c` (whatever thread runs it), which frees that
tape's storage. The chunks are derived `shared` (see `_Synthesizer.derive`): they add the
adjoints of their loads atomically, since other chunks may load the same cells.

Both launches go through trampolines `<sweep>.par(i64 c, args..., shadows..., ptr tapes)`
calling `<sweep>(c, args..., shadows..., tapes + c * sizeof(tape))`.
"""

from __future__ import annotations

from ..ir import I8, I64, PTR, VOID, Argument, Block, Function, Instruction, Module
from ..ir.builder import Builder, Namer
from ..ir.types import size_in_bytes
from ..ir.values import const
from ..tape import FREE, TAPE_TYPE

CHUNK_TAPE = size_in_bytes(TAPE_TYPE)  # bytes of one chunk's tape header


def trampoline(module: Module, sweep: str, release: bool) -> str:
    """`<sweep>.par(i64 c, args..., shadows..., ptr tapes)`: `sweep` (an augmented forward
    or a reverse sweep of a chunk, its tape last) on chunk `c`'s tape, whose storage is
    freed afterwards when `release`. Returns the trampoline's name."""
    name = f"{sweep}.par"
    if module.get(name) is not None:
        return name
    target = module.functions[sweep]
    params = [Argument(a.type, a.name, a.attrs, k) for k, a in enumerate(target.args)]
    params[-1] = Argument(PTR, "tapes", "", len(params) - 1)
    fn = Function(name, target.ret_type, params, prefix="internal")
    fn.blocks.append(Block("entry"))
    module.add_function(fn)
    b = Builder(module, Namer(fn), fn.blocks[0])
    offset = b.binop("mul", params[0], const(I64, CHUNK_TAPE), "offset")
    tape = b.gep(I8, params[-1], offset, hint="tape")
    r = b.call(sweep, [*params[:-1], tape], target.ret_type, "r")
    if release:
        b.call(FREE, [tape], VOID)
    b.insert(Instruction("ret", operands=[] if target.ret_type == VOID else [r]))
    return name
