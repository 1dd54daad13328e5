"""The public entry points: `autodiff` (and friends)."""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from typing import Any

import numba
import numpy as np
from numba.core.errors import NumbaError

from . import gradients, inside
from .annotations import Active, Annotation, BatchDuplicated
from .derivatives import derivative, may_write
from .errors import AnnotationError
from .gradients import Value
from .inside import MISS, Fallback, PythonEntry
from .jit import EnzymeJit
from .memory import with_strides
from .modes import Mode
from .shadows import (
    batch_width,
    check_argument,
    check_memory,
    differentiated,
    type_tests,
    value_type,
)
from .signatures import (
    check_arity,
    check_function,
    check_mode,
    signature_of_types,
    tangent_source,
)
from .source import Source, dispatching


def autodiff(mode: Mode, f: EnzymeJit, *args: Any) -> Any:
    """Differentiate `f` at the given (annotated) arguments.

    Parameters
    ----------
    mode : `Forward`, `ForwardWithPrimal`, `Reverse`, `ReverseWithPrimal`
    f : a function decorated with `enzyme_jit`
    args : optionally the return activity class (`Const`, `Active`, `Duplicated`,
        `DuplicatedNoNeed`), then one entry per argument of `f`: `Const(x)`,
        `Duplicated(x, dx)`, `DuplicatedNoNeed(x, dx)`, `Active(a)`; plain values are `Const`.
        Batch mode: `BatchDuplicated(x, (dx1, ..., dxN))` for every argument with a
        shadow, N tangents (forward) or cotangents (reverse) carried by one call.

    Returns
    -------
    Forward: the tangent of the return value (same structure as the return; `None` for a
    `Const` return); in batch mode a tuple of N tangents. ForwardWithPrimal:
    `(tangent, primal)`. Shadows of `Duplicated` arrays hold the tangent of the array
    after `f` ran. Reverse: the adjoint of each `Active(a)` (in batch mode a tuple of N),
    `None` elsewhere; ReverseWithPrimal: `(adjoints, primal)`.

    Also callable inside `@enzyme_jit` / `@numba.njit` code, with the same arguments and
    results (see `enzpy.inside`). From Python, each call shape goes through a compiled
    entry (`inside.PythonEntry`), made on its first call, that does the same checks in
    native code.

    Examples
    --------
    >>> import numpy as np, enzpy as ez
    >>> @ez.enzyme_jit
    ... def f(x):
    ...     return (x * x).sum()
    >>> x = np.array([1.0, 2.0]); dx = np.array([1.0, 0.0])
    >>> ez.autodiff(ez.Forward, f, ez.Duplicated(x, dx))
    2.0
    """
    try:
        call = _entries.get((mode, f), _no_entry)
    except TypeError:  # an unhashable mode or function: parse_arguments names it
        call = _no_entry
    try:
        out = call(*args)
    except (Fallback, NumbaError):  # a check failed (or may have): decide in Python
        out = MISS
    return out if out is not MISS else _autodiff(mode, f, args)


_ENTRIES = True  # whether call shapes go through compiled entries (else the Python path)
_entries: dict[tuple, Callable[..., Any]] = {}  # (mode, f) -> chain of PythonEntry.call
_shapes: dict[tuple, PythonEntry] = {}  # (mode, f, return activity, classes) -> its entry


def clear_cache() -> None:
    """Forget the derivatives and compiled entries of every call shape seen."""
    _entries.clear()
    _shapes.clear()
    _calls.clear()
    _remembered.clear()
    _compiled.clear()


def _no_entry(*args: Any) -> Any:
    return MISS


def _autodiff(mode: Mode, f: EnzymeJit, args: tuple) -> Any:
    """`autodiff` in Python: every check; then the call shape's compiled entry, made now
    (which does the same checks in native code and calls the derivative), or the native
    derivative through its driver when the entry defers to Python."""
    ret_activity, annotated = parse_arguments(mode, f, args)
    ret = args[0] if args and type(args[0]) is type else None
    if _ENTRIES and ret is ret_activity:
        classes = tuple(map(type, args[1:] if ret is not None else args))
        key = (mode, f, ret, classes)
        entry = _shapes.get(key)
        if entry is None:
            chain = _entries.get((mode, f), _no_entry)
            entry = _shapes[key] = PythonEntry(mode, f, ret_activity, classes, chain)
            _entries[mode, f] = entry.call
        try:
            entry.add(annotated)
            return entry.call(*args)
        except (Fallback, NumbaError):  # a check failed or may have: decide in Python
            pass
    if mode.reverse:
        return _reverse(mode, f, ret_activity, annotated)
    return _forward(mode, f, ret_activity, annotated)


def parse_arguments(
    mode: Mode, f: EnzymeJit, args: tuple, thunk: bool = False
) -> tuple[Any, list[Annotation]]:
    """Check the arguments `autodiff` got after `f`: (the return activity class or None, one
    annotation per argument of `f`). Raises `AnnotationError` / `ShadowError`."""
    check_mode(mode)
    check_function(f)
    ret_activity = None
    if args and isinstance(args[0], type):
        if not issubclass(args[0], Annotation):
            raise AnnotationError(f"expected a return activity class after f, got {args[0]!r}")
        ret_activity, args = args[0], args[1:]
    check_arity(f, len(args))
    annotated = [check_argument(k, a, mode.reverse) for k, a in enumerate(args)]
    _width(annotated)
    check_memory(annotated)
    if mode.split and not thunk:
        raise AnnotationError(
            f"{mode!r} is used through enzpy.autodiff_thunk, which returns "
            "the forward and the reverse pass"
        )
    return ret_activity, annotated


def derivative_signature(
    mode: Mode, f: EnzymeJit, ret_activity: Any, annotated: list[Annotation]
) -> tuple[tuple, tuple, str]:
    """What `derivative` is built for: (Numba argument types, 'dup' / 'const' per argument,
    the return activity), as `autodiff` would use it."""
    return signature_of_types(mode, f, ret_activity, *_classes_and_types(annotated))


def _classes_and_types(annotated: list[Annotation]) -> tuple[tuple, tuple]:
    return tuple(map(type, annotated)), tuple(numba.typeof(a.val) for a in annotated)


def _width(annotated: list[Annotation]) -> int:
    """The number of tangents the call carries (`shadows.batch_width`)."""
    return batch_width(tuple(map(type, annotated)), [len(a.shadows) for a in annotated])


_compiled: dict[tuple, tuple[Any, str, int]] = {}


def _type_key(v: Any) -> Any:
    """What Numba's type of `v` depends on, cheaper to compute than `numba.typeof`."""
    if isinstance(v, np.ndarray):
        f = v.flags
        return (v.dtype, v.ndim, f.c_contiguous, f.f_contiguous, f.writeable, f.aligned)
    return type(v)


def _compiled_derivative(
    mode: Mode, f: EnzymeJit, ret_activity: Any, annotated: list[Annotation]
) -> tuple[Any, str, int]:
    """The derivative for these annotations and argument types, the return activity and the
    batch width; looked up by a cheap key first (this is the hot path of every call)."""
    width = _width(annotated)
    key = (mode.reverse, f, ret_activity, width, *((type(a), _type_key(a.val)) for a in annotated))
    hit = _compiled.get(key)
    if hit is None:
        argtypes, kinds, ret = derivative_signature(mode, f, ret_activity, annotated)
        hit = _compiled[key] = (derivative(mode, f, argtypes, kinds, ret, width), ret, width)
    return hit


def _forward(mode: Mode, f: EnzymeJit, ret_activity: Any, annotated: list[Annotation]) -> Any:
    deriv, ret, width = _compiled_derivative(mode, f, ret_activity, annotated)
    primal, tangent = _run(deriv, annotated)
    tangents = tangent if width > 1 and tangent is not None else (tangent,) * width
    if ret == "const":
        tangents = (None,) * width
    elif isinstance(deriv.restype, numba.types.BaseTuple):
        tangents = tuple(map(_tangent_of(deriv.restype), tangents))
    if not any(isinstance(a, BatchDuplicated) for a in annotated):
        (tangents,) = tangents
    if mode.with_primal and ret != "dup_noneed":
        return tangents, primal
    return tangents


@functools.cache
def _tangent_of(restype: Any) -> Callable[[Any], Any]:
    """The tangent of a tuple return from the derivative's shadow of it (None for its
    parts without derivative)."""
    return eval(f"lambda t: {tangent_source(restype, 't')}")  # noqa: S307 (our own source)


def _run(deriv: Any, annotated: list[Annotation]) -> tuple[Any, Any]:
    """Call the native derivative: primals, then shadows laid out like their primals
    (copied back into the user's shadows when they had another layout)."""
    shadows, copy_back = shadow_arguments(annotated)
    out = deriv.driver(*[a.val for a in annotated], *shadows)
    for dst, src in copy_back:
        dst[...] = src
    return out


def shadow_arguments(annotated: list[Annotation]) -> tuple[list[Any], list[tuple[Any, Any]]]:
    """The shadows a driver takes, each laid out like its primal (the engine replays the
    primal's address arithmetic on it), and the (user's shadow, copy) pairs of those laid
    out otherwise; one copy for one shadow passed twice, so that both arguments accumulate
    into it."""
    shadows: list[Any] = []
    copy_back: list[tuple[Any, Any]] = []
    copies: dict[tuple, np.ndarray] = {}
    for a in annotated:
        for dval in a.shadows:
            if isinstance(a.val, np.ndarray) and dval.strides == a.val.strides:
                shadows.append(dval)  # (laid out like its primal already)
            elif isinstance(a.val, np.ndarray):
                view = (dval.__array_interface__["data"], dval.shape, dval.strides)
                s = copies.get(view)
                if s is None:
                    s = copies[view] = with_strides(a.val, dval)
                    if s is not dval:
                        copy_back.append((dval, s))
                shadows.append(s)
            else:
                shadows.append(type(a.val)(dval))
    return shadows, copy_back


def _reverse(mode: Mode, f: EnzymeJit, ret_activity: Any, annotated: list[Annotation]) -> Any:
    deriv, _, width = _compiled_derivative(mode, f, ret_activity, annotated)
    primal, scalar_adjoints = _run(deriv, annotated)
    if width == 1 and any(isinstance(a, BatchDuplicated) for a in annotated):
        scalar_adjoints = tuple((adj,) for adj in scalar_adjoints)  # a batch of one
    it = iter(scalar_adjoints)
    adjoints = tuple(next(it) if isinstance(a, Active) else None for a in annotated)
    return (adjoints, primal) if mode.with_primal else adjoints


def gradient(mode: Mode, f: EnzymeJit, *args: Any) -> tuple[Any, ...]:
    """The gradient of a float-valued `f`: one entry per argument, shaped and typed like it
    (a float for a float), `None` for `Const(...)` and integer arguments.

    `Reverse` uses one reverse pass; `Forward` one forward pass per input element. Runs on
    copies of the arguments (they are not mutated).

    Examples
    --------
    >>> import numpy as np, enzpy as ez
    >>> @ez.enzyme_jit
    ... def f(x, a):
    ...     return a * (x * x).sum()
    >>> gx, ga = ez.gradient(ez.Reverse, f, np.array([1.0, 2.0]), 3.0)
    >>> gx.tolist(), ga
    ([6.0, 12.0], 5.0)
    """
    out = _recalled(("gradient", mode, f))(*args)
    if out is not MISS:
        return out
    check_mode(mode)
    values, _ = _differentiable(f, args, unwrap=True)
    run = _generated(gradients.gradient, "mode, f, *args", mode.reverse, values)
    out = run(mode, f, *args)
    fast = _direct(gradients.gradient(mode.reverse, values, direct=True), "mode, f, *args", f)
    body = "return _run(_mode, _f, {args})"
    _remember(("gradient", mode, f), args, body, _run=fast or run, _mode=mode, _f=f)
    return out


_calls: dict[tuple, Callable[..., Any]] = {}  # ("gradient", mode, f), ("vjp", f)... -> a chain
_remembered: set[tuple] = set()  # what `_remember` was given: head, then `type_tests` values


def _recalled(head: tuple) -> Callable[..., Any]:
    """The calls remembered for `head`, as one function (MISS for arguments none takes)."""
    try:
        return _calls.get(head, _no_entry)
    except TypeError:  # an unhashable mode or function: the Python path names it
        return _no_entry


def _remember(
    head: tuple, args: Sequence[Any], body: str, extra: Sequence[str] = (), **names: Any
) -> None:
    """From now on, the calls of `head` (an API function, then its leading arguments) whose
    arguments `a0, a1, ...` (then `extra` ones) pass the `type_tests` of `args` run `body`
    (`{args}`: the arguments' names) with the globals `names`, before those remembered
    earlier; where the tests would not tell, nothing is remembered."""
    tests = type_tests(args, layouts=False)
    if tests is None or (key := (*head, *tests[1].values())) in _remembered:
        return
    _remembered.add(key)
    params = [f"a{k}" for k in range(len(args))]
    names.update(tests[1], _other=_calls.get(head, _no_entry))
    body = body.format(args=", ".join(params))
    _calls[head] = dispatching([*params, *extra], tests[0], [body], names)


def jvp(f: EnzymeJit, primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
    """`(f(*primals), its derivative along tangents)` by one forward pass: `tangents[k]` is
    shaped like `primals[k]` (a float for a float), or None to hold that argument constant.
    Runs on copies of the arguments (they are not mutated).

    Examples
    --------
    >>> import numpy as np, enzpy as ez
    >>> @ez.enzyme_jit
    ... def f(x, a):
    ...     return a * (x * x).sum()
    >>> ez.jvp(f, (np.array([1.0, 2.0]), 3.0), (np.array([1.0, 0.0]), None))
    (15.0, 6.0)
    """
    sequences = type(primals) in (tuple, list) and type(tangents) in (tuple, list)
    if sequences and len(primals) == len(tangents):  # (then the halves of the arguments)
        out = _recalled(("jvp", f))(*primals, *tangents)
        if out is not MISS:
            return out
    check_function(f)
    if len(primals) != len(tangents):
        raise AnnotationError(f"{len(primals)} primals but {len(tangents)} tangents")
    check_arity(f, len(primals))
    written = may_write(f, tuple(value_type(k, p) for k, p in enumerate(primals)))
    values = tuple(
        Value(f"primals[{k}]", isinstance(p, np.ndarray), type(p), t is not None, w)
        for k, (p, t, w) in enumerate(zip(primals, tangents, written, strict=True))
    )
    given = tangents
    tangents = [  # array-likes as arrays of the primal's dtype
        np.asarray(t, p.dtype) if isinstance(p, np.ndarray) and t is not None else t
        for p, t in zip(primals, tangents, strict=True)
    ]
    reads = tuple(f"tangents[{k}]" for k in range(len(values)))
    params = "f, primals, tangents"
    run = _generated(gradients.jvp, params, values, reads)
    out = run(f, primals, tangents)
    if sequences and all(map(operator.is_, tangents, given)):  # (none converted)
        n = len(primals)
        names = [f"a{k}, " for k in range(2 * n)]
        body = f"return _run(_f, ({''.join(names[:n])}), ({''.join(names[n:])}))"
        fast = _direct(gradients.jvp(values, reads, direct=True), params, f)
        _remember(("jvp", f), (*primals, *tangents), body, _run=fast or run, _f=f)
    return out


def vjp(f: EnzymeJit, primals: Sequence[Any], cotangent: float = 1.0) -> tuple[Any, tuple]:
    """`(f(*primals), cotangent · ∇f)` of a float-valued `f` by one reverse pass: the
    gradient entries as in `gradient` (None for integer arguments). Runs on copies.

    Examples
    --------
    >>> import numpy as np, enzpy as ez
    >>> @ez.enzyme_jit
    ... def f(x, a):
    ...     return a * (x * x).sum()
    >>> value, (gx, ga) = ez.vjp(f, (np.array([1.0, 2.0]), 3.0), 0.5)
    >>> value, gx.tolist(), ga
    (15.0, [3.0, 6.0], 2.5)
    """
    if type(primals) in (tuple, list):
        out = _recalled(("vjp", f))(*primals, cotangent)
        if out is not MISS:
            return out
    values, _ = _differentiable(f, primals, "primals", unwrap=True)
    params = "f, primals, cotangent"
    run = _generated(gradients.vjp, params, values)
    out = run(f, primals, cotangent)
    if type(primals) in (tuple, list):
        body = "return _run(_f, ({args},), c)"
        fast = _direct(gradients.vjp(values, direct=True), params, f)
        _remember(("vjp", f), primals, body, ["c"], _run=fast or run, _f=f)
    return out


_SCALARS = (float, int, bool, complex, np.generic)


def _shape_key(args: Sequence[Any], *head: Any) -> tuple | None:
    """What `_differentiable(f, args)` depends on besides `f`, after `head`, cheaper to
    compute than Numba's types; None where a value's Python type does not tell (a tuple's
    or a list's items), or where `head` cannot be hashed."""
    parts = []
    for a in args:
        v = a.val if isinstance(a, Annotation) else a
        if type(v) is not np.ndarray and not isinstance(v, _SCALARS):
            return None
        parts.append((type(a), _type_key(v)))
    key = (*head, *parts)
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _differentiable(
    f: EnzymeJit, args: Sequence[Any], name: str = "args", unwrap: bool = False
) -> tuple[tuple[Value, ...], list[Any]]:
    """The arguments described for `gradients` (which are differentiated:
    `shadows.differentiated`; each read from `name[k]`, with `unwrap` from its `.val` where
    annotated), and their values."""
    check_function(f)
    check_arity(f, len(args))
    plain = [a.val if isinstance(a, Annotation) else a for a in args]
    argtypes = tuple(value_type(k, v) for k, v in enumerate(plain))
    diffs = [  # (checked before anything is compiled)
        differentiated(k, type(a) if isinstance(a, Annotation) else None, t)
        for k, (a, t) in enumerate(zip(args, argtypes, strict=True))
    ]
    values = tuple(
        Value(
            f"{name}[{k}]{'.val' if unwrap and isinstance(a, Annotation) else ''}",
            isinstance(v, np.ndarray),
            type(v),
            d,
            w,
        )
        for k, (a, v, d, w) in enumerate(
            zip(args, plain, diffs, may_write(f, argtypes), strict=True)
        )
    )
    return values, plain


def _direct(source: Source, params: str, f: EnzymeJit) -> Callable[..., Any] | None:
    """The generated function of `source` (made with `direct=True`) whose `autodiff` calls
    go straight to the compiled entries of `f` for their shapes (made by a first call
    through `autodiff`); None where a shape has none."""
    entries = {}
    for e in source.names.values():
        if isinstance(e, gradients.Entry):
            entry = _shapes.get((e.mode, f, e.ret, e.classes))
            if entry is None:
                return None
            entries[e] = entry.direct
    return gradients.python(source, params, entries.__getitem__)


@functools.cache
def _generated(build: Callable[..., Any], params: str, *how: Any) -> Callable[..., Any]:
    """The Python function `build(*how)` generates, once per call shape."""
    return gradients.python(build(*how), params)


inside.register(autodiff, gradient, jvp, vjp)
