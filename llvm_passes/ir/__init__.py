"""The IR model: LLVM IR text parsed into Python objects and printed back.

Knows no analysis and no derivative. Parse -> print -> parse round-trips.
"""

from .instructions import BINARY, CASTS, Block, Instruction
from .module import Function, Module
from .parser import ParseError, parse_module, parse_type_text
from .types import DOUBLE, FLOAT, I1, I8, I32, I64, PTR, VOID, Type
from .values import Argument, Constant, GlobalRef, Local, Value, const

__all__ = [
    "BINARY",
    "CASTS",
    "DOUBLE",
    "FLOAT",
    "I1",
    "I8",
    "I32",
    "I64",
    "PTR",
    "VOID",
    "Argument",
    "Block",
    "Constant",
    "Function",
    "GlobalRef",
    "Instruction",
    "Local",
    "Module",
    "ParseError",
    "Type",
    "Value",
    "const",
    "parse_module",
    "parse_type_text",
]
