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
both (address ranges first, element addresses where ranges meet). The compiled functions
are kept in Numba's disk cache: a process loads them instead of compiling them again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numba
import numpy as np
from numpy.lib.stride_tricks import as_strided

from .bridge import descriptors
from .errors import ShadowError

# ---- memory descriptors and the predicates on them ------------------------------------------
# A descriptor is an int64 array [data address, item size, *shape, *strides]; the shadows of
# one argument are a 2-d array of them, a row per shadow (one compiled predicate serves every
# number of dimensions and of shadows).


def describe_rows(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """The descriptors of arrays, a row each, zero-padded to the most dimensions (as
    `bridge.descriptors.describe_rows` makes them in jitted code)."""
    width = 2 + 2 * max(a.ndim for a in arrays)
    out = np.zeros((len(arrays), width), np.int64)
    for row, a in zip(out, arrays, strict=True):
        d = [a.__array_interface__["data"][0], a.itemsize, *a.shape, *a.strides]
        row[: len(d)] = d
    return out


@numba.njit(cache=True)
def _ndim(m: Any) -> int:  # pragma: no cover  (compiled)
    return (m.size - 2) // 2


@numba.njit(cache=True)
def _size(m: Any) -> int:  # pragma: no cover  (compiled)
    n = 1
    for d in range(_ndim(m)):
        n *= m[2 + d]
    return n


@numba.njit(cache=True)
def _span(m: Any) -> tuple[int, int]:  # pragma: no cover  (compiled)
    """Byte offsets of the lowest and the highest element from the data address."""
    nd = _ndim(m)
    lo = hi = 0
    for d in range(nd):
        span = m[2 + nd + d] * (m[2 + d] - 1)
        if span < 0:
            lo += span
        else:
            hi += span
    return lo, hi


@numba.njit(cache=True)
def _starts(m: Any) -> Any:  # pragma: no cover  (compiled)
    """The sorted addresses of the elements."""
    nd = _ndim(m)
    out = np.empty(_size(m), np.int64)
    for n in range(out.size):
        rest, at = n, m[0]
        for d in range(nd - 1, -1, -1):
            at += (rest % m[2 + d]) * m[2 + nd + d]
            rest //= m[2 + d]
        out[n] = at
    _heapsort(out)
    return out


@numba.njit(cache=True)
def _heapsort(a: Any) -> None:  # pragma: no cover  (compiled)
    """Sort `a` in place (compiles in a fraction of the time of NumPy's sort in Numba)."""
    for root in range(a.size // 2 - 1, -1, -1):
        _sift_down(a, root, a.size)
    for end in range(a.size - 1, 0, -1):
        a[0], a[end] = a[end], a[0]
        _sift_down(a, 0, end)


@numba.njit(cache=True)
def _sift_down(a: Any, root: int, n: int) -> None:  # pragma: no cover  (compiled)
    while 2 * root + 1 < n:
        child = 2 * root + 1
        if child + 1 < n and a[child] < a[child + 1]:
            child += 1
        if a[root] >= a[child]:
            return
        a[root], a[child] = a[child], a[root]
        root = child


@numba.njit(cache=True)
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


@numba.njit(cache=True)
def _identical(a: Any, b: Any) -> bool:  # pragma: no cover  (compiled)
    """The same view: data address, item size, shape and strides."""
    return a.size == b.size and _equal(a, b, 0, a.size)


@numba.njit(cache=True)
def _equal(a: Any, b: Any, start: int, stop: int) -> bool:  # pragma: no cover  (compiled)
    """Whether `a[start:stop]` equals `b[start:stop]` (a loop: Numba compiles array
    comparisons far more slowly)."""
    for i in range(start, stop):
        if a[i] != b[i]:
            return False
    return True


@numba.njit(cache=True)
def shape_differs(x: Any, lanes: Any) -> int:  # pragma: no cover  (compiled)
    """1 if a shadow (a row of `lanes`) has another shape than its primal `x`."""
    nd = _ndim(x)
    for i in range(lanes.shape[0]):
        if not _equal(lanes[i], x, 2, 2 + nd):
            return 1
    return 0


@numba.njit(cache=True)
def shares_primal(lanes: Any, y: Any) -> int:  # pragma: no cover  (compiled)
    """1 if a shadow shares memory with the primal `y`."""
    for i in range(lanes.shape[0]):
        if overlap(lanes[i], y):
            return 1
    return 0


@numba.njit(cache=True)
def lanes_share(lanes: Any) -> int:  # pragma: no cover  (compiled)
    """1 if two shadows of one argument share memory."""
    for i in range(lanes.shape[0]):
        for j in range(i):
            if overlap(lanes[i], lanes[j]):
                return 1
    return 0


@numba.njit(cache=True)
def views_conflict(x: Any, y: Any, dxs: Any, dys: Any) -> int:  # pragma: no cover  (compiled)
    """1 if the primals `x` and `y` share memory but are not the same view with the same
    shadows; 2 if they do not and their shadows do."""
    if overlap(x, y):
        if not _identical(x, y):
            return 1
        for i in range(dxs.shape[0]):
            if not _identical(dxs[i], dys[i]):
                return 1
        return 0
    for i in range(dxs.shape[0]):
        for j in range(dys.shape[0]):
            if overlap(dxs[i], dys[j]):
                return 2
    return 0


@numba.njit(cache=True)
def strides_unusable(x: Any, lanes: Any) -> int:  # pragma: no cover  (compiled)
    """1 if a shadow laid out otherwise than `x` cannot be copied into `x`'s layout (its
    strides are not multiples of its item size)."""
    nd = _ndim(x)
    for i in range(lanes.shape[0]):
        if not _equal(lanes[i], x, 2 + nd, 2 + 2 * nd):
            for d in range(nd):
                if x[2 + nd + d] % x[1]:
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


@functools.cache
def plan(args: tuple[Operand, ...]) -> tuple[Check, ...]:
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
    return tuple(checks)


# ---- the checks of a call in one compiled call ----------------------------------------------

#: the predicates `failed_check` runs, by their index in a plan's rows
TESTS = (shape_differs, strides_unusable, shares_primal, lanes_share, views_conflict)
_ROW = 1 + 3 * 4  # a row of a plan: the test, then (first row, rows, width) of ≤ 4 operands

T = TypeVar("T")


def table(
    checks: Sequence[Check], arrays: Callable[[Ref], tuple[list[T], int]]
) -> tuple[list[T], tuple[tuple[int, ...], ...]]:
    """What `failed_check` runs `checks` on: the arrays whose descriptors make the rows of
    its table (`arrays(ref)`: those an operand describes, a row each, and their number of
    dimensions), and its plan: per check the test, then (first row, number of rows, width)
    of each operand."""
    rows: dict[Ref, tuple[int, int, int]] = {}
    items: list[T] = []
    for ref in dict.fromkeys(r for c in checks for r in c.operands):
        described, ndim = arrays(ref)
        rows[ref] = (len(items), len(described), 2 + 2 * ndim)
        items += described
    plan = []
    for c in checks:
        row = [TESTS.index(c.test), *(n for ref in c.operands for n in rows[ref])]
        plan.append((*row, *[0] * (_ROW - len(row))))
    return items, tuple(plan)


def message(checks: Sequence[Check], failed: int) -> str:
    """The error `failed_check`'s result `failed` (not 0) names."""
    return checks[failed // 4].messages[failed % 4 - 1]


@numba.njit(cache=True)
def _rows(table: Any, p: Any, at: int) -> Any:  # pragma: no cover  (compiled)
    return table[p[at] : p[at] + p[at + 1], : p[at + 2]]


@numba.njit(cache=True)
def _one(table: Any, p: Any, at: int) -> Any:  # pragma: no cover  (compiled)
    return _rows(table, p, at)[0]  # (of the layout of `_rows`: the predicates compile once)


@numba.njit(cache=True)
def failed_check(table: Any, plan: Any) -> int:  # pragma: no cover  (compiled)
    """0 if every check of `plan` (see `table`) passes on the descriptors of `table`, else
    4 × the index of the first that fails + its code."""
    for c in range(plan.shape[0]):
        p = plan[c]
        if p[0] == 0:
            code = shape_differs(_one(table, p, 1), _rows(table, p, 4))
        elif p[0] == 1:
            code = strides_unusable(_one(table, p, 1), _rows(table, p, 4))
        elif p[0] == 2:
            code = shares_primal(_rows(table, p, 1), _one(table, p, 4))
        elif p[0] == 3:
            code = lanes_share(_rows(table, p, 1))
        else:
            x, y = _one(table, p, 1), _one(table, p, 4)
            code = views_conflict(x, y, _rows(table, p, 7), _rows(table, p, 10))
        if code:
            return 4 * c + code
    return 0


def run(checks: Sequence[Check], values: Sequence[Any], shadows: Sequence[tuple]) -> None:
    """Run `checks` on one call's primal values and per argument its tuple of shadows
    (raises the first failing check's `ShadowError`)."""
    if not checks:
        return

    def arrays(ref: Ref) -> tuple[list[np.ndarray], int]:
        k, kind, path = ref
        if kind == "shadows":
            return list(shadows[k]), values[k].ndim
        v = values[k]
        for i in path:
            v = v[i]
        return [v], v.ndim

    items, plan = table(checks, arrays)
    constant = np.array(plan, np.int64)
    constant.flags.writeable = False  # (typed as the plan in jitted code)
    failed = failed_check(describe_rows(items), constant)
    if failed:
        raise ShadowError(message(checks, failed))


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


@numba.njit(cache=True)
def with_strides(x: Any, dx: Any) -> Any:  # pragma: no cover  (compiled)
    """`dx`, or a copy of it laid out with `x`'s strides (the engine replays x's address
    arithmetic on the shadow); `strides_unusable` has checked that it can be made."""
    if x.strides == dx.strides or x.size == 0:
        return dx
    lo, hi = _span(descriptors.describe(x))  # (as in `_span`, for the array itself)
    buf = np.zeros((hi - lo) // x.itemsize + 1, x.dtype)
    out = as_strided(buf[-lo // x.itemsize :], x.shape, x.strides)
    copy_into(out, dx)
    return out


@numba.njit(cache=True)
def same_view(a: Any, b: Any) -> bool:  # pragma: no cover  (compiled)
    """Whether two arrays are the same view: data address, shape and strides."""
    return _identical(descriptors.describe(a), descriptors.describe(b))


@numba.njit(cache=True)
def copy_into(dst: Any, src: Any) -> None:  # pragma: no cover  (compiled)
    """`dst[...] = src` for arrays of one shape (which Numba compiles far more slowly)."""
    for idx in np.ndindex(dst.shape):
        dst[idx] = src[idx]
