"""Rules for casts and freeze: float widening/narrowing is linear, freeze the identity;
int<->float casts carry nothing."""

from __future__ import annotations

from .registry import linear, no_derivative


def _cast_back(op):
    def transpose(b, inst, args, adj):
        return [b.cast(op, adj, args[0].type, "adj")]

    return transpose


@linear("fpext", transpose=_cast_back("fptrunc"))
def fpext(b, inst, args, tans):
    """d fpext(x) = fpext(dx)"""
    return None if tans[0] is None else b.cast("fpext", tans[0], inst.type, "tan")


@linear("fptrunc", transpose=_cast_back("fpext"))
def fptrunc(b, inst, args, tans):
    """d fptrunc(x) = fptrunc(dx)"""
    return None if tans[0] is None else b.cast("fptrunc", tans[0], inst.type, "tan")


@linear("freeze", transpose=lambda b, inst, args, adj: [adj])
def freeze(b, inst, args, tans):
    """d freeze(x) = dx"""
    return tans[0]


no_derivative("sitofp", "uitofp", "fptosi", "fptoui", why="integer-valued on one side")
