"""Errors the engine raises while analysing or synthesizing (never at run time)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class EngineError(Exception):
    """Base of the engine's errors."""


class NoDerivativeError(EngineError):
    """An instruction or callee has no derivative rule (or mixes activities unsafely).

    Carries what a user needs: the opcode or callee, the instruction text, the function,
    the mode, the source location when the IR kept one, and the calls that led there
    (`calls`: (caller, location of the call), innermost first). `given`: the refusal is of
    a function whose derivative a rule gives, in a place the rule cannot serve (its hint
    says why)."""

    def __init__(
        self,
        what: str,
        inst_text: str,
        fn: str,
        mode: str,
        loc: str = "",
        hint: str = "",
        given: bool = False,
    ) -> None:
        self.what, self.inst_text, self.fn, self.mode, self.loc = what, inst_text, fn, mode, loc
        self.hint, self.given = hint, given
        self.calls: list[tuple[str, str]] = []
        super().__init__(what)

    @property
    def located(self) -> bool:
        """Whether the message names a source line (here or at a call leading here)."""
        return bool(self.loc or any(loc for _, loc in self.calls))

    def __str__(self) -> str:
        where = f" at {self.loc}" if self.loc else ""
        how = self.mode if self.mode.endswith("analysis") else f"{self.mode} mode"
        lines = [
            f"cannot differentiate {self.what}{where} ({how}) in function {self.fn}:",
            f"    {self.inst_text}",
        ]
        lines += [f"  called from {fn}" + (f" at {loc}" if loc else "") for fn, loc in self.calls]
        if self.hint:
            lines.append(self.hint)
        return "\n".join(lines)


@contextmanager
def called_from(caller: str, loc: str) -> Iterator[None]:
    """Errors raised inside: record the call in `caller` (at `loc`) that led there."""
    try:
        yield
    except NoDerivativeError as e:
        e.calls.append((caller, loc))
        raise
