"""`gradient`, `jvp` and `vjp`: calls of `autodiff` on copies of the arguments the function
may write.

Each is written once, as generated source over a description of its arguments (`Value`),
and runs in two places: from Python (`python`, on values) and inside jitted code (the
overloads of `inside`, on Numba types, compiled by Numba). The source calls `_autodiff`,
which is `enzpy.autodiff` in both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .annotations import Active, Const, Duplicated
from .errors import AnnotationError
from .modes import Forward, ForwardWithPrimal, Reverse, ReverseWithPrimal
from .source import Source, tuple_source


@dataclass(frozen=True)
class Value:
    """One argument as the generated source sees it: the expression that reads it, whether
    it is an array, what makes a float of its type (the Python type from Python, the Numba
    type in jitted code), whether it is differentiated (`gradient`, `vjp`) or carries a
    tangent (`jvp`), and whether the function may write it (then it runs on a copy)."""

    src: str
    array: bool
    cast: Any
    diff: bool
    written: bool = True


def gradient(reverse: bool, values: Sequence[Value]) -> Source:
    """`gradient(mode, f, *args)`: per argument its gradient, None where not differentiated;
    one reverse pass, or one forward pass per input element."""
    _check_some_differentiated("gradient", values)
    src = _source()
    if reverse:
        grads = _reverse_pass(src, values, with_primal=False)
    else:
        grads = [
            _forward_gradient(src, values, k) if v.diff else "None" for k, v in enumerate(values)
        ]
    src.add(f"return {tuple_source(grads)}")
    return src


def jvp(values: Sequence[Value], tangents: Sequence[str]) -> Source:
    """`jvp(f, primals, tangents)`: (value, tangent) by one forward pass; `tangents[k]`
    reads argument k's tangent (where `values[k].diff`)."""
    src = _source()
    anns = [
        _dup(src, v, f"{t}.copy()" if v.array else f"{src.name('cast', v.cast)}({t})")
        if v.diff
        else const_copy(src, v)
        for v, t in zip(values, tangents, strict=True)
    ]
    src.add(f"r = _autodiff({src.name('mode', ForwardWithPrimal)}, f, {', '.join(anns)})")
    src.add("return r[1], r[0]")
    return src


def vjp(values: Sequence[Value]) -> Source:
    """`vjp(f, primals, cotangent)`: (value, cotangent · gradient) by one reverse pass."""
    _check_some_differentiated("vjp", values)
    src = _source()
    grads = _reverse_pass(src, values, with_primal=True)
    scaled = []
    for g, v in zip(grads, values, strict=True):
        if v.diff and v.array:
            src.add(f"{g} *= cotangent")  # (keeps its dtype, in jitted code too)
        scaled.append(f"{g} * cotangent" if v.diff and not v.array else g)
    src.add(f"return r[1], {tuple_source(scaled)}")
    return src


def _check_some_differentiated(what: str, values: Sequence[Value]) -> None:
    """`AnnotationError` when no argument is differentiated (every gradient would be None:
    an integer given for a float, say)."""
    if not any(v.diff for v in values):
        raise AnnotationError(
            f"{what}: no float or float-array argument to differentiate (integers and Const "
            "arguments are not); pass floats (3.0, not 3) or float arrays"
        )


def python(source: Source, params: str) -> Callable[..., Any]:
    """The generated function, for Python: `_autodiff` is the Python API's `autodiff`."""
    from .api import autodiff  # (api imports this module)

    return source.function(params, _autodiff=autodiff)


def _source() -> Source:
    return Source({"np": np})


def _reverse_pass(src: Source, values: Sequence[Value], with_primal: bool) -> list[str]:
    """Statements for one reverse pass on copies, the return seeded 1.0, into `r`
    (`with_primal`: `r[1]` holds the return); the gradient expressions."""
    active = src.name("Active", Active)
    adjoints = "r[0]" if with_primal else "r"
    anns, grads = [], []
    for k, v in enumerate(values):
        if not v.diff:
            anns.append(const_copy(src, v))
            grads.append("None")
        elif v.array:  # (laid out like the copy: C order)
            src.add(f"g{k} = np.zeros({v.src}.shape, {v.src}.dtype)")
            anns.append(_dup(src, v, f"g{k}"))
            grads.append(f"g{k}")
        else:
            anns.append(f"{active}({v.src})")
            grads.append(f"{adjoints}[{k}]")
    mode = src.name("mode", ReverseWithPrimal if with_primal else Reverse)
    src.add(f"r = _autodiff({mode}, f, {active}, {', '.join(anns)})")
    return grads


def _forward_gradient(src: Source, values: Sequence[Value], k: int) -> str:
    """Statements computing the gradient with respect to argument `k` by forward passes
    (one per element); returns the name holding it."""
    fwd = src.name("Forward", Forward)

    def annotations(seeded: str | None) -> str:
        out = []
        for j, v in enumerate(values):
            if not v.diff:
                out.append(const_copy(src, v))
            elif v.array:
                out.append(_dup(src, v, seeded if j == k and seeded else f"np.zeros_like({v.src})"))
            else:
                out.append(_dup(src, v, f"{src.name('cast', v.cast)}({1.0 if j == k else 0.0})"))
        return ", ".join(out)

    v = values[k]
    if not v.array:
        src.add(f"g{k} = _autodiff({fwd}, f, {annotations(None)})")
        return f"g{k}"
    src.add(f"g{k} = np.empty_like({v.src})")
    src.add(f"for idx in np.ndindex({v.src}.shape):")
    src.add(f"t = np.zeros_like({v.src})", 2)
    src.add("t[idx] = 1.0", 2)
    src.add(f"g{k}[idx] = _autodiff({fwd}, f, {annotations('t')})", 2)
    return f"g{k}"


def copy_source(v: Value) -> str:
    """The source of `v` safe from the function: a copy of an array it may write."""
    return f"{v.src}.copy()" if v.array and v.written else v.src


def _dup(src: Source, v: Value, shadow: str) -> str:
    return f"{src.name('Duplicated', Duplicated)}({copy_source(v)}, {shadow})"


def const_copy(src: Source, v: Value) -> str:
    """The source of `Const` of a copy of `v`."""
    return f"{src.name('Const', Const)}({copy_source(v)})"
