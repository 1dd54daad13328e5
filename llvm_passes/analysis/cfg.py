"""Control-flow graph and dominator tree of a function."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from ..ir import Function


@dataclass(frozen=True)
class CFG:
    """Successors and predecessors by block name, blocks in reverse post-order."""

    entry: str
    succs: dict[str, tuple[str, ...]]
    preds: dict[str, tuple[str, ...]]
    rpo: tuple[str, ...]


def cfg(fn: Function) -> CFG:
    succs = {b.name: tuple(b.successors) for b in fn.blocks}
    preds: dict[str, list[str]] = {b.name: [] for b in fn.blocks}
    for b, ss in succs.items():
        for s in ss:
            preds[s].append(b)
    order: list[str] = []
    seen: set[str] = set()
    stack = [(fn.entry.name, iter(succs[fn.entry.name]))]
    seen.add(fn.entry.name)
    while stack:
        node, it = stack[-1]
        nxt = next((s for s in it if s not in seen), None)
        if nxt is None:
            order.append(node)
            stack.pop()
        else:
            seen.add(nxt)
            stack.append((nxt, iter(succs[nxt])))
    return CFG(
        fn.entry.name, succs, {k: tuple(v) for k, v in preds.items()}, tuple(reversed(order))
    )


def reachable(g: CFG, starts: Iterable[str], stop: Collection[str] = ()) -> set[str]:
    """Blocks reachable from `starts` (included) without passing through `stop`."""
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        b = todo.pop()
        if b not in seen and b not in stop:
            seen.add(b)
            todo.extend(g.succs[b])
    return seen


def dominators(g: CFG) -> dict[str, str | None]:
    """Immediate dominator of each reachable block (Cooper-Harvey-Kennedy)."""
    index = {b: i for i, b in enumerate(g.rpo)}
    idom: dict[str, str | None] = {g.entry: g.entry}

    def intersect(a: str, b: str) -> str:
        while a != b:
            while index[a] > index[b]:
                a = idom[a]  # type: ignore[assignment]
            while index[b] > index[a]:
                b = idom[b]  # type: ignore[assignment]
        return a

    changed = True
    while changed:
        changed = False
        for b in g.rpo[1:]:
            ps = [p for p in g.preds[b] if p in idom]
            if not ps:
                continue
            new = ps[0]
            for p in ps[1:]:
                new = intersect(p, new)
            if idom.get(b) != new:
                idom[b] = new
                changed = True
    idom[g.entry] = None
    return idom
