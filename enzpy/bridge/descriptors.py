"""Memory descriptors of arrays in jitted code, made in the caller's stack frame.

A descriptor (`enzpy.memory`) is an int64 array [data address, item size, *shape,
*strides]; the shadows of one argument are described by a 2-d array, a row per shadow. The
checks of every derivative call make them: as intrinsics they cost a few stores, where
arrays from Numba's allocator cost an allocation each. The arrays made here own no memory
(a null meminfo): they live until the calling function returns, and must not escape it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

_I64 = ir.IntType(64)


def _describe(typingctx: Any, a: types.Type) -> Any:
    if not isinstance(a, types.Array):
        return None
    out = types.Array(types.int64, 1, "C")

    def codegen(context: Any, builder: Any, signature: Any, values: Sequence[Any]) -> Any:
        return _on_stack(context, builder, out, [(a, values[0])], a.ndim)

    return out(a), codegen


def _describe_lanes(typingctx: Any, arrays: Any) -> Any:
    elements = tuple(getattr(arrays, "types", ())) if isinstance(arrays, types.BaseTuple) else ()
    if not elements or not all(isinstance(t, types.Array) for t in elements):
        return None
    if len({t.ndim for t in elements}) != 1:
        return None
    out = types.Array(types.int64, 2, "C")

    def codegen(context: Any, builder: Any, signature: Any, values: Sequence[Any]) -> Any:
        items = list(zip(elements, cgutils.unpack_tuple(builder, values[0]), strict=True))
        return _on_stack(context, builder, out, items, elements[0].ndim)

    return out(arrays), codegen


#: `describe(a)`: the descriptor of the array `a`
describe: Any = intrinsic(_describe)
#: `describe_lanes(arrays)`: the descriptors of a tuple of arrays of one number of
#: dimensions, a row each
describe_lanes: Any = intrinsic(_describe_lanes)


def _on_stack(context: Any, builder: Any, out: types.Array, items: list, ndim: int) -> Any:
    """An array of type `out` over stack memory holding the descriptors of `items` (array
    type, value) of `ndim` dimensions, a row each."""
    width = 2 + 2 * ndim
    buf = cgutils.alloca_once(builder, _I64, size=len(items) * width, name="descriptors")
    for row, (ty, value) in enumerate(items):
        ary = context.make_array(ty)(context, builder, value)
        fields = [
            builder.ptrtoint(ary.data, _I64),
            ary.itemsize,
            *cgutils.unpack_tuple(builder, ary.shape, ndim),
            *cgutils.unpack_tuple(builder, ary.strides, ndim),
        ]
        for j, v in enumerate(fields):
            builder.store(v, builder.gep(buf, [_I64(row * width + j)]))
    shape = [len(items), width] if out.ndim == 2 else [width]
    strides = [width * 8, 8] if out.ndim == 2 else [8]
    array = context.make_array(out)(context, builder)
    context.populate_array(
        array,
        data=buf,
        shape=[_I64(n) for n in shape],
        strides=[_I64(s) for s in strides],
        itemsize=_I64(8),
        meminfo=None,
    )
    return array._getvalue()
