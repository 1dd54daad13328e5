"""The public entry points: `autodiff` (and friends)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numba
import numpy as np
from numba.core.errors import NumbaError

from . import inside
from .annotations import Active, Annotation, BatchDuplicated, Const, Duplicated
from .derivatives import derivative
from .errors import AnnotationError
from .inside import MISS, Fallback, python_entry
from .jit import EnzymeJit
from .memory import with_strides
from .modes import Forward as Forward_
from .modes import ForwardWithPrimal as ForwardWithPrimal_
from .modes import Mode
from .modes import ReverseWithPrimal as ReverseWithPrimal_
from .shadows import batch_width, check_argument, check_memory, differentiated, value_type
from .signatures import (
    check_arity,
    check_function,
    check_mode,
    signature_of_types,
    tangent_source,
)


def autodiff(mode: Mode, f: EnzymeJit, *args: Any) -> Any:
    """Differentiate `f` at the given (annotated) arguments.

    Parameters
    ----------
    mode : `Forward`, `ForwardWithPrimal`, `Reverse`, `ReverseWithPrimal`
    f : a function decorated with `enzyme_jit`
    args : optionally the return activity class (`Const`, `Active`, `Duplicated`,
        `DuplicatedNoNeed`), then one entry per argument of `f`: `Const(x)`,
        `Duplicated(x, dx)`, `DuplicatedNoNeed(x, dx)`, `Active(a)`; plain values are `Const`.
        Batch mode: `BatchDuplicated(x, (dx1, ..., dxN))` for every argument with a
        shadow, N tangents (forward) or cotangents (reverse) carried by one call.

    Returns
    -------
    Forward: the tangent of the return value (same structure as the return; `None` for a
    `Const` return); in batch mode a tuple of N tangents. ForwardWithPrimal:
    `(tangent, primal)`. Shadows of `Duplicated` arrays hold the tangent of the array
    after `f` ran. Reverse: the adjoint of each `Active(a)` (in batch mode a tuple of N),
    `None` elsewhere; ReverseWithPrimal: `(adjoints, primal)`.

    Also callable inside `@enzyme_jit` / `@numba.njit` code, with the same arguments and
    results (see `enzpy.inside`). From Python, a call shape seen a few times goes through a
    compiled entry (`inside.python_entry`) that does the same checks in native code.

    Examples
    --------
    >>> import numpy as np, enzpy as ez
    >>> @ez.enzyme_jit
    ... def f(x):
    ...     return (x * x).sum()
    >>> x = np.array([1.0, 2.0]); dx = np.array([1.0, 0.0])
    >>> ez.autodiff(ez.Forward, f, ez.Duplicated(x, dx))
    2.0
    """
    try:
        call = _entries.get((mode, f), _no_entry)
    except TypeError:  # an unhashable mode or function: parse_arguments names it
        call = _no_entry
    try:
        out = call(*args)
    except (Fallback, NumbaError):  # a check failed (or may have): decide in Python
        out = MISS
    return out if out is not MISS else _autodiff(mode, f, args)


_HOT = 4  # calls of one shape after which it goes through a compiled entry
_entries: dict[tuple, Callable[..., Any]] = {}  # (mode, f) -> inside.python_entry chain
_calls: dict[tuple, int] = {}


def clear_cache() -> None:
    """Forget the derivatives and compiled entries of every call shape seen."""
    _entries.clear()
    _calls.clear()
    _compiled.clear()


def _no_entry(*args: Any) -> Any:
    return MISS


def _autodiff(mode: Mode, f: EnzymeJit, args: tuple) -> Any:
    """`autodiff` in Python: every check, then the native derivative through its driver.
    A call shape (mode, f, return activity, argument types) seen `_HOT` times gets a
    compiled entry that does the same in native code."""
    ret_activity, annotated = parse_arguments(mode, f, args)
    if mode.reverse:
        out = _reverse(mode, f, ret_activity, annotated)
    else:
        out = _forward(mode, f, ret_activity, annotated)
    ret = args[0] if args and type(args[0]) is type else None
    if ret is ret_activity:
        classes = tuple(map(type, args[1:] if ret is not None else args))
        key = (mode, f, ret, classes)
        n = _calls[key] = _calls.get(key, 0) + 1
        if n == _HOT:
            chain = _entries.get((mode, f), _no_entry)
            _entries[mode, f] = python_entry(mode, f, ret_activity, classes, chain)
    return out


def parse_arguments(
    mode: Mode, f: EnzymeJit, args: tuple, thunk: bool = False
) -> tuple[Any, list[Annotation]]:
    """Check the arguments `autodiff` got after `f`: (the return activity class or None, one
    annotation per argument of `f`). Raises `AnnotationError` / `ShadowError`."""
    check_mode(mode)
    check_function(f)
    ret_activity = None
    if args and isinstance(args[0], type):
        if not issubclass(args[0], Annotation):
            raise AnnotationError(f"expected a return activity class after f, got {args[0]!r}")
        ret_activity, args = args[0], args[1:]
    check_arity(f, len(args))
    annotated = [check_argument(k, a, mode.reverse) for k, a in enumerate(args)]
    _width(annotated)
    check_memory(annotated)
    if mode.split and not thunk:
        raise AnnotationError(
            f"{mode!r} is used through enzpy.autodiff_thunk, which returns "
            "the forward and the reverse pass"
        )
    return ret_activity, annotated


def derivative_signature(
    mode: Mode, f: EnzymeJit, ret_activity: Any, annotated: list[Annotation]
) -> tuple[tuple, tuple, str]:
    """What `derivative` is built for: (Numba argument types, 'dup' / 'const' per argument,
    the return activity), as `autodiff` would use it."""
    return signature_of_types(mode, f, ret_activity, *_classes_and_types(annotated))


def _classes_and_types(annotated: list[Annotation]) -> tuple[tuple, tuple]:
    return tuple(map(type, annotated)), tuple(numba.typeof(a.val) for a in annotated)


def _width(annotated: list[Annotation]) -> int:
    """The number of tangents the call carries (`shadows.batch_width`)."""
    return batch_width(
        tuple(map(type, annotated)), [len(getattr(a, "shadows", ())) for a in annotated]
    )


_compiled: dict[tuple, tuple[Any, str, int]] = {}


def _type_key(v: Any) -> Any:
    """What Numba's type of `v` depends on, cheaper to compute than `numba.typeof`."""
    if isinstance(v, np.ndarray):
        f = v.flags
        return (v.dtype, v.ndim, f.c_contiguous, f.f_contiguous, f.writeable, f.aligned)
    return type(v)


def _compiled_derivative(
    mode: Mode, f: EnzymeJit, ret_activity: Any, annotated: list[Annotation]
) -> tuple[Any, str, int]:
    """The derivative for these annotations and argument types, the return activity and the
    batch width; looked up by a cheap key first (this is the hot path of every call)."""
    width = _width(annotated)
    key = (mode.reverse, f, ret_activity, width, *((type(a), _type_key(a.val)) for a in annotated))
    hit = _compiled.get(key)
    if hit is None:
        argtypes, kinds, ret = derivative_signature(mode, f, ret_activity, annotated)
        hit = _compiled[key] = (derivative(mode, f, argtypes, kinds, ret, width), ret, width)
    return hit


def _forward(mode: Mode, f: EnzymeJit, ret_activity: Any, annotated: list[Annotation]) -> Any:
    deriv, ret, width = _compiled_derivative(mode, f, ret_activity, annotated)
    primal, tangent = _run(deriv, annotated)
    tangents = tangent if width > 1 and tangent is not None else (tangent,) * width
    if ret == "const":
        tangents = (None,) * width
    elif isinstance(deriv.restype, numba.types.BaseTuple):
        tangents = tuple(map(_tangent_of(deriv.restype), tangents))
    if not any(isinstance(a, BatchDuplicated) for a in annotated):
        (tangents,) = tangents
    if mode.with_primal and ret != "dup_noneed":
        return tangents, primal
    return tangents


@functools.cache
def _tangent_of(restype: Any) -> Callable[[Any], Any]:
    """The tangent of a tuple return from the derivative's shadow of it (None for its
    parts without derivative)."""
    return eval(f"lambda t: {tangent_source(restype, 't')}")  # noqa: S307 (our own source)


def _run(deriv: Any, annotated: list[Annotation]) -> tuple[Any, Any]:
    """Call the native derivative: primals, then shadows laid out like their primals
    (copied back into the user's shadows when they had another layout; one copy for one
    shadow passed twice, so that both arguments accumulate into it)."""
    shadows: list[Any] = []
    copy_back: list[tuple[np.ndarray, np.ndarray]] = []
    copies: dict[tuple, np.ndarray] = {}
    for a in annotated:
        for dval in getattr(a, "shadows", ()):
            if isinstance(a.val, np.ndarray):
                view = (dval.__array_interface__["data"], dval.shape, dval.strides)
                s = copies.get(view)
                if s is None:
                    s = copies[view] = with_strides(a.val, dval)
                    if s is not dval:
                        copy_back.append((dval, s))
                shadows.append(s)
            else:
                shadows.append(type(a.val)(dval))
    out = deriv.driver(*[a.val for a in annotated], *shadows)
    for dst, src in copy_back:
        dst[...] = src
    return out


def _reverse(mode: Mode, f: EnzymeJit, ret_activity: Any, annotated: list[Annotation]) -> Any:
    deriv, _, width = _compiled_derivative(mode, f, ret_activity, annotated)
    primal, scalar_adjoints = _run(deriv, annotated)
    if width == 1 and any(isinstance(a, BatchDuplicated) for a in annotated):
        scalar_adjoints = tuple((adj,) for adj in scalar_adjoints)  # a batch of one
    it = iter(scalar_adjoints)
    adjoints = tuple(next(it) if isinstance(a, Active) else None for a in annotated)
    return (adjoints, primal) if mode.with_primal else adjoints


def gradient(mode: Mode, f: EnzymeJit, *args: Any) -> tuple[Any, ...]:
    """The gradient of a float-valued `f`: one entry per argument, shaped and typed like it
    (a float for a float), `None` for `Const(...)` and integer arguments.

    `Reverse` uses one reverse pass; `Forward` one forward pass per input element. Runs on
    copies of the arguments (they are not mutated).

    Examples
    --------
    >>> import numpy as np, enzpy as ez
    >>> @ez.enzyme_jit
    ... def f(x, a):
    ...     return a * (x * x).sum()
    >>> gx, ga = ez.gradient(ez.Reverse, f, np.array([1.0, 2.0]), 3.0)
    >>> gx.tolist(), ga
    ([6.0, 12.0], 5.0)
    """
    plain, diff = _differentiable(f, args)
    if mode.reverse:
        return _reverse_pass(f, plain, diff)[0]
    out: list[Any] = []
    for k, (v, d) in enumerate(zip(plain, diff, strict=True)):
        if not d:
            out.append(None)
            continue
        if not isinstance(v, np.ndarray):
            seeded = [_tangent_arg(j, w, 1.0 if j == k else 0.0, diff) for j, w in enumerate(plain)]
            out.append(autodiff(Forward_, f, *seeded))
            continue
        g = np.empty_like(v)
        for idx in np.ndindex(v.shape):
            seeded = [_tangent_arg(j, w, None, diff) for j, w in enumerate(plain)]
            seeded[k].dval[idx] = 1.0  # type: ignore[attr-defined]
            g[idx] = autodiff(Forward_, f, *seeded)
        out.append(g)
    return tuple(out)


def jvp(f: EnzymeJit, primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
    """`(f(*primals), its derivative along tangents)` by one forward pass: `tangents[k]` is
    shaped like `primals[k]` (a float for a float), or None to hold that argument constant.
    Runs on copies of the arguments (they are not mutated).

    Examples
    --------
    >>> import numpy as np, enzpy as ez
    >>> @ez.enzyme_jit
    ... def f(x, a):
    ...     return a * (x * x).sum()
    >>> ez.jvp(f, (np.array([1.0, 2.0]), 3.0), (np.array([1.0, 0.0]), None))
    (15.0, 6.0)
    """
    if len(primals) != len(tangents):
        raise AnnotationError(f"{len(primals)} primals but {len(tangents)} tangents")
    ann = [
        Const(_copy(p)) if t is None else Duplicated(_copy(p), _tangent_like(k, p, t))
        for k, (p, t) in enumerate(zip(primals, tangents, strict=True))
    ]
    tangent, value = autodiff(ForwardWithPrimal_, f, *ann)
    return value, tangent


def vjp(f: EnzymeJit, primals: Sequence[Any], cotangent: float = 1.0) -> tuple[Any, tuple]:
    """`(f(*primals), cotangent · ∇f)` of a float-valued `f` by one reverse pass: the
    gradient entries as in `gradient` (None for integer arguments). Runs on copies.

    Examples
    --------
    >>> import numpy as np, enzpy as ez
    >>> @ez.enzyme_jit
    ... def f(x, a):
    ...     return a * (x * x).sum()
    >>> value, (gx, ga) = ez.vjp(f, (np.array([1.0, 2.0]), 3.0), 0.5)
    >>> value, gx.tolist(), ga
    (15.0, [3.0, 6.0], 2.5)
    """
    grads, value = _reverse_pass(f, *_differentiable(f, primals))
    return value, tuple(None if g is None else g * cotangent for g in grads)


def _differentiable(f: EnzymeJit, args: Sequence[Any]) -> tuple[list[Any], list[bool]]:
    """The arguments' values, and which are differentiated (`shadows.differentiated`)."""
    check_function(f)
    plain = [a.val if isinstance(a, Annotation) else a for a in args]
    diff = [
        differentiated(k, type(a) if isinstance(a, Annotation) else None, value_type(k, v))
        for k, (a, v) in enumerate(zip(args, plain, strict=True))
    ]
    return plain, diff


def _reverse_pass(f: EnzymeJit, plain: list[Any], diff: list[bool]) -> tuple[tuple, Any]:
    """One reverse pass on copies, the return seeded 1.0: (per argument its gradient, None
    where not differentiated; the return value)."""
    grads: list[Any] = []
    ann: list[Annotation] = []
    for v, d in zip(plain, diff, strict=True):
        if d and isinstance(v, np.ndarray):
            g = np.zeros_like(v)
            grads.append(g)
            ann.append(Duplicated(v.copy(), g))
        else:
            grads.append(None)
            ann.append(Active(v) if d else Const(_copy(v)))
    adj, value = autodiff(ReverseWithPrimal_, f, Active, *ann)
    return tuple(a if a is not None else g for g, a in zip(grads, adj, strict=True)), value


def _tangent_like(k: int, p: Any, t: Any) -> Any:
    """The tangent `t` of argument `k` as a fresh value of `p`'s type and shape."""
    if isinstance(p, np.ndarray):
        t = np.asarray(t, dtype=p.dtype)
        if t.shape != p.shape:
            raise AnnotationError(f"argument {k}: tangent of shape {t.shape}, array {p.shape}")
        return t.copy()
    return type(p)(t)


def _copy(v: Any) -> Any:
    return v.copy() if isinstance(v, np.ndarray) else v


def _tangent_arg(j: int, w: Any, seed: float | None, diff: list[bool]) -> Annotation:
    if not diff[j]:
        return Const(_copy(w))
    if isinstance(w, np.ndarray):
        return Duplicated(w.copy(), np.zeros_like(w))
    return Duplicated(w, type(w)(seed or 0.0))


inside.register(autodiff, gradient, jvp, vjp)
