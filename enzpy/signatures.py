"""Which derivative a call needs, from the annotation classes and Numba argument types.

Shared by the Python API (types from `numba.typeof` of the values) and calls inside jitted
code (types from Numba's type inference); knows nothing of the values themselves.
"""

from __future__ import annotations

from typing import Any

import numba

from .annotations import (
    SHADOWED,
    Active,
    BatchDuplicatedNoNeed,
    Const,
    Duplicated,
    DuplicatedNoNeed,
)
from .bridge.abi import contains_float
from .bridge.link import float_valued
from .errors import AnnotationError, EnzpyError
from .jit import EnzymeJit
from .modes import Mode

DUPLICATED_RETURN_IN_REVERSE = (
    "combined reverse mode does not accept a Duplicated return: the shadow of a returned "
    "array is created inside the call and the caller has no moment to seed it. Either return "
    "by reference (write the result into a Duplicated argument and seed its shadow) or use "
    "split mode (ReverseSplitWithPrimal)."
)


def check_mode(mode: Any) -> Mode:
    """`mode`, if it is one (else `AnnotationError`)."""
    if not isinstance(mode, Mode):
        raise AnnotationError(
            f"the first argument must be a mode such as enzpy.Forward, got {mode!r}"
        )
    return mode


def check_jit() -> None:
    """`EnzpyError` when Numba's JIT is off (`NUMBA_DISABLE_JIT=1`): nothing is compiled, so
    there is no code to differentiate."""
    if numba.config.DISABLE_JIT:
        raise EnzpyError(
            "NUMBA_DISABLE_JIT=1: Numba compiles nothing, so enzpy has no code to "
            "differentiate (@ez.enzyme_jit functions run as Python); unset it to take "
            "derivatives"
        )


def check_function(f: Any, shown: Any = None) -> EnzymeJit:
    """`f`, if it is an `enzyme_jit` function (else `AnnotationError` naming `shown`, by
    default `f`) and Numba compiles (`check_jit`)."""
    check_jit()
    if not isinstance(f, EnzymeJit):
        raise AnnotationError(
            f"autodiff needs a function decorated with @enzpy.enzyme_jit, "
            f"got {f if shown is None else shown!r}"
        )
    return f


def check_arity(f: EnzymeJit, got: int) -> None:
    """`AnnotationError` unless `f` takes `got` arguments."""
    n = f.py_func.__code__.co_argcount
    if got != n:
        raise AnnotationError(f"{f.py_func.__qualname__} takes {n} arguments, got {got}")


def signature_of_types(
    mode: Mode, f: Any, ret_activity: Any, classes: tuple[type, ...], argtypes: tuple
) -> tuple[tuple, tuple, str]:
    """What `derivatives.derivative` is built for in `mode`: (`argtypes`, 'dup' / 'const' per
    argument, the return activity). `classes` holds the annotation class of each argument
    (`Const` for plain values)."""
    if mode.split:
        return split_types(f, ret_activity, classes, argtypes)
    if mode.reverse:
        return reverse_types(f, ret_activity, classes, argtypes)
    return forward_types(ret_activity, classes, argtypes)


def forward_types(ret_activity: Any, classes: tuple[type, ...], argtypes: tuple) -> tuple:
    """(argtypes, kinds, ret) of a forward-mode derivative."""
    if ret_activity is Active:
        raise AnnotationError(
            "an Active return is for reverse mode; in forward mode the "
            "return is Duplicated (its tangent is returned) or Const"
        )
    ret = "const" if ret_activity is Const else _forward_kind(ret_activity or Duplicated)
    return argtypes, tuple(map(_forward_kind, classes)), ret


def _forward_kind(cls: type) -> str:
    if issubclass(cls, DuplicatedNoNeed | BatchDuplicatedNoNeed):
        return "dup_noneed"
    return "dup" if issubclass(cls, SHADOWED) else "const"


def reverse_types(f: Any, ret_activity: Any, classes: tuple[type, ...], argtypes: tuple) -> tuple:
    """(argtypes, kinds, ret) of a combined reverse-mode derivative."""
    if ret_activity is not None and issubclass(ret_activity, Duplicated):
        raise AnnotationError(DUPLICATED_RETURN_IN_REVERSE)
    kinds = _reverse_kinds(classes)
    restype = return_type(f, argtypes)
    restype_is_float = isinstance(restype, numba.types.Float)
    if ret_activity is None and not restype_is_float and contains_float(restype):
        raise AnnotationError(
            f"{f.py_func.__qualname__} returns {restype}, which is not a float: reverse mode "
            "seeds a float return with 1.0 and has no seed for this one. Pass the return "
            "activity Const after f if no derivative through the return is wanted; to "
            "differentiate through it, return by reference (write it into a Duplicated "
            "argument and seed its shadow) or use split mode (ez.autodiff_thunk)"
        )
    if ret_activity is None:
        ret_activity = Active if restype_is_float else Const
    if ret_activity is Active and not restype_is_float:
        raise AnnotationError(
            "an Active return needs a float return value; pass Const "
            "after f, and seed array outputs through their shadows"
        )
    ret = "active" if ret_activity is Active else "const"
    return argtypes, kinds, ret


def _reverse_kinds(classes: tuple[type, ...]) -> tuple[str, ...]:
    return tuple("dup" if issubclass(c, (*SHADOWED, Active)) else "const" for c in classes)


def split_types(f: Any, ret_activity: Any, classes: tuple[type, ...], argtypes: tuple) -> tuple:
    """(argtypes, kinds, ret) of a split-mode derivative: the return is 'active' (a float or
    a tuple of floats, seeded by value), 'dup' (arrays, seeded through their shadow) or
    'const'; by default whichever the return type allows."""
    restype = return_type(f, argtypes)
    by_value = float_valued(restype)
    if ret_activity is None:
        ret_activity = Active if by_value else Duplicated if contains_float(restype) else Const
    name = f.py_func.__qualname__
    if ret_activity is Active and not by_value:
        raise AnnotationError(
            f"an Active return needs a float (or tuple of floats) return "
            f"value; {name} returns {restype}: pass Duplicated to seed "
            "the shadow of a returned array"
        )
    if issubclass(ret_activity, Duplicated):
        if by_value:
            raise AnnotationError(
                f"{name} returns {restype}: a float return is Active "
                "(its cotangent is passed to the reverse pass)"
            )
        if not contains_float(restype) or _has_loose_float(restype):
            raise AnnotationError(
                f"a Duplicated return needs a returned array or tuple of "
                f"arrays; {name} returns {restype} (return floats and "
                "arrays from separate functions)"
            )
    elif ret_activity not in (Active, Const):
        raise AnnotationError(f"unsupported return activity {ret_activity.__name__}")
    ret = {Active: "active", Const: "const"}.get(ret_activity, "dup")
    return argtypes, _reverse_kinds(classes), ret


def _has_loose_float(t: Any) -> bool:
    """Whether a tuple type holds a float outside any array."""
    if isinstance(t, numba.types.BaseTuple):
        return any(_has_loose_float(e) for e in t.types)
    return isinstance(t, numba.types.Float)


def return_type(f: Any, argtypes: tuple) -> Any:
    """The Numba return type of `f` (an `EnzymeJit`) for `argtypes` (compiling it)."""
    f.dispatcher.compile(argtypes)
    return f.dispatcher.overloads[argtypes].signature.return_type


def tangent_source(restype: Any, expr: str) -> str:
    """Source of the tangent of a return of type `restype`, from `expr` (the derivative's
    shadow of the return): float parts as they are, None for the parts without derivative
    (integers, booleans, integer arrays) of a tuple."""
    if isinstance(restype, numba.types.BaseTuple):
        parts = [tangent_source(t, f"{expr}[{k}]") for k, t in enumerate(restype.types)]
        return f"({', '.join(parts)}{',' if len(parts) == 1 else ''})"
    return expr if contains_float(restype) else "None"
