"""Functions and modules of the IR model, and how they print."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator

from .instructions import Block, Instruction
from .lexer import quote
from .types import Type
from .values import Argument


class Function:
    """A function definition (with blocks) or declaration (without). A parsed definition's
    blocks are parsed when first asked for (most callees of a primal are never looked at)."""

    def __init__(
        self,
        name: str,
        ret_type: Type,
        args: list[Argument],
        *,
        prefix: str = "",
        ret_attrs: str = "",
        fn_attrs: str = "",
        vararg: bool = False,
    ) -> None:
        self.name = name
        self.ret_type = ret_type
        self.args = args
        self.prefix = prefix  # linkage and the like, e.g. "internal"
        self.ret_attrs = ret_attrs
        self.fn_attrs = fn_attrs
        self.vararg = vararg
        self._blocks: list[Block] = []
        self._parse_body: Callable[[], None] | None = None  # fills `_blocks` when called

    @property
    def blocks(self) -> list[Block]:
        if self._parse_body is not None:
            parse, self._parse_body = self._parse_body, None
            parse()
        return self._blocks

    @blocks.setter
    def blocks(self, blocks: list[Block]) -> None:
        self._blocks, self._parse_body = blocks, None

    def defer(self, parse_body: Callable[[], None]) -> None:
        """Parse the body (appending to `blocks`) when the blocks are first asked for."""
        self._parse_body = parse_body

    @property
    def is_declaration(self) -> bool:
        return self._parse_body is None and not self._blocks

    @property
    def entry(self) -> Block:
        return self.blocks[0]

    def block(self, name: str) -> Block:
        for b in self.blocks:
            if b.name == name:
                return b
        raise KeyError(name)

    def instructions(self) -> Iterator[Instruction]:
        for b in self.blocks:
            yield from b.instructions

    def signature(self, with_names: bool) -> str:
        params = [a.declaration() if with_names else _decl_no_name(a) for a in self.args]
        if self.vararg:
            params.append("...")
        pre = f"{self.prefix} " if self.prefix else ""
        ret = f"{self.ret_attrs} " if self.ret_attrs else ""
        attrs = f" {self.fn_attrs}" if self.fn_attrs else ""
        return f"{pre}{ret}{self.ret_type} {quote('@', self.name)}({', '.join(params)}){attrs}"

    def text(self) -> str:
        if self.is_declaration:
            return f"declare {self.signature(False)}"
        body = "\n\n".join(b.text() for b in self.blocks)
        return f"define {self.signature(True)} {{\n{body}\n}}"

    def __repr__(self) -> str:
        return f"<Function {self.name}>"


def _decl_no_name(a: Argument) -> str:
    return f"{a.type} {a.attrs}" if a.attrs else str(a.type)


class Module:
    """An LLVM module: header lines, global definitions (kept as text) and functions."""

    def __init__(self, header: list[str] | None = None) -> None:
        self.header: list[str] = header or []
        self.globals: dict[str, str] = {}  # name -> full definition line
        self.functions: dict[str, Function] = {}

    def add_function(self, fn: Function) -> Function:
        old = self.functions.get(fn.name)
        if old is not None and not old.is_declaration and fn.is_declaration:
            return old
        self.functions[fn.name] = fn
        return fn

    def define(self, text: str) -> None:
        """Add the functions an IR text defines (and declares), unless already defined."""
        from .parser import parse_module

        for fn in parse_module(text).functions.values():
            old = self.functions.get(fn.name)
            if old is None or old.is_declaration and not fn.is_declaration:
                self.functions[fn.name] = fn

    def get(self, name: str) -> Function | None:
        return self.functions.get(name)

    def merge(self, other: Module) -> None:
        """Add the globals and functions of `other` (definitions win over declarations)."""
        if not self.header:
            self.header = list(other.header)
        for name, line in other.globals.items():
            self.globals.setdefault(name, line)
        for fn in other.functions.values():
            self.add_function(fn)

    def text(self, roots: Iterable[str] | None = None) -> str:
        """The module's IR text; with `roots`, of its definitions only those that the roots
        and the globals reach (a definition reaches what its text names), so that callees
        nothing calls are neither parsed nor printed."""
        globals_text = "\n".join(self.globals.values())
        if roots is None:
            printed = {name: fn.text() for name, fn in self.functions.items()}
        else:
            printed = {}
            todo = [*roots, *_references(globals_text)]
            while todo:
                fn = self.functions.get(name := todo.pop())
                if fn is not None and name not in printed:
                    printed[name] = fn.text()
                    todo += _references(printed[name])
        parts = ["\n".join(self.header), globals_text]
        parts += [
            printed[name] if name in printed else fn.text()
            for name, fn in self.functions.items()
            if name in printed or fn.is_declaration
        ]
        return "\n\n".join(p for p in parts if p) + "\n"


_REFERENCE = re.compile(r'@("[^"]*"|[-a-zA-Z$._0-9]+)')


def _references(text: str) -> list[str]:
    """The names of the globals and functions `text` refers to."""
    return [name.strip('"') for name in _REFERENCE.findall(text)]
