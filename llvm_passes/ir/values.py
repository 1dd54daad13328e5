"""Values of the IR model: constants, global references, function arguments.

Instructions (also values) live in `instructions.py`. A value knows its type and how it is
referenced in IR text; it knows nothing of analyses.
"""

from __future__ import annotations

import struct as _struct

from .lexer import quote
from .types import Type


class Value:
    """Anything an instruction can take as an operand."""

    type: Type

    @property
    def ref(self) -> str:
        """The text naming this value as an operand (`%x`, `@g`, `1.0`)."""
        raise NotImplementedError

    def typed(self) -> str:
        """`<type> <ref>`, as operands are usually printed."""
        return f"{self.type} {self.ref}"

    @property
    def label(self) -> str:
        """A name to derive the names of new values from ('v' when it has none)."""
        return getattr(self, "name", "") or "v"


class Constant(Value):
    """A constant written literally: numbers, null, undef, aggregates, constant expressions."""

    __slots__ = ("type", "text")

    def __init__(self, type: Type, text: str) -> None:
        self.type, self.text = type, text

    @property
    def ref(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Constant({self.type} {self.text})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Constant) and (self.type, self.text) == (other.type, other.text)

    def __hash__(self) -> int:
        return hash((self.type, self.text))

    @property
    def is_zero(self) -> bool:
        """Whether the constant is zero (integer, pointer, aggregate; +0.0 or -0.0)."""
        if self.text in ("0", "null", "zeroinitializer", "false"):
            return True
        return self.type.is_float and self.float_value == 0.0

    @property
    def float_value(self) -> float | None:
        """The value of a float constant written as a number (decimal or LLVM hex), else
        None."""
        if not self.type.is_float:
            return None
        text = self.text
        try:
            if text.startswith("0x") and len(text) == 18:
                return _struct.unpack("<d", _struct.pack("<Q", int(text[2:], 16)))[0]
            return float(text)
        except ValueError:
            return None


class GlobalRef(Value):
    """A reference to a global variable or function by name (`@name`)."""

    __slots__ = ("type", "name")

    def __init__(self, name: str, type: Type) -> None:
        self.name, self.type = name, type

    @property
    def ref(self) -> str:
        return quote("@", self.name)

    def __repr__(self) -> str:
        return f"GlobalRef({self.ref})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GlobalRef) and self.name == other.name

    def __hash__(self) -> int:
        return hash(self.name)


class Local(Value):
    """A named SSA value local to a function: an argument or an instruction result."""

    name: str

    @property
    def ref(self) -> str:
        return quote("%", self.name)


class Argument(Local):
    """A function parameter: type, attributes (printed as written) and name."""

    __slots__ = ("type", "name", "attrs", "index")

    def __init__(self, type: Type, name: str, attrs: str = "", index: int = 0) -> None:
        self.type, self.name, self.attrs, self.index = type, name, attrs, index

    def __repr__(self) -> str:
        return f"Argument({self.type} {self.ref})"

    def declaration(self) -> str:
        attrs = f" {self.attrs}" if self.attrs else ""
        return f"{self.type}{attrs} {self.ref}"


def const(type: Type, value: float | int | str) -> Constant:
    """A scalar constant of `type` (floats printed exactly, as LLVM hex when needed)."""
    if isinstance(value, str):
        return Constant(type, value)
    if type.is_float:
        return Constant(type, float_literal(float(value), type))
    if type.is_int and type.bits == 1:
        return Constant(type, "true" if value else "false")
    return Constant(type, str(int(value)))


def float_literal(x: float, type: Type) -> str:
    """An exact LLVM literal for `x` as `type` (hex double bits, as LLVM accepts for float too)."""
    if type.name == "float":
        x = _struct.unpack("f", _struct.pack("f", x))[0]
    bits = _struct.unpack("<Q", _struct.pack("<d", x))[0]
    return f"0x{bits:016X}"
