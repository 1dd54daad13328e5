"""Reverse mode of a parallel call (`rules.ParallelCall`): one tape per chunk.

The forward sweep allocates `n` zeroed tapes and runs, in parallel, the chunk's augmented
forward sweep, chunk `c` on tape `c`; the reverse sweep, at the call's position, runs the
chunk's reverse sweep, chunk `c` on tape `c` (whatever thread runs it), which leaves that
tape's storage in chunk `c`'s cell for the next call (no fresh pages to fault in; the root's
`drop_tapes` frees them); a chunk whose forward sweep runs out of memory makes the enclosing
forward sweep run out of memory too (`tape.CHUNKS_ESCAPED`). The chunks are derived `shared`
(see `_Synthesizer.derive`): they add the adjoints of their loads atomically, since other
chunks may load the same cells.

Both launches go through trampolines `<sweep>.par(i64 c, args..., shadows..., ptr tapes)`
calling `<sweep>(c, args..., shadows..., tapes + c * sizeof(tape))`.

What the call tells its chunks (`Launch`, made by the caller's plan): a chunk's loads whose
cells no other chunk loads (`analysis.partition`) add their adjoints without atomics, and
its loads of memory nothing writes from the call on are loaded again in its reverse sweep.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..analysis.affine import integer
from ..analysis.partition import Border, owned_loads
from ..analysis.pointers import allocation, noalias, roots
from ..analysis.readonly import unchanged_after
from ..ir import (
    I8,
    I32,
    I64,
    PTR,
    VOID,
    Argument,
    Block,
    Constant,
    Function,
    GlobalRef,
    Instruction,
    Module,
    Value,
)
from ..ir.builder import Builder, Namer
from ..ir.types import size_in_bytes
from ..ir.values import const
from ..rules import parallel_chunk
from ..tape import (
    ARM,
    DROP,
    ESCAPE_TYPE,
    FORGET,
    FREE,
    KEEP,
    SETJMP,
    TAKE,
    TAPE_TYPE,
    UNWIND,
)

CHUNK_TAPE = size_in_bytes(TAPE_TYPE)  # bytes of one chunk's tape header
KEPT = 32  # chunks (by index) whose tape storage is kept between calls, each in its cell
CELLS = "enzpy.tape.cells."  # prefix of the globals holding the cells


@dataclass(frozen=True)
class Launch:
    """What a parallel call tells about the chunk it launches (for `analysis.partition`):
    the integer constants it passes (chunk parameter, value), the chunk parameters it
    passes memory that no other operand reaches (memory the caller allocated), and those it
    passes memory nothing writes from the call on, up to the chunks' reverse sweeps (the
    caller's arguments, when it is the root function of combined mode)."""

    constants: tuple[tuple[int, int], ...]
    apart: frozenset[int]
    unchanged: frozenset[int] = frozenset()

    def owned_loads(self, chunk: Function) -> dict[Instruction, Border | None]:
        return owned_loads(chunk, dict(self.constants), self.apart)

    def reloadable(self, chunk: Function) -> frozenset[Instruction]:
        """The chunk's loads of `unchanged` memory: its reverse sweep may load them again."""
        return frozenset(
            inst
            for inst in chunk.instructions()
            if inst.opcode == "load"
            and (inst.type.is_float or inst.type.is_int)
            and all(
                isinstance(r, Argument) and r.index in self.unchanged
                for r in roots(inst.operands[0])
            )
        )


def unchanged_operands(
    module: Module, caller: Function, call: Instruction, distinct: frozenset[int]
) -> frozenset[int]:
    """The chunk parameters a parallel call in `caller` passes memory of `caller`'s
    arguments that nothing writes from the call on (the chunks included; `distinct`:
    positions of `caller`'s arguments whose memory does not overlap)."""
    chunk = parallel_chunk(call)
    assert chunk is not None
    pointers = [
        (k, o)
        for k, o in enumerate(chunk[1])
        if o is not None
        and o.type.is_ptr
        and all(isinstance(r, Argument) and not noalias(r) for r in roots(o))
    ]
    found = unchanged_after(module, caller, [(call, o) for _, o in pointers], distinct)
    return frozenset(k for k, o in pointers if (call, o) in found)


def launch(call: Instruction, unchanged: frozenset[int] | None = None) -> Launch:
    """The `Launch` of a parallel call (`unchanged`: see `Launch`)."""
    chunk = parallel_chunk(call)
    assert chunk is not None
    operands = chunk[1]
    constants = tuple((k, n) for k, o in enumerate(operands) if (n := integer(o)) is not None)
    # per pointer operand: the memory of each root (an allocation, the caller's argument,
    # or None: unknown)
    memory = {
        k: [r if isinstance(r, Argument) else allocation(r) for r in roots(o)]
        for k, o in enumerate(operands)
        if o is not None and o.type.is_ptr
    }
    apart = frozenset(
        k
        for k, mine in memory.items()
        if all(isinstance(m, Instruction) for m in mine)
        and all(
            m is not None and all(m is not a for a in mine)
            for j, theirs in memory.items()
            if j != k
            for m in theirs
        )
    )
    return Launch(constants, apart, unchanged or frozenset())


def trampoline(module: Module, sweep: str, release: bool, nestable: bool = False) -> str:
    """`<sweep>.par(i64 c, args..., shadows..., ptr tapes)`: `sweep` (an augmented forward
    or a reverse sweep of a chunk, its tape last) on chunk `c`'s tape. A forward sweep
    (`release` false) runs with the tape's escape armed: memory it cannot have ends it,
    what it allocated released and its tape marked escaped (`CHUNKS_ESCAPED` then escapes
    the caller's sweep). A reverse sweep (`release`) leaves the tape's storage in chunk
    `c`'s cell afterwards, where the forward sweep of the next call takes it (`_cells`).
    On the `nestable` runtime (no cells, no escape) the reverse sweep frees the storage.
    Returns the trampoline's name."""
    name = f"{sweep}.par"
    if module.get(name) is not None:
        return name
    target = module.functions[sweep]
    fn = Function(
        name,
        target.ret_type,
        [Argument(a.type, a.name, a.attrs, k) for k, a in enumerate(target.args[:-1])],
        prefix="internal",
    )
    namer = Namer(fn)  # (the sweep may be a trampoline's derivative, with its `tapes`)
    fn.args.append(Argument(PTR, namer.fresh("tapes"), "", len(fn.args)))
    params = fn.args
    fn.blocks.append(Block("entry"))
    module.add_function(fn)
    b = Builder(module, namer, fn.blocks[0])
    offset = b.binop("mul", params[0], const(I64, CHUNK_TAPE), "offset")
    tape = b.gep(I8, params[-1], offset, hint="tape")
    if nestable:
        r = b.call(sweep, [*params[:-1], tape], target.ret_type, "r")
        if release:
            b.call(FREE, [tape], VOID)
        _ret(b, None if target.ret_type == VOID else r)
        return name
    last = b.icmp("ult", params[0], const(I64, KEPT), "kept")
    kept = b.gep(PTR, _cells(module, sweep), b.select(last, params[0], const(I64, KEPT), "k"))
    if not release:
        b.call(TAKE, [tape, kept], VOID)
        record = b.alloca(ESCAPE_TYPE, 16, "escape")
        cell = b.alloca(PTR, 8, "log.cell")
        b.store(Constant(PTR, "null"), cell, 8)
        b.call(ARM, [tape, record, cell], VOID)
        jumped = b.icmp("ne", b.call(SETJMP, [record], I32, "jumped"), const(I32, 0))
        escaped, run = Block("escaped"), Block("sweep")
        fn.blocks += [escaped, run]
        b.insert(Instruction("br", operands=[jumped], labels=[escaped.name, run.name]))
        b.position_at_end(escaped)
        b.call(UNWIND, [tape, record], VOID)
        _ret(b, None if target.ret_type == VOID else Builder.zero(target.ret_type))
        b.position_at_end(run)
    r = b.call(sweep, [*params[:-1], tape], target.ret_type, "r")
    if release:
        b.call(KEEP, [tape, kept], VOID)
    else:
        b.call(FORGET, [tape, cell], VOID)
        b.call(DROP, [cell], I64, "log.bytes")
    _ret(b, None if target.ret_type == VOID else r)
    return name


def _cells(module: Module, sweep: str) -> GlobalRef:
    """The cells where the tapes of the chunks of `sweep`'s function (an augmented forward,
    reverse or release sweep) keep their storage between calls: one per chunk index below
    `KEPT`, then one the others share (a chunk finding it empty starts a fresh tape)."""
    cells = GlobalRef(f"{CELLS}{sweep.split('_', 1)[1]}", PTR)
    module.globals[cells.name] = f"{cells.ref} = internal global [{KEPT + 1} x ptr] zeroinitializer"
    return cells


def kept_storage(module: Module, b: Builder) -> list[Value]:
    """Pointers (made with `b`) to each cell where a chunk's tape keeps storage (`_cells`)."""
    arrays = [GlobalRef(name, PTR) for name in module.globals if name.startswith(CELLS)]
    return [b.gep(PTR, cells, const(I64, k)) for cells in arrays for k in range(KEPT + 1)]


def _ret(b: Builder, v: Value | None) -> None:
    b.insert(Instruction("ret", operands=[] if v is None else [v]))
