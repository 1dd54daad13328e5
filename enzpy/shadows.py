"""Checks on annotated arguments and shadows, done before any native code runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numba
import numpy as np
from numba.core import types
from numba.core.errors import NumbaError

from . import memory
from .annotations import SHADOWED, Active, Annotation, BatchDuplicated, Const, Duplicated
from .errors import AnnotationError, ShadowError


def check_argument(k: int, arg: Any, reverse: bool) -> Annotation:
    """Validate one argument of `autodiff` given from Python (`check_argument_type` on the
    Numba types of its values); plain values become `Const`."""
    if not isinstance(arg, Annotation):
        if isinstance(arg, type) and issubclass(arg, Annotation):
            raise AnnotationError(unwrapped_message(k, arg))
        return Const(arg)
    lanes = [value_type(k, d) for d in arg.shadows] if isinstance(arg, SHADOWED) else None
    check_argument_type(k, type(arg), value_type(k, arg.val), lanes, reverse)
    return arg


def _check_batch(k: int | str, name: str, width: int, reverse: bool) -> None:
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
            "every argument of a batch call carries the same number of derivatives"
        )
    if any(issubclass(c, Duplicated) for c in classes):
        raise AnnotationError(
            "Duplicated and BatchDuplicated arguments in one call: in batch mode pass every "
            "argument with a shadow as BatchDuplicated (a zero shadow where a lane has "
            "none); float scalars are Active in reverse mode, their adjoints one per lane"
        )
    return batch.pop()


def differentiated(k: int, cls: type | None, ty: types.Type) -> bool:
    """Whether `gradient`, `vjp` and `jacobian` differentiate argument `k`, of Numba type
    `ty`, passed plainly (`cls` None) or annotated `cls`: a float or a float array, unless
    `Const`. A list or tuple holding floats is refused: its derivative has nowhere to go
    (Numba passes lists by value, and reflected lists are deprecated)."""
    if isinstance(ty, types.List | types.BaseTuple):
        items = [ty.dtype] if isinstance(ty, types.List) else list(ty.types)
        if any(map(_floating, items)):
            kind = "list" if isinstance(ty, types.List) else "tuple"
            raise AnnotationError(
                f"argument {k}: a {kind} holding floats carries no derivative enzpy can "
                "return; pass np.asarray(...) of a sequence of floats (a float array), or "
                "the arrays it holds as arguments of their own"
            )
    if (cls is None or not issubclass(cls, Const)) and _records_of_floats(ty):
        raise AnnotationError(_records_message(k, ty))
    diff = (cls is None or issubclass(cls, Active | Duplicated)) and _floating(ty)
    if diff:
        _check_precision(k, ty.dtype if isinstance(ty, types.Array) else ty)
    return diff


def _records_of_floats(ty: types.Type) -> bool:
    """An array of a structured dtype with a float field."""
    return (
        isinstance(ty, types.Array)
        and isinstance(ty.dtype, types.Record)
        and any(isinstance(t, types.Float) for _, t in ty.dtype.members)
    )


def _records_message(k: int | str, ty: types.Type) -> str:
    return (
        f"argument {k}: an array of records (fields {', '.join(n for n, _ in ty.dtype.members)})"
        " holding floats: enzpy differentiates float arrays only; pass its float fields as "
        "arrays of their own (r['a'], ...), or the array as Const"
    )


def value_type(k: int, v: Any) -> types.Type:
    """The Numba type of argument `k`'s value (`AnnotationError` when Numba has none)."""
    if type(v) is np.ndarray:  # typed once per dtype, dimension and flags: Numba's typeof
        f = v.flags  # costs a few µs, in every call of a split pair or `gradient`
        key = (v.dtype, v.ndim, f.c_contiguous, f.f_contiguous, f.writeable, f.aligned)
        ty = _ARRAY_TYPES.get(key)
        if ty is None:
            ty = _ARRAY_TYPES[key] = _typeof(k, v)
        return ty
    if type(v) in _SCALAR_TYPES:
        return _SCALAR_TYPES[type(v)]
    return _typeof(k, v)


_ARRAY_TYPES: dict[tuple, types.Type] = {}


def type_tests(args: Sequence[Any], layouts: bool = True) -> tuple[list[str], dict] | None:
    """Python tests which, all true for the arguments `a0, a1, ...` of another call, give it
    the classes and Numba types of `args` (`layouts`; else only the classes and dtypes),
    and the globals `_T0, _T1, ...` they compare with: each argument's class, its value's
    and each shadow's class, an array's dtype, and its dimensions and flags. None where a
    value would need more (tuples, lists, batches of shadows, other objects)."""
    tests: list[tuple[str, Any]] = []
    for k, a in enumerate(args):
        tests.append((f"type(a{k}) is", type(a)))
        values = [(f"a{k}.val", a.val)] if isinstance(a, Annotation) else [(f"a{k}", a)]
        if isinstance(a, Duplicated):
            values.append((f"a{k}.dval", a.dval))
        elif isinstance(a, BatchDuplicated):
            return None
        for src, v in values:
            tests.append((f"type({src}) is", type(v)))
            if type(v) is np.ndarray:
                tests.append((f"{src}.dtype is", v.dtype))
                if layouts:
                    tests.append((f"{src}.ndim ==", v.ndim))
                    flags = v.flags.num & _TYPED_FLAGS
                    tests.append((f"{src}.flags.num & {_TYPED_FLAGS} ==", flags))
            elif not isinstance(v, _TESTED_SCALARS):
                return None
    return [f"{t} _T{k}" for k, (t, _) in enumerate(tests)], {
        f"_T{k}": value for k, (_, value) in enumerate(tests)
    }


# the bits of `ndarray.flags.num` Numba's type of an array depends on: NumPy's C_CONTIGUOUS
# (0x1), F_CONTIGUOUS (0x2), ALIGNED (0x100) and WRITEABLE (0x400)
_TYPED_FLAGS = 0x503
_SCALAR_TYPES = {float: types.float64, complex: types.complex128, bool: types.boolean}
# scalars whose class gives their Numba type (an int: int64, as Numba passes it)
_TESTED_SCALARS = (float, complex, int, type(None), np.number, np.bool_)


def _typeof(k: int, v: Any) -> types.Type:
    try:
        return numba.typeof(v)
    except (ValueError, NumbaError):
        _check_precision(k, _float_dtype(v))
        raise AnnotationError(
            f"argument {k}: a {type(v).__name__} cannot be passed to a jitted function"
        ) from None


def _floating(ty: types.Type) -> bool:
    """A float, or an array of floats."""
    return isinstance(ty, types.Float) or (
        isinstance(ty, types.Array) and isinstance(ty.dtype, types.Float)
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


_READ_ONLY = "argument {k}: the shadow array is read-only"


def _unlike(k: int | str, ndim: int, dtype: Any, primal_ndim: int, primal_dtype: Any) -> str:
    return (
        f"argument {k}: shadow has {ndim} dimensions and dtype {dtype}; the primal has "
        f"{primal_ndim} and {primal_dtype}"
    )


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
    k: int | str,
    cls: type,
    val: types.Type,
    shadows: Sequence[types.Type] | None,
    reverse: bool,
) -> None:
    """The checks of an argument of `autodiff` on Numba types: `cls` is the annotation
    class (`Const` for a plain value), `val` the type of its value, `shadows` the types of
    its shadows (one, or one per lane of a `BatchDuplicated`; None without). What only
    values tell (shapes, memory) is checked by `memory`."""
    if issubclass(cls, BatchDuplicated):
        _check_batch(k, cls.__name__, len(shadows or ()), reverse)
        for lane, t in enumerate(shadows or ()):
            check_argument_type(f"{k} (shadow {lane})", Duplicated, val, (t,), reverse)
        return
    if issubclass(cls, Active | Duplicated):
        t = val.dtype if isinstance(val, types.Array) else val
        _check_precision(k, t if isinstance(t, types.Float | types.Complex) else None)
    if issubclass(cls, Active):
        _check_active(k, isinstance(val, types.Float), str(val), reverse)
    if not issubclass(cls, Duplicated):
        return
    (dval,) = shadows or (types.none,)
    if isinstance(val, types.Array):
        if _records_of_floats(val):
            raise AnnotationError(_records_message(k, val))
        _check_array_shadow(
            k,
            isinstance(val.dtype, types.Float),
            val.dtype,
            isinstance(dval, types.Array),
            str(dval),
        )
        if dval.ndim != val.ndim or dval.dtype != val.dtype:
            raise ShadowError(_unlike(k, dval.ndim, dval.dtype, val.ndim, val.dtype))
        if not dval.mutable:
            raise ShadowError(_READ_ONLY.format(k=k))
        return
    if isinstance(val, types.Float):
        _check_scalar_shadow(
            k, reverse, isinstance(dval, types.Float | types.Integer | types.Boolean), str(dval)
        )
        return
    raise AnnotationError(_not_differentiable(k, str(val)))


def check_memory(annotated: list[Annotation]) -> None:
    """The memory checks of a call (`memory.plan`) on its annotated arguments' values."""
    values = [a.val for a in annotated]
    shadows = [a.shadows for a in annotated]
    operands = tuple(memory.operand(v, len(s)) for v, s in zip(values, shadows, strict=True))
    memory.run(memory.plan(operands), values, shadows)
