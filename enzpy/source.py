"""Generated functions: the lines of a body and the globals they use."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import CodeType
from typing import Any


@dataclass
class Source:
    """Lines of a generated function body and the globals they use."""

    names: dict[str, Any] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def add(self, line: str, indent: int = 1) -> None:
        self.lines.append("    " * indent + line)

    def name(self, prefix: str, value: Any) -> str:
        """A global name for `value` in the generated code."""
        key = f"_{prefix}{len(self.names)}"
        self.names[key] = value
        return key

    def key(self) -> Any:
        """What the generated function depends on (its lines and globals), for caching
        what is compiled from it; None when a global cannot be hashed."""
        names = sorted((k, type(v), v) for k, v in self.names.items())  # (1 == 1.0 == True)
        key = (tuple(self.lines), tuple(names))
        try:
            hash(key)
        except TypeError:
            return None
        return key

    def function(self, params: str, **names: Any) -> Callable[..., Any]:
        """The Python function `def impl(<params>): <body>` with these globals and `names`."""
        text = f"def impl({params}):\n" + "\n".join(self.lines or ["    pass"]) + "\n"
        scope = {**self.names, **names}
        exec(_code(text), scope)  # noqa: S102 (our source)
        return scope["impl"]


def tuple_source(items: Sequence[str]) -> str:
    """The source of a tuple of the expressions `items`."""
    if not items:
        return "()"
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


def dispatching(
    params: Sequence[str], checks: Sequence[str], body: Sequence[str], names: dict[str, Any]
) -> Callable[..., Any]:
    """`call(*args)`: `body` where the arguments unpack into `params` and pass `checks`
    (with the globals `names`, which must hold `_other`), else (or where `body` falls
    through) `_other(*args)`."""
    lines = "".join(f"            {line}\n" for line in body)
    text = (
        "def call(*args):\n"
        f"    if len(args) == {len(params)}:\n"
        f"        ({''.join(p + ', ' for p in params)}) = args\n"
        f"        if {' and '.join(checks) or 'True'}:\n"
        f"{lines}"
        "    return _other(*args)\n"
    )
    exec(_code(text), names)  # noqa: S102 (our source)
    return names["call"]


@functools.lru_cache(maxsize=4096)
def _code(text: str) -> CodeType:
    """Python's bytecode of a generated module text (the same texts come back: one per
    call shape and thunk)."""
    return compile(text, "<enzpy generated>", "exec")
