"""The tape: a growable LIFO stack of 8-byte slots shared by an augmented forward sweep and
its reverse sweep. Values are pushed in the forward sweep and popped in exactly the reverse
order, so calls, loops and branches need no bookkeeping beyond pushing.

Layout: `{ ptr data, i64 size, i64 capacity }` (bytes). The runtime is a few small IR
functions added to a module on first use: push (with a capacity check), reserve and push
into reserved room (loops that know their trip count), pop, and the storage's release —
freed, or kept in a per-derivative cell for the next call (take/keep), until dropped.
"""

from __future__ import annotations

from .ir import I1, I8, I64, PTR, VOID, Constant, Module, Type, Value
from .ir.builder import Builder
from .ir.types import size_in_bytes, struct

TAPE_TYPE = struct(PTR, I64, I64)
PUSH, POP, FREE = "enzpy.tape.push", "enzpy.tape.pop", "enzpy.tape.free"
TAKE, KEEP, DROP = "enzpy.tape.take", "enzpy.tape.keep", "enzpy.tape.drop"
RESERVE, PUSH_RESERVED = "enzpy.tape.reserve", "enzpy.tape.push.reserved"

_RUNTIME = f"""
declare ptr @realloc(ptr, i64)
declare ptr @calloc(i64, i64)
declare void @free(ptr)
declare void @abort()

define internal ptr @"{PUSH}"(ptr %tape) alwaysinline nounwind {{
entry:
  call void @"{RESERVE}"(ptr %tape, i64 8)
  %slot = call ptr @"{PUSH_RESERVED}"(ptr %tape)
  ret ptr %slot
}}

; make room for `bytes` more bytes: pushes into them need no check
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
  %twice = shl i64 %cap, 1
  %big = icmp ugt i64 %twice, %need
  %cap1 = select i1 %big, i64 %twice, i64 %need
  %small = icmp ult i64 %cap1, 4096
  %cap2 = select i1 %small, i64 4096, i64 %cap1
  %data.old = load ptr, ptr %tape, align 8
  %data.new = call ptr @realloc(ptr %data.old, i64 %cap2)
  %failed = icmp eq ptr %data.new, null
  br i1 %failed, label %oom, label %grown

oom:
  call void @abort()
  unreachable

grown:
  store ptr %data.new, ptr %tape, align 8
  store i64 %cap2, ptr %cap.p, align 8
  br label %ok

ok:
  ret void
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

"""


def ensure_runtime(module: Module) -> None:
    """Add the tape functions to `module` once."""
    module.define(_RUNTIME)


def storable(t: Type) -> bool:
    """Whether a value of type `t` fits one tape slot."""
    return t.kind in ("int", "float", "ptr") and size_in_bytes(t) <= 8


def push(b: Builder, tape: Value, v: Value, reserved: bool = False) -> None:
    """Push `v` (`reserved`: into room a `reserve` made, without a capacity check)."""
    slot = b.call(PUSH_RESERVED if reserved else PUSH, [tape], PTR, "slot")
    b.store(v, slot, 8)


def reserve(b: Builder, tape: Value, nbytes: Value) -> None:
    """Make room for `nbytes` more bytes on the tape."""
    b.call(RESERVE, [tape, nbytes], VOID)


def frame_slot(b: Builder, tape: Value, offset: Value, k: int) -> Value:
    """Address of slot `k` of a frame reserved at byte `offset` of the tape (the data
    pointer is read afresh: pushes may have moved it)."""
    data = b.load(PTR, tape, 8, "tape.data")
    at = b.binop("add", offset, Constant(I64, str(8 * k)), "frame.at")
    return b.gep(I8, data, at, hint="frame.slot")


def pop(b: Builder, tape: Value, t: Type, hint: str) -> Value:
    slot = b.call(POP, [tape], PTR, "slot")
    return b.load(t, slot, 8, hint)


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
