"""Numba types for enzpy's modes and annotations, so jitted code can use them.

Inside `@njit` / `@enzyme_jit` code the mode singletons (`Forward`, ...) are compile-time
constants of a `ModeType`; the annotation classes are callable globals (and, passed after `f`,
return activities); `Const(x)`, `Active(a)`, `Duplicated(x, dx)`, `DuplicatedNoNeed(x, dx)`,
`BatchDuplicated(x, (dx1, ...))` build an `AnnotationType` value holding `.val` (and `.dval`,
for batch annotations the tuple of shadows, also named `.dvals`). Only typing and data layout
live here; what `autodiff` does with them is in `inside.py`.
"""

from __future__ import annotations

from typing import Any

from numba.core import cgutils, types
from numba.core.imputils import impl_ret_borrowed, lower_constant
from numba.extending import (
    NativeValue,
    lower_builtin,
    make_attribute_wrapper,
    models,
    register_model,
    type_callable,
    typeof_impl,
    unbox,
)

from .annotations import (
    Active,
    Annotation,
    BatchDuplicated,
    BatchDuplicatedNoNeed,
    Const,
    Duplicated,
    DuplicatedNoNeed,
)
from .modes import Mode


class ModeType(types.Dummy):
    """The type of one mode singleton (the mode is part of the type)."""

    def __init__(self, mode: Mode) -> None:
        self.mode = mode
        super().__init__(f"enzpy.{mode.name}")


class AnnotationType(types.Type):
    """`cls(val)` or `cls(val, dval)` for an annotation class `cls`, by the Numba types of
    the wrapped values."""

    def __init__(self, cls: type, val: types.Type, dval: types.Type | None = None) -> None:
        self.cls, self.val, self.dval = cls, val, dval
        inner = str(val) if dval is None else f"{val}, {dval}"
        super().__init__(f"enzpy.{cls.__name__}({inner})")

    def fields(self) -> list[tuple[str, types.Type]]:
        """The members of the value: `val`, and `dval` for a shadowed annotation."""
        return [("val", self.val)] + ([] if self.dval is None else [("dval", self.dval)])


@typeof_impl.register(Mode)
def _typeof_mode(val: Mode, c: Any) -> ModeType:
    return ModeType(val)


@lower_constant(ModeType)
def _lower_mode(context: Any, builder: Any, ty: ModeType, pyval: Mode) -> Any:
    return context.get_dummy_value()


@unbox(ModeType)
def _unbox_mode(typ: ModeType, obj: Any, c: Any) -> NativeValue:
    return NativeValue(c.context.get_dummy_value())  # the mode is in the type


register_model(ModeType)(models.OpaqueModel)


@register_model(AnnotationType)
class _AnnotationModel(models.StructModel):
    def __init__(self, dmm: Any, fe_type: AnnotationType) -> None:
        super().__init__(dmm, fe_type, fe_type.fields())


make_attribute_wrapper(AnnotationType, "val", "val")
make_attribute_wrapper(AnnotationType, "dval", "dval")
make_attribute_wrapper(AnnotationType, "dval", "dvals")  # batch: the tuple of shadows


def annotation_class(ty: types.Type) -> type | None:
    """The annotation class a Numba type names when an annotation class is used as a value
    (a return activity such as `Active`, or a class passed without its value)."""
    if isinstance(ty, types.Function):
        key = ty.typing_key
        if isinstance(key, type) and issubclass(key, Annotation):
            return key
    return None


def _register_constructor(cls: type, shadowed: bool) -> None:
    """Typing and lowering of `cls(val)`, or `cls(val, dval)` when `shadowed`, in jitted
    code (the typer's parameters are named: Numba folds the call's arguments by them)."""

    def make(*args: types.Type) -> AnnotationType:
        return AnnotationType(cls, *(types.unliteral(a) for a in args))

    @type_callable(cls)
    def _type(context: Any) -> Any:
        if shadowed:
            return lambda val, dval: make(val, dval)
        return lambda val: make(val)

    @lower_builtin(cls, types.VarArg(types.Any))
    def _lower(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        ty = sig.return_type
        value = cgutils.create_struct_proxy(ty)(context, builder)
        for (name, fe), v, argty in zip(ty.fields(), args, sig.args, strict=True):
            setattr(value, name, context.cast(builder, v, argty, fe))
        return impl_ret_borrowed(context, builder, ty, value._getvalue())


for plain in (Const, Active):
    _register_constructor(plain, shadowed=False)
for dup in (Duplicated, DuplicatedNoNeed, BatchDuplicated, BatchDuplicatedNoNeed):
    _register_constructor(dup, shadowed=True)
