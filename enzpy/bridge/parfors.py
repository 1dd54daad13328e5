"""Numba's parallel loops (`parallel=True`, `prange`) as the engine's parallel call.

For each parfor Numba emits three functions besides the loop body `B` (Numba's ABI, one
schedule row per call): a launcher `K(args, dims, steps, data)` that releases the GIL and
calls `numba_parallel_for(@W, args, dims, steps, data, ...)`, and a gufunc wrapper `W` that
calls `B` once per schedule row, making each of `B`'s operands from the packed `args`
(pointers advanced by the row times their outer step), `dims` and `steps`. The function
launching it fills three stack arrays with those packed values and calls `K`.

`parallel_calls` replaces each such launch by
    %status = call i32 (ptr, i64, ...) @enzpy.parallel_for(ptr @B.chunk, i64 %rows,
                                                          <values>..., ptr %excinfo)
where `@B.chunk(i64 c, <values>..., ptr excinfo)` makes `B`'s operands for row `c` the way
`W` does (read from `W`'s instructions, not assumed) and calls `B` with the launching
function's `excinfo`; the launching function returns a failing chunk's status at once
(after restoring the scheduler's chunk size and freeing the schedule, as Numba does after
the launch).
The packed arrays, `K` and `W` drop out: the engine sees plain values.
`lower_parallel_calls` turns the calls left in a synthesized derivative back into a launch
through Numba's thread pool.
"""

from __future__ import annotations

import linecache
import operator
import os
import re
from dataclasses import dataclass, field
from typing import Any

from numba.core.ir import Var

from llvm_passes.ir import (
    I1,
    I32,
    I64,
    PTR,
    VOID,
    Argument,
    Block,
    Constant,
    Function,
    GlobalRef,
    Instruction,
    Module,
    Type,
    Value,
    parse_module,
)
from llvm_passes.ir.builder import Builder, Namer
from llvm_passes.ir.types import size_in_bytes, struct
from llvm_passes.rules.parallel import PARALLEL_FOR, PARTITION

from ..errors import NoDerivativeError
from .capture import defined_symbols
from .runtime import SCHEDULES

_LAUNCH = "numba_parallel_for"
_PACKED = ("args", "dims", "steps", "data")  # the gufunc ABI's parameters
# what Numba's code does after a launch to restore the scheduler: done before returning a
# failing chunk's status as well
_RESTORED = ("set_parallel_chunksize", "deallocate_sched")
_RETURNED_NONE = -2  # a Numba function's status when it returned None (not an error)
# the body's operands giving its schedule row (its first argument, `sched`, a 1-D array of
# [lo..., hi...]): the data pointer, the number of entries
_SCHEDULE = (6, 7)
_PARTITION_DEFINED = (
    f"define internal void @{PARTITION}(ptr %row, i64 %entries, i64 %first) {{\n  ret void\n}}"
)
_UNKNOWN_START = Constant(I64, str(-(2**63)))


class ParforShapeError(NoDerivativeError):
    """A parallel loop whose launch does not have the shape this bridge reads."""

    def __init__(self, what: str, fn: str) -> None:
        super().__init__(
            f"cannot differentiate a parallel loop of {fn}: {what}. Numba's parallel launch "
            "has a shape enzpy does not know (another Numba version?): differentiate a "
            "serial version of the function."
        )


@dataclass
class _Chunk:
    """What `W` does for one row, as a function of the row: `B.chunk`."""

    body: Function  # its declaration
    chunk: Function
    leaves: list[tuple[int, int, Type]]  # chunk parameters: (packed array, byte offset, type)


@dataclass
class _Recipe:
    """Builds `B.chunk` from `W` (see `_chunk_of`)."""

    wrapper: Function
    b: Builder
    row: Value
    leaves: list[tuple[int, int, Type]] = field(default_factory=list)
    params: dict[tuple[int, int], Argument] = field(default_factory=dict)
    made: dict[int, Value | _Address] = field(default_factory=dict)


def parallel_calls(texts: list[str]) -> list[str]:
    """`texts` (module texts: the root's, then its callees') with each parfor launch made an
    `enzpy.parallel_for` call, and the modules holding only launchers and gufunc wrappers
    dropped. Unchanged when nothing launches a parallel loop."""
    if not any(_LAUNCH in t for t in texts):
        return texts
    modules = [parse_module(t) for t in texts]
    defined = {f.name: f for m in modules for f in m.functions.values() if not f.is_declaration}
    launchers: dict[str, str] = {}  # launcher -> its gufunc wrapper
    for name, fn in defined.items():
        wrapper = _wrapper_of(fn)
        if wrapper is not None:
            launchers[name] = wrapper
    if not launchers:
        return texts
    wrappers = set(launchers.values())
    chunks: dict[str, _Chunk] = {}
    launched_in: dict[str, str] = {}  # loop body -> the module text launching it
    out = []
    for text, module in zip(texts, modules, strict=True):
        names = set(defined_symbols(text))
        if names and names <= set(launchers) | wrappers:
            continue
        changed = False
        for fn in list(module.functions.values()):
            for inst in [i for i in fn.instructions() if i.callee_name in launchers]:
                w = launchers[inst.callee_name]
                if w not in chunks:
                    chunks[w] = _chunk_of(defined[w])
                _launch(module, fn, inst, chunks[w])
                launched_in[chunks[w].body.name] = text
                changed = True
        out.append(module.text() if changed else text)
    for k, t in enumerate(out):
        body = next((b for b in defined_symbols(t) if b in launched_in), None)
        if body is not None:
            out[k] = _in_users_file(t, launched_in[body])
    return out


# the helpers Numba's parfor lowering makes to combine a reduction's per-thread partial
# results (`_emit_binop_reduce_call.<locals>.reduction_add`, `reduction_mul`, ...)
_COMBINER = re.compile(r"parfor_lowering\w*?_3clocals_3e\d+([a-z_]+)")
ADDITIVE = "reduction_add"  # `s += ...`, `s -= ...`, `np.sum`
#: how a user wrote the reductions each of Numba's combining helpers combines
REDUCTIONS = {ADDITIVE: "s += ...", "reduction_mul": "p *= ...", "reducer_getitem": "max/min"}


def non_additive_updates(dispatcher: Any, argtypes: tuple) -> list[str]:
    """Where the prange loops of `dispatcher`'s compiled `argtypes` update a reduction
    variable other than by adding or subtracting: `file:line: source` each, as Numba's
    parfor diagnostics tell (none when they are missing: a primal loaded from Numba's cache)."""
    cres = dispatcher.overloads.get(argtypes)
    diagnostics = cres.metadata.get("parfor_diagnostics") if cres is not None else None
    out: dict[str, None] = {}
    for parfor in getattr(diagnostics, "initial_parfors", ()):
        # a reduction variable `s.2` is `s.1`, `s_2` or `$s_2.7` in the loop body
        reduced = {n for r in parfor.redvars for n in (r.split(".")[0], r.replace(".", "_"))}
        for block in parfor.loop_body.values():
            for stmt in block.body:
                target = getattr(getattr(stmt, "target", None), "name", "")
                value: Any = getattr(stmt, "value", None)
                if target.lstrip("$").split(".")[0] not in reduced or isinstance(value, Var):
                    continue  # (a copy tells nothing)
                if getattr(value, "op", None) in ("binop", "inplace_binop") and value.fn in _SUMS:
                    continue
                line = linecache.getline(stmt.loc.filename, stmt.loc.line).strip()
                out[f"{os.path.basename(stmt.loc.filename)}:{stmt.loc.line}: {line}"] = None
    return list(out)


_SUMS = (operator.add, operator.sub, operator.iadd, operator.isub)


def combiners(texts: list[str]) -> set[str]:
    """The names of the helpers combining reductions' partial results in `texts` (the
    captured modules of a function and its callees, before any inlining)."""
    return {m.group(1) for t in texts for m in _COMBINER.finditer(t)}


def _in_users_file(body_text: str, root_text: str) -> str:
    """A loop body's module text with its debug information naming the file of the
    function launching it: Numba compiles the body as a function of generated source
    (`<string>`), keeping the lines of the user's loop."""
    user = re.search(r'!DIFile\(filename: ("[^"]*"), directory: ("[^"]*")', root_text)
    if user is None:
        return body_text
    return re.sub(
        r'!DIFile\(filename: "<string>", directory: "[^"]*"',
        f"!DIFile(filename: {user.group(1)}, directory: {user.group(2)}",
        body_text,
    )


def _wrapper_of(fn: Function) -> str | None:
    """The gufunc wrapper a launcher `fn` passes to Numba's thread pool, if it is one."""
    for inst in fn.instructions():
        if inst.callee_name == _LAUNCH:
            w = inst.operands[0]
            forwarded = [a.index for a in inst.operands[1:5] if isinstance(a, Argument)]
            if not isinstance(w, GlobalRef) or forwarded != [0, 1, 2, 3]:
                raise ParforShapeError(
                    f"its launcher calls {_LAUNCH} without forwarding its arguments", fn.name
                )
            return w.name
    return None


def _chunk_of(w: Function) -> _Chunk:
    """`B.chunk` made from the gufunc wrapper `w`: the operands of its call of the body, with
    the row index the chunk index and each load from the packed arrays a parameter."""
    calls = [i for i in w.instructions() if i.opcode == "call" and i.type == I32]
    if len(calls) != 1 or not calls[0].callee_name:
        raise _shape(w, "one call of a loop body")
    call = calls[0]
    body = call.callee_name
    chunk = Function(f"{body}.chunk", I32, [Argument(I64, "c", "", 0)])
    chunk.blocks = [Block("entry")]
    b = Builder(Module(), Namer(chunk), chunk.entry)
    r = _Recipe(w, b, chunk.args[0])
    excinfo = Argument(PTR, b.namer.fresh("excinfo"), "", 0)  # the launching function's
    first = Argument(I64, b.namer.fresh("first"), "", 0)  # the loop's start
    operands = [excinfo if k == 1 else _value_made(r, o) for k, o in enumerate(call.operands)]
    if len(operands) > _SCHEDULE[1]:  # the row: this chunk's part of the iteration space
        b.call(PARTITION, [*(operands[k] for k in _SCHEDULE), first], VOID)
    status = b.call(body, operands, I32, "status")
    status.arg_attrs = list(call.arg_attrs)
    none = b.icmp("eq", status, Constant(I32, str(_RETURNED_NONE)), "none")
    b.insert(Instruction("ret", operands=[b.select(none, Constant(I32, "0"), status, "st")]))
    chunk.args += [*r.params.values(), first, excinfo]
    for k, a in enumerate(chunk.args):
        a.index = k
    declaration = b.module.get(body)
    assert declaration is not None
    return _Chunk(declaration, chunk, r.leaves)


@dataclass(frozen=True)
class _Address:
    """A place in one of the wrapper's packed arrays: (array, byte offset)."""

    array: int
    offset: int


def _value_made(r: _Recipe, v: Value) -> Value:
    """What stands for the wrapper's value `v` in the chunk: a value, not a packed array."""
    made = _made(r, v)
    if isinstance(made, _Address):
        raise _shape(r.wrapper, "packed arrays used only through loads")
    return made


def _made(r: _Recipe, v: Value) -> Value | _Address:
    """What stands for the wrapper's value `v` in the chunk."""
    if isinstance(v, Constant | GlobalRef):
        return v
    if isinstance(v, Argument):
        if v.index >= 3:  # (the data pointer: Numba passes null)
            raise _shape(r.wrapper, "body operands made without its data argument")
        return _Address(v.index, 0)
    assert isinstance(v, Instruction)
    if id(v) in r.made:
        return r.made[id(v)]
    op = v.opcode
    if op == "phi":  # the wrapper's loop over rows: this chunk's row
        if v.type != I64:
            raise _shape(r.wrapper, "a loop over rows with one integer index")
        r.made[id(v)] = r.row
        return r.row
    ops = [_made(r, o) for o in v.operands]
    out: Value | _Address
    if op == "getelementptr" and isinstance(ops[0], _Address):
        if len(ops) != 2 or not isinstance(ops[1], Constant) or v.aux_type is None:
            raise _shape(r.wrapper, "reads of its packed arrays at constant offsets")
        step = size_in_bytes(v.aux_type)
        out = _Address(ops[0].array, ops[0].offset + step * int(ops[1].text))
    elif op == "load" and isinstance(ops[0], _Address):
        key = (ops[0].array, ops[0].offset)
        if key not in r.params:
            name = f"{_PACKED[key[0]]}.{key[1] // 8}"
            r.params[key] = Argument(v.type, name, "", len(r.params) + 1)
            r.leaves.append((key[0], key[1], v.type))
        out = r.params[key]
    elif op == "alloca":  # the body's return and exception cells
        out = r.b.alloca(v.aux_type or PTR, v.align, v.name or "cell")
        r.b.store(Builder.zero(v.aux_type or PTR), out)
    elif op in ("getelementptr", "load", "mul", "add", "sub", "shl", "sext", "zext", "trunc"):
        values = [_value_made(r, o) for o in v.operands]
        copy = Instruction(op, v.type, values, flags=v.flags, aux_type=v.aux_type, align=v.align)
        out = r.b.insert(copy, v.name or "t")
    else:
        raise _shape(r.wrapper, f"body operands made without '{op}'")
    r.made[id(v)] = out
    return out


def _shape(w: Function, expected: str) -> ParforShapeError:
    return ParforShapeError(f"its gufunc wrapper lacks {expected}", w.name)


def _launch(module: Module, fn: Function, call: Instruction, w: _Chunk) -> None:
    """Replace the launch `call` in `fn` by an `enzpy.parallel_for` call of `w`'s chunk,
    `fn` returning the status of a chunk that fails (its exception in `fn`'s excinfo)."""
    packed = call.operands
    values = [_stored(fn, p, call) for p in packed[:3]]
    namer = Namer(fn)
    module.add_function(w.chunk)
    module.add_function(w.body)
    params = [Argument(PTR, "chunk", "", 0), Argument(I64, "n", "", 1)]
    module.add_function(Function(PARALLEL_FOR, I32, params, vararg=True))
    row = [Argument(PTR, "row", "", 0), Argument(I64, "entries", "", 1)]
    module.add_function(Function(PARTITION, VOID, [*row, Argument(I64, "first", "", 2)]))
    module.functions.pop(call.callee_name, None)  # the launcher's declaration
    args: list[Value] = [GlobalRef(w.chunk.name, PTR), _value(values[1], 0, I64, fn)]
    for array, offset, ty in w.leaves:
        args.append(_value(values[array], offset, ty, fn))
    args += [_start(fn, call, values[0].get(0)), fn.args[1]]
    par = Instruction(
        "call",
        I32,
        args,
        name=namer.fresh("parfor.status"),
        callee=GlobalRef(PARALLEL_FOR, PTR),
        fnty="i32 (ptr, i64, ...)",
        arg_attrs=[""] * len(args),
        loc=call.loc,
    )
    assert call.block is not None
    block = call.block
    at = block.instructions.index(call)
    rest = Block(namer.fresh(f"{block.name}.parfor.done"), block.instructions[at + 1 :])
    failed = Block(namer.fresh(f"{block.name}.parfor.failed"))
    for inst in rest.instructions:  # the scheduler's state restored on the way out too
        if inst.opcode == "call" and inst.callee_name in _RESTORED:
            failed.append(
                Instruction(
                    "call",
                    inst.type,
                    list(inst.operands),
                    callee=inst.callee,
                    fnty=inst.fnty,
                    arg_attrs=list(inst.arg_attrs),
                    loc=inst.loc,
                )
            )
    failed.append(Instruction("ret", operands=[par]))
    block.instructions = block.instructions[:at]
    block.append(par)
    ok = Instruction("icmp", I1, [par, Constant(I32, "0")], "", pred="eq")
    ok.name = namer.fresh("parfor.ok")
    block.append(ok)
    block.append(Instruction("br", operands=[ok], labels=[rest.name, failed.name]))
    for name in rest.successors:
        for phi in fn.block(name).phis:
            phi.labels = [rest.name if label == block.name else label for label in phi.labels]
    where = fn.blocks.index(block) + 1
    fn.blocks[where:where] = [rest, failed]
    _drop_packing(fn, [p for p in packed[:3] if isinstance(p, Instruction)])


def _start(fn: Function, call: Instruction, schedule: Value | None) -> Value:
    """The start of the loop the launch `call` of `fn` runs (of its first dimension), from
    the scheduling of `schedule` (the lowest value any row can start at when unknown)."""
    for inst in fn.instructions():
        # Numba's scheduling call: (dimensions, starts, stops, rows, the schedule); every
        # row starts at or above the loop's start
        if inst.callee_name in SCHEDULES and inst.operands[4] is schedule:
            start = _stored(fn, inst.operands[1], call).get(0)
            if start is not None and start.type == I64:
                return start
    return _UNKNOWN_START


def _stored(fn: Function, array: Value, call: Instruction) -> dict[int, Value]:
    """The values stored into the stack array `array` of `fn` that reach `call`, by byte
    offset: the last store to each before it, in its block and the chain of single
    predecessors above it (a zeroing memset gives zeros of 8 bytes)."""
    out: dict[int, Value] = {}
    block, seen = call.block, set()
    assert block is not None
    before = block.instructions[: block.instructions.index(call)]
    while True:
        for inst in reversed(before):
            if inst.opcode == "store":
                at = _offset(inst.operands[1], array)
                if at is not None:
                    out.setdefault(at, inst.operands[0])
            elif inst.callee_name.startswith("llvm.memset"):
                at = _offset(inst.operands[0], array)
                byte, size = inst.operands[1], inst.operands[2]
                if at is not None and _is_int(byte, 0) and isinstance(size, Constant):
                    for k in range(0, int(size.text), 8):
                        out.setdefault(at + k, Constant(I64, "0"))
        seen.add(block.name)
        preds = [b for b in fn.blocks if block.name in b.successors]
        if len(preds) != 1 or preds[0].name in seen:
            return out
        block = preds[0]
        before = block.instructions


def _offset(p: Value, base: Value) -> int | None:
    if p is base:
        return 0
    if (
        isinstance(p, Instruction)
        and p.opcode == "getelementptr"
        and p.operands[0] is base
        and len(p.operands) == 2
        and isinstance(p.operands[1], Constant)
        and p.aux_type is not None
    ):
        return size_in_bytes(p.aux_type) * int(p.operands[1].text)
    return None


def _is_int(v: Value, n: int) -> bool:
    return isinstance(v, Constant) and v.type.is_int and v.text == str(n)


def _value(stored: dict[int, Value], offset: int, ty: Type, fn: Function) -> Value:
    v = stored.get(offset)
    if v is None:
        raise ParforShapeError(f"its launch leaves byte {offset} of a packed array unset", fn.name)
    if isinstance(v, Constant) and v.type != ty:
        return Builder.zero(ty) if v.is_zero else Constant(ty, v.text)
    return v


def _drop_packing(fn: Function, arrays: list[Instruction]) -> None:
    """Remove the packed arrays, their addresses and the stores filling them."""
    dead: set[int] = {id(a) for a in arrays}
    changed = True
    while changed:
        changed = False
        for inst in fn.instructions():
            if id(inst) in dead:
                continue
            uses = [o for o in inst.operands if id(o) in dead]
            if not uses:
                continue
            filling = inst.opcode == "store" and inst.operands[1] in uses
            addressing = inst.opcode == "getelementptr" and inst.operands[0] in uses
            marker = inst.callee_name.startswith(("llvm.memset", "llvm.lifetime"))
            if not (filling or addressing or marker):
                raise ParforShapeError(f"its packed arguments are used by {inst.text()}", fn.name)
            dead.add(id(inst))
            changed = True
    for block in fn.blocks:
        block.instructions = [i for i in block.instructions if id(i) not in dead]


def lower_parallel_calls(module_text: str) -> str:
    """`module_text` with each `enzpy.parallel_for(@F, n, a1...ak)` call made a launch on
    Numba's thread pool: the arguments stored into an environment `{a1...ak, i32 status}`,
    and `@F.launch(env, n)` releasing the GIL around `numba_parallel_for` with the gufunc
    `@F.gufunc`, which calls `@F(c, a1...ak)` for each row `c` it is given; the call's
    result is the first nonzero status a chunk returned (0 if none). Launches Numba's
    thread pool."""
    if PARALLEL_FOR not in module_text:
        return module_text
    _launch_threads()
    module = parse_module(module_text)
    lowered: set[str] = set()
    for fn in list(module.functions.values()):
        calls = [i for i in fn.instructions() if i.callee_name == PARALLEL_FOR]
        for call in calls:
            chunk, n, *args = call.operands
            assert isinstance(chunk, GlobalRef)
            env_type = struct(*[a.type for a in args], I32)
            if chunk.name not in lowered:
                lowered.add(chunk.name)
                module.define(_launcher_text(module, chunk.name, env_type))
            b = Builder(module, Namer(fn), fn.entry)
            b.index = 0
            env = b.alloca(env_type, 8, "env")
            assert call.block is not None
            b.position_at_end(call.block)
            b.index = call.block.instructions.index(call)
            for k, a in enumerate([*args, Constant(I32, "0")]):
                field_ptr = b.gep(env_type, env, Constant(I64, "0"), Constant(I32, str(k)))
                b.store(a, field_ptr)
            status = b.call(f"{chunk.name}.launch", [env, n], I32, call.name or "status")
            call.block.instructions.remove(call)
            for inst in fn.instructions():
                inst.operands = [status if o is call else o for o in inst.operands]
    module.functions.pop(PARALLEL_FOR, None)
    if PARTITION in module.functions:
        module.functions.pop(PARTITION)
        module.define(_PARTITION_DEFINED)
    return module.text()


def _launch_threads() -> None:
    """Start Numba's thread pool (its scheduler's symbols resolve from then on)."""
    from numba.np.ufunc.parallel import _launch_threads as launch

    launch()


def _launcher_text(module: Module, chunk: str, env: Type) -> str:
    """The gufunc `@<chunk>.gufunc` and the launcher `@<chunk>.launch` of a chunk function
    (see `lower_parallel_calls`). The row index travels as the distance of the gufunc's
    first argument from the environment (outer step 1): Numba's pool only adds
    `row * step` to it, in omp's one-row calls as in workqueue's blocks."""
    fn = module.get(chunk)
    assert fn is not None
    n = len(env.elems) - 1
    loads = "\n".join(
        f"  %f{k}.p = getelementptr {env}, ptr %env, i64 0, i32 {k}\n"
        f"  %f{k} = load {t}, ptr %f{k}.p"
        for k, t in enumerate(env.elems[:n])
    )
    fields = "".join(f", {t} %f{k}" for k, t in enumerate(env.elems[:n]))
    status = (
        f'  %st = call i32 @"{chunk}"(i64 %c{fields})\n'
        f"  %st.p = getelementptr {env}, ptr %env, i64 0, i32 {n}\n"
        "  %kept = cmpxchg ptr %st.p, i32 0, i32 %st seq_cst seq_cst"
        if fn.ret_type == I32
        else f'  call {fn.ret_type} @"{chunk}"(i64 %c{fields})'
    )
    launch_args = (
        f'ptr @"{chunk}.gufunc", ptr %args, ptr %dims, ptr %steps, ptr %env, i64 0, i64 1, i64 %nt'
    )
    return f"""
declare void @numba_gil_ensure(ptr)
declare void @numba_gil_release(ptr)
declare ptr @PyEval_SaveThread()
declare void @PyEval_RestoreThread(ptr)
declare i64 @get_num_threads()
declare void @{_LAUNCH}(ptr, ptr, ptr, ptr, ptr, i64, i64, i64)
define internal void @"{chunk}.gufunc"(ptr %args, ptr %dims, ptr %steps, ptr %env) {{
entry:
  %first = load ptr, ptr %args
  %at = ptrtoint ptr %first to i64
  %base = ptrtoint ptr %env to i64
  %c0 = sub i64 %at, %base
  %rows = load i64, ptr %dims
{loads}
  br label %head
head:
  %k = phi i64 [ 0, %entry ], [ %k.next, %body ]
  %more = icmp slt i64 %k, %rows
  br i1 %more, label %body, label %done
body:
  %c = add i64 %c0, %k
{status}
  %k.next = add i64 %k, 1
  br label %head
done:
  ret void
}}

define internal i32 @"{chunk}.launch"(ptr %env, i64 %n) {{
entry:
  %args = alloca ptr
  store ptr %env, ptr %args
  %dims = alloca i64
  store i64 %n, ptr %dims
  %steps = alloca i64
  store i64 1, ptr %steps
  %gil = alloca i32
  store i32 0, ptr %gil
  call void @numba_gil_ensure(ptr %gil)
  %ts = call ptr @PyEval_SaveThread()
  %nt = call i64 @get_num_threads()
  call void @{_LAUNCH}({launch_args})
  call void @PyEval_RestoreThread(ptr %ts)
  call void @numba_gil_release(ptr %gil)
  %status.p = getelementptr {env}, ptr %env, i64 0, i32 {n}
  %status = load i32, ptr %status.p
  ret i32 %status
}}
"""
