"""The public entry points: `autodiff` (and friends)."""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba._dispatcher import compute_fingerprint

from .annotations import Active, Annotation, Const, Duplicated, DuplicatedNoNeed
from .derivatives import derivative
from .errors import AnnotationError
from .jit import EnzymeJit
from .modes import Forward as Forward_
from .modes import Mode
from .modes import Reverse as Reverse_
from .shadows import check_aliasing, check_argument, with_primal_strides


def autodiff(mode: Mode, f: EnzymeJit, *args: Any) -> Any:
    """Differentiate `f` at the given (annotated) arguments.

    Parameters
    ----------
    mode : `Forward`, `ForwardWithPrimal`, `Reverse`, `ReverseWithPrimal`
    f : a function decorated with `enzyme_jit`
    args : optionally the return activity class (`Const`, `Active`, `Duplicated`,
        `DuplicatedNoNeed`), then one entry per argument of `f`: `Const(x)`,
        `Duplicated(x, dx)`, `DuplicatedNoNeed(x, dx)`, `Active(a)`; plain values are `Const`.

    Returns
    -------
    Forward: the tangent of the return value (same structure as the return; `None` for a
    `Const` return). ForwardWithPrimal: `(tangent, primal)`. Shadows of `Duplicated`
    arrays hold the tangent of the array after `f` ran.

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
    fast = _fast_path(mode, f, args)
    if fast is not _MISS:
        return fast
    ret_activity, annotated = parse_arguments(mode, f, args)
    if mode.reverse:
        return _reverse(mode, f, ret_activity, annotated)
    return _forward(mode, f, ret_activity, annotated)


_MISS = object()
_seen: dict[tuple, tuple[Any, str]] = {}  # checked signatures -> (derivative, return)


def _fast_path(mode: Mode, f: EnzymeJit, args: tuple) -> Any:
    """`autodiff` for a signature already checked and compiled: only the shadows (whose
    shapes and memory can change from call to call) are checked again. `_MISS` on a miss."""
    ret_activity = None
    if args and isinstance(args[0], type):
        ret_activity, args = args[0], args[1:]
    try:
        key = (mode, f, ret_activity,
               tuple((type(a), compute_fingerprint(a.val if isinstance(a, Annotation) else a))
                     for a in args))  # fmt: skip
    except (TypeError, ValueError, AttributeError, NotImplementedError):
        return _MISS
    compiled = _seen.get(key)
    if compiled is None:
        return _MISS
    annotated = [a if isinstance(a, Annotation) else Const(a) for a in args]
    duplicated = 0
    for k, a in enumerate(annotated):
        if isinstance(a, Duplicated):
            check_argument(k, a, mode.reverse)
            duplicated += 1
    if duplicated > 1:
        check_aliasing(annotated)
    if mode.reverse:
        return _reverse(mode, f, ret_activity, annotated, compiled)
    return _forward(mode, f, ret_activity, annotated, compiled)


def parse_arguments(mode: Mode, f: EnzymeJit, args: tuple, thunk: bool = False
                    ) -> tuple[Any, list[Annotation]]:  # fmt: skip
    """Check the arguments `autodiff` got after `f`: (the return activity class or None, one
    annotation per argument of `f`). Raises `AnnotationError` / `ShadowError`."""
    if not isinstance(mode, Mode):
        raise AnnotationError(f"the first argument must be a mode such as enzpy.Forward, "
                              f"got {mode!r}")  # fmt: skip
    if not isinstance(f, EnzymeJit):
        raise AnnotationError(f"autodiff needs a function decorated with @enzpy.enzyme_jit, "
                              f"got {f!r}")  # fmt: skip
    ret_activity = None
    if args and isinstance(args[0], type):
        if not issubclass(args[0], Annotation):
            raise AnnotationError(f"expected a return activity class after f, got {args[0]!r}")
        ret_activity, args = args[0], args[1:]
    n = f.py_func.__code__.co_argcount
    if len(args) != n:
        raise AnnotationError(f"{f.py_func.__qualname__} takes {n} arguments, got {len(args)}")
    annotated = [check_argument(k, a, mode.reverse) for k, a in enumerate(args)]
    check_aliasing(annotated)
    if mode.split and not thunk:
        raise AnnotationError(f"{mode!r} is used through enzpy.autodiff_thunk, which returns "
                              "the forward and the reverse pass")  # fmt: skip
    return ret_activity, annotated


def derivative_signature(
    mode: Mode, f: EnzymeJit, ret_activity: Any, annotated: list[Annotation]
) -> tuple[str, tuple, tuple, str]:
    """The key `derivative` is built for: ('forward' | 'reverse', Numba argument types,
    'dup' / 'const' per argument, the return activity), as `autodiff` would use it."""
    if mode.reverse:
        return "reverse", *_reverse_signature(f, ret_activity, annotated)
    return "forward", *_forward_signature(ret_activity, annotated)


def _forward_signature(ret_activity: Any, annotated: list[Annotation]) -> tuple:
    if ret_activity is Active:
        raise AnnotationError("an Active return is for reverse mode; in forward mode the "
                              "return is Duplicated (its tangent is returned) or Const")
    ret = "const" if ret_activity is Const else "dup"
    argtypes = tuple(numba.typeof(a.val) for a in annotated)
    kinds = tuple("dup" if isinstance(a, Duplicated) else "const" for a in annotated)
    return argtypes, kinds, ret


_compiled: dict[tuple, tuple[Any, str]] = {}


def _type_key(v: Any) -> Any:
    """What Numba's type of `v` depends on, cheaper to compute than `numba.typeof`."""
    if isinstance(v, np.ndarray):
        f = v.flags
        return (v.dtype, v.ndim, f.c_contiguous, f.f_contiguous, f.writeable, f.aligned)
    return type(v)


def _compiled_derivative(mode: Mode, f: EnzymeJit, ret_activity: Any,
                         annotated: list[Annotation]) -> tuple[Any, str]:  # fmt: skip
    """The derivative for these annotations and argument types, and the return activity;
    looked up by a cheap key first (this is the hot path of every call)."""
    key = (mode.reverse, f, ret_activity,
           tuple((type(a), _type_key(a.val)) for a in annotated))  # fmt: skip
    hit = _compiled.get(key)
    if hit is None:
        kind, argtypes, kinds, ret = derivative_signature(mode, f, ret_activity, annotated)
        hit = _compiled[key] = (derivative(kind, f, argtypes, kinds, ret), ret)
        _seen[(mode, f, ret_activity,
               tuple((type(a), compute_fingerprint(a.val)) for a in annotated))] = hit
    return hit


def _forward(mode: Mode, f: EnzymeJit, ret_activity: Any, annotated: list[Annotation],
             compiled: tuple[Any, str] | None = None) -> Any:  # fmt: skip
    deriv, ret = compiled or _compiled_derivative(mode, f, ret_activity, annotated)
    primal, tangent = _run(deriv, annotated)
    if ret == "const":
        tangent = None
    if mode.with_primal and ret_activity is not DuplicatedNoNeed:
        return tangent, primal
    return tangent


def _run(deriv: Any, annotated: list[Annotation]) -> tuple[Any, Any]:
    """Call the native derivative: primals, then shadows laid out like their primals
    (copied back into the user's shadows when they had another layout)."""
    shadows, copy_back = [], []
    for a in annotated:
        if isinstance(a, Duplicated):
            if isinstance(a.val, np.ndarray):
                s = with_primal_strides(a.val, a.dval)
                if s is not a.dval:
                    copy_back.append((a.dval, s))
                shadows.append(s)
            else:
                shadows.append(type(a.val)(a.dval))
    out = deriv.driver(*[a.val for a in annotated], *shadows)
    for dst, src in copy_back:
        dst[...] = src
    return out


def _reverse_signature(f: EnzymeJit, ret_activity: Any, annotated: list[Annotation]) -> tuple:
    if ret_activity is not None and issubclass(ret_activity, Duplicated):
        raise AnnotationError(
            "combined reverse mode does not accept a Duplicated return: the shadow of a "
            "returned array is created inside the call and the caller has no moment to seed "
            "it. Either return by reference (write the result into a Duplicated argument and "
            "seed its shadow) or use split mode (ReverseSplitWithPrimal).")
    argtypes = tuple(numba.typeof(a.val) for a in annotated)
    kinds = tuple("dup" if isinstance(a, Duplicated | Active) else "const" for a in annotated)
    restype_is_float = _returns_float(f, argtypes)
    if ret_activity is None:
        ret_activity = Active if restype_is_float else Const
    if ret_activity is Active and not restype_is_float:
        raise AnnotationError("an Active return needs a float return value; pass Const "
                              "after f, and seed array outputs through their shadows")
    ret = "active" if ret_activity is Active else "const"
    return argtypes, kinds, ret


def _reverse(mode: Mode, f: EnzymeJit, ret_activity: Any, annotated: list[Annotation],
             compiled: tuple[Any, str] | None = None) -> Any:  # fmt: skip
    deriv, _ = compiled or _compiled_derivative(mode, f, ret_activity, annotated)
    primal, scalar_adjoints = _run(deriv, annotated)
    it = iter(scalar_adjoints)
    adjoints = tuple(next(it) if isinstance(a, Active) else None for a in annotated)
    return (adjoints, primal) if mode.with_primal else adjoints


def _returns_float(f: EnzymeJit, argtypes: tuple) -> bool:
    f.dispatcher.compile(argtypes)
    restype = f.dispatcher.overloads[argtypes].signature.return_type
    return isinstance(restype, numba.types.Float)


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
    plain = [a.val if isinstance(a, Annotation) else a for a in args]
    diff = [not isinstance(a, Annotation | bool | int) or isinstance(a, Active | Duplicated)
            for a in args]  # fmt: skip
    diff = [d and (isinstance(v, np.ndarray) and v.dtype.kind == "f" or _is_float(v))
            for d, v in zip(diff, plain, strict=True)]  # fmt: skip
    if mode.reverse:
        grads, ann = [], []
        for v, d in zip(plain, diff, strict=True):
            if d and isinstance(v, np.ndarray):
                g = np.zeros_like(v)
                grads.append(g)
                ann.append(Duplicated(v.copy(), g))
            else:
                grads.append(None)
                ann.append(Active(v) if d else Const(_copy(v)))
        adj = autodiff(Reverse_, f, Active, *ann)
        return tuple(a if a is not None else g for g, a in zip(grads, adj, strict=True))
    out: list[Any] = []
    for k, (v, d) in enumerate(zip(plain, diff, strict=True)):
        if not d:
            out.append(None)
            continue
        if not isinstance(v, np.ndarray):
            ann = [_tangent_arg(j, w, 1.0 if j == k else 0.0, diff) for j, w in enumerate(plain)]
            out.append(autodiff(Forward_, f, *ann))
            continue
        g = np.empty_like(v)
        for idx in np.ndindex(v.shape):
            ann = [_tangent_arg(j, w, None, diff) for j, w in enumerate(plain)]
            ann[k].dval[idx] = 1.0
            g[idx] = autodiff(Forward_, f, *ann)
        out.append(g)
    return tuple(out)


def _is_float(v: Any) -> bool:
    return isinstance(v, float | np.floating)


def _copy(v: Any) -> Any:
    return v.copy() if isinstance(v, np.ndarray) else v


def _tangent_arg(j: int, w: Any, seed: float | None, diff: list[bool]) -> Annotation:
    if not diff[j]:
        return Const(_copy(w))
    if isinstance(w, np.ndarray):
        return Duplicated(w.copy(), np.zeros_like(w))
    return Duplicated(w, type(w)(seed or 0.0))
