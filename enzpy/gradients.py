"""`gradient`, `jvp` and `vjp`: calls of `autodiff` on copies of the arguments the function
may write.

Each is written once, as generated source over a description of its arguments (`Value`),
and runs in two places: from Python (`python`, on values) and inside jitted code (the
overloads of `inside`, on Numba types, compiled by Numba). The source calls `_autodiff`,
which is `enzpy.autodiff` in both; from Python, a call of known shape may instead go
straight to that shape's compiled entry (`Entry`), on the values it would annotate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba.core.errors import NumbaError

from .annotations import Active, Const, Duplicated
from .errors import AnnotationError
from .modes import Forward, ForwardWithPrimal, Mode, Reverse, ReverseWithPrimal
from .source import Source, tuple_source

Ann = tuple[type, tuple[str, ...]]  # an annotation class and the sources of what it wraps


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


@dataclass(frozen=True)
class Entry:
    """The shape of an `autodiff` call in generated source: mode, return activity (None when
    not given) and annotation classes. `python` binds its name to the compiled entry of
    that shape (`inside.PythonEntry.direct`), called on the values the annotations wrap."""

    mode: Mode
    ret: type | None
    classes: tuple[type, ...]


def gradient(reverse: bool, values: Sequence[Value], direct: bool = False) -> Source:
    """`gradient(mode, f, *args)`: per argument its gradient, None where not differentiated;
    one reverse pass, or one forward pass per input element (`direct`: the reverse pass
    through its compiled entry, see `Entry`)."""
    _check_some_differentiated("gradient", values)
    src = _source()
    if reverse:
        grads = _reverse_pass(src, values, with_primal=False, direct=direct)
    else:
        grads = [
            _forward_gradient(src, values, k) if v.diff else "None" for k, v in enumerate(values)
        ]
    src.add(f"return {tuple_source(grads)}")
    return src


def jvp(values: Sequence[Value], tangents: Sequence[str], direct: bool = False) -> Source:
    """`jvp(f, primals, tangents)`: (value, tangent) by one forward pass; `tangents[k]`
    reads argument k's tangent (where `values[k].diff`)."""
    src = _source()
    anns = [
        _dup(v, f"{t}.copy()" if v.array else f"{src.name('cast', v.cast)}({t})")
        if v.diff
        else _const(v)
        for v, t in zip(values, tangents, strict=True)
    ]
    _call(src, ForwardWithPrimal, None, anns, direct)
    src.add("return r[1], r[0]")
    return src


def vjp(values: Sequence[Value], direct: bool = False) -> Source:
    """`vjp(f, primals, cotangent)`: (value, cotangent · gradient) by one reverse pass."""
    _check_some_differentiated("vjp", values)
    src = _source()
    grads = _reverse_pass(src, values, with_primal=True, direct=direct)
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


def python(
    source: Source, params: str, entry: Callable[[Entry], Callable[..., Any]] | None = None
) -> Callable[..., Any]:
    """The generated function, for Python: `_autodiff` is the Python API's `autodiff`, and
    each `Entry` in the source the function `entry` gives for it."""
    from .api import autodiff  # (api imports this module)
    from .inside import Fallback

    entries = {k: entry(v) for k, v in source.names.items() if isinstance(v, Entry) and entry}
    return source.function(params, _autodiff=autodiff, _Fallback=(Fallback, NumbaError), **entries)


def _source() -> Source:
    return Source({"np": np})


def _reverse_pass(
    src: Source, values: Sequence[Value], with_primal: bool, direct: bool
) -> list[str]:
    """Statements for one reverse pass on copies, the return seeded 1.0, into `r`
    (`with_primal`: `r[1]` holds the return); the gradient expressions."""
    adjoints = "r[0]" if with_primal else "r"
    anns: list[Ann] = []
    grads = []
    for k, v in enumerate(values):
        if not v.diff:
            anns.append(_const(v))
            grads.append("None")
        elif v.array:  # (laid out like the copy: C order)
            src.add(f"g{k} = np.zeros({v.src}.shape, {v.src}.dtype)")
            anns.append(_dup(v, f"g{k}"))
            grads.append(f"g{k}")
        else:
            anns.append((Active, (v.src,)))
            grads.append(f"{adjoints}[{k}]")
    _call(src, ReverseWithPrimal if with_primal else Reverse, Active, anns, direct)
    return grads


def _call(src: Source, mode: Mode, ret: type | None, anns: Sequence[Ann], direct: bool) -> None:
    """`r = ` the `autodiff` call of `mode` with the return activity `ret` (None: not given)
    and the annotations `anns`; `direct`: through the entry of its shape (`Entry`), or, when
    the entry defers (`Fallback`), through `autodiff`."""
    call = _autodiff_call(src, mode, ret, anns)
    if not direct:
        src.add(f"r = {call}")
        return
    entry = src.name("entry", Entry(mode, ret, tuple(cls for cls, _ in anns)))
    src.add("try:")
    src.add(f"r = {entry}({', '.join(e for _, wrapped in anns for e in wrapped)})", 2)
    src.add("except _Fallback:")
    src.add(f"r = {call}", 2)


def _autodiff_call(src: Source, mode: Mode, ret: type | None, anns: Sequence[Ann]) -> str:
    """The source of the `autodiff` call of `mode`, `ret` (if any) and `anns`."""
    head = [src.name("mode", mode), "f", *([src.name(ret.__name__, ret)] if ret else [])]
    annotated = [f"{src.name(cls.__name__, cls)}({', '.join(w)})" for cls, w in anns]
    return f"_autodiff({', '.join(head + annotated)})"


def _forward_gradient(src: Source, values: Sequence[Value], k: int) -> str:
    """Statements computing the gradient with respect to argument `k` by forward passes
    (one per element); returns the name holding it."""

    def call(seeded: str | None) -> str:
        anns = []
        for j, v in enumerate(values):
            if not v.diff:
                anns.append(_const(v))
            elif v.array:
                anns.append(_dup(v, seeded if j == k and seeded else f"np.zeros_like({v.src})"))
            else:
                anns.append(_dup(v, f"{src.name('cast', v.cast)}({1.0 if j == k else 0.0})"))
        return _autodiff_call(src, Forward, None, anns)

    v = values[k]
    if not v.array:
        src.add(f"g{k} = {call(None)}")
        return f"g{k}"
    src.add(f"g{k} = np.empty_like({v.src})")
    src.add(f"for idx in np.ndindex({v.src}.shape):")
    src.add(f"t = np.zeros_like({v.src})", 2)
    src.add("t[idx] = 1.0", 2)
    src.add(f"g{k}[idx] = {call('t')}", 2)
    return f"g{k}"


def copy_source(v: Value) -> str:
    """The source of `v` safe from the function: a copy of an array it may write."""
    return f"{v.src}.copy()" if v.array and v.written else v.src


def _dup(v: Value, shadow: str) -> Ann:
    return (Duplicated, (copy_source(v), shadow))


def _const(v: Value) -> Ann:
    return (Const, (copy_source(v),))


def const_copy(src: Source, v: Value) -> str:
    """The source of `Const` of a copy of `v`."""
    return f"{src.name('Const', Const)}({copy_source(v)})"
