"""Map Numba argument types onto Numba's flattened LLVM arguments, and derive activities."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llvmlite import ir
from numba.core import types

from llvm_passes import Activity

__all__ = [
    "Activity",
    "LLVMArg",
    "FIRST_ARG",
    "ARRAY_ROLES",
    "target_context",
    "argument_layout",
    "flat_arguments",
    "contains_float",
    "as_activity",
    "llvm_activities",
    "pointee_types",
    "shadowed_args",
    "type_text",
]

FIRST_ARG = 2  # LLVM positions 0 and 1 are retptr and excinfo
ARRAY_ROLES = ("meminfo", "parent", "nitems", "itemsize", "data", "shape", "strides")
_DUP_ROLES = frozenset({"meminfo", "parent", "data", "scalar_float"})


@dataclass(frozen=True)
class LLVMArg:
    """One flattened LLVM argument of a Numba function."""

    position: int  # index among the LLVM function's arguments (0 = retptr, 1 = excinfo)
    role: str  # an ARRAY_ROLES entry, 'scalar_float', 'scalar_int' or 'other'
    numba_type: types.Type  # the leaf Numba type (the array, the scalar, ...)
    path: tuple[int, ...] = ()  # index path inside a (nested) tuple argument
    dim: int | None = None  # axis, for the 'shape' and 'strides' roles


def target_context() -> Any:
    """Numba's CPU target context (initialized)."""
    from numba.core.registry import cpu_target

    return cpu_target.target_context


def _leaf_count(argtype: Any) -> int:
    if isinstance(argtype, (tuple, list)):
        return sum(_leaf_count(a) for a in argtype)
    return 1


def _leaves(typ: types.Type, dm: Any, dmm: Any, start: int, path: tuple[int, ...]) -> list[LLVMArg]:
    argtype = dm.get_argument_type()
    if isinstance(typ, types.Array) and tuple(getattr(dm, "_fields", ())) == ARRAY_ROLES:
        out: list[LLVMArg] = []
        pos = start
        for field, sub in zip(ARRAY_ROLES, argtype, strict=True):
            if isinstance(sub, (tuple, list)):
                for d in range(_leaf_count(sub)):
                    out.append(LLVMArg(pos, field, typ, path, d))
                    pos += 1
            else:
                out.append(LLVMArg(pos, field, typ, path))
                pos += 1
        return out
    if isinstance(typ, types.BaseTuple) and not isinstance(typ, types.NamedTuple):
        out = []
        pos = start
        for i, elt in enumerate(typ.types):
            sub = _leaves(elt, dmm[elt], dmm, pos, path + (i,))
            out.extend(sub)
            pos += _leaf_count(dmm[elt].get_argument_type())
        return out
    n = _leaf_count(argtype)
    if n == 1 and isinstance(typ, types.Float):
        role = "scalar_float"
    elif n == 1 and isinstance(typ, (types.Integer, types.Boolean)):
        role = "scalar_int"
    else:
        role = "other"
    return [LLVMArg(start + k, role, typ, path) for k in range(n)]


def argument_layout(argtypes: Sequence[types.Type], context: Any = None) -> list[list[LLVMArg]]:
    """For each Python argument, its flattened LLVM arguments (positions and roles)."""
    ctx = context if context is not None else target_context()
    dmm = ctx.data_model_manager
    layout: list[list[LLVMArg]] = []
    pos = FIRST_ARG
    for typ in argtypes:
        dm = dmm[typ]
        layout.append(_leaves(typ, dm, dmm, pos, ()))
        pos += _leaf_count(dm.get_argument_type())
    return layout


def flat_arguments(argtypes: Sequence[types.Type], context: Any = None) -> list[LLVMArg]:
    """All flattened LLVM arguments after retptr/excinfo, in LLVM order."""
    return [a for group in argument_layout(argtypes, context) for a in group]


def contains_float(typ: types.Type) -> bool:
    """True when `typ` is or holds float data (float, float array, tuples of them)."""
    if isinstance(typ, types.Float):
        return True
    if isinstance(typ, types.Array):
        return isinstance(typ.dtype, types.Float)
    if isinstance(typ, types.BaseTuple):
        return any(contains_float(t) for t in typ.types)
    return False


def has_arrays(typ: types.Type) -> bool:
    """True when `typ` is or holds arrays (tuples of them), of any dtype."""
    if isinstance(typ, types.BaseTuple):
        return any(has_arrays(t) for t in typ.types)
    return isinstance(typ, types.Array)


def as_activity(annotation: Any) -> Activity:
    """An `Activity` from an Activity or a name ('const', 'dup', 'dup_noneed')."""
    if isinstance(annotation, Activity):
        return annotation
    key = str(getattr(annotation, "value", annotation)).lower()
    table = {
        "const": Activity.CONST,
        "dup": Activity.DUP,
        "duplicated": Activity.DUP,
        "dup_noneed": Activity.DUP_NONEED,
        "duplicatednoneed": Activity.DUP_NONEED,
    }
    try:
        return table[key]
    except KeyError:
        raise ValueError(f"unknown activity annotation {annotation!r}") from None


def _leaf_is_float(arg: LLVMArg) -> bool:
    if arg.role == "scalar_float":
        return True
    return isinstance(arg.numba_type, types.Array) and isinstance(arg.numba_type.dtype, types.Float)


def llvm_activities(
    argtypes: Sequence[types.Type],
    restype: types.Type,
    annotations: Sequence[Any],
    ret: Any = None,
    context: Any = None,
) -> list[Activity]:
    """Per-LLVM-argument activities (retptr, excinfo, flattened args) for a Numba function.

    `annotations` has one entry per Python argument: 'const', 'dup' or 'dup_noneed' (or an
    `Activity`). `ret` overrides the retptr activity; by default it is DUP when the return
    type holds floats. A duplicated float array shadows meminfo/parent/data, a duplicated
    float scalar its value; integer, boolean and other leaves stay CONST.
    """
    if len(annotations) != len(argtypes):
        raise ValueError(f"{len(annotations)} annotations for {len(argtypes)} arguments")
    if ret is None:
        ret_act = Activity.DUP if contains_float(restype) else Activity.CONST
    else:
        ret_act = as_activity(ret)
    acts = [ret_act, Activity.CONST]
    for group, ann in zip(argument_layout(argtypes, context), annotations, strict=True):
        act = as_activity(ann)
        for leaf in group:
            if act is not Activity.CONST and leaf.role in _DUP_ROLES and _leaf_is_float(leaf):
                acts.append(act)
            else:
                acts.append(Activity.CONST)
    return acts


def pointee_types(
    argtypes: Sequence[types.Type], restype: types.Type, context: Any = None
) -> list[str | None]:
    """Per LLVM argument, the LLVM type (text, opaque pointers) of the values the memory it
    points to holds, where the types tell: the return slot holds the return value, a float
    array's data pointer its elements; None elsewhere."""
    ctx = context if context is not None else target_context()
    dmm = ctx.data_model_manager
    out: list[str | None] = [type_text(dmm[restype].get_return_type()), None]
    for leaf in flat_arguments(argtypes, ctx):
        t = leaf.numba_type
        data = leaf.role == "data" and isinstance(t, types.Array)
        out.append(type_text(ctx.get_value_type(t.dtype)) if data else None)
    return out


def type_text(t: Any) -> str:
    """An llvmlite type as IR text with opaque pointers (`ptr`)."""
    if isinstance(t, ir.PointerType):
        return "ptr"
    if isinstance(t, ir.LiteralStructType):
        return "{" + ", ".join(type_text(e) for e in t.elements) + "}"
    if isinstance(t, ir.ArrayType):
        return f"[{t.count} x {type_text(t.element)}]"
    return str(t)


def shadowed_args(
    argtypes: Sequence[types.Type], activities: Sequence[Activity], context: Any = None
) -> list[int]:
    """Indices of the Python arguments that have at least one shadowed LLVM argument."""
    out = []
    for i, group in enumerate(argument_layout(argtypes, context)):
        if any(activities[a.position] is not Activity.CONST for a in group):
            out.append(i)
    return out
