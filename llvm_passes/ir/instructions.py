"""Instructions and basic blocks of the IR model, and how each prints itself.

One class holds every opcode; opcode-specific facts sit in named fields (predicate, flags,
indices, incoming blocks, callee...). Instructions the model does not interpret are kept
as `opaque`: their text with operand slots, so renaming still works.
"""

from __future__ import annotations

from collections.abc import Iterator

from .lexer import quote
from .types import VOID, Type
from .values import Constant, Local, Value

BINARY = {
    "fadd",
    "fsub",
    "fmul",
    "fdiv",
    "frem",
    "add",
    "sub",
    "mul",
    "udiv",
    "sdiv",
    "urem",
    "srem",
    "shl",
    "lshr",
    "ashr",
    "and",
    "or",
    "xor",
}
CASTS = {
    "trunc",
    "zext",
    "sext",
    "fptrunc",
    "fpext",
    "fptoui",
    "fptosi",
    "uitofp",
    "sitofp",
    "ptrtoint",
    "inttoptr",
    "bitcast",
    "addrspacecast",
}
TERMINATORS = {"br", "switch", "ret", "unreachable", "resume", "indirectbr"}


class Instruction(Local):
    """One LLVM instruction. `operands` are its value operands in printed order (for a call,
    the arguments; the callee is `callee`)."""

    def __init__(
        self,
        opcode: str,
        type: Type = VOID,
        operands: list[Value] | None = None,
        name: str = "",
        **fields,
    ) -> None:
        self.opcode = opcode
        self.type = type
        self.operands: list[Value] = list(operands or [])
        self.name = name
        self.flags: tuple[str, ...] = fields.pop("flags", ())
        self.pred: str = fields.pop("pred", "")
        self.aux_type: Type | None = fields.pop("aux_type", None)  # gep/alloca/load source
        self.indices: tuple[int, ...] = fields.pop("indices", ())
        self.labels: list[str] = fields.pop("labels", [])  # phi incoming / br+switch targets
        self.callee: Value | None = fields.pop("callee", None)
        self.fnty: str = fields.pop("fnty", "")  # explicit call function type, if printed
        self.arg_attrs: list[str] = fields.pop("arg_attrs", [])
        self.ret_attrs: str = fields.pop("ret_attrs", "")
        self.fn_attrs: str = fields.pop("fn_attrs", "")
        self.tail: str = fields.pop("tail", "")  # "", "tail", "musttail", "notail"
        self.align: int | None = fields.pop("align", None)
        self.template: str = fields.pop("template", "")  # opaque instructions only
        self.loc: str = fields.pop("loc", "")  # "file.py:line" where known
        # metadata attachments, printed last: a load's or store's `!alias.scope !N, !noalias
        # !M` and `!llvm.access.group !G`, a loop's latch branch's `!llvm.loop !L`
        self.attached: str = fields.pop("attached", "")
        self.block: Block | None = None
        if fields:
            raise TypeError(f"unknown instruction fields {sorted(fields)}")

    # ---- queries -------------------------------------------------------------------------
    @property
    def is_terminator(self) -> bool:
        return self.opcode in TERMINATORS

    @property
    def block_name(self) -> str:
        """The name of the block holding it ('' when it is in none)."""
        return self.block.name if self.block is not None else ""

    @property
    def has_result(self) -> bool:
        return self.type.kind != "void" and bool(self.name)

    @property
    def callee_name(self) -> str:
        """The called function's name for a direct call, else ''."""
        from .values import GlobalRef

        return self.callee.name if isinstance(self.callee, GlobalRef) else ""

    @property
    def accumulation(self) -> tuple[Value, Value] | None:
        """(p, v) of `atomicrmw fadd ptr p, T v` (`*p += v`, the old value returned) with
        `p` and `v` both operands, else None."""
        words = self.template.split()
        if self.opcode != "atomicrmw" or len(self.operands) != 2 or "fadd" not in words[1:3]:
            return None
        p, v = self.operands
        return (p, v) if p.type.is_ptr and v.type.is_float else None

    @property
    def incoming(self) -> Iterator[tuple[Value, str]]:
        """(value, block name) pairs of a phi."""
        return zip(self.operands, self.labels, strict=True)

    def __repr__(self) -> str:
        return f"<{self.text()}>"

    # ---- printing ------------------------------------------------------------------------
    def text(self) -> str:
        """This instruction as one line of IR (without indentation)."""
        body = _PRINTERS.get(self.opcode, _print_opaque)(self)
        return f"{self.ref} = {body}" if self.has_result else body


def _flags(i: Instruction) -> str:
    return "".join(f"{f} " for f in i.flags)


def _align(i: Instruction) -> str:
    align = f", align {i.align}" if i.align else ""
    return f"{align}, {i.attached}" if i.attached else align


def _label(name: str) -> str:
    return "label " + quote("%", name)


def _print_binary(i: Instruction) -> str:
    a, b = i.operands
    return f"{i.opcode} {_flags(i)}{a.type} {a.ref}, {b.ref}"


def _print_fneg(i: Instruction) -> str:
    return f"fneg {_flags(i)}{i.operands[0].typed()}"


def _print_cmp(i: Instruction) -> str:
    a, b = i.operands
    return f"{i.opcode} {_flags(i)}{i.pred} {a.type} {a.ref}, {b.ref}"


def _print_cast(i: Instruction) -> str:
    return f"{i.opcode} {_flags(i)}{i.operands[0].typed()} to {i.type}"


def _print_select(i: Instruction) -> str:
    return f"select {_flags(i)}" + ", ".join(v.typed() for v in i.operands)


def _print_phi(i: Instruction) -> str:
    pairs = ", ".join(f"[ {v.ref}, {quote('%', b)} ]" for v, b in i.incoming)
    return f"phi {_flags(i)}{i.type} {pairs}"


def _print_load(i: Instruction) -> str:
    return f"load {_flags(i)}{i.type}, {i.operands[0].typed()}{_align(i)}"


def _print_store(i: Instruction) -> str:
    v, p = i.operands
    return f"store {_flags(i)}{v.typed()}, {p.typed()}{_align(i)}"


def _print_gep(i: Instruction) -> str:
    ops = ", ".join(v.typed() for v in i.operands)
    return f"getelementptr {_flags(i)}{i.aux_type}, {ops}"


def _print_alloca(i: Instruction) -> str:
    count = f", {i.operands[0].typed()}" if i.operands else ""
    return f"alloca {i.aux_type}{count}{_align(i)}"


def _print_extractvalue(i: Instruction) -> str:
    idx = "".join(f", {k}" for k in i.indices)
    return f"extractvalue {i.operands[0].typed()}{idx}"


def _print_insertvalue(i: Instruction) -> str:
    idx = "".join(f", {k}" for k in i.indices)
    return f"insertvalue {i.operands[0].typed()}, {i.operands[1].typed()}{idx}"


def _print_freeze(i: Instruction) -> str:
    return f"freeze {i.operands[0].typed()}"


def _print_call(i: Instruction) -> str:
    args = []
    for k, v in enumerate(i.operands):
        attrs = i.arg_attrs[k] if k < len(i.arg_attrs) else ""
        args.append(f"{v.type}{' ' + attrs if attrs else ''} {v.ref}")
    tail = f"{i.tail} " if i.tail else ""
    ret_attrs = f"{i.ret_attrs} " if i.ret_attrs else ""
    fnty = i.fnty or str(i.type)
    fn_attrs = f" {i.fn_attrs}" if i.fn_attrs else ""
    assert i.callee is not None
    return f"{tail}call {_flags(i)}{ret_attrs}{fnty} {i.callee.ref}({', '.join(args)}){fn_attrs}"


def _print_br(i: Instruction) -> str:
    attached = f", {i.attached}" if i.attached else ""
    if i.operands:
        t, f = i.labels
        return f"br {i.operands[0].typed()}, {_label(t)}, {_label(f)}{attached}"
    return f"br {_label(i.labels[0])}{attached}"


def _print_switch(i: Instruction) -> str:
    cond, *cases = i.operands
    default, *targets = i.labels
    body = " ".join(f"{c.typed()}, {_label(t)}" for c, t in zip(cases, targets, strict=True))
    return f"switch {cond.typed()}, {_label(default)} [ {body} ]"


def _print_ret(i: Instruction) -> str:
    return f"ret {i.operands[0].typed()}" if i.operands else "ret void"


def _print_unreachable(i: Instruction) -> str:
    return "unreachable"


def _print_opaque(i: Instruction) -> str:
    return i.template.format(*(v.ref for v in i.operands))


_PRINTERS = (
    {op: _print_binary for op in BINARY}
    | {op: _print_cast for op in CASTS}
    | {
        "fneg": _print_fneg,
        "icmp": _print_cmp,
        "fcmp": _print_cmp,
        "select": _print_select,
        "phi": _print_phi,
        "load": _print_load,
        "store": _print_store,
        "getelementptr": _print_gep,
        "alloca": _print_alloca,
        "extractvalue": _print_extractvalue,
        "insertvalue": _print_insertvalue,
        "freeze": _print_freeze,
        "call": _print_call,
        "br": _print_br,
        "switch": _print_switch,
        "ret": _print_ret,
        "unreachable": _print_unreachable,
    }
)


class Block:
    """A basic block: a label and its instructions, the last one a terminator."""

    def __init__(self, name: str, instructions: list[Instruction] | None = None) -> None:
        self.name = name
        self.instructions: list[Instruction] = []
        for inst in instructions or []:
            self.append(inst)

    def append(self, inst: Instruction) -> Instruction:
        inst.block = self
        self.instructions.append(inst)
        return inst

    @property
    def terminator(self) -> Instruction:
        return self.instructions[-1]

    @property
    def successors(self) -> list[str]:
        t = self.terminator
        return list(dict.fromkeys(t.labels)) if t.opcode in ("br", "switch") else []

    @property
    def phis(self) -> list[Instruction]:
        return [i for i in self.instructions if i.opcode == "phi"]

    def text(self) -> str:
        lines = [f"{quote('', self.name) if self.name else ''}:"]
        lines += ["  " + i.text() for i in self.instructions]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Block {self.name}>"


def is_const_zero(v: Value) -> bool:
    return isinstance(v, Constant) and v.is_zero
