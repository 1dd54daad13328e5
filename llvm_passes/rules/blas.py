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
"""

from __future__ import annotations

from ..ir import DOUBLE, FLOAT, I8, I32, I64, PTR, Type, Value, const
from ..ir.values import GlobalRef, float_literal
from .registry import custom

#: Which argument of each helper receives the result, and which carry the float inputs.
#: The activity analysis uses it: when an input operand is active, the output pointer must
#: get a shadow (the helper is opaque C code writing active data through it).
BLAS_OUTPUTS: dict[str, tuple[int, tuple[int, ...]]] = {
    "numba_xxdot": (5, (3, 4)),
    "numba_xxgemv": (9, (5, 7)),
    "numba_xxgemm": (12, (7, 9)),
}

_KINDS = {ord("d"): DOUBLE, ord("s"): FLOAT}


def _float_type(kind: Value) -> Type:
    """The element type named by a helper's constant `kind` character."""
    text = getattr(kind, "text", None)
    code = int(text) if text is not None and text.lstrip("-").isdigit() else None
    if code is None or code not in _KINDS:
        what = repr(chr(code)) if code is not None and 0 <= code < 128 else kind.ref
        raise ValueError(f"BLAS kind {what}: only real float64 ('d') and float32 ('s') "
                         "products are differentiated")  # fmt: skip
    return _KINDS[code]


def _scalar(b, ty: Type, x: float) -> GlobalRef:
    """A pointer to a read-only constant `x` of type `ty` (alpha/beta are passed by pointer)."""
    name = f"enzpy.blas.{ty.name}.{'one' if x == 1.0 else 'zero'}"
    align = 8 if ty.name == "double" else 4
    b.module.globals.setdefault(
        name, f"@{name} = private unnamed_addr constant {ty} {float_literal(x, ty)}, align {align}"
    )
    return GlobalRef(name, PTR)


def _status(b, name: str, args: list[Value]) -> None:
    b.call(name, args, I32, "blas.status")


@custom("numba_xxdot", writes=BLAS_OUTPUTS["numba_xxdot"])
def xxdot(b, inst, args, tans):
    """d(x . y) = dx . y + x . dy, into the shadow of the result slot"""
    kind, conj, n, x, y, res = args
    dx, dy, dres = tans[3], tans[4], tans[5]
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
            _status(b, "numba_xxgemv", [kind, const(I8, ord("n")), const(I64, 1), n, one, x,
                                        const(I64, 1), dy, one, dres])  # fmt: skip
    return None


def _bilinear(b, name: str, args, tans, a_idx: int, b_idx: int, alpha_idx: int,
              beta_idx: int, out_idx: int) -> None:  # fmt: skip
    """out' = alpha (dA.B + A.dB) + beta out'_old: the helper `name` applied once per term."""
    dout = tans[out_idx]
    if dout is None:
        return
    ty = _float_type(args[0])
    terms = [(k, tans[k]) for k in (a_idx, b_idx) if tans[k] is not None]
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


@custom("numba_xxgemv", writes=BLAS_OUTPUTS["numba_xxgemv"])
def xxgemv(b, inst, args, tans):
    """d(alpha op(A) x + beta y) = alpha op(dA) x + alpha op(A) dx + beta dy"""
    _bilinear(b, "numba_xxgemv", args, tans, 5, 7, 4, 8, 9)
    return None


@custom("numba_xxgemm", writes=BLAS_OUTPUTS["numba_xxgemm"])
def xxgemm(b, inst, args, tans):
    """d(alpha op(A) op(B) + beta C) = alpha op(dA) op(B) + alpha op(A) op(dB) + beta dC"""
    _bilinear(b, "numba_xxgemm", args, tans, 7, 9, 6, 11, 12)
    return None
