"""The call graph: which functions defined in a module a function may call."""

from __future__ import annotations

from ..ir import Function, Module
from ..rules.registry import parallel_chunk


def callees(module: Module, fn: Function) -> list[Function]:
    """The functions defined in `module` that `fn` calls directly (a parallel call calls
    its chunk function)."""
    out = []
    for inst in fn.instructions():
        if inst.opcode != "call":
            continue
        chunk = parallel_chunk(inst)
        name = chunk[0] if chunk is not None else inst.callee_name
        callee = module.get(name) if name else None
        if callee is not None and not callee.is_declaration:
            out.append(callee)
    return out


def recursive(module: Module, fn: Function) -> bool:
    """Whether `fn` may call itself, directly or through other functions of the module."""
    seen: set[str] = set()
    stack = callees(module, fn)
    while stack:
        g = stack.pop()
        if g.name == fn.name:
            return True
        if g.name not in seen:
            seen.add(g.name)
            stack.extend(callees(module, g))
    return False
