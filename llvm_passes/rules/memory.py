"""Rules for LLVM's memory intrinsics (memset, memcpy, memmove), integer-only intrinsics, and
the shapes of a runtime's memory calls (allocation, release, data pointers) that a front end
registers for its own runtime functions.

Shadow memory mirrors primal memory: these rules apply the same operation to the shadows.
"""

from __future__ import annotations

from ..ir import I8, PTR, VOID
from ..ir.types import size_in_bytes
from .registry import Allocation, Context, Effects, custom, no_derivative


# ---- a runtime's memory calls (registered by the front end for its own functions) ----------
def same_call_on_shadow(ctx: Context) -> None:
    """shadow op: the same call applied to the shadow pointer (reference counts, frees)"""
    if ctx.tangents[0] is not None:
        ctx.b.call(ctx.inst.callee_name, [ctx.tangents[0]], VOID)
    return None


def lifetime(*keys: str) -> None:
    """Register calls counting references to (or freeing) their pointer operand's memory: in
    forward mode the shadow's count changes alike; in reverse mode a shadow lives until the
    reverse sweep passes its allocation. They must accept null (a pointer without a
    shadow of its own)."""
    custom(*keys, effects=Effects(lifetime=True))(same_call_on_shadow)


def data_pointer(*keys: str) -> None:
    """Register calls returning a pointer into their operand's memory (the data of a
    reference-counted block): the shadow's is the same call on the operand's shadow."""

    def tangent(ctx: Context):
        """shadow data pointer: the same call on the shadow"""
        t = ctx.tangents[0]
        return None if t is None else ctx.b.call(ctx.inst.callee_name, [t], PTR, "shadow")

    custom(*keys, effects=Effects(data_of=0))(tangent)


# the shadow of an allocation `primal` made by `alloc`: a zero-filled allocation of the same
# size; null when `primal` is null or the shadow cannot be allocated (then `primal` is
# released: the synthesizers take the allocation as failed, and the primal's own check of
# its result reports it)
_SHADOW_ALLOCATION = """
declare void @llvm.memset.p0.i64(ptr, i8, i64, i1)
declare ptr @{alloc}({types})
declare void @{release}(ptr)
{declare}
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
  {data}
  call void @llvm.memset.p0.i64(ptr %data, i8 0, i64 %a0, i1 false)
  ret ptr %shadow

none:
  ret ptr null
}}
"""


def allocator(*keys: str, allocation: Allocation, data: str | None = None) -> None:
    """Register calls returning new memory of the size in their first operand: the shadow is
    a second allocation of the same size, zero-filled (null when either fails). `data`
    names the call giving an allocation's data pointer (for blocks with a header), if
    any."""

    def tangent(ctx: Context):
        """shadow allocation: a second allocation of the same size, zero-filled; the
        allocation fails (null) when either fails"""
        alloc, args = ctx.inst.callee_name, ctx.args
        ctx.b.module.define(
            _SHADOW_ALLOCATION.format(
                alloc=alloc,
                release=allocation.release,
                types=", ".join(str(a.type) for a in args),
                params=", ".join(f"{a.type} %a{k}" for k, a in enumerate(args)),
                declare=f"declare ptr @{data}(ptr)" if data else "",
                data=f"%data = call ptr @{data}(ptr %shadow)"
                if data
                else "%data = getelementptr i8, ptr %shadow, i64 0",
            )
        )
        primal = ctx.inst if ctx.result is None else ctx.result
        return ctx.b.call(f"enzpy.shadow.{alloc}", [primal, *args], PTR, "shadow")

    custom(*keys, effects=Effects(allocates=allocation))(tangent)


# ---- LLVM's memory intrinsics ---------------------------------------------------------------
def overwritten(ctx: Context):
    """memset(p, 0, n) and copies from memory without derivatives: d p = 0 (overwritten)"""
    ctx.b.memset(ctx.shadows[0], ctx.b.const(I8, 0), ctx.args[2])  # type: ignore[arg-type]
    return []


@custom("llvm.memset", adjoint=overwritten, effects=Effects(writes=(0,)), uses=(2,))
def memset(ctx: Context):
    """d memset(p, 0, n): memset(dp, 0, n) (a constant fill has zero tangent)"""
    if ctx.tangents[0] is None:
        return None
    dst, byte, size, vol = ctx.args
    if not getattr(byte, "is_zero", False):
        raise ValueError("memset of a non-zero byte pattern into differentiable memory")
    ctx.b.call(ctx.inst.callee_name, [ctx.tangents[0], byte, size, vol], VOID)
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
{accumulate}
  %next = add i64 %i, 1
  %end = icmp eq i64 %next, %n
  br i1 %end, label %done, label %loop

done:
  ret void
}}
"""


_ADD = """  %old = load {ty}, ptr %ps, align 1
  %new = fadd {ty} %old, %a
  store {ty} %new, ptr %ps, align 1"""
_ADD_ATOMIC = "  %added = atomicrmw fadd ptr %ps, {ty} %a monotonic"


def copy_adjoint(ctx: Context):
    """memcpy(dst, src, n) of `elem` values: d src += d dst (atomically when concurrent),
    then d dst = 0 (overwritten); only d dst = 0 when src has no derivative"""
    if ctx.shadows[1] is None:
        return overwritten(ctx)
    elem = ctx.elem
    assert elem is not None, "the planner gives a copy's element type"
    name = f"enzpy.adjoint.memcpy.{elem}" + (".atomic" if ctx.concurrent else "")
    add = (_ADD_ATOMIC if ctx.concurrent else _ADD).format(ty=elem)
    ctx.b.module.define(
        _COPY_ADJOINT.format(name=name, ty=elem, size=size_in_bytes(elem), accumulate=add)
    )
    ctx.b.call(name, [ctx.shadows[0], ctx.shadows[1], ctx.args[2]], VOID)  # type: ignore[list-item]
    return []


def _copy(ctx: Context):
    """d copy(dst, src, n) = copy(d dst, d src, n), or zeros if src has no derivative"""
    dst, src = ctx.tangents[0], ctx.tangents[1]
    if dst is None:
        return None
    if src is None:
        ctx.b.memset(dst, ctx.b.const(I8, 0), ctx.args[2])
        return None
    ctx.b.call(ctx.inst.callee_name, [dst, src, *ctx.args[2:]], VOID)
    return None


def move_adjoint(ctx: Context):
    """memmove(dst, src, n) from memory without derivatives: d dst = 0 (overwritten); from
    memory with derivatives the ranges may overlap, and no element-wise move is exact"""
    if ctx.shadows[1] is not None:
        raise ValueError(
            "A memmove between memory with derivatives (the two ranges may overlap) is not "
            "reversed."
        )
    return overwritten(ctx)


_COPIES = Effects(writes=(0,), inputs=(1,), copies=True)
custom("llvm.memcpy", adjoint=copy_adjoint, effects=_COPIES, uses=(2,), concurrent=True)(_copy)
custom("llvm.memmove", adjoint=move_adjoint, effects=_COPIES, uses=(2,))(_copy)


# integer arithmetic the reverse sweep recomputes (a slice copy's `umin` of its counter)
INTEGER_ARITHMETIC = (
    "llvm.smax",
    "llvm.smin",
    "llvm.umax",
    "llvm.umin",
    "llvm.abs",
    "llvm.ctpop",
    "llvm.ctlz",
    "llvm.cttz",
)
# intrinsics that read and write only integers (sizes, strides, flags) or do bookkeeping
INTEGER_ONLY = (
    "llvm.lifetime",
    "llvm.assume",
    "llvm.expect",
    "llvm.dbg",
    "llvm.prefetch",
    "llvm.sadd",
    "llvm.ssub",
    "llvm.smul",
    "llvm.uadd",
    "llvm.usub",
    "llvm.umul",
)
no_derivative(*INTEGER_ARITHMETIC, why="integer arithmetic", recomputable=True)
no_derivative(*INTEGER_ONLY, why="integer or bookkeeping call")

# the C library's heap: the storage of the nestable tape (`tape.py`), which an outer
# derivative differentiates like any memory
allocator("malloc", allocation=Allocation("free"))
lifetime("free")
