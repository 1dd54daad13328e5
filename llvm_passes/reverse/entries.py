"""The exported entry points of a reverse-mode derivative: `diffe_<f>` (combined: owns its
tape), `augment_<f>` / `reverse_<f>` / `release_<f>` (split: a caller-owned tape header),
`drop_tapes_<f>` (frees what the cells keep). Both modes keep a tape's storage in a cell
between calls: a derivative called again finds its room, without fresh pages to fault in.
Each takes the primal's arguments, then one shadow per active one (`width` in a row in batch
mode). With a `reverse_failed` function, the entries that run a reverse sweep return what it
returns for a failure the sweep reported on its tape (`tape.fail`). With `flush_denormals`
they run it with x86's MXCSR flushing subnormal floats to zero (FTZ and DAZ), restored after
(`reverse.reverse`)."""

from __future__ import annotations

from collections.abc import Sequence

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
from ..ir.values import const
from ..tape import (
    ARM,
    DROP,
    ESCAPE_AT,
    ESCAPE_TYPE,
    ESCAPED,
    FAILURE_AT,
    FORGET,
    FREE,
    KEEP,
    SETJMP,
    TAKE,
    TAPE_TYPE,
    UNWIND,
)
from .parallel import CELLS, kept_storage

#: MXCSR's flush-to-zero (bit 15) and denormals-are-zero (bit 6) bits
FTZ_DAZ = 0x8040


class Entries:
    """The exported entry points: the primal's arguments, then one shadow per active one."""

    def __init__(
        self,
        module: Module,
        fn: Function,
        pattern: Sequence[bool],
        tape_bytes: str | None,
        out_of_memory: str | None,
        width: int = 1,
        reverse_failed: str | None = None,
        flush_denormals: bool = False,
    ) -> None:
        self.module, self.fn, self.tape_bytes = module, fn, tape_bytes
        self.flush_denormals = flush_denormals
        self.out_of_memory, self.reverse_failed = out_of_memory, reverse_failed
        self.cells: list[GlobalRef] = []  # where the combined entries keep tape storage
        self.args = [Argument(a.type, a.name, a.attrs, a.index) for a in fn.args]
        lanes = [""] if width == 1 else [f".{lane}" for lane in range(width)]
        self.shadows = [
            Argument(PTR, f"{a.name}.shadow{lane}", "", 0)
            for a, p in zip(fn.args, pattern, strict=True)
            if p
            for lane in lanes
        ]
        # a float-returning (non-Numba) function takes the return's cotangents last
        self.dret = (
            [Argument(fn.ret_type, f"dret{lane}", "", 0) for lane in lanes]
            if fn.ret_type.is_float
            else []
        )

    def _begin(self, name: str, ret_type, extra: list[Argument]) -> Builder:
        params = [*self.args, *self.shadows, *extra]
        params = [Argument(a.type, a.name, a.attrs, k) for k, a in enumerate(params)]
        self.params = params
        entry = self.entry = Function(name, ret_type, params)
        entry.blocks.append(Block("entry"))
        self.module.add_function(entry)
        return Builder(self.module, Namer(entry), entry.blocks[0])

    def _branch(self, b: Builder, cond: Value, then: str, other: str) -> tuple[Block, Block]:
        """End the current block with `br cond`; the two new blocks."""
        blocks = Block(then), Block(other)
        self.entry.blocks.extend(blocks)
        b.insert(Instruction("br", operands=[cond], labels=[blk.name for blk in blocks]))
        return blocks

    def _cell(self, name: str) -> GlobalRef:
        """A global where an entry keeps storage between calls (freed by `drop_tapes`)."""
        cell = GlobalRef(name, PTR)
        self.module.globals[cell.name] = f"{cell.ref} = internal global ptr null"
        self.cells.append(cell)
        return cell

    def _forward_sweep(self, b: Builder, aug: str, tape: Value) -> Value:
        """Call the forward sweep. With an `out_of_memory` function, memory the sweep cannot
        have ends it: what it allocated is released and that function's result returned."""
        if self.out_of_memory is None:
            b.store(Constant(PTR, "null"), b.gep(I8, tape, const(I64, ESCAPE_AT)), 8)
        else:
            record = b.alloca(ESCAPE_TYPE, 16, "escape")
            log = self._cell(f"enzpy.tape.log.{self.entry.name}")
            b.call(ARM, [tape, record, log], VOID)
            jumped = b.icmp("ne", b.call(SETJMP, [record], I32, "jumped"), const(I32, 0))
            oom, sweep = self._branch(b, jumped, "out.of.memory", "sweep")
            b.position_at_end(oom)
            b.call(UNWIND, [tape, record], VOID)
            self._ret(
                b,
                b.call(
                    self.out_of_memory, self.params[: len(self.args)], self.fn.ret_type, "status"
                ),
            )
            b.position_at_end(sweep)
        r = b.call(
            aug,
            self.params[: len(self.args) + len(self.shadows)] + [tape],
            self.fn.ret_type,
            "primal",
        )
        if self.out_of_memory is not None:
            b.call(FORGET, [tape, log], VOID)
        if self.tape_bytes is not None:
            size = b.load(I64, b.gep(I64, tape, const(I64, 1)), 8, "tape.bytes")
            where = GlobalRef(self.tape_bytes, PTR)
            self.module.globals[where.name] = f"{where.ref} = external global i64"
            b.store(size, where, 8)
        return r

    def _ret(self, b: Builder, r: Value | None) -> None:
        b.insert(Instruction("ret", operands=[r] if r is not None else []))

    def combined(self, aug: str, rev: str, suffix: str = "") -> str:
        name = f"diffe_{self.fn.name}{suffix}"
        b = self._begin(name, self.fn.ret_type, self.dret)
        cell = self._cell(f"enzpy.tape.cell.{self.fn.name}{suffix}")
        tape = b.alloca(TAPE_TYPE, 8, "tape")
        b.call(TAKE, [tape, cell], VOID)
        n = len(self.args) + len(self.shadows)
        primal = self._forward_sweep(b, aug, tape)
        r = self._reverse_sweep(b, rev, tape, primal, self.params[n:])
        b.call(KEEP, [tape, cell], VOID)
        self._ret(b, r)
        return name

    def nested(self, aug: str, rev: str) -> str:
        """`diffe_<f>` with the interface of `combined` for a module built on the nestable
        runtime: its tape is on the stack and freed before it returns (nothing kept, no
        escape), so that an outer derivative can differentiate it."""
        name = f"diffe_{self.fn.name}"
        b = self._begin(name, self.fn.ret_type, self.dret)
        tape = b.alloca(TAPE_TYPE, 8, "tape")
        b.store(Builder.zero(TAPE_TYPE), tape, 8)
        n = len(self.args) + len(self.shadows)
        primal = b.call(aug, [*self.params[:n], tape], self.fn.ret_type, "primal")
        r = self._reverse_sweep(b, rev, tape, primal, self.params[n:])
        b.call(FREE, [tape], VOID)
        self._ret(b, r)
        return name

    def _reverse_sweep(
        self, b: Builder, rev: str, tape: Value, r: Value | None, drets: Sequence[Value] = ()
    ) -> Value | None:
        """Call the reverse sweep (the return's cotangents `drets`); `r`, or what
        `reverse_failed` returns for the failure the sweep reported (always, for `r` None)."""
        n = len(self.args) + len(self.shadows)
        where = b.gep(I8, tape, const(I64, FAILURE_AT))
        b.store(const(I64, 0), where, 8)
        if self.flush_denormals:
            control = b.alloca(I32, 4, "mxcsr")
            b.call("llvm.x86.sse.stmxcsr", [control], VOID)
            flushing = b.alloca(I32, 4, "mxcsr.flushing")
            bits = b.binop("or", b.load(I32, control, 4, "mxcsr"), const(I32, FTZ_DAZ))
            b.store(bits, flushing, 4)
            b.call("llvm.x86.sse.ldmxcsr", [flushing], VOID)
        b.call(rev, [*self.params[:n], tape, *drets], VOID)
        if self.flush_denormals:
            b.call("llvm.x86.sse.ldmxcsr", [control], VOID)
        if self.reverse_failed is None:
            return r
        failure = b.load(I64, where, 8, "failure")
        if r is None:
            return self._status(b, failure)
        failed = b.icmp("ne", failure, const(I64, 0))
        return b.select(failed, self._status(b, failure), r)

    def _status(self, b: Builder, failure: Value) -> Value:
        """What `reverse_failed` returns for `failure` (0: none)."""
        assert self.reverse_failed is not None
        args = [*self.params[: len(self.args)], failure]
        return b.call(self.reverse_failed, args, self.fn.ret_type, "status")

    def drop_tapes(self) -> str | None:
        """`i64 drop_tapes_<f>()`: free the storage the entries keep; its bytes."""
        if not self.cells and not any(g.startswith(CELLS) for g in self.module.globals):
            return None
        name = f"drop_tapes_{self.fn.name}"
        fn = Function(name, I64, [])
        fn.blocks.append(Block("entry"))
        self.module.add_function(fn)
        b = Builder(self.module, Namer(fn), fn.blocks[0])
        cells = [*self.cells, *kept_storage(self.module, b)]
        total: Value = const(I64, 0)
        for cell in cells:
            total = b.binop("add", total, b.call(DROP, [cell], I64, "bytes"), "total")
        self._ret(b, total)
        return name

    def augment(self, aug: str) -> str:
        """`augment_<f>`: the forward sweep onto the caller's tape header, on storage kept
        by an earlier split call if any (one storage is kept; tapes alive at once hold
        their own)."""
        name = f"augment_{self.fn.name}"
        b = self._begin(name, self.fn.ret_type, [Argument(PTR, "tape", "", 0)])
        self.split_cell = self._cell(f"enzpy.tape.cell.split.{self.fn.name}")
        b.call(TAKE, [self.params[-1], self.split_cell], VOID)
        self._ret(b, self._forward_sweep(b, aug, self.params[-1]))
        return name

    def finish(self, kind: str, sweep: str) -> str:
        """`reverse_<f>` / `release_<f>`: run `sweep` on the tape, then keep its storage for
        the next `augment` (after `augment`). With `reverse_failed`, `reverse_<f>` returns
        what it returns for the failure the sweep reported, or for none (0)."""
        name = f"{kind}_{self.fn.name}"
        status = kind == "reverse" and self.reverse_failed is not None
        dret = self.dret if kind == "reverse" else []
        b = self._begin(
            name, self.fn.ret_type if status else VOID, [Argument(PTR, "tape", "", 0), *dret]
        )
        n = len(self.args) + len(self.shadows)
        tape = self.params[n]
        escape = b.load(PTR, b.gep(I8, tape, const(I64, ESCAPE_AT)), 8, "escape")
        escaped = b.icmp("eq", escape, Constant(PTR, ESCAPED))  # nothing left to sweep
        done, run = self._branch(b, escaped, "escaped", "sweep")
        b.position_at_end(done)
        self._ret(b, self._status(b, const(I64, 0)) if status else None)
        b.position_at_end(run)
        r = None
        if kind == "reverse":
            r = self._reverse_sweep(b, sweep, tape, None, self.params[n + 1 :])
        else:
            b.call(sweep, self.params, VOID)
        b.call(KEEP, [tape, self.split_cell], VOID)
        self._ret(b, r)
        return name
