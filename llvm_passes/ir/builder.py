"""Build new instructions into a block: the only way synthesizers and rules emit IR.

Names of new values are fresh within the function (`hint` plus a counter). Math helpers
pick the intrinsic or libm spelling for the operand's float type and declare it.
"""

from __future__ import annotations

from collections.abc import Sequence

from .instructions import Block, Instruction
from .module import Function, Module
from .types import I1, I32, PTR, VOID, Type
from .values import Argument, Constant, Value, const

_SUFFIX = {"double": "f64", "float": "f32", "half": "f16", "fp128": "f128", "x86_fp80": "f80"}
_LIBM = {"double": "", "float": "f", "x86_fp80": "l", "fp128": "l"}


class Namer:
    """Hands out value names unused in a function."""

    def __init__(self, fn: Function | None = None) -> None:
        self.used: set[str] = set()
        self.counter = 0
        if fn is not None:
            self.used.update(a.name for a in fn.args)
            self.used.update(i.name for i in fn.instructions() if i.name)
            self.used.update(b.name for b in fn.blocks)

    def fresh(self, hint: str) -> str:
        hint = hint or "t"
        if hint not in self.used:
            self.used.add(hint)
            return hint
        while True:
            self.counter += 1
            name = f"{hint}{self.counter}"
            if name not in self.used:
                self.used.add(name)
                return name


class Builder:
    """Appends instructions to `block` (or inserts before `before` when set)."""

    def __init__(self, module: Module, namer: Namer, block: Block | None = None) -> None:
        self.module, self.namer = module, namer
        self.block = block
        self.index: int | None = None  # insert position inside block; None = append
        self.loc = ""

    def position_at_end(self, block: Block) -> None:
        self.block, self.index = block, None

    def position_before_terminator(self, block: Block) -> None:
        self.block, self.index = block, len(block.instructions) - 1

    def insert(self, inst: Instruction, hint: str = "t") -> Instruction:
        assert self.block is not None
        if inst.type.kind != "void" and not inst.name:
            inst.name = self.namer.fresh(hint)
        inst.loc = inst.loc or self.loc
        inst.block = self.block
        if self.index is None:
            self.block.instructions.append(inst)
        else:
            self.block.instructions.insert(self.index, inst)
            self.index += 1
        return inst

    # ---- constants -----------------------------------------------------------------------
    @staticmethod
    def const(type: Type, value: float | int | str) -> Constant:
        return const(type, value)

    @staticmethod
    def zero(type: Type) -> Constant:
        if type.kind in ("struct", "array", "vector"):
            return Constant(type, "zeroinitializer")
        if type.is_ptr:
            return Constant(type, "null")
        return const(type, 0)

    # ---- arithmetic ----------------------------------------------------------------------
    def binop(self, op: str, a: Value, b: Value, hint: str = "t", flags=()) -> Instruction:
        if a.type != b.type:
            raise TypeError(f"{op} operands differ in type: {a.typed()}, {b.typed()}")
        return self.insert(Instruction(op, a.type, [a, b], flags=tuple(flags)), hint)

    def fadd(self, a: Value, b: Value, hint: str = "t") -> Instruction:
        return self.binop("fadd", a, b, hint)

    def fsub(self, a: Value, b: Value, hint: str = "t") -> Instruction:
        return self.binop("fsub", a, b, hint)

    def fmul(self, a: Value, b: Value, hint: str = "t") -> Instruction:
        return self.binop("fmul", a, b, hint)

    def fdiv(self, a: Value, b: Value, hint: str = "t") -> Instruction:
        return self.binop("fdiv", a, b, hint)

    def fneg(self, a: Value, hint: str = "t") -> Instruction:
        return self.insert(Instruction("fneg", a.type, [a]), hint)

    def fconst(self, like: Value, x: float) -> Constant:
        """A float constant of `like`'s type."""
        return const(like.type, x)

    def fcmp(self, pred: str, a: Value, b: Value, hint: str = "c") -> Instruction:
        return self.insert(Instruction("fcmp", I1, [a, b], pred=pred), hint)

    def icmp(self, pred: str, a: Value, b: Value, hint: str = "c") -> Instruction:
        return self.insert(Instruction("icmp", I1, [a, b], pred=pred), hint)

    def select(self, c: Value, a: Value, b: Value, hint: str = "t") -> Instruction:
        return self.insert(Instruction("select", a.type, [c, a, b]), hint)

    def atomic_add(self, ptr: Value, v: Value, hint: str = "added") -> Instruction:
        """`*ptr += v` atomically (relaxed ordering: only the sum matters); the old value."""
        add = Instruction(
            "atomicrmw",
            v.type,
            [ptr, v],
            template=f"atomicrmw fadd ptr {{0}}, {v.type} {{1}} monotonic",
        )
        return self.insert(add, hint)

    def cast(self, op: str, v: Value, to: Type, hint: str = "t") -> Instruction:
        return self.insert(Instruction(op, to, [v]), hint)

    # ---- aggregates and memory -----------------------------------------------------------
    def extractvalue(self, agg: Value, *idx: int, hint: str = "t") -> Instruction:
        ty = agg.type
        for k in idx:
            ty = ty.field(k)
        return self.insert(Instruction("extractvalue", ty, [agg], indices=idx), hint)

    def insertvalue(self, agg: Value, v: Value, *idx: int, hint: str = "t") -> Instruction:
        return self.insert(Instruction("insertvalue", agg.type, [agg, v], indices=idx), hint)

    def load(self, type: Type, ptr: Value, align: int | None = None, hint: str = "t"):
        return self.insert(Instruction("load", type, [ptr], align=align), hint)

    def store(self, v: Value, ptr: Value, align: int | None = None) -> Instruction:
        return self.insert(Instruction("store", VOID, [v, ptr], align=align))

    def gep(self, src: Type, ptr: Value, *idx: Value, flags=(), hint: str = "p") -> Instruction:
        inst = Instruction("getelementptr", PTR, [ptr, *idx], aux_type=src, flags=tuple(flags))
        return self.insert(inst, hint)

    def alloca(self, type: Type, align: int | None = None, hint: str = "a") -> Instruction:
        return self.insert(Instruction("alloca", PTR, [], aux_type=type, align=align), hint)

    def phi(self, type: Type, hint: str = "t") -> Instruction:
        return self.insert(Instruction("phi", type, [], labels=[]), hint)

    # ---- calls ---------------------------------------------------------------------------
    def call(
        self, name: str, args: Sequence[Value], ret: Type, hint: str = "t", **kw
    ) -> Instruction:
        """Call function `name`, declaring it in the module when absent."""
        if self.module.get(name) is None:
            params = [Argument(a.type, f"a{k}", "", k) for k, a in enumerate(args)]
            self.module.add_function(Function(name, ret, params))
        from .values import GlobalRef

        inst = Instruction("call", ret, list(args), callee=GlobalRef(name, PTR), **kw)
        return self.insert(inst, hint)

    def intrinsic(self, base: str, *args: Value, hint: str = "t") -> Instruction:
        """`llvm.<base>.<f64|f32>` applied to float operands, e.g. intrinsic("cos", x)."""
        ty = args[0].type
        return self.call(f"llvm.{base}.{_SUFFIX[ty.scalar.name]}", list(args), ty, hint)

    def libm(self, base: str, *args: Value, hint: str = "t") -> Instruction:
        """The C math function `base` for the operand's type (`tanh`, `tanhf`)."""
        ty = args[0].type
        return self.call(
            base + _LIBM[ty.name], list(args), ty, hint, fn_attrs="nounwind willreturn memory(none)"
        )

    def powi(self, x: Value, n: Value, hint: str = "t") -> Instruction:
        if n.type != I32:
            n = self.cast("trunc", n, I32) if n.type.bits > 32 else self.cast("sext", n, I32)
        name = f"llvm.powi.{_SUFFIX[x.type.name]}.i32"
        return self.call(name, [x, n], x.type, hint)

    def memset(self, ptr: Value, byte: Value, size: Value) -> Instruction:
        name = f"llvm.memset.p0.{size.type.name}"
        return self.call(name, [ptr, byte, size, const(I1, 0)], VOID)

    def memcpy(self, dst: Value, src: Value, size: Value, op: str = "memcpy") -> Instruction:
        name = f"llvm.{op}.p0.p0.{size.type.name}"
        return self.call(name, [dst, src, size, const(I1, 0)], VOID)


__all__ = ["Builder", "Namer"]
