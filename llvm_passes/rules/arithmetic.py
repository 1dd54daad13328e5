"""Rules for float arithmetic opcodes: fadd, fsub, fmul, fdiv, frem, fneg."""

from __future__ import annotations

from .registry import linear, smooth


def _add(b, x, y):
    if x is None:
        return y
    if y is None:
        return x
    return b.fadd(x, y, "tan")


def _neg(b, x, hint="tan"):
    return None if x is None else b.fneg(x, hint)


def _fadd_transpose(ctx):
    return [ctx.adj, ctx.adj]


def _neg_adjoint(ctx):
    return _neg(ctx.b, ctx.adj, "adj")


def _fsub_transpose(ctx):
    return [ctx.adj, _neg_adjoint(ctx)]


@linear("fadd", transpose=_fadd_transpose)
def fadd(ctx):
    """d(x + y) = dx + dy"""
    return _add(ctx.b, *ctx.tangents)


@linear("fsub", transpose=_fsub_transpose)
def fsub(ctx):
    """d(x - y) = dx - dy"""
    dx, dy = ctx.tangents
    if dy is None:
        return dx
    return _neg(ctx.b, dy) if dx is None else ctx.b.fsub(dx, dy, "tan")


@linear("fneg", transpose=lambda ctx: [_neg_adjoint(ctx)])
def fneg(ctx):
    """d(-x) = -dx"""
    return _neg(ctx.b, ctx.tangents[0])


# the partials of a product are its factors: infinite only where an operand already is
# (checking every product for a zero adjoint cost 35% on multiplication-heavy sweeps)
@smooth("fmul", reads=((1,), (0,)), strong_zero=False)
def fmul(b, x, y, out):
    """d(x * y) = y dx + x dy"""
    return y, x


@smooth("fdiv", reads=((1,), (1, "out")))
def fdiv(b, x, y, out):
    """d(x / y) = dx / y - (x / y) dy / y"""
    inv = b.fdiv(b.fconst(y, 1.0), y)
    return inv, b.fneg(b.fmul(out, inv))


@smooth("frem")
def frem(b, x, y, out):
    """d(x rem y) = dx - trunc(x / y) dy"""
    return b.fconst(x, 1.0), b.fneg(b.intrinsic("trunc", b.fdiv(x, y)))
