"""Parse LLVM IR text into the IR model (`Module`, `Function`, `Block`, `Instruction`).

Covers the IR Numba and clang emit for scalar code: every instruction the model names is
parsed into fields; any other instruction is kept as an `opaque` template whose local
operands are still known, so it prints back and can be renamed. Instruction metadata is
dropped, except `!dbg` locations, which become `Instruction.loc` ("file.py:line").
Attribute groups (`#N`) are written inline, so modules can be merged.
"""

from __future__ import annotations

import functools
import re

from .instructions import BINARY, CASTS, Block, Instruction
from .lexer import Token, tokenize, unquote
from .module import Function, Module
from .types import FLOAT_KINDS, LABEL, METADATA, PTR, VOID, Type, float_type, int_type
from .values import Argument, Constant, GlobalRef, Local, Value

FAST_MATH = {"fast", "nnan", "ninf", "nsz", "arcp", "contract", "afn", "reassoc"}
INST_FLAGS = FAST_MATH | {
    "nuw",
    "nsw",
    "exact",
    "disjoint",
    "samesign",
    "nneg",
    "inbounds",
    "nusw",
    "volatile",
}
CONST_WORDS = {"true", "false", "null", "undef", "poison", "zeroinitializer", "none"}
CONST_EXPR = CASTS | BINARY | {"getelementptr", "icmp", "fcmp", "select", "extractvalue"}
CALL_CONV = {"fastcc", "coldcc", "ccc", "tailcc", "swiftcc"}


class ParseError(ValueError):
    """IR text the model cannot read."""


class _Cursor:
    """A position in a token list with the small lookahead the grammar needs."""

    def __init__(self, tokens: tuple[Token, ...], line: str) -> None:
        self.toks, self.pos, self.line, self.end = tokens, 0, line, len(tokens)

    def peek(self, k: int = 0) -> Token | None:
        j = self.pos + k
        return self.toks[j] if j < self.end else None

    def at(self, text: str, k: int = 0) -> bool:
        """Whether the token `k` ahead reads `text`."""
        j = self.pos + k
        return j < self.end and self.toks[j].text == text

    def at_kind(self, kind: str, k: int = 0) -> bool:
        """Whether the token `k` ahead is of `kind`."""
        j = self.pos + k
        return j < self.end and self.toks[j].kind == kind

    def next(self) -> Token:
        j = self.pos
        if j >= self.end:
            raise ParseError(f"unexpected end of line: {self.line!r}")
        self.pos = j + 1
        return self.toks[j]

    def accept(self, text: str) -> bool:
        j = self.pos
        if j < self.end and self.toks[j].text == text:
            self.pos = j + 1
            return True
        return False

    def expect(self, text: str) -> None:
        t = self.next()
        if t.text != text:
            raise ParseError(f"expected {text!r}, got {t.text!r} in {self.line!r}")

    def done(self) -> bool:
        return self.pos >= self.end

    def balanced(self) -> str:
        """Consume a bracketed group starting at the current token; return it as text."""
        pairs = {"(": ")", "[": "]", "{": "}", "<": ">"}
        depth, out = 0, []
        while True:
            t = self.next()
            out.append(t.text)
            if t.text in pairs:
                depth += 1
            elif t.text in pairs.values():
                depth -= 1
            if depth == 0:
                return _join(out)


def _join(texts: list[str]) -> str:
    s = " ".join(texts)
    return re.sub(r"\s+([,)\]}>])", r"\1", re.sub(r"([(\[{<])\s+", r"\1", s)).replace("( ", "(")


# ---- types ---------------------------------------------------------------------------------
_INT_TYPE = re.compile(r"i\d+")
_TYPE_WORDS = {"void", "ptr", "label", "metadata", "token", "{", "[", "<", *FLOAT_KINDS}


def _is_type_start(t: Token | None) -> bool:
    if t is None:
        return False
    x = t.text
    return x in _TYPE_WORDS or _INT_TYPE.fullmatch(x) is not None


def parse_type(c: _Cursor) -> Type:
    t = c.next().text
    if t == "void":
        base = VOID
    elif t == "ptr":
        if c.at("addrspace"):
            c.next()
            c.balanced()
        base = PTR
    elif t == "label":
        base = LABEL
    elif t in ("metadata", "token"):
        base = METADATA if t == "metadata" else Type("token")
    elif t in FLOAT_KINDS:
        base = float_type(t)
    elif _INT_TYPE.fullmatch(t):
        base = int_type(int(t[1:]))
    elif t == "{":
        base = Type("struct", elems=_type_list(c, "}"))
    elif t == "[":
        n = int(c.next().text)
        c.expect("x")
        el = parse_type(c)
        c.expect("]")
        base = Type("array", elems=(el,), count=n)
    elif t == "<":
        if c.accept("{"):
            base = Type("struct", elems=_type_list(c, "}"), packed=True)
            c.expect(">")
        else:
            n = int(c.next().text)
            c.expect("x")
            el = parse_type(c)
            c.expect(">")
            base = Type("vector", elems=(el,), count=n)
    else:
        raise ParseError(f"unknown type {t!r} in {c.line!r}")
    if c.at("(") and base.kind != "label":  # a function type: ret (params)
        c.next()
        params, vararg = [], False
        while not c.accept(")"):
            if c.accept("..."):
                vararg = True
            else:
                params.append(parse_type(c))
            c.accept(",")
        return Type("func", elems=(base, *params), vararg=vararg)
    return base


def _type_list(c: _Cursor, close: str) -> tuple[Type, ...]:
    out = []
    while not c.accept(close):
        out.append(parse_type(c))
        c.accept(",")
    return tuple(out)


def parse_type_text(text: str) -> Type:
    """Parse a type written alone, e.g. `{ double, [2 x i64] }`."""
    return parse_type(_Cursor(tokenize(text), text))


# ---- values and attributes -----------------------------------------------------------------
class _Pending(Local):
    """A local referenced before its definition; resolved when the function is complete."""

    __slots__ = ("type", "name")

    def __init__(self, name: str, type: Type) -> None:
        self.name, self.type = name, type


class _Numbered(dict[str, str]):
    """The names given to a function's numbered locals (%0, %1, ...): `<prefix><n>`, with a
    prefix that no name in the module starts a number with (IR printed by enzpy and
    renumbered by LLVM holds both `%_0` and `%0`)."""

    def __init__(self, prefix: str = "_") -> None:
        super().__init__()
        self.prefix = prefix


def _numbered_prefix(text: str) -> str:
    prefix = "_"
    while re.search(rf"%{prefix}\d", text):
        prefix += "_"
    return prefix


def _local_name(tok: str, renames: _Numbered) -> str:
    name = unquote(tok)
    return renames.setdefault(name, f"{renames.prefix}{name}") if name.isdigit() else name


def _skip_attrs(c: _Cursor) -> str:
    """Consume parameter / return attributes up to a value or type; return them as text."""
    out: list[str] = []
    while True:
        t = c.peek()
        if t is None or t.kind != "word" or t.text in CONST_WORDS or _is_type_start(t):
            break
        if t.text in CONST_EXPR and c.at("(", 1):
            break
        c.next()
        if c.at("("):
            out.append(t.text + c.balanced())
        elif t.text in ("align", "dereferenceable", "dereferenceable_or_null", "alignstack"):
            out.append(f"{t.text} {c.next().text}")
        else:
            out.append(t.text)
    return " ".join(out)


class _FunctionParser:
    """Parses the body of one function, resolving forward references at the end."""

    def __init__(
        self, module: Module, meta: dict[str, str], attrs: dict[str, str], numbered: str
    ) -> None:
        self.module, self.meta, self.attrs = module, meta, attrs
        self.locals: dict[str, Local] = {}
        self.pending: list[_Pending] = []
        self.renames = _Numbered(numbered)

    # values
    def value(self, c: _Cursor, type: Type) -> Value:
        t = c.next()
        if t.kind == "local":
            name = _local_name(t.text, self.renames)
            v = self.locals.get(name)
            if v is None:
                v = _Pending(name, type)
                self.pending.append(v)
            return v
        if t.kind == "global":
            return GlobalRef(unquote(t.text), type)
        if t.text in ("{", "[", "<"):
            c.pos -= 1
            return Constant(type, c.balanced())
        if t.kind == "word" and t.text in CONST_EXPR:  # an opcode, its flags, its operands
            words = [t.text]
            while c.at_kind("word"):  # inbounds, nuw, nusw, inrange(a, b)...
                w = c.next().text
                words.append(w + c.balanced() if w == "inrange" and c.at("(") else w)
            if not c.at("("):
                raise ParseError(f"a constant {' '.join(words)!r} without operands in {c.line!r}")
            return Constant(type, " ".join(words) + " " + c.balanced())
        if t.kind == "word" and c.at("("):
            return Constant(type, t.text + " " + c.balanced())
        if t.kind in ("number", "word", "cstring"):
            return Constant(type, t.text)
        raise ParseError(f"unexpected operand {t.text!r} in {c.line!r}")

    def typed_value(self, c: _Cursor) -> Value:
        ty = parse_type(c)
        return self.value(c, ty)

    def label(self, c: _Cursor) -> str:
        c.expect("label")
        return _local_name(c.next().text, self.renames)

    def flags(self, c: _Cursor, allowed: set[str] = INST_FLAGS) -> tuple[str, ...]:
        out = []
        while (t := c.peek()) is not None and t.text in allowed:
            out.append(c.next().text)
        return tuple(out)

    def trailer(self, c: _Cursor) -> tuple[int | None, str]:
        """Consume `, align N` and metadata attachments; return (align, debug location)."""
        align, loc = None, ""
        while c.accept(","):
            t = c.next()
            if t.text == "align":
                align = int(c.next().text)
            elif t.kind == "meta":
                ref = c.next().text
                if t.text == "!dbg":
                    loc = self.location(ref)
            else:
                raise ParseError(f"unexpected {t.text!r} in {c.line!r}")
        return align, loc

    def location(self, ref: str) -> str:
        m = re.search(r"line:\s*(\d+).*?scope:\s*(![0-9]+)", self.meta.get(ref, ""))
        if not m:
            return ""
        line, scope = m.groups()
        for _ in range(8):  # walk lexical blocks up to the file
            text = self.meta.get(scope, "")
            f = re.search(r"file:\s*(![0-9]+)", text)
            if f:
                fm = re.search(r'filename:\s*"([^"]*)"', self.meta.get(f.group(1), ""))
                return f"{fm.group(1) if fm else '?'}:{line}"
            s = re.search(r"scope:\s*(![0-9]+)", text)
            if not s:
                break
            scope = s.group(1)
        return f"?:{line}"

    # instructions
    def instruction(self, line: str) -> Instruction:
        c = _Cursor(tokenize(line), line)
        name = ""
        if c.at("=", 1) and c.at_kind("local"):
            name = _local_name(c.next().text, self.renames)
            c.next()
        op = c.next().text
        if op in ("tail", "musttail", "notail"):
            c.expect("call")
            inst = self.call(c, op)
        elif op == "call":
            inst = self.call(c, "")
        else:
            parse = getattr(self, "op_" + op, None)
            if parse is None:
                parse = self.binary if op in BINARY else self.cast if op in CASTS else None
            inst = parse(c, op) if parse is not None else self.opaque(line, name)
        inst.name = name
        if name:
            self.locals[name] = inst
        return inst

    def binary(self, c: _Cursor, op: str) -> Instruction:
        flags = self.flags(c)
        ty = parse_type(c)
        a = self.value(c, ty)
        c.expect(",")
        b = self.value(c, ty)
        align, loc = self.trailer(c)
        return Instruction(op, ty, [a, b], flags=flags, loc=loc)

    def cast(self, c: _Cursor, op: str) -> Instruction:
        flags = self.flags(c)
        v = self.typed_value(c)
        c.expect("to")
        ty = parse_type(c)
        _, loc = self.trailer(c)
        return Instruction(op, ty, [v], flags=flags, loc=loc)

    def op_fneg(self, c: _Cursor, op: str) -> Instruction:
        flags = self.flags(c)
        v = self.typed_value(c)
        _, loc = self.trailer(c)
        return Instruction("fneg", v.type, [v], flags=flags, loc=loc)

    def _cmp(self, c: _Cursor, op: str) -> Instruction:
        flags = self.flags(c)
        pred = c.next().text
        ty = parse_type(c)
        a = self.value(c, ty)
        c.expect(",")
        b = self.value(c, ty)
        _, loc = self.trailer(c)
        rt = Type("vector", elems=(int_type(1),), count=ty.count) if ty.kind == "vector" else None
        return Instruction(op, rt or int_type(1), [a, b], flags=flags, pred=pred, loc=loc)

    op_icmp = op_fcmp = _cmp

    def op_select(self, c: _Cursor, op: str) -> Instruction:
        flags = self.flags(c)
        ops = [self.typed_value(c)]
        for _ in range(2):
            c.expect(",")
            ops.append(self.typed_value(c))
        _, loc = self.trailer(c)
        return Instruction("select", ops[1].type, ops, flags=flags, loc=loc)

    def op_phi(self, c: _Cursor, op: str) -> Instruction:
        flags = self.flags(c)
        ty = parse_type(c)
        vals, labels = [], []
        while c.accept("["):
            vals.append(self.value(c, ty))
            c.expect(",")
            labels.append(_local_name(c.next().text, self.renames))
            c.expect("]")
            if not c.accept(","):
                break
            if not c.at("["):
                c.pos -= 1
                break
        _, loc = self.trailer(c)
        return Instruction("phi", ty, vals, flags=flags, labels=labels, loc=loc)

    def op_load(self, c: _Cursor, op: str) -> Instruction:
        flags = self.flags(c)
        ty = parse_type(c)
        c.expect(",")
        p = self.typed_value(c)
        align, loc = self.trailer(c)
        return Instruction("load", ty, [p], flags=flags, align=align, loc=loc)

    def op_store(self, c: _Cursor, op: str) -> Instruction:
        flags = self.flags(c)
        v = self.typed_value(c)
        c.expect(",")
        p = self.typed_value(c)
        align, loc = self.trailer(c)
        return Instruction("store", VOID, [v, p], flags=flags, align=align, loc=loc)

    def op_getelementptr(self, c: _Cursor, op: str) -> Instruction:
        flags = self.flags(c)
        src = parse_type(c)
        ops = []
        while c.accept(","):
            if c.at_kind("meta"):
                c.pos -= 1
                break
            ops.append(self.typed_value(c))
        _, loc = self.trailer(c)
        return Instruction("getelementptr", ops[0].type, ops, flags=flags, aux_type=src, loc=loc)

    def op_alloca(self, c: _Cursor, op: str) -> Instruction:
        ty = parse_type(c)
        ops = []
        if c.at(",") and c.peek(1) is not None and _is_type_start(c.peek(1)):
            c.next()
            ops.append(self.typed_value(c))
        align, loc = self.trailer(c)
        return Instruction("alloca", PTR, ops, aux_type=ty, align=align, loc=loc)

    def op_extractvalue(self, c: _Cursor, op: str) -> Instruction:
        agg = self.typed_value(c)
        idx = self._indices(c)
        ty = agg.type
        for k in idx:
            ty = ty.field(k)
        _, loc = self.trailer(c)
        return Instruction("extractvalue", ty, [agg], indices=idx, loc=loc)

    def op_insertvalue(self, c: _Cursor, op: str) -> Instruction:
        agg = self.typed_value(c)
        c.expect(",")
        v = self.typed_value(c)
        idx = self._indices(c)
        _, loc = self.trailer(c)
        return Instruction("insertvalue", agg.type, [agg, v], indices=idx, loc=loc)

    def _indices(self, c: _Cursor) -> tuple[int, ...]:
        out = []
        while c.at(",") and c.at_kind("number", 1):
            c.next()
            out.append(int(c.next().text))
        return tuple(out)

    def op_freeze(self, c: _Cursor, op: str) -> Instruction:
        v = self.typed_value(c)
        _, loc = self.trailer(c)
        return Instruction("freeze", v.type, [v], loc=loc)

    def call(self, c: _Cursor, tail: str) -> Instruction:
        flags = self.flags(c, FAST_MATH)
        if any(c.at(conv) for conv in CALL_CONV):
            c.next()
        ret_attrs = _skip_attrs(c)
        ty = parse_type(c)
        fnty = ""
        if ty.kind == "func":
            fnty, ty = str(ty), ty.elems[0]
        callee = self.value(c, PTR)
        c.expect("(")
        args, arg_attrs = [], []
        while not c.accept(")"):
            aty = parse_type(c)
            arg_attrs.append(_skip_attrs(c))
            args.append(self.value(c, aty))
            c.accept(",")
        fn_attrs = []
        while (t := c.peek()) is not None and t.text != ",":
            c.next()
            if t.kind == "attrgroup":
                fn_attrs.append(self.attrs.get(t.text, ""))
            elif c.at("("):
                fn_attrs.append(t.text + c.balanced())
            elif t.text == "[":  # operand bundles are not modelled
                raise ParseError(f"operand bundles are not supported: {c.line!r}")
            else:
                fn_attrs.append(t.text)
        _, loc = self.trailer(c)
        return Instruction(
            "call",
            ty,
            args,
            flags=flags,
            callee=callee,
            fnty=fnty,
            arg_attrs=arg_attrs,
            ret_attrs=ret_attrs,
            fn_attrs=" ".join(a for a in fn_attrs if a),
            tail=tail,
            loc=loc,
        )

    def op_br(self, c: _Cursor, op: str) -> Instruction:
        if c.at("label"):
            labels = [self.label(c)]
            ops = []
        else:
            ops = [self.typed_value(c)]
            c.expect(",")
            t = self.label(c)
            c.expect(",")
            labels = [t, self.label(c)]
        _, loc = self.trailer(c)
        return Instruction("br", VOID, ops, labels=labels, loc=loc)

    def op_switch(self, c: _Cursor, op: str) -> Instruction:
        cond = self.typed_value(c)
        c.expect(",")
        labels = [self.label(c)]
        ops = [cond]
        c.expect("[")
        while not c.accept("]"):
            ops.append(self.typed_value(c))
            c.expect(",")
            labels.append(self.label(c))
        _, loc = self.trailer(c)
        return Instruction("switch", VOID, ops, labels=labels, loc=loc)

    def op_ret(self, c: _Cursor, op: str) -> Instruction:
        if c.accept("void"):
            ops = []
        else:
            ops = [self.typed_value(c)]
        _, loc = self.trailer(c)
        return Instruction("ret", VOID, ops, loc=loc)

    def op_unreachable(self, c: _Cursor, op: str) -> Instruction:
        return Instruction("unreachable")

    def opaque(self, line: str, name: str) -> Instruction:
        """Keep an uninterpreted instruction as text with its local operands as slots."""
        body = line.split("=", 1)[1] if name else line
        body = re.sub(r",\s*![-a-zA-Z$._0-9]+\s+!\d+", "", body).strip()
        body = body.replace("{", "{{").replace("}", "}}")
        ops: list[Value] = []

        def slot(m: re.Match) -> str:
            v = self.locals.get(_local_name(m.group(), self.renames))
            if v is None:
                v = _Pending(_local_name(m.group(), self.renames), PTR)
                self.pending.append(v)
            ops.append(v)
            return "{" + str(len(ops) - 1) + "}"

        template = re.sub(r'%(?:"[^"]*"|[-a-zA-Z$._0-9]+)', slot, body)
        opcode = body.split()[0]
        ty = _opaque_type(body, opcode)
        return Instruction(opcode if opcode else "opaque", ty, ops, template=template)

    def resolve(self, fn: Function) -> None:
        for inst in fn.instructions():
            for k, v in enumerate(inst.operands):
                if isinstance(v, _Pending):
                    real = self.locals.get(v.name)
                    if real is None:
                        raise ParseError(f"undefined value %{v.name} in @{fn.name}")
                    inst.operands[k] = real


def _opaque_type(body: str, opcode: str) -> Type:
    if opcode in ("fence", "store"):
        return VOID
    if opcode == "atomicrmw":
        return parse_type_text(body.split(",")[1].split()[0])
    if opcode == "cmpxchg":
        parts = body.split(",")
        return Type("struct", elems=(parse_type_text(parts[1].split()[0]), int_type(1)))
    return VOID


# ---- module ----------------------------------------------------------------------------------
def _parse_header(line: str, p: _FunctionParser | None, attrs: dict[str, str]) -> Function:
    """Parse `define ... @f(args) ... {` or `declare ...` into an empty Function."""
    c = _Cursor(tokenize(line.rstrip("{ ").rstrip()), line)
    c.next()  # define / declare
    prefix = []
    while (t := c.peek()) is not None and not _is_type_start(t):
        if t.kind == "word" and t.text not in CONST_WORDS and c.at("(", 1):
            c.next()
            prefix.append(t.text + c.balanced())
            continue
        if t.text in ("align",):
            c.next()
            prefix.append(f"align {c.next().text}")
            continue
        prefix.append(c.next().text)
    linkage_words = {
        "internal",
        "private",
        "linkonce",
        "linkonce_odr",
        "weak",
        "weak_odr",
        "external",
        "available_externally",
        "dso_local",
        "hidden",
        "protected",
        "default",
        "dllexport",
        "dllimport",
        "common",
        "extern_weak",
        "unnamed_addr",
        "local_unnamed_addr",
    } | CALL_CONV
    link = " ".join(w for w in prefix if w in linkage_words)
    ret_attrs = " ".join(w for w in prefix if w not in linkage_words)
    ret = parse_type(c)
    name = unquote(c.next().text)
    c.expect("(")
    args: list[Argument] = []
    vararg = False
    renames = p.renames if p else _Numbered()
    while not c.accept(")"):
        if c.accept("..."):
            vararg = True
            continue
        ty = parse_type(c)
        attr = _skip_attrs(c)
        argname = ""
        if c.at_kind("local"):
            argname = _local_name(c.next().text, renames)
        args.append(Argument(ty, argname or f"arg{len(args)}", attr, len(args)))
        c.accept(",")
    fn_attrs = []
    while not c.done():
        t = c.next()
        if t.kind == "attrgroup":
            fn_attrs.append(attrs.get(t.text, ""))
        elif t.kind == "meta":
            c.next()
        elif c.at("("):
            fn_attrs.append(t.text + c.balanced())
        else:
            fn_attrs.append(t.text)
    fn = Function(
        name,
        ret,
        args,
        prefix=link,
        ret_attrs=ret_attrs,
        fn_attrs=" ".join(a for a in fn_attrs if a),
        vararg=vararg,
    )
    if p is not None:
        for a in args:
            p.locals[a.name] = a
    return fn


_DROP_ATTRS = re.compile(r"\b(?:nocallback|nocreateundeforpoison)\b")


def parse_module(text: str) -> Module:
    """Parse a whole module's IR text (each function's body when its blocks are first asked
    for: `Function.defer`)."""
    lines = text.splitlines()
    meta: dict[str, str] = {}
    attrs: dict[str, str] = {}
    for ln in lines:
        if ln.startswith("!") and (m := _METADATA.match(ln)):
            meta[m.group(1)] = m.group(2)
        elif ln.startswith("attributes") and (m := _ATTRIBUTES.match(ln)):
            attrs[m.group(1)] = m.group(2).strip()
    mod = Module()
    numbered = _numbered_prefix(text)
    i = 0
    while i < len(lines):
        ln = lines[i].rstrip()
        i += 1
        if not ln or ln.startswith(";") or ln.startswith("!") or ln.startswith("attributes"):
            continue
        if ln.startswith(("source_filename", "target ")):
            mod.header.append(ln)
        elif ln.startswith("@"):
            name = unquote(tokenize(ln)[0].text)
            mod.globals[name] = re.sub(r",\s*!\w+\s+!\d+", "", ln)
        elif ln.startswith("declare"):
            mod.add_function(_parse_header(ln, None, attrs))
        elif ln.startswith("define"):
            p = _FunctionParser(mod, meta, attrs, numbered)
            fn = _parse_header(ln, p, attrs)
            fn.defer(functools.partial(_parse_body, lines, i, fn, p))
            try:
                i = lines.index("}", i) + 1
            except ValueError:
                raise ParseError(f"unterminated function @{fn.name}") from None
            mod.add_function(fn)
        elif ln.startswith("$") or ln.startswith("%"):
            raise ParseError(f"unsupported module-level line: {ln[:80]!r}")
    return mod


_METADATA = re.compile(r"^(![0-9]+|![-a-zA-Z$._0-9]+)\s*=\s*(.*)$")
_ATTRIBUTES = re.compile(r"^attributes\s+(#\d+)\s*=\s*\{(.*)\}\s*$")
_LABEL = re.compile(r'("[^"]*"|[-a-zA-Z$._0-9]+):$')


def _parse_body(lines: list[str], i: int, fn: Function, p: _FunctionParser) -> None:
    """The blocks of `fn`, whose body starts at line `i`, its forward references resolved."""
    block: Block | None = None
    while i < len(lines):
        ln = lines[i].split(";", 1)[0].rstrip() if not _has_string(lines[i]) else lines[i]
        i += 1
        s = ln.strip()
        if not s:
            continue
        if s == "}":
            p.resolve(fn)
            return
        if s.startswith("#dbg_"):  # debug records carry no semantics
            continue
        if s[-1] == ":" and (m := _LABEL.match(s)):
            label = m.group(1).strip('"')
            block = Block(_local_name("%" + label, p.renames) if label.isdigit() else label)
            fn.blocks.append(block)
            continue
        if block is None:  # unnamed entry block
            block = Block("entry")
            fn.blocks.append(block)
        while s.count("[") > s.count("]"):  # multi-line switch
            s += " " + lines[i].split(";", 1)[0].strip()
            i += 1
        block.append(p.instruction(s))
    raise ParseError(f"unterminated function @{fn.name}")


def _has_string(line: str) -> bool:
    return '"' in line and ";" in line.split('"', 1)[1]
