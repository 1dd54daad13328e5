"""The tape: a growable LIFO stack of 8-byte slots shared by an augmented forward sweep and
its reverse sweep. Values are pushed in the forward sweep and popped in exactly the reverse
order, so calls, loops and branches need no bookkeeping beyond pushing.

Layout: `{ ptr data, i64 size, i64 capacity, ptr escape, i64 failure }` (bytes). The
runtime is a few small IR functions added to a module on first use: push (with a capacity
check), reserve and push into reserved room (loops that know their trip count), pop, and the
storage's release — freed, or kept in a per-derivative cell for the next call (take/keep),
until dropped.

Memory that cannot be had during a forward sweep (the tape's own, or what the sweep
allocates for its reverse sweep) ends the sweep: `escape` frees the tape's storage and jumps
back (`longjmp`) to the entry that started the sweep, whose `escape` record (`ESCAPE_TYPE`:
a `jmp_buf`, then a log of what the sweep allocated and how to release it, whose storage is
kept between calls like the tape's) `unwind` releases. Without a record (`escape` null) the
process aborts.

A reverse sweep cannot stop, but a function rule's reverse (`rules.FunctionRule`) may fail:
it reports what its caller needs to raise the failure in `failure` (`fail`), which the entry
that ran the sweep reads afterwards (0: none). (Function rules are refused in parallel
chunks, whose tapes are their own.)

A derivative that is itself differentiated (nested differentiation) runs on the nestable
runtime instead (`ensure_runtime(nestable=True)`): the same functions over storage that never
moves, so that the outer derivative's shadows of the tape stay where their slots are.
"""

from __future__ import annotations

from . import scopes
from .ir import I1, I8, I64, PTR, VOID, Block, GlobalRef, Instruction, Module, Type, Value
from .ir.builder import Builder
from .ir.types import field_offset, size_in_bytes, struct
from .ir.values import const

TAPE_TYPE = struct(PTR, I64, I64, PTR, I64)
TAPE_BYTES = size_in_bytes(TAPE_TYPE)
PUSH, POP, FREE = "enzpy.tape.push", "enzpy.tape.pop", "enzpy.tape.free"
TAKE, KEEP, DROP = "enzpy.tape.take", "enzpy.tape.keep", "enzpy.tape.drop"
RESERVE, PUSH_RESERVED = "enzpy.tape.reserve", "enzpy.tape.push.reserved"
GROW = "enzpy.tape.grow"
ESCAPE, ARM, UNWIND, FORGET = (
    "enzpy.tape.escape",
    "enzpy.tape.arm",
    "enzpy.tape.unwind",
    "enzpy.tape.forget",
)
LOG, CALLOC, SAVED = "enzpy.tape.log", "enzpy.tape.calloc", "enzpy.tape.saved"
CHUNKS_ESCAPED = "enzpy.tape.chunks.escaped"
SETJMP = "_setjmp"
_JMP_BUF = 1024  # bytes kept for a jmp_buf (glibc: 200 on x86-64, 312 on aarch64)
# an escape record: jmp_buf, then the log { ptr entries, i64 size, i64 capacity }, whose
# entries are { ptr p, ptr release } (release(p) frees p)
ESCAPE_TYPE = Type("array", elems=(I64,), count=(_JMP_BUF + 24) // 8)
ESCAPE_AT = field_offset(TAPE_TYPE, 3)  # the escape field: its forward sweep's record, if any
ESCAPED = "inttoptr (i64 -1 to ptr)"  # the escape field of a tape whose sweep escaped
FAILURE_AT = field_offset(TAPE_TYPE, 4)  # the failure field: what its reverse sweep reported

# pushing, the same in both runtimes (`reserve` makes the room; `grow`, out of line, each
# runtime's own)
_PUSHES = f"""
define internal void @"{RESERVE}"(ptr %tape, i64 %bytes) alwaysinline nounwind {{
entry:
  %size.p = getelementptr inbounds i8, ptr %tape, i64 8
  %cap.p = getelementptr inbounds i8, ptr %tape, i64 16
  %size = load i64, ptr %size.p, align 8
  %cap = load i64, ptr %cap.p, align 8
  %need = add i64 %size, %bytes
  %full = icmp ugt i64 %need, %cap
  br i1 %full, label %grow, label %ok

grow:
  call void @"{GROW}"(ptr %tape, i64 %bytes)
  br label %ok

ok:
  ret void
}}

define internal ptr @"{PUSH}"(ptr %tape) alwaysinline nounwind {{
entry:
  call void @"{RESERVE}"(ptr %tape, i64 8)
  %slot = call ptr @"{PUSH_RESERVED}"(ptr %tape)
  ret ptr %slot
}}

define internal ptr @"{PUSH_RESERVED}"(ptr %tape) alwaysinline nounwind {{
entry:
  %size.p = getelementptr inbounds i8, ptr %tape, i64 8
  %size = load i64, ptr %size.p, align 8
  %new = add i64 %size, 8
  store i64 %new, ptr %size.p, align 8
  %data = load ptr, ptr %tape, align 8
  %slot = getelementptr inbounds i8, ptr %data, i64 %size
  ret ptr %slot
}}
"""

_RUNTIME = f"""
declare ptr @realloc(ptr, i64)
declare ptr @calloc(i64, i64)
declare void @free(ptr)
declare void @abort()
declare i32 @_setjmp(ptr) returns_twice
declare void @_longjmp(ptr, i32) noreturn

; room for `bytes` more bytes than the tape has: pushes into them need no check
define internal void @"{GROW}"(ptr %tape, i64 %bytes) noinline nounwind cold {{
entry:
  %size.p = getelementptr inbounds i8, ptr %tape, i64 8
  %cap.p = getelementptr inbounds i8, ptr %tape, i64 16
  %size = load i64, ptr %size.p, align 8
  %cap = load i64, ptr %cap.p, align 8
  %need = add i64 %size, %bytes
  %twice = shl i64 %cap, 1
  %big = icmp ugt i64 %twice, %need
  %cap1 = select i1 %big, i64 %twice, i64 %need
  %small = icmp ult i64 %cap1, 4096
  %cap2 = select i1 %small, i64 4096, i64 %cap1
  %data.old = load ptr, ptr %tape, align 8
  %data.new = call ptr @realloc(ptr %data.old, i64 %cap2)
  %failed = icmp eq ptr %data.new, null
  br i1 %failed, label %exact, label %grown

exact:                                   ; no room to double: just what is needed
  %data.exact = call ptr @realloc(ptr %data.old, i64 %need)
  %none = icmp eq ptr %data.exact, null
  br i1 %none, label %oom, label %grown

oom:
  call void @"{ESCAPE}"(ptr %tape)
  unreachable

grown:
  %data = phi ptr [ %data.new, %entry ], [ %data.exact, %exact ]
  %cap3 = phi i64 [ %cap2, %entry ], [ %need, %exact ]
  store ptr %data, ptr %tape, align 8
  store i64 %cap3, ptr %cap.p, align 8
  ret void
}}


define internal ptr @"{POP}"(ptr %tape) alwaysinline nounwind {{
entry:
  %size.p = getelementptr inbounds i8, ptr %tape, i64 8
  %size = load i64, ptr %size.p, align 8
  %new = sub i64 %size, 8
  store i64 %new, ptr %size.p, align 8
  %data = load ptr, ptr %tape, align 8
  %slot = getelementptr inbounds i8, ptr %data, i64 %new
  ret ptr %slot
}}

define internal void @"{FREE}"(ptr %tape) alwaysinline nounwind {{
entry:
  %data = load ptr, ptr %tape, align 8
  call void @free(ptr %data)
  ret void
}}

; an empty tape on the storage that `cell` holds (its capacity in its first slot), if any
define internal void @"{TAKE}"(ptr %tape, ptr %cell) alwaysinline nounwind {{
entry:
  %data = atomicrmw xchg ptr %cell, ptr null acq_rel
  %none = icmp eq ptr %data, null
  br i1 %none, label %fresh, label %reuse

fresh:
  store {{ ptr, i64, i64 }} zeroinitializer, ptr %tape, align 8
  ret void

reuse:
  %cap = load i64, ptr %data, align 8
  %size.p = getelementptr inbounds i8, ptr %tape, i64 8
  %cap.p = getelementptr inbounds i8, ptr %tape, i64 16
  store ptr %data, ptr %tape, align 8
  store i64 0, ptr %size.p, align 8
  store i64 %cap, ptr %cap.p, align 8
  ret void
}}

; leave the tape's storage in `cell` for the next call (freeing what was there)
define internal void @"{KEEP}"(ptr %tape, ptr %cell) alwaysinline nounwind {{
entry:
  %data = load ptr, ptr %tape, align 8
  %none = icmp eq ptr %data, null
  br i1 %none, label %done, label %keep

keep:
  %cap.p = getelementptr inbounds i8, ptr %tape, i64 16
  %cap = load i64, ptr %cap.p, align 8
  store i64 %cap, ptr %data, align 8
  %old = atomicrmw xchg ptr %cell, ptr %data acq_rel
  call void @free(ptr %old)
  br label %done

done:
  ret void
}}

; free the storage `cell` holds, if any, and say how many bytes (a call running meanwhile
; holds its own storage: it finds the cell empty, or leaves its storage there afterwards)
define internal i64 @"{DROP}"(ptr %cell) alwaysinline nounwind {{
entry:
  %data = atomicrmw xchg ptr %cell, ptr null acq_rel
  %none = icmp eq ptr %data, null
  br i1 %none, label %done, label %drop

drop:
  %cap = load i64, ptr %data, align 8
  call void @free(ptr %data)
  br label %done

done:
  %bytes = phi i64 [ 0, %entry ], [ %cap, %drop ]
  ret i64 %bytes
}}


; no memory: free the tape's storage and leave the forward sweep for the entry that armed
; the escape record (abort if none did)
define internal void @"{ESCAPE}"(ptr %tape) noinline noreturn nounwind cold {{
entry:
  %record.p = getelementptr inbounds i8, ptr %tape, i64 {ESCAPE_AT}
  %record = load ptr, ptr %record.p, align 8
  %armed = icmp ne ptr %record, null
  br i1 %armed, label %jump, label %abort

jump:
  %data = load ptr, ptr %tape, align 8
  call void @free(ptr %data)
  call void @_longjmp(ptr %record, i32 1)
  unreachable

abort:
  call void @abort()
  unreachable
}}

; a forward sweep starts: escapes go to `record`, which the caller sets with setjmp; its log
; (a stack like the tape) is on the storage `cell` keeps, if any
define internal void @"{ARM}"(ptr %tape, ptr %record, ptr %cell) alwaysinline nounwind {{
entry:
  %log = getelementptr inbounds i8, ptr %record, i64 {_JMP_BUF}
  call void @"{TAKE}"(ptr %log, ptr %cell)
  %record.p = getelementptr inbounds i8, ptr %tape, i64 {ESCAPE_AT}
  store ptr %record, ptr %record.p, align 8
  ret void
}}

; the forward sweep ended: its log's storage goes back to `cell` (the reverse sweep releases
; what the log held)
define internal void @"{FORGET}"(ptr %tape, ptr %cell) alwaysinline nounwind {{
entry:
  %record.p = getelementptr inbounds i8, ptr %tape, i64 {ESCAPE_AT}
  %record = load ptr, ptr %record.p, align 8
  %log = getelementptr inbounds i8, ptr %record, i64 {_JMP_BUF}
  call void @"{KEEP}"(ptr %log, ptr %cell)
  store ptr null, ptr %record.p, align 8
  ret void
}}

; the forward sweep escaped: release what the log holds, newest first; the tape is left
; empty and marked (its storage is freed: its sweeps have nothing to do)
define internal void @"{UNWIND}"(ptr %tape, ptr %record) nounwind {{
entry:
  %log.p = getelementptr inbounds i8, ptr %record, i64 {_JMP_BUF}
  %size.p = getelementptr inbounds i8, ptr %record, i64 {_JMP_BUF + 8}
  %log = load ptr, ptr %log.p, align 8
  %size = load i64, ptr %size.p, align 8
  br label %next

next:
  %at = phi i64 [ %size, %entry ], [ %at1, %release ]
  %done = icmp eq i64 %at, 0
  br i1 %done, label %out, label %release

release:
  %at1 = sub i64 %at, 16
  %p.p = getelementptr inbounds i8, ptr %log, i64 %at1
  %f.p = getelementptr inbounds i8, ptr %p.p, i64 8
  %p = load ptr, ptr %p.p, align 8
  %f = load ptr, ptr %f.p, align 8
  call void %f(ptr %p)
  br label %next

out:
  call void @free(ptr %log)
  store {{ ptr, i64, i64, ptr }} {{ ptr null, i64 0, i64 0, ptr {ESCAPED} }}, ptr %tape, align 8
  ret void
}}

; `p`, which `release` frees, is released if the forward sweep escapes: the log's entries
; are {{ ptr p, ptr release }}
define internal void @"{LOG}"(ptr %tape, ptr %p, ptr %release) alwaysinline nounwind {{
entry:
  %record.p = getelementptr inbounds i8, ptr %tape, i64 {ESCAPE_AT}
  %record = load ptr, ptr %record.p, align 8
  %armed = icmp ne ptr %record, null
  br i1 %armed, label %armed.log, label %done

armed.log:
  %log.p = getelementptr inbounds i8, ptr %record, i64 {_JMP_BUF}
  %size.p = getelementptr inbounds i8, ptr %record, i64 {_JMP_BUF + 8}
  %cap.p = getelementptr inbounds i8, ptr %record, i64 {_JMP_BUF + 16}
  %log.0 = load ptr, ptr %log.p, align 8
  %size = load i64, ptr %size.p, align 8
  %cap = load i64, ptr %cap.p, align 8
  %size1 = add i64 %size, 16
  %full = icmp ugt i64 %size1, %cap
  br i1 %full, label %grow, label %append

grow:
  %twice = shl i64 %cap, 1
  %small = icmp ult i64 %twice, 1024
  %cap1 = select i1 %small, i64 1024, i64 %twice
  %log.1 = call ptr @realloc(ptr %log.0, i64 %cap1)
  %failed = icmp eq ptr %log.1, null
  br i1 %failed, label %oom, label %grown

oom:
  call void %release(ptr %p)
  call void @"{ESCAPE}"(ptr %tape)
  unreachable

grown:
  store ptr %log.1, ptr %log.p, align 8
  store i64 %cap1, ptr %cap.p, align 8
  br label %append

append:
  %log = phi ptr [ %log.0, %armed.log ], [ %log.1, %grown ]
  %p.p = getelementptr inbounds i8, ptr %log, i64 %size
  %f.p = getelementptr inbounds i8, ptr %p.p, i64 8
  store ptr %p, ptr %p.p, align 8
  store ptr %release, ptr %f.p, align 8
  store i64 %size1, ptr %size.p, align 8
  br label %done

done:
  ret void
}}

; after the forward sweeps of a parallel call's `n` chunks, each on its own tape (`tapes`,
; their headers in a row): if one escaped (no memory), free the others' storage and escape
; this forward sweep too
define internal void @"{CHUNKS_ESCAPED}"(ptr %tape, ptr %tapes, i64 %n) nounwind {{
entry:
  br label %scan

scan:
  %c = phi i64 [ 0, %entry ], [ %c1, %look ]
  %more = icmp slt i64 %c, %n
  br i1 %more, label %look, label %none

look:
  %at = mul i64 %c, {TAPE_BYTES}
  %escape.p = getelementptr inbounds i8, ptr %tapes, i64 %at
  %escape.q = getelementptr inbounds i8, ptr %escape.p, i64 {ESCAPE_AT}
  %escape = load ptr, ptr %escape.q, align 8
  %c1 = add i64 %c, 1
  %escaped = icmp eq ptr %escape, {ESCAPED}
  br i1 %escaped, label %release, label %scan

release:
  %k = phi i64 [ 0, %look ], [ %k1, %free ]
  %left = icmp slt i64 %k, %n
  br i1 %left, label %free, label %out

free:
  %at.k = mul i64 %k, {TAPE_BYTES}
  %chunk = getelementptr inbounds i8, ptr %tapes, i64 %at.k
  %data = load ptr, ptr %chunk, align 8
  call void @free(ptr %data)
  %k1 = add i64 %k, 1
  br label %release

out:
  call void @"{ESCAPE}"(ptr %tape)
  unreachable

none:
  ret void
}}

; memory the forward sweep saved for its reverse sweep (malloc'ed; null: none could be had)
define internal void @"{SAVED}"(ptr %tape, ptr %p) nounwind {{
entry:
  %none = icmp eq ptr %p, null
  br i1 %none, label %oom, label %ok

oom:
  call void @"{ESCAPE}"(ptr %tape)
  unreachable

ok:
  call void @"{LOG}"(ptr %tape, ptr %p, ptr @free)
  ret void
}}

; zeroed heap memory for the forward sweep, freed by the reverse sweep
define internal ptr @"{CALLOC}"(ptr %tape, i64 %size) nounwind {{
entry:
  %p = call ptr @calloc(i64 1, i64 %size)
  call void @"{SAVED}"(ptr %tape, ptr %p)
  ret ptr %p
}}
"""

# The nestable runtime: the same functions for a derivative that is itself differentiated
# (nested differentiation links its IR into the outer function). Its storage never moves:
# a chain of `malloc`ed chunks, each starting with { ptr previous chunk, i64 size there when
# it was left } (16 bytes), all freed at the end (the escape field holds the newest); no
# cell, no escape record (out of memory aborts). An outer derivative differentiates these
# loads, stores, mallocs and frees like any others.
_NESTABLE_RUNTIME = f"""
declare ptr @malloc(i64)
declare void @free(ptr)
declare void @abort()
declare void @llvm.memset.p0.i64(ptr, i8, i64, i1)

; a new chunk with room for `bytes` more bytes (inlined, as the derivatives that differentiate
; this runtime see it)
define internal void @"{GROW}"(ptr %tape, i64 %bytes) alwaysinline nounwind {{
entry:
  %size.p = getelementptr inbounds i8, ptr %tape, i64 8
  %cap.p = getelementptr inbounds i8, ptr %tape, i64 16
  %size = load i64, ptr %size.p, align 8
  %cap = load i64, ptr %cap.p, align 8
  %room = add i64 %bytes, 16
  %twice = shl i64 %cap, 1
  %big = icmp ugt i64 %twice, %room
  %cap1 = select i1 %big, i64 %twice, i64 %room
  %small = icmp ult i64 %cap1, 4096
  %cap2 = select i1 %small, i64 4096, i64 %cap1
  %new = call ptr @malloc(i64 %cap2)
  %failed = icmp eq ptr %new, null
  br i1 %failed, label %oom, label %link

oom:
  call void @abort()
  unreachable

link:
  %data = load ptr, ptr %tape, align 8
  %left.p = getelementptr inbounds i8, ptr %new, i64 8
  %newest.p = getelementptr inbounds i8, ptr %tape, i64 {ESCAPE_AT}
  store ptr %data, ptr %new, align 8
  store i64 %size, ptr %left.p, align 8
  store ptr %new, ptr %tape, align 8
  store i64 16, ptr %size.p, align 8
  store i64 %cap2, ptr %cap.p, align 8
  store ptr %new, ptr %newest.p, align 8
  ret void
}}


; (pops follow all pushes: a chunk emptied is not used again)
define internal ptr @"{POP}"(ptr %tape) alwaysinline nounwind {{
entry:
  %size.p = getelementptr inbounds i8, ptr %tape, i64 8
  br label %check

check:
  %size = load i64, ptr %size.p, align 8
  %empty = icmp eq i64 %size, 16
  br i1 %empty, label %back, label %take

back:
  %data.old = load ptr, ptr %tape, align 8
  %prev = load ptr, ptr %data.old, align 8
  %left.p = getelementptr inbounds i8, ptr %data.old, i64 8
  %left = load i64, ptr %left.p, align 8
  store ptr %prev, ptr %tape, align 8
  store i64 %left, ptr %size.p, align 8
  br label %check

take:
  %new = sub i64 %size, 8
  store i64 %new, ptr %size.p, align 8
  %data = load ptr, ptr %tape, align 8
  %slot = getelementptr inbounds i8, ptr %data, i64 %new
  ret ptr %slot
}}

define internal void @"{FREE}"(ptr %tape) alwaysinline nounwind {{
entry:
  %newest.p = getelementptr inbounds i8, ptr %tape, i64 {ESCAPE_AT}
  %newest = load ptr, ptr %newest.p, align 8
  br label %next

next:
  %chunk = phi ptr [ %newest, %entry ], [ %prev, %release ]
  %none = icmp eq ptr %chunk, null
  br i1 %none, label %done, label %release

release:
  %prev = load ptr, ptr %chunk, align 8
  call void @free(ptr %chunk)
  br label %next

done:
  ret void
}}

define internal void @"{ESCAPE}"(ptr %tape) alwaysinline noreturn nounwind {{
entry:
  call void @abort()
  unreachable
}}

define internal void @"{LOG}"(ptr %tape, ptr %p, ptr %release) alwaysinline nounwind {{
entry:
  ret void
}}

define internal void @"{SAVED}"(ptr %tape, ptr %p) alwaysinline nounwind {{
entry:
  %none = icmp eq ptr %p, null
  br i1 %none, label %oom, label %ok

oom:
  call void @abort()
  unreachable

ok:
  ret void
}}

define internal void @"{CHUNKS_ESCAPED}"(ptr %tape, ptr %tapes, i64 %n) alwaysinline nounwind {{
entry:
  ret void
}}

define internal ptr @"{CALLOC}"(ptr %tape, i64 %size) alwaysinline nounwind {{
entry:
  %p = call ptr @malloc(i64 %size)
  call void @"{SAVED}"(ptr %tape, ptr %p)
  call void @llvm.memset.p0.i64(ptr %p, i8 0, i64 %size, i1 false)
  ret ptr %p
}}
"""


def ensure_runtime(module: Module, nestable: bool = False) -> None:
    """Add the tape functions (`nestable`: the nestable runtime's) to `module` once."""
    module.define((_NESTABLE_RUNTIME if nestable else _RUNTIME) + _PUSHES)


def storable(t: Type) -> bool:
    """Whether a value of type `t` fits one tape slot."""
    return t.kind in ("int", "float", "ptr") and size_in_bytes(t) <= 8


def push(b: Builder, tape: Value, v: Value, reserved: bool = False) -> None:
    """Push `v` (`reserved`: into room a `reserve` made, without a capacity check)."""
    slot = b.call(PUSH_RESERVED if reserved else PUSH, [tape], PTR, "slot")
    scopes.mark(b.module, b.store(v, slot, 8), scopes.TAPE)


_KEEPS_SIZE = (LOG, CALLOC, SAVED)  # calls given the tape that leave its stack as it is


def coalesce(block: Block, tape: Value) -> None:
    """One capacity check for each run of checked pushes in `block` that nothing else
    changing `tape` (a call given the tape, a reservation, a sync) interrupts: the run's
    first push reserves room for all of them, and none checks."""
    run: list[Instruction] = []
    out: list[Instruction] = []
    start = 0  # where the run's room is made
    for inst in [*block.instructions, None]:
        name = inst.callee_name if inst is not None and inst.opcode == "call" else ""
        if name == PUSH:
            start = start if run else len(out)
            run.append(inst)  # type: ignore[arg-type]
        elif inst is None or (tape in inst.operands and name not in _KEEPS_SIZE):
            if len(run) > 1:
                room = Instruction(
                    "call",
                    VOID,
                    [tape, const(I64, 8 * len(run))],
                    callee=GlobalRef(RESERVE, PTR),
                    loc=run[0].loc,
                )
                room.block = block
                out.insert(start, room)
                for push_ in run:
                    push_.callee = GlobalRef(PUSH_RESERVED, PTR)
            run = []
        if inst is not None:
            out.append(inst)
    block.instructions = out


def reserve(b: Builder, tape: Value, nbytes: Value) -> None:
    """Make room for `nbytes` more bytes on the tape."""
    b.call(RESERVE, [tape, nbytes], VOID)


def take_room(b: Builder, tape: Value, nbytes: Value) -> Value:
    """The address of `nbytes` of room a `reserve` made, taken at once: values are stored
    into it by their place, not pushed."""
    return _move(b, tape, nbytes, "add")


def give_back(b: Builder, tape: Value, nbytes: Value) -> Value:
    """The address of the last `nbytes` on the tape (a `take_room`'s), given back: the
    values in it are loaded by their place, not popped (nothing is pushed meanwhile)."""
    return _move(b, tape, nbytes, "sub")


def place(b: Builder, room: Value, iteration: Value, trips: Value, k: int) -> Value:
    """The address of value `k` of loop iteration `iteration` (counted from 0) in the room
    a `take_room` gave for `trips` iterations: value `k` of every iteration, then value
    `k + 1`, ... (a loop's sweeps, vectorized, read and write each in one stride)."""
    column = b.binop("mul", trips, const(I64, k), "place")
    return b.gep(I64, room, b.binop("add", column, iteration, "place"), hint="place")


def _move(b: Builder, tape: Value, nbytes: Value, op: str) -> Value:
    """The tape's size moved by `nbytes` (`op`); the room's address."""
    size_p = b.gep(I8, tape, const(I64, 8))
    size = b.load(I64, size_p, 8, "tape.size")
    moved = b.binop(op, size, nbytes, "tape.size")
    b.store(moved, size_p, 8)
    data = b.load(PTR, tape, 8, "tape.data")
    return b.gep(I8, data, size if op == "add" else moved, hint="tape.room")


def fail(b: Builder, tape: Value, failure: Value) -> None:
    """Report `failure` (a non-null pointer) on the tape: its reverse sweep failed. (Kept as
    an integer: a derivative differentiated again has no derivative to give it.)"""
    b.store(b.cast("ptrtoint", failure, I64), b.gep(I8, tape, const(I64, FAILURE_AT)), 8)


def pop(b: Builder, tape: Value, t: Type, hint: str) -> Value:
    slot = b.call(POP, [tape], PTR, "slot")
    return scopes.mark(b.module, b.load(t, slot, 8, hint), scopes.TAPE)


__all__ = ["I1", "TAPE_TYPE", "ensure_runtime", "pop", "push", "storable"]


def localize(b: Builder, tape: Value) -> Value:
    """A copy of the tape's header in a local variable, for a function's own pushes and pops:
    LLVM keeps it in registers (the shared header in memory may alias any store). Write it
    back with `sync` before calling a function that uses the tape, and before returning."""
    local = b.alloca(TAPE_TYPE, 8, "tape.local")
    b.store(b.load(TAPE_TYPE, tape, 8, "tape.header"), local, 8)
    return local


def sync(b: Builder, src: Value, dst: Value) -> None:
    """Copy the tape header from `src` to `dst` (local <-> shared)."""
    b.store(b.load(TAPE_TYPE, src, 8, "tape.header"), dst, 8)
