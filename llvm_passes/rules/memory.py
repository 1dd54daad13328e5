"""Rules for memory intrinsics and Numba's runtime calls (allocation, reference counts).

Shadow memory mirrors primal memory: these rules apply the same operation to the shadows.
"""

from __future__ import annotations

from ..ir import I8, PTR, VOID, Type
from ..ir.types import size_in_bytes
from .registry import custom, no_derivative

# The runtime's memory calls, as data the analyses and synthesizers consult.
ALLOCATORS = frozenset(
    {
        "NRT_MemInfo_alloc_aligned",
        "NRT_MemInfo_alloc_safe_aligned",
        "NRT_MemInfo_alloc",
        "NRT_MemInfo_alloc_safe",
    }
)
REFCOUNT = frozenset({"NRT_incref", "NRT_decref"})  # shadows stay alive for the reverse sweep
RAW_ALLOCATORS = frozenset({"NRT_Allocate"})  # memory without a meminfo (slice-copy temporaries)
RAW_FREE = frozenset({"NRT_Free"})  # frees raw memory; shadows stay alive for the reverse sweep
DATA_POINTER = frozenset({"NRT_MemInfo_data_fast"})  # a pointer derived from its argument
# allocator -> the call that releases what it returns (a shadow allocation, in the reverse
# sweep when it passes the allocation)
RELEASE = {**dict.fromkeys(ALLOCATORS, "NRT_decref"), **dict.fromkeys(RAW_ALLOCATORS, "NRT_Free")}


def _same_call_on_shadows(b, inst, args, tans):
    """shadow op: the same call applied to the shadow pointers (reference counts)."""
    if tans[0] is not None:
        b.call(inst.callee_name, [tans[0]], VOID)
    return None


custom(*REFCOUNT, *RAW_FREE)(_same_call_on_shadows)


# the shadow of an allocation `primal` made by `alloc`: a zero-filled allocation of the same
# size; null when `primal` is null or the shadow cannot be allocated (then `primal` is
# released: the synthesizers take the allocation as failed, and the primal's own check of
# its result reports it)
_SHADOW_ALLOCATION = """
declare ptr @NRT_MemInfo_data_fast(ptr)
declare void @llvm.memset.p0.i64(ptr, i8, i64, i1)
declare ptr @{alloc}({types})
declare void @{release}(ptr)

define internal ptr @"enzpy.shadow.{alloc}"(ptr %primal, {params}) alwaysinline nounwind {{
entry:
  %failed = icmp eq ptr %primal, null
  br i1 %failed, label %none, label %allocate

allocate:
  %shadow = call ptr @{alloc}({params})
  %none.shadow = icmp eq ptr %shadow, null
  br i1 %none.shadow, label %release, label %zero

release:
  call void @{release}(ptr %primal)
  br label %none

zero:
  %data = {data}
  call void @llvm.memset.p0.i64(ptr %data, i8 0, i64 %a0, i1 false)
  ret ptr %shadow

none:
  ret ptr null
}}
"""


def _shadow_allocation(b, inst, args, data: str):
    """A call of the helper allocating the shadow of `inst` (see `_SHADOW_ALLOCATION`)."""
    alloc = inst.callee_name
    types = ", ".join(str(a.type) for a in args)
    params = ", ".join(f"{a.type} %a{k}" for k, a in enumerate(args))
    b.module.define(
        _SHADOW_ALLOCATION.format(
            alloc=alloc, release=RELEASE[alloc], types=types, params=params, data=data
        )
    )
    return b.call(f"enzpy.shadow.{alloc}", [inst, *args], PTR, "shadow")


@custom(*ALLOCATORS)
def nrt_alloc(b, inst, args, tans):
    """shadow allocation: a second allocation of the same size, zero-filled; the allocation
    fails (null) when either fails"""
    return _shadow_allocation(b, inst, args, "call ptr @NRT_MemInfo_data_fast(ptr %shadow)")


@custom(*RAW_ALLOCATORS)
def nrt_allocate(b, inst, args, tans):
    """shadow allocation: a second allocation of the same size, zero-filled; the allocation
    fails (null) when either fails"""
    return _shadow_allocation(b, inst, args, "getelementptr i8, ptr %shadow, i64 0")


@custom(*DATA_POINTER)
def nrt_data(b, inst, args, tans):
    """shadow data pointer: the data pointer of the shadow meminfo"""
    return None if tans[0] is None else b.call(inst.callee_name, [tans[0]], PTR, "shadow")


def overwritten(b, inst, args, shadows, elem: Type | None = None):
    """memset(p, 0, n) and copies from memory without derivatives: d p = 0 (overwritten)"""
    b.memset(shadows[0], b.const(I8, 0), args[2])
    return []


@custom("llvm.memset", adjoint=overwritten)
def memset(b, inst, args, tans):
    """d memset(p, 0, n): memset(dp, 0, n) (a constant fill has zero tangent)"""
    if tans[0] is None:
        return None
    dst, byte, size, vol = args
    if not getattr(byte, "is_zero", False):
        raise ValueError("memset of a non-zero byte pattern into differentiable memory")
    b.call(inst.callee_name, [tans[0], byte, size, vol], VOID)
    return None


# the adjoint of copying n bytes of `ty` elements (memcpy: the two ranges are disjoint)
_COPY_ADJOINT = """
define internal void @"{name}"(ptr %dd, ptr %ds, i64 %bytes) alwaysinline nounwind {{
entry:
  %n = udiv i64 %bytes, {size}
  %none = icmp eq i64 %n, 0
  br i1 %none, label %done, label %loop

loop:
  %i = phi i64 [ 0, %entry ], [ %next, %loop ]
  %pd = getelementptr inbounds {ty}, ptr %dd, i64 %i
  %ps = getelementptr inbounds {ty}, ptr %ds, i64 %i
  %a = load {ty}, ptr %pd, align 1
  store {ty} 0.0, ptr %pd, align 1
  %old = load {ty}, ptr %ps, align 1
  %new = fadd {ty} %old, %a
  store {ty} %new, ptr %ps, align 1
  %next = add i64 %i, 1
  %end = icmp eq i64 %next, %n
  br i1 %end, label %done, label %loop

done:
  ret void
}}
"""


def copy_adjoint(b, inst, args, shadows, elem: Type | None = None):
    """memcpy(dst, src, n) of `elem` values: d src += d dst, then d dst = 0 (overwritten);
    only d dst = 0 when src has no derivative"""
    if shadows[1] is None:
        return overwritten(b, inst, args, shadows)
    name = f"enzpy.adjoint.memcpy.{elem}"
    b.module.define(_COPY_ADJOINT.format(name=name, ty=elem, size=size_in_bytes(elem)))
    b.call(name, [shadows[0], shadows[1], args[2]], VOID)
    return []


def _copy(b, inst, args, tans):
    """d copy(dst, src, n) = copy(d dst, d src, n), or zeros if src has no derivative"""
    if tans[0] is None:
        return None
    if tans[1] is None:
        b.memset(tans[0], b.const(I8, 0), args[2])
        return None
    b.call(inst.callee_name, [tans[0], tans[1], *args[2:]], VOID)
    return None


custom("llvm.memcpy", adjoint=copy_adjoint)(_copy)
custom("llvm.memmove", adjoint=overwritten)(_copy)  # reverse: from memory without derivatives


# calls that read and write only integers (sizes, strides, flags) or do bookkeeping
INTEGER_ONLY = (
    "llvm.lifetime",
    "llvm.assume",
    "llvm.expect",
    "llvm.dbg",
    "llvm.prefetch",
    "llvm.smax",
    "llvm.smin",
    "llvm.umax",
    "llvm.umin",
    "llvm.abs",
    "llvm.ctpop",
    "llvm.ctlz",
    "llvm.cttz",
    "llvm.sadd",
    "llvm.ssub",
    "llvm.smul",
    "llvm.uadd",
    "llvm.usub",
    "llvm.umul",
    "numba_attempt_nocopy_reshape",
)
no_derivative(*INTEGER_ONLY, why="integer or bookkeeping call")
