"""Rules for casts and freeze: float widening/narrowing is linear, freeze the identity;
int<->float casts carry nothing."""

from __future__ import annotations

from .registry import linear, no_derivative


def _cast_back(op):
    def transpose(ctx):
        return [ctx.b.cast(op, ctx.adj, ctx.args[0].type, "adj")]

    return transpose


def _cast(op):
    def tangent(ctx):
        t = ctx.tangents[0]
        return None if t is None else ctx.b.cast(op, t, ctx.inst.type, "tan")

    tangent.__doc__ = f"d {op}(x) = {op}(dx)"
    return tangent


linear("fpext", transpose=_cast_back("fptrunc"))(_cast("fpext"))
linear("fptrunc", transpose=_cast_back("fpext"))(_cast("fptrunc"))


@linear("freeze", transpose=lambda ctx: [ctx.adj])
def freeze(ctx):
    """d freeze(x) = dx"""
    return ctx.tangents[0]


no_derivative("sitofp", "uitofp", "fptosi", "fptoui", why="integer-valued on one side")
