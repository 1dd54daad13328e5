"""Large blocks a derivative allocates, kept for the next call instead of given back to the
system.

A reverse derivative keeps the primal's temporaries and their shadows alive until its
reverse sweep; for NumPy-style code (`x - mu[k]`, `np.dot` of all points at once) that is
many blocks above glibc's mmap and trim thresholds, which return to the system at the end of
each call and come back as fresh pages, zero-filled by the kernel on first touch, in the
next (a gmm gradient at d=64, K=50: 30 000 page faults per call, a third of its time).

Derivatives allocate Numba arrays through `ALLOCATOR` instead of `NRT_MemInfo_alloc_aligned`
(`link` renames the declaration in their modules): blocks of at least `LARGE` bytes come
from Numba's external-allocator interface (`NRT_MemInfo_alloc_external`) with this module's
allocator, whose `free` keeps a block in one of `SLOTS` slots and whose `malloc` hands back
a kept block of exactly the size asked for (each slot has a hint of its block's size, so
that a slot of another size costs one load); smaller ones, and alignments above 64, are
Numba's as before. The blocks kept add up to at most `CAP` bytes: to keep one more, the
blocks of the next slots in turn are given back to the system, and when every slot is full,
the next slot's block is replaced, so the pool follows what the process allocates lately.
The slots are taken and filled by atomic exchange and compare-and-swap: derivatives running
on several threads, and arrays freed by the garbage collector, share them. A block is
`[requested size][the address malloc gave][the caller's bytes]`, the caller's bytes placed
so that Numba's data, which follows its 48-byte `MemInfo` (Numba 0.68's layout; another
would change the alignment only), is 64-aligned.

The module is compiled once per process, or loaded with the disk cache's derivatives
(`disk_cache`); its symbols are the process's, so machine code loaded from the disk cache
finds them (`ensure` runs before derivatives are built or loaded).
"""

from __future__ import annotations

import ctypes
from typing import Any

import llvmlite.binding as llvm
from numba.core.compiler_lock import global_compiler_lock
from numba.core.registry import cpu_target
from numba.core.runtime import _nrt_python  # type: ignore[attr-defined]

ALLOCATOR = "enzpy_pool_meminfo"  # (i64 size, i32 align) -> meminfo, as NRT_MemInfo_alloc_aligned
REPLACED = "NRT_MemInfo_alloc_aligned"
LARGE = 1 << 16  # bytes: smaller blocks are glibc's (its bins reuse them)
SLOTS = 512
CAP = 1 << 28  # bytes kept at most
_HEADER = 16  # a block's size, then the address malloc gave
_MEMINFO = 48  # bytes of Numba's MemInfo, which precedes its data in a block
_ALLOC_EXTERNAL = "enzpy_nrt_alloc_external"  # NRT_MemInfo_alloc_external's address

_IR = f"""
@slots = internal global [{SLOTS} x ptr] zeroinitializer
@hints = internal global [{SLOTS} x i64] zeroinitializer  ; each slot's block size, a hint
@kept = internal global i64 0  ; bytes in the slots' blocks
@turn = internal global i64 0  ; the next slot to give up a block
@allocator = internal global {{ ptr, ptr, ptr, ptr }}
  {{ ptr @pool.malloc, ptr @pool.realloc, ptr @pool.free, ptr null }}

declare ptr @malloc(i64)
declare void @free(ptr)
declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)
declare ptr @{_ALLOC_EXTERNAL}(i64, ptr)
declare ptr @{REPLACED}(i64, i32)

; free every kept block
define void @enzpy_pool_release() {{
entry:
  br label %scan

scan:
  %i = phi i64 [ 0, %entry ], [ %i.next, %next ]
  %slot = getelementptr inbounds [{SLOTS} x ptr], ptr @slots, i64 0, i64 %i
  %block = atomicrmw xchg ptr %slot, ptr null acq_rel, align 8
  %some = icmp ne ptr %block, null
  br i1 %some, label %free, label %next

free:
  call void @pool.discard(ptr %block)
  br label %next

next:
  %i.next = add i64 %i, 1
  %more = icmp ult i64 %i.next, {SLOTS}
  br i1 %more, label %scan, label %done

done:
  ret void
}}

; a block taken from the slots (or null), no longer kept
define internal void @pool.discard(ptr %block) {{
entry:
  %none = icmp eq ptr %block, null
  br i1 %none, label %done, label %free

free:
  %bytes = load i64, ptr %block, align 8
  %0 = atomicrmw sub ptr @kept, i64 %bytes monotonic, align 8
  call void @pool.give_back(ptr %block)
  br label %done

done:
  ret void
}}

define ptr @enzpy_pool_allocator() {{
  ret ptr @allocator
}}

define i64 @enzpy_pool_kept() {{
  %n = load atomic i64, ptr @kept monotonic, align 8
  ret i64 %n
}}

define ptr @{ALLOCATOR}(i64 %size, i32 %align) {{
entry:
  %large = icmp uge i64 %size, {LARGE}
  %aligned = icmp ule i32 %align, 64
  %pooled = and i1 %large, %aligned
  br i1 %pooled, label %pool, label %numba

pool:
  %mi = call ptr @{_ALLOC_EXTERNAL}(i64 %size, ptr @allocator)
  ret ptr %mi

numba:
  %mi.1 = call ptr @{REPLACED}(i64 %size, i32 %align)
  ret ptr %mi.1
}}

; a kept block of exactly `size` bytes, else a new one; null when none can be had. A slot
; whose size hint differs is passed by with one load; the block taken is checked again.
define internal ptr @pool.malloc(i64 %size, ptr %opaque) {{
entry:
  %large = icmp uge i64 %size, {LARGE}
  br i1 %large, label %scan, label %fresh

scan:
  %i = phi i64 [ 0, %entry ], [ %i.next, %next ]
  %hint.p = getelementptr inbounds [{SLOTS} x i64], ptr @hints, i64 0, i64 %i
  %hint = load atomic i64, ptr %hint.p monotonic, align 8
  %same = icmp eq i64 %hint, %size
  br i1 %same, label %look, label %next

look:
  %slot = getelementptr inbounds [{SLOTS} x ptr], ptr @slots, i64 0, i64 %i
  %seen = load atomic ptr, ptr %slot monotonic, align 8
  %some = icmp ne ptr %seen, null
  br i1 %some, label %take, label %next

take:
  %block = atomicrmw xchg ptr %slot, ptr null acq_rel, align 8
  %got = icmp ne ptr %block, null
  br i1 %got, label %check, label %next

check:
  %bytes = load i64, ptr %block, align 8
  %fits = icmp eq i64 %bytes, %size
  br i1 %fits, label %reuse, label %back

reuse:
  %0 = atomicrmw sub ptr @kept, i64 %bytes monotonic, align 8
  %out.kept = getelementptr inbounds i8, ptr %block, i64 {_HEADER}
  ret ptr %out.kept

back:
  call void @pool.keep(ptr %block, i64 %bytes)
  br label %next

next:
  %i.next = add i64 %i, 1
  %more = icmp ult i64 %i.next, {SLOTS}
  br i1 %more, label %scan, label %fresh

fresh:
  %total = add i64 %size, {_HEADER + _MEMINFO + 64}
  %raw = call ptr @malloc(i64 %total)
  %none = icmp eq ptr %raw, null
  br i1 %none, label %fail, label %made

fail:
  ret ptr null

made:  ; the caller's bytes at an address 48 bytes before a multiple of 64
  %at = ptrtoint ptr %raw to i64
  %up = add i64 %at, {_HEADER + _MEMINFO + 63}
  %line = and i64 %up, -64
  %from = sub i64 %line, %at
  %start = sub i64 %from, {_MEMINFO}
  %out = getelementptr inbounds i8, ptr %raw, i64 %start
  %new = getelementptr inbounds i8, ptr %out, i64 -{_HEADER}
  store i64 %size, ptr %new, align 8
  %raw.p = getelementptr inbounds i8, ptr %new, i64 8
  store ptr %raw, ptr %raw.p, align 8
  ret ptr %out
}}

define internal void @pool.free(ptr %p, ptr %opaque) {{
entry:
  %block = getelementptr inbounds i8, ptr %p, i64 -{_HEADER}
  %bytes = load i64, ptr %block, align 8
  %large = icmp uge i64 %bytes, {LARGE}
  %fits = icmp ule i64 %bytes, {CAP}
  %kept.one = and i1 %large, %fits
  br i1 %kept.one, label %keep, label %release

keep:
  %before = atomicrmw add ptr @kept, i64 %bytes monotonic, align 8
  call void @pool.keep(ptr %block, i64 %bytes)
  ret void

release:
  call void @pool.give_back(ptr %block)
  ret void
}}

; give a block's memory back to the system
define internal void @pool.give_back(ptr %block) {{
  %raw.p = getelementptr inbounds i8, ptr %block, i64 8
  %raw = load ptr, ptr %raw.p, align 8
  call void @free(ptr %raw)
  ret void
}}

; put a block (counted in `kept`) in a slot: first making room under the cap by dropping the
; blocks of the next slots in turn, then in an empty slot, else in the next slot in turn
; (whose block is dropped): the pool follows what the process allocates lately
define internal void @pool.keep(ptr %block, i64 %bytes) {{
entry:
  br label %room

room:
  %k = phi i64 [ 0, %entry ], [ %k.next, %evict ]
  %now = load atomic i64, ptr @kept monotonic, align 8
  %over = icmp ugt i64 %now, {CAP}
  br i1 %over, label %evict.try, label %scan

evict.try:
  %tried = icmp uge i64 %k, {SLOTS}
  br i1 %tried, label %drop, label %evict

evict:
  %turn = atomicrmw add ptr @turn, i64 1 monotonic, align 8
  %v = urem i64 %turn, {SLOTS}
  %victim.p = getelementptr inbounds [{SLOTS} x ptr], ptr @slots, i64 0, i64 %v
  %victim = atomicrmw xchg ptr %victim.p, ptr null acq_rel, align 8
  call void @pool.discard(ptr %victim)
  %k.next = add i64 %k, 1
  br label %room

drop:
  call void @pool.discard(ptr %block)
  ret void

scan:
  %i = phi i64 [ 0, %room ], [ %i.next, %next ]
  %slot = getelementptr inbounds [{SLOTS} x ptr], ptr @slots, i64 0, i64 %i
  %seen = load atomic ptr, ptr %slot monotonic, align 8
  %empty = icmp eq ptr %seen, null
  br i1 %empty, label %put, label %next

put:
  %pair = cmpxchg ptr %slot, ptr null, ptr %block acq_rel monotonic, align 8
  %done = extractvalue {{ ptr, i1 }} %pair, 1
  br i1 %done, label %hinted, label %next

hinted:
  %hint.p = getelementptr inbounds [{SLOTS} x i64], ptr @hints, i64 0, i64 %i
  store atomic i64 %bytes, ptr %hint.p monotonic, align 8
  ret void

next:
  %i.next = add i64 %i, 1
  %more = icmp ult i64 %i.next, {SLOTS}
  br i1 %more, label %scan, label %replace

replace:
  %turn.1 = atomicrmw add ptr @turn, i64 1 monotonic, align 8
  %w = urem i64 %turn.1, {SLOTS}
  %old.p = getelementptr inbounds [{SLOTS} x ptr], ptr @slots, i64 0, i64 %w
  %old = atomicrmw xchg ptr %old.p, ptr %block acq_rel, align 8
  %hint.w = getelementptr inbounds [{SLOTS} x i64], ptr @hints, i64 0, i64 %w
  store atomic i64 %bytes, ptr %hint.w monotonic, align 8
  call void @pool.discard(ptr %old)
  ret void
}}

define internal ptr @pool.realloc(ptr %p, i64 %size, ptr %opaque) {{
entry:
  %new = call ptr @pool.malloc(i64 %size, ptr %opaque)
  %none = icmp eq ptr %p, null
  %failed = icmp eq ptr %new, null
  %skip = or i1 %none, %failed
  br i1 %skip, label %out, label %move

move:
  %block = getelementptr inbounds i8, ptr %p, i64 -{_HEADER}
  %bytes = load i64, ptr %block, align 8
  %less = icmp ult i64 %bytes, %size
  %n = select i1 %less, i64 %bytes, i64 %size
  call void @llvm.memcpy.p0.p0.i64(ptr %new, ptr %p, i64 %n, i1 false)
  call void @pool.free(ptr %p, ptr %opaque)
  br label %out

out:
  ret ptr %new
}}
"""

_library: list[Any] = []  # the compiled module, kept for the process's life


def ensure(compiled: Any = None) -> bool:
    """Make `ALLOCATOR` a process symbol: the pool compiled once in this process, or loaded
    from `compiled` (what `compiled_code` gave in another process with this enzpy); whether
    it was loaded now."""
    if _library:
        return False
    with global_compiler_lock:
        if _library:
            return False
        llvm.add_symbol(_ALLOC_EXTERNAL, _alloc_external_address())
        codegen = cpu_target.target_context.codegen()
        if compiled is not None:
            library = codegen.unserialize_library(compiled)
        else:
            library = codegen.create_library("enzpy.pool")
            library.enable_object_caching()
            library.add_llvm_module(llvm.parse_assembly(_IR))
            library.finalize()
        llvm.add_symbol(ALLOCATOR, library.get_pointer_to_function(ALLOCATOR))
        _library.append(library)
        return compiled is not None


def compiled_code() -> Any:
    """The pool's machine code, for `ensure` in another process (the disk cache)."""
    ensure()
    return _library[0].serialize_using_object_code()


def kept_bytes() -> int:
    """Bytes the pool holds for later calls."""
    ensure()
    address = _library[0].get_pointer_to_function("enzpy_pool_kept")
    return int(ctypes.CFUNCTYPE(ctypes.c_int64)(address)())


def functions() -> tuple[Any, Any]:
    """The pool's `malloc(size, opaque)` and `free(p, opaque)`, as ctypes functions."""
    ensure()
    table = ctypes.CFUNCTYPE(ctypes.c_void_p)(
        _library[0].get_pointer_to_function("enzpy_pool_allocator")
    )()
    malloc, _, free = (ctypes.c_void_p.from_address(table + 8 * k).value or 0 for k in range(3))
    return (
        ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)(malloc),
        ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(free),
    )


def release() -> int:
    """Give every kept block back to the system; the bytes they held."""
    if not _library:
        return 0
    kept = kept_bytes()
    ctypes.CFUNCTYPE(None)(_library[0].get_pointer_to_function("enzpy_pool_release"))()
    return kept - kept_bytes()


def _alloc_external_address() -> int:
    """`NRT_MemInfo_alloc_external`'s address, from Numba's table of external functions
    (`NRT_get_api`, nrt_external.h: its second entry)."""
    cpu_target.target_context  # noqa: B018  (initializes Numba's runtime)
    get_api = ctypes.CFUNCTYPE(ctypes.c_void_p)(_nrt_python.c_helpers["get_api"])
    table = get_api()
    return int(ctypes.c_void_p.from_address(table + ctypes.sizeof(ctypes.c_void_p)).value or 0)
