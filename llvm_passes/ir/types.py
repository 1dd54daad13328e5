"""LLVM types: parsed from text, printed back, queried for float / aggregate structure."""

from __future__ import annotations

from dataclasses import dataclass

FLOAT_KINDS = {"half": 16, "bfloat": 16, "float": 32, "double": 64, "x86_fp80": 80, "fp128": 128}


@dataclass(frozen=True, slots=True)
class Type:
    """An LLVM type. `kind` is one of void, int, float, ptr, struct, array, vector, label,
    func, metadata, token; `elems` holds element types (struct fields, the array/vector element,
    or a function's return followed by its parameters)."""

    kind: str
    name: str = ""  # float kind ("double"), "iN" for ints, "" otherwise
    bits: int = 0
    elems: tuple[Type, ...] = ()
    count: int = 0  # array / vector length
    packed: bool = False
    vararg: bool = False

    def __str__(self) -> str:
        if self.kind in ("int", "float"):
            return self.name
        if self.kind == "struct":
            body = ", ".join(str(e) for e in self.elems)
            inner = "{ " + body + " }" if body else "{}"
            return f"<{inner}>" if self.packed else inner
        if self.kind == "array":
            return f"[{self.count} x {self.elems[0]}]"
        if self.kind == "vector":
            return f"<{self.count} x {self.elems[0]}>"
        if self.kind == "func":
            params = [str(p) for p in self.elems[1:]] + (["..."] if self.vararg else [])
            return f"{self.elems[0]} ({', '.join(params)})"
        return self.kind

    @property
    def is_float(self) -> bool:
        """A scalar floating-point type."""
        return self.kind == "float"

    @property
    def is_int(self) -> bool:
        return self.kind == "int"

    @property
    def is_ptr(self) -> bool:
        return self.kind == "ptr"

    @property
    def is_aggregate(self) -> bool:
        return self.kind in ("struct", "array")

    @property
    def scalar(self) -> Type:
        """The element type of a vector, else the type itself."""
        return self.elems[0] if self.kind == "vector" else self

    def field(self, index: int) -> Type:
        """The type of field `index` of a struct, array or vector."""
        if self.kind == "struct":
            return self.elems[index]
        if self.kind in ("array", "vector"):
            return self.elems[0]
        raise TypeError(f"type {self} has no fields")

    def contains(self, pred) -> bool:
        """Whether this type or any type nested inside it satisfies `pred`."""
        return pred(self) or any(e.contains(pred) for e in self.elems if self.kind != "func")

    @property
    def may_carry_derivative(self) -> bool:
        """Floats, pointers, and aggregates/vectors holding them can carry derivatives."""
        return self.contains(lambda t: t.kind in ("float", "ptr"))


VOID = Type("void")
PTR = Type("ptr")
LABEL = Type("label")
METADATA = Type("metadata")


def int_type(bits: int) -> Type:
    return Type("int", f"i{bits}", bits)


def float_type(name: str) -> Type:
    return Type("float", name, FLOAT_KINDS[name])


I1, I8, I32, I64 = int_type(1), int_type(8), int_type(32), int_type(64)
DOUBLE, FLOAT = float_type("double"), float_type("float")


def struct(*elems: Type) -> Type:
    return Type("struct", elems=tuple(elems))


def size_in_bytes(t: Type) -> int:
    """Store size of a type on x86-64 (natural alignment, no packed-struct subtleties)."""
    return _size_align(t)[0]


def _size_align(t: Type) -> tuple[int, int]:
    if t.kind == "int":
        n = max(1, (t.bits + 7) // 8)
        size = 1 << (n - 1).bit_length()
        return size, min(size, 16)
    if t.kind == "float":
        size = {16: 2, 32: 4, 64: 8, 80: 16, 128: 16}[t.bits]
        return size, size
    if t.kind == "ptr":
        return 8, 8
    if t.kind in ("array", "vector"):
        s, a = _size_align(t.elems[0])
        return s * t.count, a
    if t.kind == "struct":
        off, align = 0, 1
        for e in t.elems:
            s, a = _size_align(e)
            if not t.packed:
                off = (off + a - 1) // a * a
            off += s
            align = max(align, a)
        return (off + align - 1) // align * align, align
    raise TypeError(f"type {t} has no size")


def field_offset(t: Type, index: int) -> int:
    """Byte offset of field `index` inside struct/array type `t`."""
    if t.kind in ("array", "vector"):
        return size_in_bytes(t.elems[0]) * index
    off = 0
    for i, e in enumerate(t.elems):
        s, a = _size_align(e)
        if not t.packed:
            off = (off + a - 1) // a * a
        if i == index:
            return off
        off += s
    raise IndexError(index)
