"""Errors the engine raises while analysing or synthesizing (never at run time)."""

from __future__ import annotations


class EngineError(Exception):
    """Base of the engine's errors."""


class NoDerivativeError(EngineError):
    """An instruction or callee has no derivative rule (or mixes activities unsafely).

    Carries what a user needs: the opcode or callee, the instruction text, the function,
    the mode and the source location when the IR kept one."""

    def __init__(self, what: str, inst_text: str, fn: str, mode: str, loc: str = "",
                 hint: str = "") -> None:  # fmt: skip
        self.what, self.inst_text, self.fn, self.mode, self.loc = what, inst_text, fn, mode, loc
        where = f" at {loc}" if loc else ""
        how = mode if mode.endswith("analysis") else f"{mode} mode"
        msg = (f"cannot differentiate {what}{where} ({how}) in function {fn}:\n"
               f"    {inst_text}")  # fmt: skip
        if hint:
            msg += f"\n{hint}"
        super().__init__(msg)
