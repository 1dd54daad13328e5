"""Differentiation modes: `Forward`, `ForwardWithPrimal`, `Reverse`, ..."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, eq=False)
class Mode:
    """A mode of differentiation; `with_primal` also returns the primal result. Modes are
    singletons, compared and hashed by identity."""

    name: str
    reverse: bool
    with_primal: bool
    split: bool = False

    def __repr__(self) -> str:
        return f"enzpy.{self.name}"

    def __reduce__(self) -> str:
        return self.name  # pickled by name: unpickling gives back the singleton


Forward = Mode("Forward", reverse=False, with_primal=False)
ForwardWithPrimal = Mode("ForwardWithPrimal", reverse=False, with_primal=True)
Reverse = Mode("Reverse", reverse=True, with_primal=False)
ReverseWithPrimal = Mode("ReverseWithPrimal", reverse=True, with_primal=True)
ReverseSplitWithPrimal = Mode("ReverseSplitWithPrimal", reverse=True, with_primal=True, split=True)
ReverseSplitNoPrimal = Mode("ReverseSplitNoPrimal", reverse=True, with_primal=False, split=True)
