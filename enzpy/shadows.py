"""Checks on annotated arguments and shadows, done before any native code runs."""

from __future__ import annotations

from typing import Any

import numpy as np

from .annotations import Active, Annotation, BatchDuplicated, Const, Duplicated
from .errors import AnnotationError, ShadowError

FLOAT_DTYPES = (np.float32, np.float64)


def is_float_scalar(v: Any) -> bool:
    return isinstance(v, float | np.floating) and not isinstance(v, np.longdouble)


def check_argument(k: int, arg: Any, reverse: bool) -> Annotation:
    """Validate one argument of `autodiff`; plain values become `Const`."""
    if not isinstance(arg, Annotation):
        if isinstance(arg, type) and issubclass(arg, Annotation):
            raise AnnotationError(f"argument {k}: {arg.__name__} must wrap a value, "
                                  f"e.g. {arg.__name__}(x)")  # fmt: skip
        return Const(arg)
    if isinstance(arg, BatchDuplicated):
        raise AnnotationError(f"argument {k}: {type(arg).__name__} (vector mode) is not "
                              "supported yet")  # fmt: skip
    if isinstance(arg, Active):
        if not reverse:
            raise AnnotationError(
                f"argument {k}: Active is for reverse mode; in forward mode pass a float "
                f"scalar with its tangent as Duplicated(a, da)")
        if not is_float_scalar(arg.val):
            raise AnnotationError(f"argument {k}: Active needs a float scalar, got "
                                  f"{type(arg.val).__name__}")  # fmt: skip
    if isinstance(arg, Duplicated):
        _check_shadow(k, arg.val, arg.dval, reverse)
    return arg


def _check_shadow(k: int, x: Any, dx: Any, reverse: bool) -> None:
    if isinstance(x, np.ndarray):
        if x.dtype.type not in FLOAT_DTYPES:
            raise ShadowError(f"argument {k}: a {x.dtype} array carries no derivative "
                              "(integer and boolean data is never active); pass it as Const")
        if not isinstance(dx, np.ndarray):
            raise ShadowError(f"argument {k}: the shadow of an array must be an array, got "
                              f"{type(dx).__name__}")  # fmt: skip
        if dx.shape != x.shape or dx.dtype != x.dtype:
            raise ShadowError(f"argument {k}: shadow has shape {dx.shape} and dtype "
                              f"{dx.dtype}; the primal has {x.shape} and {x.dtype}")
        if not dx.flags.writeable:
            raise ShadowError(f"argument {k}: the shadow array is read-only")
        if x.size and np.may_share_memory(x, dx) and np.shares_memory(x, dx):
            raise ShadowError(f"argument {k}: the shadow shares memory with its primal")
        return
    if is_float_scalar(x):
        if reverse:
            raise AnnotationError(f"argument {k}: a float scalar is Active(a) in reverse "
                                  "mode, not Duplicated")  # fmt: skip
        if not is_float_scalar(dx) and not isinstance(dx, int):
            raise ShadowError(f"argument {k}: the tangent of a float must be a float, got "
                              f"{type(dx).__name__}")  # fmt: skip
        return
    raise AnnotationError(f"argument {k}: Duplicated needs a float array or float scalar, "
                          f"got {type(x).__name__}")  # fmt: skip


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


def check_aliasing(annotated: list[Annotation]) -> None:
    """Duplicated arrays whose primals share memory must share their shadow too (one
    memory, one derivative); anything else would silently split the derivative."""
    dup = [(k, a) for k, a in enumerate(annotated)
           if isinstance(a, Duplicated) and isinstance(a.val, np.ndarray)]  # fmt: skip
    for i, (k, a) in enumerate(dup):
        for m, b in dup[i + 1:]:
            if np.may_share_memory(a.val, b.val) and np.shares_memory(a.val, b.val):
                same = a.dval is b.dval or (
                    a.val.__array_interface__ == b.val.__array_interface__
                    and a.dval.__array_interface__ == b.dval.__array_interface__)
                if not same:
                    raise ShadowError(f"arguments {k} and {m} share memory but have different "
                                      "shadows; pass the same shadow for the same memory")
            elif np.may_share_memory(a.dval, b.dval) and np.shares_memory(a.dval, b.dval):
                raise ShadowError(f"arguments {k} and {m} have overlapping shadows but "
                                  "distinct primals")
