"""The public entry points: `autodiff` (and friends)."""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from .annotations import Active, Annotation, Const, Duplicated, DuplicatedNoNeed
from .derivatives import forward_derivative
from .errors import AnnotationError
from .jit import EnzymeJit
from .modes import Mode
from .shadows import check_argument, with_primal_strides


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
    if mode.reverse:
        raise NotImplementedError(f"{mode!r} is not implemented yet")
    return _forward(mode, f, ret_activity, annotated)


def _forward(mode: Mode, f: EnzymeJit, ret_activity: Any, annotated: list[Annotation]) -> Any:
    if ret_activity is Active:
        raise AnnotationError("an Active return is for reverse mode; in forward mode the "
                              "return is Duplicated (its tangent is returned) or Const")
    ret = "const" if ret_activity is Const else "dup"
    primals = [a.val for a in annotated]
    argtypes = tuple(numba.typeof(v) for v in primals)
    kinds = tuple("dup" if isinstance(a, Duplicated) else "const" for a in annotated)
    deriv = forward_derivative(f, argtypes, kinds, ret)
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
    primal, tangent = deriv.driver(*primals, *shadows)
    for dst, src in copy_back:
        dst[...] = src
    if ret == "const":
        tangent = None
    if mode.with_primal and ret_activity is not DuplicatedNoNeed:
        return tangent, primal
    return tangent
