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
allocator, whose `free` keeps a block (in one of `SLOTS` slots, while the blocks kept add up
to at most `CAP` bytes) and whose `malloc` hands back a kept block of exactly the size asked
for; smaller ones, and alignments above 64, are Numba's as before. The slots are taken and
filled by atomic exchange and compare-and-swap: derivatives running on several threads, and
arrays freed by the garbage collector, share them. A block is
`[requested size][8 bytes][the caller's bytes]`, 64-aligned, so that Numba's data, which
follows its 48-byte `MemInfo`, is 64-aligned too.

The module is compiled once per process; its symbols are the process's, so machine code
loaded from the disk cache finds them (`ensure` runs before derivatives are built or
loaded).
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
_HEADER = 16
_ALLOC_EXTERNAL = "enzpy_nrt_alloc_external"  # NRT_MemInfo_alloc_external's address

_IR = f"""
@slots = internal global [{SLOTS} x ptr] zeroinitializer
@kept = internal global i64 0
@allocator = internal global {{ ptr, ptr, ptr, ptr }}
  {{ ptr @pool.malloc, ptr @pool.realloc, ptr @pool.free, ptr null }}

declare ptr @aligned_alloc(i64, i64)
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
  %bytes = load i64, ptr %block, align 8
  %0 = atomicrmw sub ptr @kept, i64 %bytes monotonic, align 8
  call void @free(ptr %block)
  br label %next

next:
  %i.next = add i64 %i, 1
  %more = icmp ult i64 %i.next, {SLOTS}
  br i1 %more, label %scan, label %done

done:
  ret void
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

; a kept block of exactly `size` bytes, else a new one; null when none can be had
define internal ptr @pool.malloc(i64 %size, ptr %opaque) {{
entry:
  %large = icmp uge i64 %size, {LARGE}
  br i1 %large, label %scan, label %fresh

scan:
  %i = phi i64 [ 0, %entry ], [ %i.next, %next ]
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
  %pair = cmpxchg ptr %slot, ptr null, ptr %block acq_rel monotonic, align 8
  %put = extractvalue {{ ptr, i1 }} %pair, 1
  br i1 %put, label %next, label %drop

drop:
  %1 = atomicrmw sub ptr @kept, i64 %bytes monotonic, align 8
  call void @free(ptr %block)
  br label %next

next:
  %i.next = add i64 %i, 1
  %more = icmp ult i64 %i.next, {SLOTS}
  br i1 %more, label %scan, label %fresh

fresh:
  %total = add i64 %size, {_HEADER + 63}
  %rounded = and i64 %total, -64
  %new = call ptr @aligned_alloc(i64 64, i64 %rounded)
  %none = icmp eq ptr %new, null
  br i1 %none, label %fail, label %made

fail:
  ret ptr null

made:
  store i64 %size, ptr %new, align 8
  %out = getelementptr inbounds i8, ptr %new, i64 {_HEADER}
  ret ptr %out
}}

; keep the block in a free slot while the kept blocks stay within the cap, else free it
define internal void @pool.free(ptr %p, ptr %opaque) {{
entry:
  %block = getelementptr inbounds i8, ptr %p, i64 -{_HEADER}
  %bytes = load i64, ptr %block, align 8
  %large = icmp uge i64 %bytes, {LARGE}
  br i1 %large, label %count, label %release

count:
  %before = atomicrmw add ptr @kept, i64 %bytes monotonic, align 8
  %after = add i64 %before, %bytes
  %over = icmp ugt i64 %after, {CAP}
  br i1 %over, label %uncount, label %scan

scan:
  %i = phi i64 [ 0, %count ], [ %i.next, %next ]
  %slot = getelementptr inbounds [{SLOTS} x ptr], ptr @slots, i64 0, i64 %i
  %pair = cmpxchg ptr %slot, ptr null, ptr %block acq_rel monotonic, align 8
  %put = extractvalue {{ ptr, i1 }} %pair, 1
  br i1 %put, label %done, label %next

next:
  %i.next = add i64 %i, 1
  %more = icmp ult i64 %i.next, {SLOTS}
  br i1 %more, label %scan, label %uncount

uncount:
  %0 = atomicrmw sub ptr @kept, i64 %bytes monotonic, align 8
  br label %release

release:
  call void @free(ptr %block)
  ret void

done:
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


def ensure() -> None:
    """Compile the pool once in this process and make `ALLOCATOR` a process symbol."""
    if _library:
        return
    with global_compiler_lock:
        if _library:
            return
        llvm.add_symbol(_ALLOC_EXTERNAL, _alloc_external_address())
        codegen = cpu_target.target_context.codegen()
        library = codegen.create_library("enzpy.pool")
        library.add_llvm_module(llvm.parse_assembly(_IR))
        library.finalize()
        llvm.add_symbol(ALLOCATOR, library.get_pointer_to_function(ALLOCATOR))
        _library.append(library)


def kept_bytes() -> int:
    """Bytes the pool holds for later calls."""
    ensure()
    address = _library[0].get_pointer_to_function("enzpy_pool_kept")
    return int(ctypes.CFUNCTYPE(ctypes.c_int64)(address)())


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
