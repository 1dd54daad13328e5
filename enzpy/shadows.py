"""Checks on annotated arguments and shadows, done before any native code runs."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
from numba.core import types

from .annotations import Active, Annotation, BatchDuplicated, Const, Duplicated
from .errors import AnnotationError, ShadowError

FLOAT_DTYPES = (np.float32, np.float64)


def is_float_scalar(v: Any) -> bool:
    return isinstance(v, float | np.floating) and not isinstance(v, np.longdouble)


def check_argument(k: int, arg: Any, reverse: bool) -> Annotation:
    """Validate one argument of `autodiff`; plain values become `Const`."""
    if not isinstance(arg, Annotation):
        if isinstance(arg, type) and issubclass(arg, Annotation):
            raise AnnotationError(unwrapped_message(k, arg))
        return Const(arg)
    if isinstance(arg, BatchDuplicated):
        _check_batch(k, type(arg).__name__, len(arg.dvals), reverse)
    if isinstance(arg, Active | Duplicated | BatchDuplicated):
        _check_precision(k, _float_dtype(arg.val))
    if isinstance(arg, Active):
        _check_active(k, is_float_scalar(arg.val), type(arg.val).__name__, reverse)
    if isinstance(arg, Duplicated):
        _check_shadow(k, arg.val, arg.dval, reverse)
    if isinstance(arg, BatchDuplicated):
        for lane, dval in enumerate(arg.dvals):
            _check_shadow(f"{k} (shadow {lane})", arg.val, dval, reverse)
    return arg


def _check_batch(k: int | str, name: str, width: int, reverse: bool) -> None:
    if reverse:
        raise AnnotationError(
            f"argument {k}: {name} (batch mode) is for forward mode; in reverse mode "
            "pass one Duplicated shadow per call"
        )
    if width == 0:
        raise AnnotationError(f"argument {k}: {name} needs at least one shadow")


def batch_width(classes: Sequence[type], widths: Sequence[int]) -> int:
    """The number of tangents a call carries: 1, or the common number of shadows of its
    `BatchDuplicated` arguments (`classes`: each argument's annotation class, `widths`:
    each one's number of shadows). `AnnotationError` when they differ, or when batch
    and single shadows are mixed."""
    batch = {w for c, w in zip(classes, widths, strict=True) if issubclass(c, BatchDuplicated)}
    if not batch:
        return 1
    if len(batch) > 1:
        raise AnnotationError(
            f"BatchDuplicated arguments with {' and '.join(map(str, sorted(batch)))} shadows: "
            "every argument of a batch call carries the same number of tangents"
        )
    if any(issubclass(c, Duplicated) for c in classes):
        raise AnnotationError(
            "Duplicated and BatchDuplicated arguments in one call: in batch mode pass every "
            "argument with a derivative as BatchDuplicated (a zero shadow where a lane has "
            "no tangent)"
        )
    return batch.pop()


def check_differentiable_container(k: int, arg: Any) -> None:
    """A list or tuple of floats where `gradient` takes a float array: its derivative has
    nowhere to go (Numba passes lists by value, and reflected lists are deprecated)."""
    if isinstance(arg, list | tuple) and any(
        is_float_scalar(v) or isinstance(v, np.ndarray) for v in arg
    ):
        raise AnnotationError(
            f"argument {k}: a {type(arg).__name__} of floats carries no derivative enzpy "
            f"can return; pass np.asarray(...) of it (a float array) instead"
        )


def _float_dtype(v: Any) -> np.dtype | None:
    """The dtype of a float or complex array or scalar; None for anything else."""
    if isinstance(v, np.ndarray | np.generic):
        return v.dtype if v.dtype.kind in "fc" else None
    return np.dtype(type(v)) if isinstance(v, float | complex) else None


def _check_precision(k: int | str, dtype: Any) -> None:
    """`AnnotationError` for float or complex data (`dtype`, a NumPy or Numba type) other
    than float32 and float64."""
    if dtype is not None and str(dtype) not in ("float32", "float64"):
        raise AnnotationError(
            f"argument {k}: {dtype} data is not supported; enzpy "
            "differentiates float32 and float64 (convert with "
            "x.astype(np.float64) or float(a))"
        )


def unwrapped_message(k: int, cls: type) -> str:
    """The error for an annotation class passed where a wrapped value belongs."""
    return f"argument {k}: {cls.__name__} must wrap a value, e.g. {cls.__name__}(x)"


def _check_active(k: int | str, is_float: bool, got: str, reverse: bool) -> None:
    if not reverse:
        raise AnnotationError(
            f"argument {k}: Active is for reverse mode; in forward mode pass a float "
            f"scalar with its tangent as Duplicated(a, da)"
        )
    if not is_float:
        raise AnnotationError(f"argument {k}: Active needs a float scalar, got {got}")


def _check_shadow(k: int | str, x: Any, dx: Any, reverse: bool) -> None:
    if isinstance(x, np.ndarray):
        _check_array_shadow(
            k, x.dtype.type in FLOAT_DTYPES, x.dtype, isinstance(dx, np.ndarray), type(dx).__name__
        )
        if dx.shape != x.shape or dx.dtype != x.dtype:
            raise ShadowError(
                f"argument {k}: shadow has shape {dx.shape} and dtype "
                f"{dx.dtype}; the primal has {x.shape} and {x.dtype}"
            )
        if not dx.flags.writeable:
            raise ShadowError(_READ_ONLY.format(k=k))
        return
    if is_float_scalar(x):
        _check_scalar_shadow(
            k, reverse, is_float_scalar(dx) or isinstance(dx, int), type(dx).__name__
        )
        return
    raise AnnotationError(_not_differentiable(k, type(x).__name__))


_READ_ONLY = "argument {k}: the shadow array is read-only"


def _check_array_shadow(
    k: int | str, is_float: bool, dtype: Any, dx_is_array: bool, dx_name: str
) -> None:
    if not is_float:
        raise ShadowError(
            f"argument {k}: a {dtype} array carries no derivative "
            "(integer and boolean data is never active); pass it as Const"
        )
    if not dx_is_array:
        raise ShadowError(f"argument {k}: the shadow of an array must be an array, got {dx_name}")


def _check_scalar_shadow(k: int | str, reverse: bool, dx_ok: bool, dx_name: str) -> None:
    if reverse:
        raise AnnotationError(
            f"argument {k}: a float scalar is Active(a) in reverse mode, not Duplicated"
        )
    if not dx_ok:
        raise ShadowError(f"argument {k}: the tangent of a float must be a float, got {dx_name}")


def _not_differentiable(k: int | str, got: str) -> str:
    hint = "; for a list of floats pass np.asarray(...) of it" if "list" in got.lower() else ""
    return f"argument {k}: Duplicated needs a float array or float scalar, got {got}{hint}"


def check_argument_type(
    k: int | str, cls: type, val: types.Type, dval: types.Type | None, reverse: bool
) -> None:
    """`check_argument` on Numba types, for calls inside jitted code: `cls` is the
    annotation class (`Const` for a plain value), `val` / `dval` the types it wraps (for
    `BatchDuplicated`, `dval` is the tuple of the shadows' types). What only values tell
    (shapes, memory) is checked by the generated code at run time."""
    if issubclass(cls, BatchDuplicated):
        if not isinstance(dval, types.BaseTuple):
            raise AnnotationError(
                f"argument {k}: {cls.__name__} takes a tuple of shadows, got {dval}"
            )
        lanes: Any = dval.types
        _check_batch(k, cls.__name__, len(lanes), reverse)
        if len(set(lanes)) > 1:
            raise AnnotationError(
                f"argument {k}: the shadows of a {cls.__name__} in jitted code must have one "
                f"type, got {dval} (make them alike, e.g. with np.ascontiguousarray)"
            )
        for lane, t in enumerate(lanes):
            check_argument_type(f"{k} (shadow {lane})", Duplicated, val, t, reverse)
        return
    if issubclass(cls, Active | Duplicated):
        t = val.dtype if isinstance(val, types.Array) else val
        _check_precision(k, t if isinstance(t, types.Float | types.Complex) else None)
    if issubclass(cls, Active):
        _check_active(k, isinstance(val, types.Float), str(val), reverse)
    if not issubclass(cls, Duplicated):
        return
    if isinstance(val, types.Array):
        _check_array_shadow(
            k,
            isinstance(val.dtype, types.Float),
            val.dtype,
            isinstance(dval, types.Array),
            str(dval),
        )
        if dval.ndim != val.ndim or dval.dtype != val.dtype:
            raise ShadowError(
                f"argument {k}: shadow has {dval.ndim} dimensions and dtype "
                f"{dval.dtype}; the primal has {val.ndim} and {val.dtype}"
            )
        if not dval.mutable:
            raise ShadowError(_READ_ONLY.format(k=k))
        return
    if isinstance(val, types.Float):
        _check_scalar_shadow(
            k, reverse, isinstance(dval, types.Float | types.Integer | types.Boolean), str(dval)
        )
        return
    raise AnnotationError(_not_differentiable(k, str(val)))


def with_primal_strides(x: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """`dx`, or a copy of it laid out with `x`'s strides (the engine replays x's address
    arithmetic on the shadow)."""
    if dx.strides == x.strides:
        return dx
    lo = sum(s * (n - 1) for s, n in zip(x.strides, x.shape, strict=True) if s < 0)
    hi = sum(s * (n - 1) for s, n in zip(x.strides, x.shape, strict=True) if s > 0)
    buf = np.zeros(hi - lo + x.itemsize, dtype=np.uint8)
    out = np.ndarray(x.shape, x.dtype, buffer=buf, offset=-lo, strides=x.strides)
    out[...] = dx
    return out


def shadow_shares_primal(k: int, m: int) -> str:
    """The error for the shadow of argument `k` sharing memory with the primal of `m`."""
    whose = "its primal" if k == m else f"the primal of argument {m}"
    return f"argument {k}: the shadow shares memory with {whose}"


def different_views(k: int, m: int) -> str:
    """The error for two `Duplicated` arguments sharing memory as different views or with
    different shadows."""
    return (
        f"arguments {k} and {m} share memory but are not the same view with the same "
        "shadow; pass the same shadow for the same memory"
    )


def shadows_overlap(k: int, m: int) -> str:
    """The error for two arguments with distinct primals whose shadows share memory."""
    return f"arguments {k} and {m} have overlapping shadows but distinct primals"


def lanes_share(k: int) -> str:
    """The error for two shadows of one `BatchDuplicated` argument sharing memory."""
    return f"argument {k}: two of its shadows share memory (each carries its own tangent)"


def check_aliasing(annotated: list[Annotation]) -> None:
    """No shadow may share memory with a primal (any argument's, `Const` ones included) nor
    with another shadow, unless the two arguments are the same view with the same shadows
    (one memory, one derivative): anything else would silently mix primal values and
    derivatives, or split a derivative."""
    dup = [
        (k, a.val, a.shadows)
        for k, a in enumerate(annotated)
        if isinstance(a, Duplicated | BatchDuplicated) and isinstance(a.val, np.ndarray)
    ]
    primals = [(m, y) for m, a in enumerate(annotated) for y in _arrays_in(a.val)]
    for k, _, dxs in dup:
        for m, y in primals:
            if any(_shares(dx, y) for dx in dxs):
                raise ShadowError(shadow_shares_primal(k, m))
        if any(_shares(a, b) for a, b in itertools.combinations(dxs, 2)):
            raise ShadowError(lanes_share(k))
    for (k, x, dxs), (m, y, dys) in itertools.combinations(dup, 2):
        if _shares(x, y):
            if not (_same_view(x, y) and all(map(_same_view, dxs, dys))):
                raise ShadowError(different_views(k, m))
        elif any(_shares(dx, dy) for dx in dxs for dy in dys):
            raise ShadowError(shadows_overlap(k, m))


def _arrays_in(v: Any) -> list[np.ndarray]:
    """The arrays `v` is or holds (in tuples, nested)."""
    if isinstance(v, np.ndarray):
        return [v]
    return [a for e in v for a in _arrays_in(e)] if isinstance(v, tuple) else []


def _shares(a: np.ndarray, b: np.ndarray) -> bool:
    return np.may_share_memory(a, b) and np.shares_memory(a, b)


def _same_view(a: np.ndarray, b: np.ndarray) -> bool:
    return (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.shape == b.shape
        and a.strides == b.strides
    )
