"""Memory descriptors of arrays in jitted code, made in the caller's stack frame.

A descriptor (`enzpy.memory`) is an int64 array [data address, item size, *shape,
*strides]; the arrays of one call are described by a 2-d array, a row each, padded with
zeros to the row of the most dimensions. The checks of every derivative call make them: as
intrinsics they cost a few stores, where arrays from Numba's allocator cost an allocation
each. The arrays made here own no memory (a null meminfo): they live until the calling
function returns, and must not escape it. `constant_rows` gives the checks' plan, a
constant of the module.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
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


def _describe_rows(typingctx: Any, arrays: Any) -> Any:
    elements = tuple(getattr(arrays, "types", ())) if isinstance(arrays, types.BaseTuple) else ()
    if not elements or not all(isinstance(t, types.Array) for t in elements):
        return None
    out = types.Array(types.int64, 2, "C")

    def codegen(context: Any, builder: Any, signature: Any, values: Sequence[Any]) -> Any:
        items = list(zip(elements, cgutils.unpack_tuple(builder, values[0]), strict=True))
        return _on_stack(context, builder, out, items, max(t.ndim for t in elements))

    return out(arrays), codegen


#: `describe(a)`: the descriptor of the array `a`
describe: Any = intrinsic(_describe)
#: `describe_rows(arrays)`: the descriptors of a tuple of arrays, a row each (zero-padded)
describe_rows: Any = intrinsic(_describe_rows)


@functools.cache
def constant_rows(rows: tuple[tuple[int, ...], ...]) -> Any:
    """An intrinsic of no arguments giving `rows` (of one length) as a read-only 2-d int64
    array, a constant of the calling module."""
    value = np.array(rows, dtype=np.int64).reshape(len(rows), -1)
    out = types.Array(types.int64, 2, "C", readonly=True)

    def typer(typingctx: Any) -> Any:
        def codegen(context: Any, builder: Any, signature: Any, values: Sequence[Any]) -> Any:
            return context.make_constant_array(builder, out, value)

        return out(), codegen

    return intrinsic(typer)


def _on_stack(context: Any, builder: Any, out: types.Array, items: list, ndim: int) -> Any:
    """An array of type `out` over stack memory holding the descriptors of `items` (array
    type, value) of at most `ndim` dimensions, a row each, zero-padded."""
    width = 2 + 2 * ndim
    buf = cgutils.alloca_once(builder, _I64, size=len(items) * width, name="descriptors")
    for row, (ty, value) in enumerate(items):
        ary = context.make_array(ty)(context, builder, value)
        fields = [
            builder.ptrtoint(ary.data, _I64),
            ary.itemsize,
            *cgutils.unpack_tuple(builder, ary.shape, ty.ndim),
            *cgutils.unpack_tuple(builder, ary.strides, ty.ndim),
        ]
        fields += [_I64(0)] * (width - len(fields))
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
