"""Rewrite floats moved through integers as float operations, so derivatives follow them.

Where `analysis.memtypes` finds integer loads and stores of float memory, they become float
loads and stores with a bitcast beside them; then the integer operations a float's bits go
through are read back as float operations: `xor` with the sign bit is `fneg`, `and` that
clears it `fabs`, `or` that sets it `-fabs`, and a bitcast round trip the value itself.
What stays an integer is integer arithmetic on the bits of a float; the activity analysis
refuses it where it becomes a float again. The primal computes the same bits as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..analysis.memtypes import Layout, float_bits, layout_of
from ..ir import PTR, Argument, Constant, Function, GlobalRef, Instruction, Module, Type, Value
from ..ir.builder import Namer
from ..rules.registry import PARALLEL, parallel_chunk
from .dead import drop_dead

_PURE_INT = ("bitcast", "xor", "and", "or")
_SUFFIX = {"double": "f64", "float": "f32", "half": "f16"}


def follow_float_bits(
    module: Module, root: str, pointee: Sequence[Type | None] | None
) -> dict[str, dict[int, Layout]]:
    """Rewrite `root` and the functions it calls (transitively); `pointee[k]` is the type of
    the memory pointer argument k of `root` points to (values of that type, repeated).
    Returns the float layouts known of each function's pointer arguments."""
    facts = {k: layout_of(t) for k, t in enumerate(pointee or ()) if t is not None}
    todo: list[tuple[Function, dict[int, Layout]]] = [(module.functions[root], facts)]
    known: dict[str, dict[int, Layout]] = {}
    while todo:
        fn, facts = todo.pop()
        if fn.name in known or fn.is_declaration:
            continue
        known[fn.name] = facts
        bits = float_bits(fn, facts)
        _rewrite(module, fn, bits.loads, bits.stores)
        callees: dict[str, dict[int, set]] = {}
        for (call, k), layout in bits.calls.items():
            target = _parameter(call, k)
            if target is not None:
                callees.setdefault(target[0], {}).setdefault(target[1], set()).update(layout)
        for name, by_arg in callees.items():
            callee = module.get(name)
            if callee is not None:
                todo.append((callee, {k: frozenset(v) for k, v in by_arg.items()}))
        for inst in fn.instructions():
            chunk = parallel_chunk(inst)
            name = chunk[0] if chunk is not None else inst.callee_name
            callee = module.get(name) if inst.opcode == "call" else None
            if callee is not None and callee.name not in callees:
                todo.append((callee, {}))
    return known


def _parameter(call: Instruction, k: int) -> tuple[str, int] | None:
    """The function and parameter that operand `k` of `call` is passed to (a parallel
    call's operands go to its chunk's parameters); None for a parallel call's own."""
    chunk = parallel_chunk(call)
    if chunk is None:
        return call.callee_name, k
    first = PARALLEL[call.callee_name].first
    return (chunk[0], k - first + 1) if chunk[0] and k >= first else None


def _rewrite(
    module: Module,
    fn: Function,
    loads: Mapping[Instruction, Type],
    stores: Mapping[Instruction, Type],
) -> None:
    if not (loads or stores or any(i.opcode == "bitcast" for i in fn.instructions())):
        return
    namer = Namer(fn)
    for block in fn.blocks:
        out: list[Instruction] = []
        for inst in block.instructions:
            if inst in loads:  # %v = load iN, p  ->  %v.f = load T, p; %v = bitcast %v.f
                f = Instruction(
                    "load",
                    loads[inst],
                    list(inst.operands),
                    namer.fresh(f"{inst.name}.f"),
                    align=inst.align,
                    loc=inst.loc,
                )
                out.append(f)
                _become(inst, "bitcast", inst.type, [f])
            elif inst in stores:  # store iN %v, p  ->  store T (bitcast %v), p
                value = inst.operands[0]
                f = Instruction(
                    "bitcast",
                    stores[inst],
                    [value],
                    namer.fresh(f"{getattr(value, 'name', '') or 'v'}.f"),
                    loc=inst.loc,
                )
                out.append(f)
                inst.operands[0] = f
            out.append(inst)
        for inst in out:
            inst.block = block
        block.instructions = out
    _fold(module, fn, namer)


def _become(inst: Instruction, opcode: str, type: Type, operands: list[Value]) -> None:
    """Turn `inst` in place into another instruction (its users keep it)."""
    inst.opcode, inst.type, inst.operands = opcode, type, operands
    inst.flags, inst.align, inst.aux_type = (), None, None


def _float_source(v: Value) -> Value | None:
    """The float `v` is the bits of (`bitcast T %f to iN`), if it is one."""
    if (
        isinstance(v, Instruction)
        and v.opcode == "bitcast"
        and v.operands[0].type.is_float
        and v.type.is_int
    ):
        return v.operands[0]
    return None


def _sign_op(inst: Instruction) -> str | None:
    """What a sign-bit operation does to the float whose bits it takes: 'fneg' (xor with the
    sign bit), 'fabs' (and with its complement), 'nabs' (or with the sign bit)."""
    c = inst.operands[1]
    if not isinstance(c, Constant) or not c.text.lstrip("-").isdigit():
        return None
    bits = inst.type.bits
    value = int(c.text) & ((1 << bits) - 1)
    sign = 1 << (bits - 1)
    return {("xor", sign): "fneg", ("and", sign - 1): "fabs", ("or", sign): "nabs"}.get(
        (inst.opcode, value)
    )


def _fold(module: Module, fn: Function, namer: Namer) -> None:
    """Read sign-bit operations and bitcast round trips on float bits as float operations,
    then drop the integer operations nothing uses any more."""
    replace: dict[Value, Value] = {}
    for block in fn.blocks:
        out: list[Instruction] = []
        for inst in block.instructions:
            inst.operands = [replace.get(o, o) for o in inst.operands]
            f = _float_source(inst.operands[0]) if inst.operands else None
            if f is not None and inst.opcode in ("xor", "and", "or") and _sign_op(inst):
                out.extend(_float_sign(module, _sign_op(inst), f, inst, namer))  # type: ignore[arg-type]
            elif f is not None and inst.opcode == "bitcast" and inst.type == f.type:
                replace[inst] = f
                continue
            out.append(inst)
        for inst in out:
            inst.block = block
        block.instructions = out
    for inst in fn.instructions():  # a replaced value used before it was met (phis)
        inst.operands = [replace.get(o, o) for o in inst.operands]
    drop_dead(fn, _PURE_INT)


def _float_sign(
    module: Module, kind: str, f: Value, inst: Instruction, namer: Namer
) -> list[Instruction]:
    """Instructions computing the float `kind` of `f`, then `inst` turned into its bits."""
    ty = f.type
    made: list[Instruction] = []
    if kind in ("fabs", "nabs"):
        fabs = f"llvm.fabs.{_SUFFIX[ty.name]}"
        if module.get(fabs) is None:
            module.add_function(Function(fabs, ty, [Argument(ty, "x")]))
        made.append(
            Instruction(
                "call",
                ty,
                [f],
                namer.fresh(f"{inst.name or 'v'}.f"),
                callee=GlobalRef(fabs, PTR),
                loc=inst.loc,
            )
        )
        f = made[-1]
    if kind in ("fneg", "nabs"):
        made.append(
            Instruction("fneg", ty, [f], namer.fresh(f"{inst.name or 'v'}.f"), loc=inst.loc)
        )
    _become(inst, "bitcast", inst.type, [made[-1]])
    return [*made, inst]
