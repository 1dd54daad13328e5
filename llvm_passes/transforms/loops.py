"""Loop rewrites before reverse differentiation: every loop gets a preheader of its own,
every `while` loop an iteration counter (it becomes a counted loop, replayed by counting
down), every edge leaving a counted loop a block of its own (where the forward sweep saves
the loop's last counter), a value that a loop-invariant choice keeps from iteration to
iteration is read from before the loop, a pointer stepped through memory is computed
from the loop's counter, and a loop indexing through Numba's broadcasting choices gets a
copy for when nothing is broadcast. The primal computes what it did."""

from __future__ import annotations

import copy

from ..analysis.affine import integer
from ..analysis.cfg import cfg, dominators
from ..analysis.loops import CountedLoop, counted_loops, dominated, latch_exit, loop_headers
from ..analysis.readonly import users
from ..ir import I1, I8, I64, PTR, Block, Constant, Function, Instruction, Value, const
from ..ir.builder import Namer
from ..ir.types import size_in_bytes
from .dead import drop_dead


def dedicated_preheaders(fn: Function) -> None:
    """Give every loop entered from one block outside it a preheader whose only successor is
    the loop's header (an empty block branching on), so the room the forward sweep takes on
    the tape for the loop's values is taken only when the loop is entered: LLVM's unswitching
    leaves preheaders that branch to the loop or past it. Idempotent."""
    g = cfg(fn)
    idom = dominators(g)
    for header in loop_headers(g):
        outside = [p for p in g.preds[header] if not dominated(idom, p, header)]
        if len(outside) != 1 or set(g.succs[outside[0]]) == {header}:
            continue
        _split_edge(fn, fn.block(outside[0]), header, "enzpy.pre")


def _split_edge(fn: Function, block: Block, target: str, kind: str) -> None:
    """Put an empty block, `<block>.to.<target>.<kind>`, on the edges from `block` to
    `target` (one edge in: a phi of `target` keeps one entry for it)."""
    edge = Block(f"{block.name}.to.{target}.{kind}", [Instruction("br", labels=[target])])
    fn.blocks.insert(fn.blocks.index(fn.block(target)), edge)
    block.terminator.labels = [edge.name if t == target else t for t in block.terminator.labels]
    for phi in fn.block(target).phis:
        kept: dict[str, Value] = {}
        for label, v in zip(phi.labels, phi.operands, strict=True):
            kept.setdefault(edge.name if label == block.name else label, v)
        phi.labels, phi.operands = list(kept), list(kept.values())


def version_broadcast_loops(fn: Function) -> None:
    """Give an innermost counted loop that indexes through Numba's broadcasting choices
    (`select(c, i, 0)` or `select(c, 0, i)`, `c` computed before the loop: the index follows
    the counter, or stays 0 along a dimension of length 1; a slice assignment's
    `umin(i, m)`, `m` the source's last index, or 0 when it has one element) a copy in which
    every such choice takes the counter, entered when they all do (for `umin`: when the
    counter's last value is at most `m`): LLVM vectorizes that copy's reverse loop,
    which adds into shadows through them (the choices stop it), and the other copy runs
    where an operand is broadcast. In the copy, an operand's view `base + start` whose start
    Numba clamped to the array (a choice between a constant and other values) starts at the
    constant, also a condition of entering it: the views of one array are then cells of it
    at constant offsets (`u[2:]`, `u[1:-1]`, `u[:-2]`), which the reverse sweep sums in a
    window (`analysis/windows.py`). Each copy has a preheader of its own. Only loops none of
    whose values is used after them (Numba's array-expression loops). The primal computes
    what it did."""
    g = cfg(fn)
    headers = loop_headers(g)
    used_by = users(fn)
    namer = Namer(fn)
    for lp in counted_loops(fn, g):
        blocks = [b for b in fn.blocks if b.name in lp.blocks]
        exit_test = latch_exit(fn, lp)
        last = exit_test[1] if exit_test is not None and exit_test[2] == 0 else None
        choices = {
            inst: made
            for b in blocks
            for inst in b.instructions
            if (made := _broadcast_choice(inst, lp, last)) is not None
        }
        enter = fn.block(lp.preheader).terminator
        if (
            choices
            and headers & lp.blocks == {lp.header}
            and enter.opcode == "br"
            and not enter.operands
            and not any(
                u.block_name not in lp.blocks
                for b in blocks
                for i in b.instructions
                for u in used_by.get(id(i), ())
            )
        ):
            _version(fn, lp, blocks, choices, namer)


#: what the copy of a loop assumes of a choice of index: `(kind, operands)`, kind "holds" or
#: "fails" (a select's condition), "ule" or "sle" (the counter's last value, `bound - 1`, is at
#: most the clamp's limit, unsigned or signed)
Assumption = tuple[str, tuple[Value, ...]]


def _broadcast_choice(
    inst: Instruction, lp: CountedLoop, bound: Value | None
) -> tuple[Value, Assumption] | None:
    """For a broadcasting choice of `lp` (the docstring of `version_broadcast_loops`): the
    value it takes in the copy and what the copy assumes for that. `bound`: the counter's
    value past its last (None when unknown)."""
    if not inst.type.is_int:
        return None
    ops = inst.operands
    if inst.opcode == "select" and not _inside(ops[0], lp.blocks):
        zero = Constant(inst.type, "0")
        for x, other, kind in ((ops[1], ops[2], "holds"), (ops[2], ops[1], "fails")):
            if other == zero and not isinstance(x, Constant):
                return x, (kind, (ops[0],))
    clamp = {"llvm.umin.i64": "ule", "llvm.smin.i64": "sle"}.get(
        inst.callee_name if inst.opcode == "call" else ""
    )
    counter = lp.counter
    if clamp and bound is not None and not _inside(bound, lp.blocks) and counter.step == 1:
        start = integer(counter.start)
        for x, limit in ((ops[0], ops[1]), (ops[1], ops[0])):
            if (
                x is counter.phi
                and start is not None
                and start >= 0
                and not _inside(limit, lp.blocks)
            ):
                return x, (clamp, (bound, limit))
    return None


def _assumed(kind: str, ops: tuple[Value, ...], namer: Namer) -> list[Instruction]:
    """The instructions computing an `Assumption` (the last one its truth)."""
    if kind == "holds":
        return []
    if kind == "fails":
        return [
            Instruction("xor", I1, [ops[0], Constant(I1, "true")], namer.fresh("unbroadcast.not"))
        ]
    bound, limit = ops
    last = Instruction("add", I64, [bound, Constant(I64, "-1")], namer.fresh("unbroadcast.last"))
    return [
        last,
        Instruction("icmp", I1, [last, limit], namer.fresh("unbroadcast.within"), pred=kind),
    ]


def _version(
    fn: Function,
    lp: CountedLoop,
    blocks: list[Block],
    choices: dict[Instruction, tuple[Value, Assumption]],
    namer: Namer,
) -> None:
    """`version_broadcast_loops` on one loop (`blocks`, in order) and its `choices` (each
    with the value it takes in the copy and what the copy assumes for that)."""
    pre = fn.block(lp.preheader)

    def before_loop(inst: Instruction) -> Instruction:
        _before_end(pre, inst)
        return inst

    names = {b.name: namer.fresh(f"{b.name}.unbroadcast") for b in blocks}
    copies: dict[int, Value] = {id(c): x for c, (x, _) in choices.items()}
    conditions: list[Value] = []
    assumed = {(kind, tuple(map(id, ops))): (kind, ops) for _, (kind, ops) in choices.values()}
    for kind, ops in assumed.values():
        computed = [before_loop(inst) for inst in _assumed(kind, ops, namer)]
        conditions.append(computed[-1] if computed else ops[0])
    fixed: list[Instruction] = []  # the views at their constant starts
    for view, start in _clamped_starts(blocks, lp.blocks).items():
        twin = Instruction(
            "getelementptr",
            PTR,
            [view.operands[0], start],
            namer.fresh(view.name or "view"),
            aux_type=view.aux_type,
        )
        fixed.append(twin)
        copies[id(view)] = twin
        equal = Instruction(
            "icmp", I1, [view.operands[1], start], namer.fresh("start.fixed"), pred="eq"
        )
        conditions.append(before_loop(equal))
    made: dict[str, Block] = {}  # original name -> copy
    for b in blocks:
        block = made[b.name] = Block(names[b.name])
        for inst in b.instructions:
            if id(inst) in copies:
                continue
            twin = copy.copy(inst)
            twin.operands, twin.arg_attrs = list(inst.operands), list(inst.arg_attrs)
            twin.name = namer.fresh(inst.name) if inst.name else ""
            twin.labels = [names.get(label, label) for label in inst.labels]
            if "llvm.loop" in inst.attached:
                twin.attached = ""  # (a loop's id is its own)
            copies[id(inst)] = block.append(twin)

    def copied(v: Value) -> Value:
        while id(v) in copies and copies[id(v)] is not v:
            v = copies[id(v)]
        return v

    for block in made.values():
        for inst in block.instructions:
            inst.operands = [copied(o) for o in inst.operands]
    held = conditions[0]
    for c in conditions[1:]:
        held = before_loop(Instruction("and", I1, [held, c], namer.fresh("unbroadcast.all")))
    entries = [
        Block(namer.fresh(f"{lp.preheader}.to.{target}"), [Instruction("br", labels=[target])])
        for target in (names[lp.header], lp.header)
    ]
    _before_end(entries[0], *fixed)
    pre.instructions[-1] = Instruction("br", operands=[held], labels=[e.name for e in entries])
    pre.instructions[-1].block = pre
    for header, entry in zip((made[lp.header], fn.block(lp.header)), entries, strict=True):
        for phi in header.phis:
            phi.labels = [entry.name if label == lp.preheader else label for label in phi.labels]
    for b in fn.blocks:
        if b.name in lp.blocks:
            continue
        for phi in b.phis:
            for v, label in list(phi.incoming):
                if label in lp.blocks:
                    phi.operands.append(copied(v))
                    phi.labels.append(names[label])
    at = fn.blocks.index(blocks[-1]) + 1
    fn.blocks[at:at] = [entries[0], *made.values()]
    fn.blocks.insert(fn.blocks.index(fn.block(lp.header)), entries[1])


def _clamped_starts(blocks: list[Block], inside: frozenset[str]) -> dict[Instruction, Value]:
    """The views `getelementptr base, start` defined before the loop and used in it whose
    `start` is a phi or select, outside the loop, with exactly one constant among its
    choices: view -> that constant."""
    found: dict[Instruction, Value] = {}
    for b in blocks:
        for inst in b.instructions:
            for view in inst.operands:
                if (
                    isinstance(view, Instruction)
                    and view.opcode == "getelementptr"
                    and len(view.operands) == 2
                    and view.aux_type is not None
                    and not _inside(view, inside)
                ):
                    start = _one_constant(view.operands[1], inside)
                    if start is not None:
                        found[view] = start
    return found


def _one_constant(v: Value, inside: frozenset[str]) -> Constant | None:
    """The one constant among the choices of `v`, a phi or select outside `inside`."""
    if not isinstance(v, Instruction) or _inside(v, inside) or not v.type.is_int:
        return None
    if v.opcode == "phi":
        choices = v.operands
    elif v.opcode == "select":
        choices = v.operands[1:]
    else:
        return None
    constants = {o.text for o in choices if isinstance(o, Constant)}
    if len(constants) != 1 or all(isinstance(o, Constant) for o in choices):
        return None
    return next(o for o in choices if isinstance(o, Constant))


def count_iterations(fn: Function) -> None:
    """Give every loop with one preheader and one latch but no induction variable (a `while`
    loop) a counter `phi [0, preheader], [counter + 1, latch]`: it becomes a counted loop,
    which the reverse sweep replays by counting down instead of reading an id per
    iteration. The primal's behaviour is unchanged. Idempotent."""
    g = cfg(fn)
    idom = dominators(g)
    counted = {lp.header for lp in counted_loops(fn, g)}
    for header in g.rpo:
        latches = [p for p in g.preds[header] if p in idom and dominated(idom, p, header)]
        outside = [p for p in g.preds[header] if p not in latches]
        if header in counted or len(latches) != 1 or len(outside) != 1:
            continue
        block, latch = fn.block(header), fn.block(latches[0])
        phi = Instruction("phi", I64, [], f"enzpy.iter.{header}", labels=[])
        step = Instruction("add", I64, [phi, Constant(I64, "1")], f"enzpy.iter.next.{header}")
        phi.operands, phi.labels = [Constant(I64, "0"), step], [outside[0], latches[0]]
        block.instructions.insert(0, phi)
        phi.block = block
        _before_end(latch, step)


def split_exit_edges(fn: Function) -> None:
    """Give every edge leaving a counted loop a block of its own (an empty block branching
    on), so the forward sweep can save the loop's last `iv` there. Idempotent."""
    loops = counted_loops(fn)
    inside = set().union(*(lp.blocks for lp in loops)) if loops else set()
    for block in list(fn.blocks):
        if block.name not in inside:
            continue
        term = block.terminator
        for target in dict.fromkeys(term.labels if term.opcode in ("br", "switch") else []):
            left = [lp for lp in loops if block.name in lp.blocks and target not in lp.blocks]
            if not left or target.endswith(".enzpy.exit"):
                continue
            _split_edge(fn, block, target, "enzpy.exit")


def read_kept_values_before_loops(fn: Function) -> None:
    """In a counted loop, `s = select(c, x, p)` with `c` defined outside the loop and `p` a
    header phi `[init, preheader], [s, latch]`: either `c` holds and `s` is `x` in every
    iteration, or it does not and `s` is `init` in every iteration; so `s` takes `init` in
    place of `p`, and `p`, which the reverse sweep would keep per iteration, is dropped when
    nothing else reads it. (Numba's broadcasting loops index each operand so: the index
    follows the loop's counter, or stays 0 along a dimension of length 1.)"""
    changed = False
    for lp in counted_loops(fn):
        header = fn.block(lp.header)
        for phi in header.phis:
            if len(phi.operands) != 2:
                continue
            (init, pre), (s, latch) = sorted(phi.incoming, key=lambda vl: vl[1] != lp.preheader)
            if (
                (pre, latch) != (lp.preheader, lp.latch)
                or not isinstance(s, Instruction)
                or s.opcode != "select"
                or s.block_name not in lp.blocks
                or _inside(s.operands[0], lp.blocks)
                or not any(o is phi for o in s.operands[1:])
            ):
                continue
            s.operands = [s.operands[0]] + [init if o is phi else o for o in s.operands[1:]]
            changed = True
    if changed:
        drop_dead(fn, ("phi",))


def _before_end(block: Block, *insts: Instruction) -> None:
    """Put `insts` in `block`, before its terminator."""
    at = len(block.instructions) - 1
    block.instructions[at:at] = insts
    for inst in insts:
        inst.block = block


def _inside(v: object, blocks: frozenset[str]) -> bool:
    return isinstance(v, Instruction) and v.block_name in blocks


def index_pointer_inductions(fn: Function) -> None:
    """In a counted loop, a pointer stepped by a loop-invariant amount and read nowhere else
    (`p = phi [start, preheader], [gep p, step, latch]`: Numba's reductions such as `x.sum()`
    walk arrays so) becomes `gep i8 start, k * bytes` with `k` the iteration's number from
    the loop's counter: the reverse sweep recomputes it, and its shadow, instead of keeping
    them per iteration. (A stepped pointer also used after the loop stays as it is.)"""
    namer = Namer(fn)
    used_by = users(fn)
    for lp in counted_loops(fn):
        header = fn.block(lp.header)
        new: list[Instruction] = []
        k: Value | None = None
        for phi in list(header.phis):
            inc = dict(zip(phi.labels, phi.operands, strict=True))
            start, nxt = inc.get(lp.preheader), inc.get(lp.latch)
            if (
                phi.type != PTR
                or len(inc) != 2
                or start is None
                or not isinstance(nxt, Instruction)
                or nxt.opcode != "getelementptr"
                or len(nxt.operands) != 2
                or nxt.operands[0] is not phi
                or nxt.operands[1].type != I64
                or nxt.aux_type is None
                or _inside(nxt.operands[1], lp.blocks)
                or used_by.get(id(nxt)) != [phi]
            ):
                continue
            if k is None:
                k = _iteration(lp, new, namer)
            size = const(I64, size_in_bytes(nxt.aux_type))
            name = namer.fresh(f"{phi.name}.at")
            step = Instruction("mul", I64, [nxt.operands[1], size], namer.fresh(f"{name}.step"))
            offset = Instruction("mul", I64, [k, step], namer.fresh(f"{name}.offset"))
            at = Instruction("getelementptr", PTR, [start, offset], name, aux_type=I8)
            new += [step, offset, at]
            for user in used_by.get(id(phi), []):
                user.operands = [at if o is phi else o for o in user.operands]
            for dead in (phi, nxt):
                assert dead.block is not None
                dead.block.instructions.remove(dead)
        if new:
            n = len(header.phis)
            header.instructions[n:n] = new
            for inst in new:
                inst.block = header


def _iteration(lp: CountedLoop, new: list[Instruction], namer: Namer) -> Value:
    """The number of the current iteration of `lp` (from 0), computed by instructions
    appended to `new` (none when it is the counter itself)."""
    c = lp.counter
    if isinstance(c.start, Constant) and c.start.text == "0" and c.step == 1:
        return c.phi
    name = namer.fresh(f"{c.phi.name}.done")
    done = Instruction("sub", I64, [c.phi, c.start], name)
    k = Instruction("sdiv", I64, [done, const(I64, c.step)], namer.fresh(f"{name}.k"))
    new += [done, k]
    return k
