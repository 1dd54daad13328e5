"""What a call asks of its arguments' memory, checked the same way by every entrance.

A shadow has its primal's shape; no shadow shares memory with a primal (any argument's,
`Const` ones and arrays inside tuples included), with another shadow of its argument, or
with another argument's shadows, unless the two arguments are the same view with the same
shadows (one memory, one derivative); a shadow laid out otherwise than its primal can be
copied into the primal's layout. Anything else would silently mix primal values and
derivatives, or split a derivative.

`plan` lists the checks of a call from a description of its arguments (`Operand`s); a check
names a compiled predicate on memory descriptors (`describe`: data address, item size,
shape, strides), which the Python entrance calls on the values (`run`) and generated code
calls in jitted code (`inside`): one set of checks, one implementation of each, exact in
both (address ranges first, element addresses where ranges meet).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from numpy.lib.stride_tricks import as_strided

from .errors import ShadowError

# ---- memory descriptors and the predicates on them ------------------------------------------


def describe(a: np.ndarray) -> tuple:
    """The memory descriptor of an array: (data address, item size, shape, strides)."""
    return (a.__array_interface__["data"][0], a.itemsize, a.shape, a.strides)


@numba.njit
def describe_compiled(a: Any) -> Any:  # pragma: no cover  (compiled)
    """`describe` in jitted code."""
    return (a.ctypes.data, a.itemsize, a.shape, a.strides)


@numba.njit
def _span(m: Any) -> tuple[int, int]:  # pragma: no cover  (compiled)
    """Byte offsets of the lowest and the highest element from the data address."""
    lo = hi = 0
    for i in range(len(m[2])):
        span = m[3][i] * (m[2][i] - 1)
        if span < 0:
            lo += span
        else:
            hi += span
    return lo, hi


@numba.njit
def _size(m: Any) -> int:  # pragma: no cover  (compiled)
    n = 1
    for s in m[2]:
        n *= s
    return n


@numba.njit
def _starts(m: Any) -> Any:  # pragma: no cover  (compiled)
    """The sorted addresses of the elements."""
    out = np.empty(_size(m), np.int64)
    for n, idx in enumerate(np.ndindex(m[2])):
        at = m[0]
        for d in range(len(idx)):
            at += idx[d] * m[3][d]
        out[n] = at
    out.sort()
    return out


@numba.njit
def overlap(a: Any, b: Any) -> bool:  # pragma: no cover  (compiled)
    """Whether two arrays share memory (`np.shares_memory`): their address ranges meet
    and two of their elements do."""
    if _size(a) == 0 or _size(b) == 0:
        return False
    alo, ahi = _span(a)
    blo, bhi = _span(b)
    if not (a[0] + alo < b[0] + bhi + b[1] and b[0] + blo < a[0] + ahi + a[1]):
        return False
    sa, sb = _starts(a), _starts(b)
    i = j = 0
    while i < sa.size and j < sb.size:
        if sa[i] + a[1] <= sb[j]:
            i += 1
        elif sb[j] + b[1] <= sa[i]:
            j += 1
        else:
            return True
    return False


@numba.njit
def _identical(a: Any, b: Any) -> bool:  # pragma: no cover  (compiled)
    """The same view: data address, shape and strides."""
    return a[0] == b[0] and a[2] == b[2] and a[3] == b[3]


@numba.njit
def shape_differs(x: Any, lanes: Any) -> int:  # pragma: no cover  (compiled)
    """1 if a shadow of the tuple `lanes` has another shape than its primal `x`."""
    for i in range(len(lanes)):
        if lanes[i][2] != x[2]:
            return 1
    return 0


@numba.njit
def shares_primal(lanes: Any, y: Any) -> int:  # pragma: no cover  (compiled)
    """1 if a shadow of `lanes` shares memory with the primal `y`."""
    for i in range(len(lanes)):
        if overlap(lanes[i], y):
            return 1
    return 0


@numba.njit
def lanes_share(lanes: Any) -> int:  # pragma: no cover  (compiled)
    """1 if two shadows of one argument share memory."""
    for i in range(len(lanes)):
        for j in range(i):
            if overlap(lanes[i], lanes[j]):
                return 1
    return 0


@numba.njit
def views_conflict(x: Any, y: Any, dxs: Any, dys: Any) -> int:  # pragma: no cover  (compiled)
    """1 if the primals `x` and `y` share memory but are not the same view with the same
    shadows; 2 if they do not and their shadows do."""
    if overlap(x, y):
        if not _identical(x, y):
            return 1
        for i in range(len(dxs)):
            if not _identical(dxs[i], dys[i]):
                return 1
        return 0
    for i in range(len(dxs)):
        for j in range(len(dys)):
            if overlap(dxs[i], dys[j]):
                return 2
    return 0


@numba.njit
def strides_unusable(x: Any, lanes: Any) -> int:  # pragma: no cover  (compiled)
    """1 if a shadow laid out otherwise than `x` cannot be copied into `x`'s layout (its
    strides are not multiples of its item size)."""
    for i in range(len(lanes)):
        if lanes[i][3] != x[3]:
            for s in x[3]:
                if s % x[1]:
                    return 1
    return 0


# ---- the checks of a call -------------------------------------------------------------------

Ref = tuple[int, str, tuple[int, ...]]  # (argument, "val" | "shadows", path into a tuple)


@dataclass(frozen=True)
class Operand:
    """What the checks need to know of one argument: the paths of the arrays its primal is
    or holds (`()` for an array), and how many shadows it has if it is an array with
    shadows (0 otherwise)."""

    arrays: tuple[tuple[int, ...], ...]
    shadows: int


@dataclass(frozen=True)
class Check:
    """A predicate on the descriptors of `operands`: 0, or the 1-based index of the message
    of the `ShadowError` to raise."""

    test: Callable[..., int]
    operands: tuple[Ref, ...]
    messages: tuple[str, ...]


def plan(args: Sequence[Operand]) -> list[Check]:
    """The checks of a call, in the order they run."""
    shadowed = [k for k, a in enumerate(args) if a.shadows]
    checks = []
    for k in shadowed:
        x, lanes = (k, "val", ()), (k, "shadows", ())
        checks.append(Check(shape_differs, (x, lanes), (shape_mismatch(k),)))
        checks.append(Check(strides_unusable, (x, lanes), (strides_unusable_message(k),)))
    for k in shadowed:
        lanes = (k, "shadows", ())
        for m, a in enumerate(args):
            for path in a.arrays:
                checks.append(
                    Check(shares_primal, (lanes, (m, "val", path)), (shadow_shares_primal(k, m),))
                )
        if args[k].shadows > 1:
            checks.append(Check(lanes_share, (lanes,), (lanes_share_message(k),)))
    for i, k in enumerate(shadowed):
        for m in shadowed[i + 1 :]:
            refs = ((k, "val", ()), (m, "val", ()), (k, "shadows", ()), (m, "shadows", ()))
            checks.append(
                Check(views_conflict, refs, (different_views(k, m), shadows_overlap(k, m)))
            )
    return checks


def run(checks: list[Check], values: Sequence[Any], shadows: Sequence[tuple]) -> None:
    """Run `checks` on one call's primal values and per argument its tuple of shadows
    (raises the first failing check's `ShadowError`)."""

    def descriptor(ref: Ref) -> Any:
        k, kind, path = ref
        if kind == "shadows":
            return tuple(describe(s) for s in shadows[k])
        v = values[k]
        for i in path:
            v = v[i]
        return describe(v)

    for c in checks:
        code = c.test(*map(descriptor, c.operands))
        if code:
            raise ShadowError(c.messages[code - 1])


def operand(v: Any, shadows: int) -> Operand:
    """The `Operand` of a value with `shadows` shadows (counted only for arrays)."""
    return Operand(tuple(_array_paths(v)), shadows if isinstance(v, np.ndarray) else 0)


def _array_paths(v: Any, at: tuple[int, ...] = ()) -> list[tuple[int, ...]]:
    if isinstance(v, np.ndarray):
        return [at]
    if isinstance(v, tuple):
        return [p for i, e in enumerate(v) for p in _array_paths(e, (*at, i))]
    return []


# ---- the messages ---------------------------------------------------------------------------


def shape_mismatch(k: int | str) -> str:
    return f"argument {k}: the shadow's shape differs from the primal's"


def strides_unusable_message(k: int) -> str:
    return (
        f"argument {k}: the primal's strides are not a multiple of its item size; pass a "
        "shadow with the primal's strides"
    )


def shadow_shares_primal(k: int, m: int) -> str:
    """The error for a shadow of argument `k` sharing memory with the primal of `m`."""
    whose = "its primal" if k == m else f"the primal of argument {m}"
    return f"argument {k}: the shadow shares memory with {whose}"


def lanes_share_message(k: int) -> str:
    return f"argument {k}: two of its shadows share memory (each carries its own derivative)"


def different_views(k: int, m: int) -> str:
    """Two arguments sharing memory as different views or with different shadows."""
    return (
        f"arguments {k} and {m} share memory but are not the same view with the same "
        "shadow; pass the same shadow for the same memory"
    )


def shadows_overlap(k: int, m: int) -> str:
    """Two arguments with distinct primals whose shadows share memory."""
    return f"arguments {k} and {m} have overlapping shadows but distinct primals"


# ---- layout ---------------------------------------------------------------------------------


@numba.njit
def with_strides(x: Any, dx: Any) -> Any:  # pragma: no cover  (compiled)
    """`dx`, or a copy of it laid out with `x`'s strides (the engine replays x's address
    arithmetic on the shadow); `strides_unusable` has checked that it can be made."""
    if x.strides == dx.strides or x.size == 0:
        return dx
    lo, hi = _span(describe_compiled(x))
    buf = np.zeros((hi - lo) // x.itemsize + 1, x.dtype)
    out = as_strided(buf[-lo // x.itemsize :], x.shape, x.strides)
    copy_into(out, dx)
    return out


@numba.njit
def same_view(a: Any, b: Any) -> bool:  # pragma: no cover  (compiled)
    """Whether two arrays are the same view: data address, shape and strides."""
    return _identical(describe_compiled(a), describe_compiled(b))


@numba.njit
def copy_into(dst: Any, src: Any) -> None:  # pragma: no cover  (compiled)
    """`dst[...] = src` for arrays of one shape (which Numba compiles far more slowly)."""
    for idx in np.ndindex(dst.shape):
        dst[idx] = src[idx]
