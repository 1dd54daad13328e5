"""Calls of ``ez.autodiff`` made inside Numba code, built to mirror a Python-level call.

``inside_call(mode, f, kinds, ret)`` compiles ``@njit def call(*values): return
ez.autodiff(ez.<mode>, f, [ez.<ret>,] <annotations>)``, where ``kinds`` gives per argument of
``f``: 'dup' / 'noneed' (the caller passes the primal and its shadow), 'active', 'const' or
'plain' (one value). ``values(args, shadows, kinds)`` lays the values out for it and
``annotations(...)`` builds the same call for the Python API.
"""

from __future__ import annotations

import functools

import harness
import numba

import enzpy as ez

_WRAP = {"dup": "Duplicated", "noneed": "DuplicatedNoNeed", "active": "Active", "const": "Const"}


@functools.cache
def inside_call(mode: str, f, kinds: tuple[str, ...], ret: str | None = None):
    params, anns = [], []
    for k, kind in enumerate(kinds):
        params.append(f"x{k}")
        if kind in ("dup", "noneed"):
            params.append(f"d{k}")
            anns.append(f"ez.{_WRAP[kind]}(x{k}, d{k})")
        elif kind == "plain":
            anns.append(f"x{k}")
        else:
            anns.append(f"ez.{_WRAP[kind]}(x{k})")
    head = ", ".join([f"ez.{mode}", "f"] + ([f"ez.{ret}"] if ret else []) + anns)
    ns = {"ez": ez, "f": f}
    exec(f"def call({', '.join(params)}):\n    return ez.autodiff({head})\n", ns)
    return numba.njit(ns["call"])


def values(args, shadows: dict, kinds) -> list:
    out = []
    for k, (a, kind) in enumerate(zip(args, kinds, strict=True)):
        out.append(a)
        if kind in ("dup", "noneed"):
            out.append(shadows[k])
    return out


def annotations(args, shadows: dict, kinds) -> list:
    out = []
    for k, (a, kind) in enumerate(zip(args, kinds, strict=True)):
        if kind in ("dup", "noneed"):
            out.append(getattr(ez, _WRAP[kind])(a, shadows[k]))
        elif kind == "plain":
            out.append(a)
        else:
            out.append(getattr(ez, _WRAP[kind])(a))
    return out


def forward_kinds(args, active) -> tuple[str, ...]:
    return tuple("dup" if k in active else _inactive(a) for k, a in enumerate(args))


def reverse_kinds(args, active) -> tuple[str, ...]:
    return tuple(
        ("dup" if harness.is_float_array(a) else "active") if k in active else _inactive(a)
        for k, a in enumerate(args)
    )


def _inactive(a) -> str:
    return "plain" if harness.is_plain_int(a) else "const"
