"""Rules for Numba's BLAS helpers (`np.dot` / `@` on float vectors and matrices).

Numba lowers products to C helpers in `numba/_lapack.c` that call SciPy's BLAS; every
pointer argument is a `void *`, every size a `Py_ssize_t`, the status an `int` (0 = ok):

    numba_xxdot(char kind, char conj, n, x, y, result)             *result = x . y
    numba_xxgemv(char kind, char trans, m, n, alpha, a, lda, x, beta, y)
                                                          y = alpha op(A) x + beta y
    numba_xxgemm(char kind, char transa, char transb, m, n, k, alpha, a, lda, b, ldb,
                 beta, c, ldc)                            C = alpha op(A) op(B) + beta C

`kind` is 'd' (double) or 's' (float) for real data ('c'/'z' complex: not differentiated);
alpha and beta are passed by pointer. The products are bilinear, so the tangent is the
same helper called again on the shadows (which share the primal's layout, hence the same
sizes, transposition flags and leading dimensions):

    d(x . y)              = dx . y + x . dy
    d(alpha A x + beta y) = alpha dA x + alpha A dx + beta dy
    d(alpha A B + beta C) = alpha dA B + alpha A dB + beta dC

The first term is written into the output's shadow with the primal's own beta (which also
carries `beta dy`), the next one accumulated with beta = 1; a term whose input has no shadow
is zero and skipped. Nothing is allocated: the constants 1 and 0 are private globals, and the
second dot product is accumulated by a 1 x n gemv. The helpers return a status; the tangent
calls' statuses are ignored (the primal's is kept, and they cannot fail where it did not).

Adjoints (reverse mode), with C' the cotangent in the output's shadow after the call:

    x . y:                  x' += r' y,  y' += r' x,  r' = 0
    alpha op(A) x + beta y: x' += alpha op(A)^T y',  A' += alpha (y' x^T or x y'^T),  y' = beta y'
    alpha op(A) op(B) + beta C:
                            op(A)' += alpha C' op(B)^T,  op(B)' += alpha op(A)^T C',  C' = beta C'

written as the same helpers with the transposition flags rearranged (so that every call
keeps the primal's leading dimensions valid), the outer products as gemm with k = 1 over
1 x m and 1 x n "matrices" (lda = 1, valid for any size), the dot adjoints as 1 x n gemv
reading r' in place. The input adjoints are accumulated (beta = 1) before the output's
shadow is scaled by beta (a call with alpha = 0, which BLAS defines as C = beta C, exactly
zero for beta = 0, without reading the factors). Derivatives with respect to alpha and beta
themselves are not taken (Numba passes the constants 1 and 0).

alpha and beta are pointers to stack slots of the primal, dead when the reverse sweep runs:
the adjoint uses the constant the primal stored there just before the call (a private
global), or the pointer itself when it is a global or an argument.

The adjoints need the factors (A, B, x, y) as the call saw them, but their memory may be
overwritten or freed before the reverse sweep (a factor mutated later, Numba's temporary
contiguous copy of a strided operand released and reused in a loop). So the rules' `keep`
saves a factor's region (`ctx.saved`: a copy, or the memory itself where the engine knows
nothing writes it before the reverse sweep, as an argument's memory nothing writes) when
the other factor has a shadow (its adjoint reads this one): the whole strided region of a
matrix (ld (cols - 1) + rows elements, or nothing when it has no columns) and the n
elements of a vector (unit increment). The adjoint reads what was saved (same leading
dimensions); the engine frees the copies. A factor no adjoint reads is kept as its pointer
(`x @ W` with only `x` differentiated saves W only).

Registered by the bridge through the engine's public rule registry.
"""

from __future__ import annotations

import struct

from llvm_passes.errors import NoDerivativeError
from llvm_passes.ir import DOUBLE, FLOAT, I8, I32, I64, PTR, Instruction, Type, Value, const
from llvm_passes.ir.values import Argument, Constant, GlobalRef, float_literal
from llvm_passes.rules import Context, Effects, Kept, custom

#: Which argument of each helper receives the result, and which carry the float inputs:
#: when an input is active, the output gets a shadow (opaque C code writes active data).
BLAS_OUTPUTS: dict[str, tuple[int, tuple[int, ...]]] = {
    "numba_xxdot": (5, (3, 4)),
    "numba_xxgemv": (9, (5, 7)),
    "numba_xxgemm": (12, (7, 9)),
}


def _effects(name: str) -> Effects:
    out, ins = BLAS_OUTPUTS[name]
    return Effects(writes=(out,), inputs=ins)


_KINDS = {ord("d"): DOUBLE, ord("s"): FLOAT}


def _float_type(kind: Value) -> Type:
    """The element type named by a helper's constant `kind` character."""
    text = getattr(kind, "text", None)
    code = int(text) if text is not None and text.lstrip("-").isdigit() else None
    if code is None or code not in _KINDS:
        what = repr(chr(code)) if code is not None and 0 <= code < 128 else kind.ref
        raise ValueError(
            f"BLAS kind {what}: only real float64 ('d') and float32 ('s') "
            "products are differentiated"
        )
    return _KINDS[code]


def _scalar(b, ty: Type, x: float) -> GlobalRef:
    """A pointer to a read-only constant `x` of type `ty` (alpha/beta are passed by pointer)."""
    literal = float_literal(x, ty)
    tag = {float_literal(1.0, ty): "one", float_literal(0.0, ty): "zero"}.get(literal, literal)
    name = f"enzpy.blas.{ty.name}.{tag}"
    align = 8 if ty.name == "double" else 4
    b.module.globals.setdefault(
        name, f"@{name} = private unnamed_addr constant {ty} {literal}, align {align}"
    )
    return GlobalRef(name, PTR)


def _status(b, name: str, args: list[Value]) -> None:
    b.call(name, args, I32, "blas.status")


# ---- reverse mode ---------------------------------------------------------------------------
def _region(b, rows: Value, cols: Value, ld: Value) -> Value:
    """Elements spanned by a column-major rows x cols matrix with leading dimension `ld`:
    ld (cols - 1) + rows, or 0 when it has no columns."""
    last = b.binop("mul", ld, b.binop("sub", cols, const(I64, 1), "blas.cols"), "blas.span")
    span = b.binop("add", last, rows, "blas.span")
    empty = b.icmp("sle", cols, const(I64, 0), "blas.empty")
    return b.select(empty, const(I64, 0), span, "blas.elems")


def _kept(ctx: Context, ty: Type, *factors: tuple[int, int, Value]) -> list[Kept]:
    """Per factor (its operand, the other factor's operand, its elements): saved when the
    other factor has a shadow, else the pointer itself (which no adjoint reads)."""
    assert ctx.saved is not None
    return [
        ctx.saved(ctx.args[k], count, ty) if ctx.shadows[other] is not None else Kept(ctx.args[k])
        for k, other, count in factors
    ]


def _xxdot_keep(ctx: Context) -> list[Kept]:
    """x and y, n elements each"""
    kind, _, n, _, _, _ = ctx.args
    return _kept(ctx, _float_type(kind), (3, 4, n), (4, 3, n))


def _xxgemv_keep(ctx: Context) -> list[Kept]:
    """A (m x n, leading dimension lda) and x (n elements, or m for op(A) = A^T)"""
    b = ctx.b
    kind, trans, m, n, _, _, lda, _, _, _ = ctx.args
    t = _transposed(b, ctx.inst, trans)
    return _kept(ctx, _float_type(kind), (5, 7, _region(b, m, n, lda)), (7, 5, m if t else n))


def _xxgemm_keep(ctx: Context) -> list[Kept]:
    """A (m x k, or k x m for op(A) = A^T) and B (k x n, or n x k), with their leading
    dimensions"""
    b = ctx.b
    kind, transa, transb, m, n, k, _, _, lda, _, ldb, _, _, _ = ctx.args
    ta, tb = _transposed(b, ctx.inst, transa), _transposed(b, ctx.inst, transb)
    rows_a, cols_a = (k, m) if ta else (m, k)
    rows_b, cols_b = (n, k) if tb else (k, n)
    a_elems, b_elems = _region(b, rows_a, cols_a, lda), _region(b, rows_b, cols_b, ldb)
    return _kept(ctx, _float_type(kind), (7, 9, a_elems), (9, 7, b_elems))


def _saved(ctx: Context, *idx: int) -> list[Value]:
    """The arguments with the factors at `idx` replaced by their forward-sweep copies."""
    out = list(ctx.args)
    for k, p in zip(idx, ctx.kept, strict=False):
        out[k] = p
    return out


def _fail(b, inst: Instruction, why: str) -> NoDerivativeError:
    fn = next(
        (f.name for f in b.module.functions.values() if any(blk is inst.block for blk in f.blocks)),
        "?",
    )
    return NoDerivativeError(
        f"a call to {inst.callee_name}", inst.text(), fn, "reverse", inst.loc, why
    )


def _literal(c: Constant) -> float | None:
    """The value of a float constant's literal (decimal, or LLVM's hex double bits)."""
    text = c.text.strip()
    try:
        if text.lower().startswith("0x") and len(text) == 18:
            return struct.unpack("<d", struct.pack("<Q", int(text[2:], 16)))[0]
        return float(text)
    except ValueError:
        return None


def _scalar_operand(b, inst: Instruction, args, idx: int, ty: Type) -> Value:
    """alpha or beta (operand `idx`, passed by pointer) as a pointer valid in the reverse
    sweep: a global or argument as is; a stack slot of the primal (dead by now) replaced
    by a global holding the constant the primal stored in it before the call."""
    ptr = inst.operands[idx]
    if isinstance(ptr, GlobalRef | Argument):
        return args[idx]
    block = inst.block
    if isinstance(ptr, Instruction) and ptr.opcode == "alloca" and block is not None:
        before = block.instructions[: block.instructions.index(inst)]
        for prev in reversed(before):
            if prev.opcode == "store" and prev.operands[1] is ptr:
                value = prev.operands[0]
                x = _literal(value) if isinstance(value, Constant) else None
                if x is not None and value.type == ty:
                    return _scalar(b, ty, x)
                break
            if prev.opcode == "call" or prev is ptr:
                break
    why = f"Its scalar operand {ptr.ref} is not a constant stored just before the call."
    raise _fail(b, inst, why)


def _transposed(b, inst: Instruction, flag: Value) -> bool:
    """Whether a BLAS transposition flag ('n' / 't', 'c' for real data) transposes."""
    text = getattr(flag, "text", "")
    code = int(text) if text.lstrip("-").isdigit() else -1
    if code in (ord("n"), ord("N")):
        return False
    if code in (ord("t"), ord("T"), ord("c"), ord("C")):
        return True
    raise _fail(b, inst, "Its transposition flag is not a constant 'n' or 't'.")


def _flag(trans: bool) -> Constant:
    return const(I8, ord("t" if trans else "n"))


def _check_scalars(b, inst: Instruction, shadows, *idx: int) -> None:
    if any(shadows[k] is not None for k in idx):
        raise _fail(b, inst, "Derivatives with respect to alpha and beta are not supported.")


def _xxdot_adjoint(ctx: Context):
    """x' += r' y, y' += r' x, r' = 0 (each a 1 x n gemv reading r' in place)"""
    _xxdot_terms(ctx.b, ctx.inst, _saved(ctx, 3, 4), ctx.shadows)
    return []


def _xxdot_terms(b, inst, args, shadows):
    kind, _, n, x, y, _ = args
    dx, dy, dres = shadows[3], shadows[4], shadows[5]
    if dres is None:
        return
    ty = _float_type(kind)
    one, unit = _scalar(b, ty, 1.0), const(I64, 1)
    for shadow, other in ((dx, y), (dy, x)):
        if shadow is not None:  # shadow (n) += other^T (n x 1, stored as 1 x n) . r' (1)
            _status(
                b, "numba_xxgemv", [kind, _flag(True), unit, n, one, other, unit, dres, one, shadow]
            )
    b.store(const(ty, 0), dres)


def _scale_output(
    b,
    name: str,
    args,
    ty: Type,
    alpha_idx: int,
    beta_idx: int,
    beta: Value,
    out_idx: int,
    dout: Value,
) -> None:
    """out' = beta out': the helper again with alpha = 0 (BLAS then reads neither factor,
    and beta = 0 sets out' to exactly 0)."""
    if beta.ref == _scalar(b, ty, 1.0).ref:
        return
    call = list(args)
    call[alpha_idx], call[beta_idx], call[out_idx] = _scalar(b, ty, 0.0), beta, dout
    _status(b, name, call)


def _xxgemv_adjoint(ctx: Context):
    """x' += alpha op(A)^T y', A' += alpha (y' x^T or x y'^T), y' = beta y'"""
    _xxgemv_terms(ctx.b, ctx.inst, _saved(ctx, 5, 7), ctx.shadows)
    return []


def _xxgemv_terms(b, inst, args, shadows):
    kind, trans, m, n, _, a, lda, x, _, _ = args
    da, dx, dy = shadows[5], shadows[7], shadows[9]
    if dy is None:
        return
    _check_scalars(b, inst, shadows, 4, 8)
    ty = _float_type(kind)
    alpha = _scalar_operand(b, inst, args, 4, ty)
    beta = _scalar_operand(b, inst, args, 8, ty)
    t = _transposed(b, inst, trans)
    one, unit = _scalar(b, ty, 1.0), const(I64, 1)
    if dx is not None:
        _status(b, "numba_xxgemv", [kind, _flag(not t), m, n, alpha, a, lda, dy, one, dx])
    if da is not None:  # A' (m x n) += alpha u v^T, u (1 x m) and v (1 x n) as rows, k = 1
        u, v = (x, dy) if t else (dy, x)
        _status(
            b,
            "numba_xxgemm",
            [kind, _flag(True), _flag(False), m, n, unit, alpha, u, unit, v, unit, one, da, lda],
        )
    _scale_output(b, "numba_xxgemv", args, ty, 4, 8, beta, 9, dy)


def _xxgemm_adjoint(ctx: Context):
    """op(A)' += alpha C' op(B)^T, op(B)' += alpha op(A)^T C', C' = beta C'"""
    _xxgemm_terms(ctx.b, ctx.inst, _saved(ctx, 7, 9), ctx.shadows)
    return []


def _xxgemm_terms(b, inst, args, shadows):
    kind, transa, transb, m, n, k, _, a, lda, bm, ldb, _, _, ldc = args
    da, db, dc = shadows[7], shadows[9], shadows[12]
    if dc is None:
        return
    _check_scalars(b, inst, shadows, 6, 11)
    ty = _float_type(kind)
    alpha = _scalar_operand(b, inst, args, 6, ty)
    beta = _scalar_operand(b, inst, args, 11, ty)
    ta, tb = _transposed(b, inst, transa), _transposed(b, inst, transb)
    one = _scalar(b, ty, 1.0)
    if da is not None:
        if not ta:  # A (m x k) += alpha C' op(B)^T
            call = [_flag(False), _flag(not tb), m, k, n, alpha, dc, ldc, bm, ldb]
        else:  # A (k x m) += alpha op(B) C'^T
            call = [_flag(tb), _flag(True), k, m, n, alpha, bm, ldb, dc, ldc]
        _status(b, "numba_xxgemm", [kind, *call, one, da, lda])
    if db is not None:
        if not tb:  # B (k x n) += alpha op(A)^T C'
            call = [_flag(not ta), _flag(False), k, n, m, alpha, a, lda, dc, ldc]
        else:  # B (n x k) += alpha C'^T op(A)
            call = [_flag(True), _flag(ta), n, k, m, alpha, dc, ldc, a, lda]
        _status(b, "numba_xxgemm", [kind, *call, one, db, ldb])
    _scale_output(b, "numba_xxgemm", args, ty, 6, 11, beta, 12, dc)


# ---- the table entries (tangents here, adjoints above) --------------------------------------
@custom("numba_xxdot", effects=_effects("numba_xxdot"), adjoint=_xxdot_adjoint, keep=_xxdot_keep)
def xxdot(ctx: Context):
    """d(x . y) = dx . y + x . dy, into the shadow of the result slot"""
    b = ctx.b
    kind, conj, n, x, y, res = ctx.args
    dx, dy, dres = ctx.tangents[3], ctx.tangents[4], ctx.tangents[5]
    if dres is None:
        return None  # the result is not differentiated (a Const destination)
    ty = _float_type(kind)
    if dx is None and dy is None:
        b.store(const(ty, 0), dres)
        return None
    if dx is not None:
        _status(b, "numba_xxdot", [kind, conj, n, dx, y, dres])
    if dy is not None:
        if dx is None:
            _status(b, "numba_xxdot", [kind, conj, n, x, dy, dres])
        else:  # dres += x . dy as a 1 x n matrix (x, lda = 1) times the vector dy
            one = _scalar(b, ty, 1.0)
            _status(
                b,
                "numba_xxgemv",
                [kind, const(I8, ord("n")), const(I64, 1), n, one, x, const(I64, 1), dy, one, dres],
            )
    return None


def _bilinear(
    b, name: str, args, tans, a_idx: int, b_idx: int, alpha_idx: int, beta_idx: int, out_idx: int
) -> None:
    """out' = alpha (dA.B + A.dB) + beta out'_old: the helper `name` applied once per term."""
    dout = tans[out_idx]
    if dout is None:
        return
    ty = _float_type(args[0])
    terms: list[tuple[int | None, Value | None]] = [
        (k, tans[k]) for k in (a_idx, b_idx) if tans[k] is not None
    ]
    if not terms:  # alpha = 0: BLAS only scales the output, out' = beta out'_old
        terms = [(None, None)]
    for count, (k, shadow) in enumerate(terms):
        call = list(args)
        if k is None:
            call[alpha_idx] = _scalar(b, ty, 0.0)
        else:
            call[k] = shadow
        if count:
            call[beta_idx] = _scalar(b, ty, 1.0)
        call[out_idx] = dout
        _status(b, name, call)


@custom(
    "numba_xxgemv", effects=_effects("numba_xxgemv"), adjoint=_xxgemv_adjoint, keep=_xxgemv_keep
)
def xxgemv(ctx: Context):
    """d(alpha op(A) x + beta y) = alpha op(dA) x + alpha op(A) dx + beta dy"""
    _bilinear(ctx.b, "numba_xxgemv", ctx.args, ctx.tangents, 5, 7, 4, 8, 9)
    return None


@custom(
    "numba_xxgemm", effects=_effects("numba_xxgemm"), adjoint=_xxgemm_adjoint, keep=_xxgemm_keep
)
def xxgemm(ctx: Context):
    """d(alpha op(A) op(B) + beta C) = alpha op(dA) op(B) + alpha op(A) op(dB) + beta dC"""
    _bilinear(ctx.b, "numba_xxgemm", ctx.args, ctx.tangents, 7, 9, 6, 11, 12)
    return None
