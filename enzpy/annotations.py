"""Argument annotations (`Const`, `Active`, `Duplicated`, ...) and return activities."""

from __future__ import annotations

from typing import Any


class Annotation:
    """Base of argument annotations: wraps the primal value."""

    __slots__ = ("val",)

    def __init__(self, val: Any) -> None:
        self.val = val

    @property
    def shadows(self) -> tuple[Any, ...]:
        """The shadows, one per tangent carried (none but for `Duplicated` and the batch
        annotations)."""
        return ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.val!r})"


class Const(Annotation):
    """An argument that carries no derivative."""

    __slots__ = ()


class Active(Annotation):
    """A float scalar whose adjoint is returned (reverse mode only)."""

    __slots__ = ()


class Duplicated(Annotation):
    """A value with a shadow: for arrays, memory of the same shape and dtype holding
    tangents (forward) or adjoints (reverse); for float scalars in forward mode, the
    tangent."""

    __slots__ = ("dval",)

    def __init__(self, val: Any, dval: Any) -> None:
        self.val = val  # not super().__init__: annotations are built on every call
        self.dval = dval

    @property
    def shadows(self) -> tuple[Any, ...]:
        """The shadows, one per tangent carried."""
        return (self.dval,)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.val!r}, {self.dval!r})"


class DuplicatedNoNeed(Duplicated):
    """Like `Duplicated`; the primal result need not be computed."""

    __slots__ = ()


class BatchDuplicated(Annotation):
    """A value with several shadows (batch, or vector, mode): one derivative call carries
    `len(dvals)` tangents at once, each shadow as `Duplicated`'s."""

    __slots__ = ("dvals",)

    def __init__(self, val: Any, dvals: Any) -> None:
        super().__init__(val)
        self.dvals = tuple(dvals)

    @property
    def shadows(self) -> tuple[Any, ...]:
        """The shadows, one per tangent carried."""
        return self.dvals

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.val!r}, {self.dvals!r})"


class BatchDuplicatedNoNeed(BatchDuplicated):
    """Like `BatchDuplicated`; the primal result need not be computed."""

    __slots__ = ()


SHADOWED = (Duplicated, BatchDuplicated)  # the annotations whose values carry shadows
