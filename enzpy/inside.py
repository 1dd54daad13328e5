"""`autodiff` and `gradient` called inside jitted code, compiled to a direct native call.

At typing time the call's annotations, mode and return activity are read from the Numba
types, checked like the Python API checks them (same errors, raised at compile time), the
derivative is built by `derivatives.derivative`, and a small Numba function is generated
that checks what only values tell (shadow shapes, memory shared between primals and
shadows), lays each shadow out like its primal, calls the derivative's njit driver (a
native call) and returns what the Python API returns:

- Forward: the tangent (`None` for a `Const` return); ForwardWithPrimal: `(tangent, primal)`;
- Reverse: a tuple with the adjoint of each `Active(a)` and `None` elsewhere (a Numba tuple
  of floats and `none`, which is a Python tuple of floats and None when returned to Python);
  ReverseWithPrimal: `(adjoints, primal)`.

The same generator serves the Python API's hot path (`python_entry`): a per-call-shape njit
entry, whose run-time checks raise `Fallback` instead of an error so that the Python path
decides (and raises the same error). The memory checks are those of every entrance
(`memory.plan`), rendered as calls of their compiled predicates. In batch mode an
argument's shadows are a tuple (`BatchDuplicated(x, (dx1, ...))`): N tangents or
cotangents per call.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from numba.core import types
from numba.extending import overload

from . import gradients, memory
from .annotations import SHADOWED, Active, Annotation, BatchDuplicated, Const, Duplicated
from .bridge import descriptors
from .bridge.by_address import by_address
from .bridge.link import (
    GLUE_OPTIONS,
    CallShape,
    DerivativeDriver,
    TwinNeeded,
    finish,
    njit_glue,
)
from .derivatives import derivative, may_write
from .errors import AnnotationError, ShadowError
from .jit import EnzymeJit, from_dispatcher
from .modes import Mode
from .numba_types import AnnotationType, ModeType, annotation_class
from .shadows import batch_width, check_argument_type, differentiated, unwrapped_message
from .signatures import (
    check_arity,
    check_function,
    check_mode,
    signature_of_types,
    tangent_source,
)
from .source import Source, dispatching, tuple_source


class Fallback(Exception):
    """Raised by a Python entry when the Python path must decide (a check failed or may
    have: the Python path raises the exact error, or runs the call)."""


@dataclass(frozen=True)
class Arg:
    """One argument of the call as the generated code sees it: its annotation class
    (`Const` for a plain value), the Numba types it wraps, and the source expressions
    that read the primal and the shadow."""

    cls: type
    val: types.Type
    dval: types.Type | None
    val_src: str
    dval_src: str | None = None
    plain: bool = False  # a value passed without annotation

    @property
    def batch(self) -> bool:
        return issubclass(self.cls, BatchDuplicated)

    @property
    def shadows(self) -> list[tuple[types.Type, str]]:
        """(Numba type, source) of each shadow: one, or one per lane of a batch."""
        if self.dval is None or self.dval_src is None:
            return []
        if self.batch:
            lanes: Any = self.dval  # a tuple type
            return [(t, f"{self.dval_src}[{i}]") for i, t in enumerate(lanes)]
        return [(self.dval, self.dval_src)]

    @property
    def shadow_array(self) -> bool:
        return bool(self.shadows) and isinstance(self.val, types.Array)


# --------------------------------------------------------------------- code generation


def _call_source(
    mode: Mode,
    f: EnzymeJit,
    ret_activity: Any,
    argv: list[Arg],
    errors: bool,
    row: str | None = None,
) -> tuple[Source, Any]:
    """The body of a generated `autodiff` call, and the derivative it calls. A run-time
    check that fails raises its `ShadowError` (`errors`) or, for a Python entry, `Fallback`.
    With `row` (a Python entry), the code is the same for every derivative of the calling
    shape: it reads the derivative's addresses from the table at parameter `t`, in the row
    of the global named `row` (for the caller to define)."""
    for k, a in enumerate(argv):
        check_argument_type(k, a.cls, a.val, _shadow_types(k, a), mode.reverse)
    classes = tuple(a.cls for a in argv)
    argtypes = tuple(a.val for a in argv)
    width = batch_width(classes, [len(a.shadows) for a in argv])
    argtypes, kinds, ret = signature_of_types(mode, f, ret_activity, classes, argtypes)
    deriv = derivative(mode, f, argtypes, kinds, ret, width)
    src = Source({"np": np})
    _shadow_checks(src, argv, errors)
    shadows, copy_back = _shadows(src, argv)
    head = []
    if row is None:
        call = src.name("call", deriv.call)
    else:
        call, head = src.name("call", deriv.linked.shape.call_table()), ["t", row]
    src.add(f"o = {call}({', '.join(head + [a.val_src for a in argv] + shadows)})")
    if copy_back:  # what the call added into copies of the user's shadows
        src.add("if not o[0]:")
    for dst, s in copy_back:
        src.add(f"if {s}.ctypes.data != {dst}.ctypes.data:", 2)
        src.add(f"_copy_into({dst}, {s})", 3)
    src.add("r = o[3]")
    batch = any(a.batch for a in argv)
    if mode.reverse:
        adj = itertools.count()
        one = "(r[1][{}],)" if batch and width == 1 else "r[1][{}]"  # a batch of one
        out = tuple_source(
            [one.format(next(adj)) if issubclass(a.cls, Active) else "None" for a in argv]
        )
    else:
        lanes = [f"r[1][{i}]" for i in range(width)] if width > 1 else ["r[1]"]
        outs = ["None" if ret == "const" else tangent_source(deriv.restype, t) for t in lanes]
        out = tuple_source(outs) if batch else outs[0]
    if mode.with_primal and ret != "dup_noneed":
        out = f"({out}, r[0])"
    src.add(f"return {src.name('finish', finish)}(o, {out})  # raises what the call raised")
    return src, deriv


def _shadow_types(k: int, a: Arg) -> list[types.Type] | None:
    """The types of an argument's shadows; in jitted code a batch's shadows are a tuple of
    one type."""
    if a.dval is None:
        return None
    if not a.batch:
        return [a.dval]
    if not isinstance(a.dval, types.BaseTuple):
        raise AnnotationError(
            f"argument {k}: {a.cls.__name__} takes a tuple of shadows, got {a.dval}"
        )
    lanes = [t for t, _ in a.shadows]
    if len(set(lanes)) > 1:
        raise AnnotationError(
            f"argument {k}: the shadows of a {a.cls.__name__} in jitted code must have one "
            f"type, got {a.dval} (make them alike, e.g. with np.ascontiguousarray)"
        )
    return lanes


def _shadow_checks(src: Source, argv: list[Arg], errors: bool) -> None:
    """The memory checks of the call (`memory.plan`), run on the values in jitted code by
    one compiled call (`memory.failed_check`): a check that fails raises its `ShadowError`
    (`errors`) or `Fallback`."""
    operands = tuple(
        memory.Operand(tuple(_array_paths(a.val)), len(a.shadows) if a.shadow_array else 0)
        for a in argv
    )
    checks = memory.plan(operands)
    if not checks:
        return

    def arrays(ref: memory.Ref) -> tuple[list[str], int]:  # (their sources)
        k, kind, path = ref
        a = argv[k]
        if kind == "shadows":
            return [d for _, d in a.shadows], a.val.ndim
        return [f"{a.val_src}{''.join(f'[{i}]' for i in path)}"], _at(a.val, path).ndim

    items, plan = memory.table(checks, arrays)
    rows = f"{src.name('describe_rows', descriptors.describe_rows)}(({', '.join(items)},))"
    constant = src.name("plan", descriptors.constant_rows(plan))
    src.add(f"failed = {src.name('failed', by_address(memory.failed_check))}({rows}, {constant}())")
    if not errors:  # (one raise: each adds to the compile time)
        src.add("if failed:")
        src.add(f"raise {src.name('Fallback', Fallback)}()", 2)
        return
    for n, check in enumerate(checks):
        for code, message in enumerate(check.messages, 1):
            src.add(f"if failed == {4 * n + code}:")
            src.add(f"raise {src.name('ShadowError', ShadowError)}({message!r})", 2)


def _at(ty: types.Type, path: tuple[int, ...]) -> types.Type:
    """The type at `path` inside the (nested) tuple type `ty`."""
    for i in path:
        ty = ty.types[i]
    return ty


def _array_paths(ty: types.Type, at: tuple[int, ...] = ()) -> list[tuple[int, ...]]:
    """The paths of the arrays a value of type `ty` is or holds (in tuples, nested)."""
    if isinstance(ty, types.Array):
        return [at]
    if isinstance(ty, types.BaseTuple):
        return [p for i, t in enumerate(ty.types) for p in _array_paths(t, (*at, i))]
    return []


def _shadows(src: Source, argv: list[Arg]) -> tuple[list[str], list[tuple[str, str]]]:
    """Statements making each shadow of each argument with shadows laid out like its primal
    (the engine replays the primal's address arithmetic on it): the shadow expressions and
    the (user shadow, copy) pairs to copy back after the call."""
    shadows: list[str] = []
    copy_back: list[tuple[str, str]] = []
    copied: list[tuple[Arg, types.Type, str, str]] = []
    for k, a in enumerate(argv):
        for lane, (dtype, dsrc) in enumerate(a.shadows):
            s = f"s{k}_{lane}"
            shadows.append(s)
            if not a.shadow_array:
                src.add(f"{s} = {src.name('cast', a.val)}({dsrc})")
                continue
            layout = a.val.layout
            if layout == dtype.layout and layout in "CF":
                src.add(f"{s} = {dsrc}")
                continue
            # a shadow passed twice (for the same view, as checked) is copied once
            same = [(d, t) for b, bt, d, t in copied if (b.val, bt) == (a.val, dtype)]
            for i, (d, t) in enumerate(same):
                src.add(f"{'el' if i else ''}if _same_view({d}, {dsrc}):")
                src.add(f"{s} = {t}", 2)
            if same:
                src.add("else:")
            _copy_shadow(src, a, dsrc, s, 2 if same else 1)
            copied.append((a, dtype, dsrc, s))
            copy_back.append((dsrc, s))
    return shadows, copy_back


def _copy_shadow(src: Source, a: Arg, dsrc: str, s: str, indent: int) -> None:
    """`s = ` the shadow `dsrc` of `a` laid out like its primal (a copy unless it already
    is)."""
    layout = a.val.layout
    if layout == "C":
        src.add(f"{s} = np.ascontiguousarray({dsrc})", indent)
    elif layout == "F":
        src.add(f"{s} = np.asfortranarray({dsrc})", indent)
    else:
        src.add(f"{s} = _with_strides({a.val_src}, {dsrc})", indent)


_HELPERS = {  # used by generated code
    "_same_view": by_address(memory.same_view),
    "_with_strides": by_address(memory.with_strides),
    "_copy_into": by_address(memory.copy_into),
}


def _compile(params: str, src: Source) -> Callable[..., Any]:
    """The Python function `def impl(<params>): <src>`, for Numba to compile."""
    return src.function(params, **_HELPERS)


# --------------------------------------------------------------------- in-Numba autodiff


def _parse_call(
    mode: types.Type, f: types.Type, args: tuple
) -> tuple[Mode, EnzymeJit, Any, list[Arg]]:
    """What `api.parse_arguments` finds, from Numba types (raises the same errors)."""
    m, fn = _mode_and_function(mode, f)
    if m.split:
        raise AnnotationError(f"{m!r} is not available inside jitted code")
    ret_activity = annotation_class(args[0]) if args else None
    start = 1 if ret_activity is not None else 0
    check_arity(fn, len(args) - start)
    return (
        m,
        fn,
        ret_activity,
        [_arg(k, ty, f"args[{k + start}]") for k, ty in enumerate(args[start:])],
    )


def _mode_and_function(mode: types.Type, f: types.Type) -> tuple[Mode, EnzymeJit]:
    return check_mode(mode.mode if isinstance(mode, ModeType) else mode), _function(f)


def _function(f: types.Type) -> EnzymeJit:
    fn = from_dispatcher(f.dispatcher) if isinstance(f, types.Dispatcher) else None
    return check_function(fn, shown=f)


def _arg(k: int, ty: types.Type, expr: str) -> Arg:
    if isinstance(ty, AnnotationType):
        dval = f"{expr}.dval" if ty.dval is not None else None
        return Arg(ty.cls, ty.val, ty.dval, f"{expr}.val", dval)
    cls = annotation_class(ty)
    if cls is not None:
        raise AnnotationError(unwrapped_message(k, cls))
    return Arg(Const, ty, None, expr, plain=True)


def _autodiff_impl(mode, f, *args):  # no annotations: Numba compares signatures
    """The overload of `autodiff`: Numba types in, the generated implementation out."""
    m, fn, ret_activity, argv = _parse_call(mode, f, args)
    src, _ = _call_source(m, fn, ret_activity, argv, errors=True)
    return _compile("mode, f, *args", src)


# --------------------------------------------------------------------- in-Numba gradient


def _gradient_impl(
    autodiff: Callable[..., Any], mode: types.Type, f: types.Type, *args: types.Type
) -> Callable[..., Any]:
    """`gradient` in jitted code (`gradients.gradient`)."""
    m, fn = _mode_and_function(mode, f)
    check_arity(fn, len(args))
    values = _differentiable(fn, [_arg(k, ty, f"args[{k}]") for k, ty in enumerate(args)])
    return gradients.gradient(m.reverse, values).function("mode, f, *args", _autodiff=autodiff)


def _jvp_impl(autodiff: Callable[..., Any], f: types.Type, primals: Any, tangents: Any) -> Any:
    """`jvp` in jitted code (`gradients.jvp`)."""
    fn = _function(f)
    check_arity(fn, len(primals))
    if len(tangents) != len(primals):
        raise AnnotationError(f"{len(primals)} primals but {len(tangents)} tangents")
    argv = [_arg(k, p, f"primals[{k}]") for k, p in enumerate(primals)]
    written = may_write(fn, tuple(a.val for a in argv))
    values = [
        _value(a, not isinstance(t, types.NoneType), w)
        for a, t, w in zip(argv, tangents, written, strict=True)
    ]
    reads = [f"tangents[{k}]" for k in range(len(values))]
    return gradients.jvp(values, reads).function("f, primals, tangents", _autodiff=autodiff)


def _vjp_impl(autodiff: Callable[..., Any], f: types.Type, primals: Any, cotangent: Any) -> Any:
    """`vjp` in jitted code (`gradients.vjp`)."""
    fn = _function(f)
    check_arity(fn, len(primals))
    values = _differentiable(fn, [_arg(k, ty, f"primals[{k}]") for k, ty in enumerate(primals)])
    return gradients.vjp(values).function("f, primals, cotangent=1.0", _autodiff=autodiff)


def _differentiable(fn: EnzymeJit, argv: list[Arg]) -> list[gradients.Value]:
    """The arguments of `fn` described for `gradients` (which are differentiated:
    `shadows.differentiated`)."""
    diffs = [differentiated(k, None if a.plain else a.cls, a.val) for k, a in enumerate(argv)]
    written = may_write(fn, tuple(a.val for a in argv))  # (compiles: after the checks)
    return [_value(a, d, w) for a, d, w in zip(argv, diffs, written, strict=True)]


def _value(a: Arg, diff: bool, written: bool) -> gradients.Value:
    return gradients.Value(a.val_src, isinstance(a.val, types.Array), a.val, diff, written)


def register(
    autodiff: Callable[..., Any],
    gradient: Callable[..., Any],
    jvp: Callable[..., Any],
    vjp: Callable[..., Any],
) -> None:
    """Make the Python API's `autodiff`, `gradient`, `jvp` and `vjp` callable inside jitted
    code."""
    overload(autodiff, jit_options=GLUE_OPTIONS)(_autodiff_impl)

    def gradient_impl(mode, f, *args):  # no annotations, as in _autodiff_impl
        return _gradient_impl(autodiff, mode, f, *args)

    def jvp_impl(f, primals, tangents):
        return _jvp_impl(autodiff, f, primals, tangents)

    def vjp_impl(f, primals, cotangent=1.0):
        return _vjp_impl(autodiff, f, primals, cotangent)

    overload(gradient, jit_options=GLUE_OPTIONS)(gradient_impl)
    overload(jvp, jit_options=GLUE_OPTIONS)(jvp_impl)
    overload(vjp, jit_options=GLUE_OPTIONS)(vjp_impl)


# --------------------------------------------------------------------- Python entries


MISS = object()  # what a Python entry returns for a call of another shape


class PythonEntry:
    """The compiled calls of one call shape of the Python API's `autodiff`: mode, function,
    return activity `ret_activity` and `classes` (the Python type of each argument: an
    annotation class, or the type of a plain value).

    `call` takes `autodiff`'s arguments after `f`: for calls of this shape it unpacks the
    values and calls `direct`, which calls one njit dispatcher on them, where generated code
    checks them like the Python path and calls the derivative; calls of another shape go to
    `other` (another entry's `call`, or a function returning `MISS`). Generated Python code
    that knows a call's shape calls `direct` on the values and shadows it would annotate.
    `add` compiles the dispatcher for the types of a call's values at once (types never
    added are compiled when first called). `call` and `direct` raise `Fallback` when the
    Python path must decide.

    The generated code takes first the address of this entry's table of derivatives: code
    for one calling shape is compiled once and shared by the entries of every function
    whose derivative has that shape (each entry's table holds its own derivative)."""

    def __init__(
        self,
        mode: Mode,
        f: EnzymeJit,
        ret_activity: Any,
        classes: tuple[type, ...],
        other: Callable[..., Any],
    ) -> None:
        params: list[str] = []
        checks: list[str] = []
        unpacked: list[str] = ["_t"]
        self._spec: list[tuple[type, bool]] = []  # (annotation class, passed plain) each
        self._ns: dict[str, Any] = {"_other": other, "_ret": ret_activity}
        if ret_activity is not None:
            params.append("r")
            checks.append("r is _ret")
        for k, cls in enumerate(classes):
            params.append(f"a{k}")
            self._ns[f"_C{k}"] = cls
            checks.append(f"type(a{k}) is _C{k}")
            if not issubclass(cls, Annotation):
                unpacked.append(f"a{k}")
                self._spec.append((Const, True))
                continue
            unpacked.append(f"a{k}.val")
            if issubclass(cls, Duplicated):
                unpacked.append(f"a{k}.dval")
            elif issubclass(cls, BatchDuplicated):
                unpacked.append(f"a{k}.dvals")
            self._spec.append((cls, False))
        self._how = (mode, f, ret_activity)
        self._tables = [np.zeros(2, np.uint64)]  # (the earlier ones stay alive)
        self._linked: dict[int, DerivativeDriver] = {}  # row -> the derivative it holds
        self._ns["_t"] = self._tables[-1].ctypes.data
        self._ns["_TwinNeeded"], self._ns["_twins"] = TwinNeeded, self._twins
        vals = ", ".join(f"v{j}" for j in range(len(unpacked)))
        stub_ns: dict[str, Any] = {"_stub": self._stub(vals)}
        exec(f"def entry({vals}):\n    return _stub({vals})\n", stub_ns)
        self._ns["_entry"] = self._dispatcher = njit_glue()(stub_ns["entry"])
        values = [f"v{j}" for j in range(len(unpacked) - 1)]
        entry = f"_entry(_t, {', '.join(values)})"
        exec(  # noqa: S102 (our source)
            f"def direct({', '.join(values)}):\n"
            f"    try:\n        return {entry}\n"
            f"    except _TwinNeeded:\n        _twins()\n        return {entry}\n",
            self._ns,
        )
        self.direct: Callable[..., Any] = self._ns["direct"]
        self.call: Callable[..., Any] = dispatching(
            params, checks, [f"return direct({', '.join(unpacked[1:])})"], self._ns
        )

    def add(self, annotated: list[Annotation]) -> None:
        """Compile the entry for the Numba types of these (checked) arguments' values."""
        sig = (types.intp, *map(numba.typeof, unpacked_values(annotated)))
        if sig not in self._dispatcher.overloads:
            compiled = _shared_glue(_entry_params(sig), self._source(*sig), sig)
            self._dispatcher.add_overload(compiled.overloads[sig])

    def _source(self, t: types.Type, *vals: types.Type) -> Source:
        """The generated call for a table and values of these Numba types."""
        try:
            src, deriv = _call_source(
                *self._how, _unpacked_argv(self._spec, vals), errors=False, row="_row"
            )
        except Exception:  # the Python path raises the exact error
            src, deriv = Source(), None
            src.add(f"raise {src.name('Fallback', Fallback)}()")
        key = src.key()
        with _lock:
            row = _rows.get(key) if key is not None else None
            if row is None:
                row = next(_row_numbers)
                if key is not None:
                    _rows[key] = row
        if deriv is not None:
            self._store(row, deriv.linked)
        src.names["_row"] = row
        return src

    def _store(self, row: int, linked: DerivativeDriver) -> None:
        """Put a derivative's addresses in row `row` of this entry's table."""
        table = self._tables[-1]
        if 2 * row + 2 > len(table):
            table = np.zeros(max(2 * row + 2, 2 * len(table)), np.uint64)
            table[: len(self._tables[-1])] = self._tables[-1]
            self._tables.append(table)
        table[2 * row : 2 * row + 2] = linked.table
        self._linked[row] = linked
        self._ns["_t"] = table.ctypes.data

    def _twins(self) -> None:
        """Put in the table the aliased twins of its derivatives (built if they are not)."""
        table = self._tables[-1]
        for row, linked in self._linked.items():
            if linked.twin is not None and not table[2 * row + 1]:
                table[2 * row + 1] = linked.twin_address()

    def _stub(self, params: str) -> Callable[..., Any]:
        """A function of the unpacked values whose Numba overload is the generated call (for
        types not added). The overload is inlined into the entry: the entry then holds no
        reference of its own when the call raises."""
        ns: dict[str, Any] = {
            "_generate": lambda *sig: _compile(_entry_params(sig), self._source(*sig))
        }
        exec(
            f"def stub({params}):\n"
            "    raise NotImplementedError('only callable from jitted code')\n"
            f"def impl({params}):\n    return _generate({params})\n",
            ns,
        )
        overload(ns["stub"], inline="always")(ns["impl"])
        return ns["stub"]


def _entry_params(sig: Sequence[types.Type]) -> str:
    """The parameters of a Python entry's generated call: its table, then the values."""
    return ", ".join(["t"] + [f"v{j}" for j in range(len(sig) - 1)])


def _shared_glue(params: str, src: Source, sig: tuple) -> Any:
    """`njit_glue(sig)` of the generated function, compiled once per source and types."""
    key = src.key()
    with _lock:
        hit = _glue.get((key, sig)) if key is not None else None
    if hit is None:
        hit = njit_glue(sig)(_compile(params, src))
        if key is not None:
            with _lock:
                hit = _glue.setdefault((key, sig), hit)
    return hit


_lock = threading.Lock()
_rows: dict[Any, int] = {}  # a Python entry's generated call -> its row in every table
_row_numbers = itertools.count()
_glue: dict[tuple, Any] = {}  # (generated function's `Source.key`, Numba types) -> compiled


def unpacked_values(annotated: Sequence[Annotation]) -> list[Any]:
    """Each argument's value, then its shadow (its tuple of shadows in batch mode)."""
    out = []
    for a in annotated:
        out.append(a.val)
        if isinstance(a, Duplicated):
            out.append(a.dval)
        elif isinstance(a, BatchDuplicated):
            out.append(a.dvals)
    return out


def memory_checker(
    annotated: Sequence[Annotation], shape: CallShape | None = None
) -> Callable[..., Any]:
    """An njit function of the arguments' `unpacked_values` that runs the call's memory
    checks (`memory.plan`), raising their `ShadowError`; compiled now for these values'
    types. With the `shape` of a derivative whose shadows are those given, it takes then a
    table of such derivatives and a last argument and, where the checks pass, calls the
    table's derivative as its driver does: `(table, *primals, *shadows, last)`; a failed
    check raises `Fallback`."""
    values = tuple(map(numba.typeof, unpacked_values(annotated)))
    return _memory_checker(tuple(map(type, annotated)), values, shape)


@functools.cache
def _memory_checker(
    classes: tuple[type, ...], values: tuple[types.Type, ...], shape: CallShape | None
) -> Callable[..., Any]:
    argv = _unpacked_argv([(cls, False) for cls in classes], values)
    src = Source({"np": np})
    _shadow_checks(src, argv, errors=shape is None)
    params = [f"v{i}" for i in range(len(values))]
    if shape is None:
        src.add("return None")
        return _shared_glue(", ".join(params), src, values)
    operands = [a.val_src for a in argv] + [s for a in argv for _, s in a.shadows]
    src.add(f"o = {src.name('call', shape.call_table())}(t, 0, {', '.join(operands)}, last)")
    src.add(f"return {src.name('finish', finish)}(o, o[3])  # raises what the call raised")
    sig = (*values, types.intp, types.intp)
    return _shared_glue(", ".join([*params, "t", "last"]), src, sig)


def _unpacked_argv(spec: Sequence[tuple[type, bool]], vals: Sequence[types.Type]) -> list[Arg]:
    """The `Arg` of each argument whose values, unpacked (`unpacked_values`), are the
    parameters `v0, v1, ...` of these Numba types; `spec` holds per argument its annotation
    class and whether it was passed plain."""
    it = iter(enumerate(vals))
    argv = []
    for cls, plain in spec:
        j, val = next(it)
        dval, dsrc = (None, None)
        if issubclass(cls, SHADOWED):
            i, dval = next(it)
            dsrc = f"v{i}"
        argv.append(Arg(cls, val, dval, f"v{j}", dsrc, plain))
    return argv
