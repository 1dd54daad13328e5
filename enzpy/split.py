"""Split reverse mode: `autodiff_thunk` returns the forward and the reverse pass as two
callables, with a `Tape` carrying what the reverse pass needs from one to the other."""

from __future__ import annotations

import ctypes
import operator
from collections.abc import Callable, Sequence
from functools import cache, partial
from typing import Any

import numba
import numpy as np

from .annotations import Active, Annotation, BatchDuplicated, Duplicated
from .api import _width, derivative_signature, parse_arguments, shadow_arguments
from .bridge.link import TAPE_BYTES, slot_words
from .derivatives import Derivative, derivative
from .errors import AnnotationError, EnzpyError, ShadowError
from .inside import Fallback, memory_checker, unpacked_values
from .jit import EnzymeJit
from .modes import Mode, ReverseSplitNoPrimal, ReverseSplitWithPrimal
from .shadows import check_argument, check_memory, type_tests, value_type
from .source import dispatching, tuple_source


class Tape:
    """What a forward pass (`fwd`) left for its reverse pass (`rev`): the values the reverse
    sweep needs, the control-flow path taken, the shadows of memory allocated inside `f`.

    Owns that memory: it is released when `rev` has used the tape, or when the tape is
    garbage-collected unused. A tape serves one `rev` call of the thunk that made it."""

    __slots__ = (
        "_thunk",
        "_native",
        "address",
        "_args",
        "_copies",
        "_annotated",
        "_pending",
        "_threads",
        "_state",
        "_derivative",
    )

    def __init__(
        self,
        thunk: _Thunk,
        annotated: list[Annotation] | tuple[Annotation, ...],
        args: tuple,
        copies: Sequence[tuple[Any, Any]] = (),
    ) -> None:
        """A tape for the forward pass of `thunk` on `annotated`, whose driver takes `args`
        (primal arguments then shadows: `api.shadow_arguments`, with its `copies`)."""
        self._thunk = thunk
        self._native = thunk.native_tape()  # zeroed
        self.address: int = ctypes.addressof(self._native)
        self._args = args
        self._copies = copies
        self._annotated = annotated
        self._threads = 0  # the thread count of a parallel forward pass (0: none)
        self._state: list[tuple[int, Any]] = []  # unmodified arguments' memory after `fwd`
        self._derivative = thunk.derivative  # the one whose forward pass made the tape
        self._pending = True  # from the forward pass (even one that raised) until used

    @property
    def used(self) -> bool:
        """Whether the tape's contents were consumed (by `rev`) or released."""
        return not self._pending

    @property
    def nbytes(self) -> int:
        """Bytes the forward pass put on the tape (0 once used)."""
        return int(self._native[1])

    def _take(self, thunk: _Thunk) -> tuple:
        if thunk is not self._thunk:
            raise EnzpyError(
                "this tape was made by the forward pass of another thunk; pass "
                "it to the reverse pass returned with that forward pass"
            )
        if not self._pending:
            raise EnzpyError(
                "this tape was already used by a reverse pass (a tape serves "
                "one reverse pass: call fwd again for another)"
            )
        if self._threads and numba.get_num_threads() > self._threads:
            raise EnzpyError(
                f"the reverse pass runs with {numba.get_num_threads()} threads "
                "(numba.set_num_threads) "
                f"where its forward pass ran with {self._threads}: a parallel loop's reverse "
                "sweep finds its partial results by thread, so it may not run on more threads; "
                "set the thread count back before calling rev"
            )
        if self._state:
            self._check_unchanged(thunk)
        self._pending = False
        return self._args

    def _check_unchanged(self, thunk: _Thunk) -> None:
        for k, state in self._state:
            if _state(self._annotated[k].val) != state:
                raise EnzpyError(
                    f"argument {k} of {thunk.name} changed between the forward and the "
                    "reverse pass; the thunk was made saying it is not modified between "
                    "them (modified_between), so its reverse pass reads it again: change it "
                    "after rev, or make the thunk with modified_between True for it (the "
                    "default), whose tape keeps the values"
                )

    def _release(self) -> None:
        if self._pending:
            self._pending = False
            self._derivative.split[1](*self._args, self.address)

    def __del__(self) -> None:
        try:
            self._release()
        except Exception:  # noqa: BLE001 - interpreter shutdown; nothing left to free into
            pass

    def __repr__(self) -> str:
        state = "used" if self.used else f"{self.nbytes} bytes"
        return f"<enzpy.Tape of {self._thunk.name} ({state})>"

    def __reduce__(self) -> Any:
        raise EnzpyError(
            "an enzpy.Tape holds addresses in this process's memory and cannot be pickled: "
            "run the reverse pass in the process that ran its forward pass"
        )


class _Thunk:
    """One split-mode derivative of `f` for fixed argument types and activities."""

    def __init__(
        self,
        mode: Mode,
        f: EnzymeJit,
        ret: str,
        annotated: list[Annotation],
        deriv: Derivative,
        width: int,
        general: Callable[[], Derivative] | None = None,
        unmodified: tuple[int, ...] = (),
    ) -> None:
        """`general`, for a thunk some of whose arguments (`unmodified`) the caller leaves
        unmodified between the passes (`deriv` reads them again): the derivative for arrays
        that overlap, which keeps on the tape every value its reverse pass needs."""
        self.mode, self.f, self.ret, self.derivative = mode, f, ret, deriv
        self.general = cache(general) if general is not None else None
        self.unmodified = unmodified
        self.arrays = [k for k, a in enumerate(annotated) if isinstance(a.val, np.ndarray)]
        self.name = f.py_func.__qualname__
        self.classes = tuple(type(a) for a in annotated)
        self.argtypes = deriv.argtypes
        self.same_types = _same_types(annotated)  # whether a call's args are typed like these
        self.check_memory = memory_checker(annotated)
        for drv in (deriv.linked, *deriv.split):  # compiled now, not in a later call
            drv.driver  # noqa: B018
        self.widths = _widths(annotated)
        self.width = width
        self.batch = any(issubclass(c, BatchDuplicated) for c in self.classes)
        # the native tape (`TAPE_BYTES`: { data, size, capacity, escape }), then the
        # return's shadow slot of each batch lane
        words = TAPE_BYTES // 8 + slot_words(deriv.restype) * self.width
        self.native_tape = ctypes.c_int64 * words
        self.active = [k for k, c in enumerate(self.classes) if issubclass(c, Active)]
        # whether generated code may call the passes (`_fast_forward`, `_fast_reverse`)
        self.fast = (
            general is None
            and not self.batch
            and not deriv.parallel
            and deriv.linked.twin is None
            and all(map(_shadow_as_given, annotated))
        )

    def overlap(self, annotated: Sequence[Annotation]) -> bool:
        """Whether the memory of two of the array arguments may overlap."""
        arrays = [annotated[k].val for k in self.arrays]
        return any(np.may_share_memory(a, b) for j, a in enumerate(arrays) for b in arrays[j + 1 :])

    def cotangents(self, dret: Any) -> tuple:
        """The return's cotangent (in batch mode, a tuple of one per lane) as the driver's
        arguments."""
        if not self.batch:
            return (self.cotangent(dret),)
        if not isinstance(dret, tuple | list) or len(dret) != self.width:
            raise AnnotationError(
                f"the return's cotangents must be a tuple of {self.width}, one per shadow, "
                f"got {dret!r}"
            )
        return tuple(map(self.cotangent, dret))

    def lanes(self, values: Any) -> Any:
        """A batch of one's results as tuples of one, as `autodiff` gives them."""
        return (values,) if self.batch and self.width == 1 else values

    def cotangent(self, dret: Any) -> Any:
        """`dret` as the float or tuple of floats the return's type asks for."""
        restype = self.derivative.restype
        try:
            if isinstance(restype, numba.types.BaseTuple):
                if len(dret) != len(restype):
                    raise ValueError
                return tuple(float(v) for v in dret)
            return float(dret)
        except (TypeError, ValueError):
            raise AnnotationError(
                f"the return's cotangent must be like the return of "
                f"{self.name} ({restype}), got {dret!r}"
            ) from None

    def check(self, args: tuple, memory: bool = True) -> list[Annotation]:
        """The annotated arguments of one call, checked against the thunk's types (and
        what their memory may share: `memory`)."""
        if len(args) != len(self.classes):
            raise AnnotationError(
                f"the thunk of {self.name} takes {len(self.classes)} "
                f"annotated arguments, got {len(args)}"
            )
        if self.same_types(*args):
            if memory:  # (the types of the thunk's making: checked)
                self.check_memory(*unpacked_values(args))
            return list(args)
        annotated = [check_argument(k, a, True) for k, a in enumerate(args)]
        for k, (a, cls, t) in enumerate(zip(annotated, self.classes, self.argtypes, strict=True)):
            if type(a) is not cls or value_type(k, a.val) != t:
                raise AnnotationError(
                    f"argument {k}: the thunk was made for {cls.__name__} of {t}, got "
                    f"{type(a).__name__} of {value_type(k, a.val)}; make another thunk"
                )
        if _widths(annotated) != self.widths:
            raise AnnotationError(
                f"the thunk of {self.name} was made for {self.width} shadows per argument"
            )
        if memory:
            check_memory(annotated)
        return annotated


def _same_types(annotated: list[Annotation]) -> Callable[..., bool]:
    """Whether the arguments of a call have the classes and Numba types of `annotated`."""
    tests = type_tests(annotated)
    if tests is None:  # (batches of shadows)
        classes, types = tuple(map(type, annotated)), _types(annotated)
        return lambda *args: tuple(map(type, args)) == classes and _types(args) == types
    names = {"_other": lambda *args: False, **tests[1]}
    params = [f"a{k}" for k in range(len(annotated))]
    return dispatching(params, tests[0], ["return True"], names)


def _types(args: Sequence[Any]) -> tuple:
    """The types of each argument's value and shadows (`shadows.value_type`: cached)."""
    return tuple(
        (type(a), value_type(k, a.val), *(value_type(k, d) for d in a.shadows))
        for k, a in enumerate(args)
    )


def _same_objects(args: Sequence[Any], seen: Sequence[Annotation]) -> bool:
    """Whether each of `args` is the annotation in `seen`, or one of its class wrapping the
    same value and shadows."""
    for a, s in zip(args, seen, strict=True):
        if a is s:
            continue
        if type(a) is not type(s) or a.val is not s.val:
            return False
        shadows, saw = a.shadows, s.shadows
        if len(shadows) != len(saw) or not all(map(operator.is_, shadows, saw)):
            return False
    return True


def _widths(annotated: list[Annotation]) -> tuple[int, ...]:
    return tuple(len(a.shadows) for a in annotated)


def _state(v: Any) -> Any:
    """What the reverse pass of an unmodified thunk may read again of a value: an array's
    bytes (inside tuples too); None for an immutable scalar."""
    if isinstance(v, np.ndarray | np.generic):
        return v.tobytes()
    if isinstance(v, tuple):
        return tuple(map(_state, v))
    return None


def _checkable(k: int, v: Any) -> None:
    """Raise unless `_state` sees all the memory of argument `k`'s value `v`."""
    if isinstance(v, tuple):
        for e in v:
            _checkable(k, e)
    elif not isinstance(v, np.ndarray | np.generic | int | float | complex | str | None):
        raise AnnotationError(
            f"argument {k} is a {type(v).__name__}: with modified_between=False the thunk "
            "checks that the arguments' memory is unchanged when rev runs, which it can for "
            "arrays, scalars and tuples of them; pass those, or keep modified_between=True"
        )


def _memory(x: np.ndarray) -> tuple:
    return (x.__array_interface__["data"][0], x.shape, x.strides)


def _shadow_as_given(a: Annotation) -> bool:
    """Whether the driver takes the shadows of `a` as they are for any call typed like it:
    none, or an array laid out like its primal (C or F order)."""
    if not isinstance(a, Duplicated):
        return not a.shadows
    if not isinstance(a.val, np.ndarray):
        return False
    layouts = {numba.typeof(a.val).layout, numba.typeof(a.dval).layout}
    return layouts in ({"C"}, {"F"})


class ForwardPass:
    """`fwd(*args) -> (tape, primal or None, shadow of the return or None)`."""

    def __init__(self, thunk: _Thunk, annotated: list[Annotation]) -> None:
        self._thunk = thunk
        fast = _fast_forward(thunk, annotated, self._checked) if thunk.fast else None
        self._call = fast or self._checked

    def __call__(self, *args: Any) -> tuple[Tape, Any, Any]:
        return self._call(*args)

    def _checked(self, *args: Any) -> tuple[Tape, Any, Any]:
        t = self._thunk
        annotated = t.check(args)
        shadows, copies = shadow_arguments(annotated)
        tape = Tape(t, annotated, (*(a.val for a in annotated), *shadows), copies)
        try:
            if t.general is not None and t.overlap(tape._annotated):
                tape._derivative = t.general()
            primal, shadow = tape._derivative.driver(*tape._args, tape.address)
        except BaseException:
            tape._release()  # the forward sweep left a complete, consistent tape
            raise
        if t.derivative.parallel:
            tape._threads = numba.get_num_threads()
        if t.general is not None and tape._derivative is t.derivative:
            tape._state = [(k, _state(tape._annotated[k].val)) for k in t.unmodified]
        shadow = t.lanes(shadow) if t.ret == "dup" else None
        return tape, primal if t.mode.with_primal else None, shadow

    def __repr__(self) -> str:
        return f"<enzpy forward pass of {self._thunk.name}>"

    def __reduce__(self) -> Any:
        raise EnzpyError(_UNPICKLABLE_PASS)


class ReversePass:
    """`rev(*args, [dret,] tape) -> adjoints`: one entry per argument, the adjoint of an
    `Active` one, else None; adds into the shadows of `Duplicated` ones. `dret` (the
    return's cotangent) is given for an `Active` return only."""

    def __init__(self, thunk: _Thunk, annotated: list[Annotation]) -> None:
        self._thunk = thunk
        fast = _fast_reverse(thunk, annotated, self._checked) if thunk.fast else None
        self._call = fast or self._checked

    def __call__(self, *args: Any) -> tuple[Any, ...]:
        return self._call(*args)

    def _checked(self, *args: Any) -> tuple[Any, ...]:
        t = self._thunk
        n = len(t.classes) + (t.ret == "active")
        if len(args) != n + 1 or not isinstance(args[-1], Tape):
            what = (
                "the annotated arguments, the return's cotangent, then the tape"
                if t.ret == "active"
                else "the annotated arguments, then the tape"
            )
            raise AnnotationError(f"the reverse pass of {t.name} takes {what}")
        tape = args[-1]
        # (the sweep runs on the forward pass's arguments, whose memory was checked; these
        # must be like them, with the same shadows)
        given = args[: len(t.classes)]
        if not (tape._thunk is t and _same_objects(given, tape._annotated)):
            annotated = t.check(given, memory=False)
            if tape._thunk is t and tape._pending:
                self._check_same(annotated, tape)
        saved = tape._take(t)
        dret = t.cotangents(args[-2]) if t.ret == "active" else ()
        for user, copy in tape._copies:  # the adjoints the caller holds now
            copy[...] = user
        adjoints = tape._derivative.split[0](*saved, tape.address, *dret)
        for user, copy in tape._copies:
            user[...] = copy
        out: list[Any] = [None] * len(t.classes)
        for k, adjoint in zip(t.active, adjoints, strict=True):
            out[k] = t.lanes(adjoint)
        return tuple(out)

    def _check_same(self, annotated: list[Annotation], tape: Tape) -> None:
        """The reverse pass runs at the point the forward pass saw, into the shadows it saw
        (the tape holds addresses inside them): same shapes, same shadow memory."""
        for k, (a, seen) in enumerate(zip(annotated, tape._annotated, strict=True)):
            if a is seen:
                continue
            x, y = a.val, seen.val
            if isinstance(x, np.ndarray) and (x.shape != y.shape or x.strides != y.strides):
                raise ShadowError(
                    "the reverse pass got arrays of other shapes or strides than its forward pass"
                )
            pairs = zip(a.shadows, seen.shadows, strict=True)
            if any(d is not s and _memory(d) != _memory(s) for d, s in pairs):
                raise ShadowError(
                    f"argument {k}: the reverse pass must get the shadow its "
                    "forward pass got (the tape points into it)"
                )

    def __repr__(self) -> str:
        return f"<enzpy reverse pass of {self._thunk.name}>"

    def __reduce__(self) -> Any:
        raise EnzpyError(_UNPICKLABLE_PASS)


def _fast_forward(
    t: _Thunk, annotated: list[Annotation], checked: Callable[..., Any]
) -> Callable[..., Any] | None:
    """`fwd` for calls typed like `annotated` (else `checked`): one compiled call runs the
    memory checks (deferring to `checked` where one fails) and the forward sweep on the
    shadows as given; None where the types cannot be tested in Python."""
    tests = type_tests(annotated)
    if tests is None:
        return None
    params = [f"a{k}" for k in range(len(annotated))]
    primals = [f"{p}.val" for p in params]
    shadows = [f"{p}.dval" for p, a in zip(params, annotated, strict=True) if a.shadows]
    unpacked = [f"{p}.{w}" for p, a in zip(params, annotated, strict=True) for w in _wraps(a)]
    linked = t.derivative.linked
    names = {
        **tests[1],
        "_other": checked,
        "_t": t,
        "_Tape": Tape,
        "_Fallback": Fallback,
        "_forward": memory_checker(annotated, linked.shape),
        "_table": linked.table.ctypes.data,
    }
    primal = "primal" if t.mode.with_primal else "None"
    shadow = "shadow" if t.ret == "dup" else "None"
    body = [
        f"tape = _Tape(_t, args, ({', '.join(primals + shadows)},))",
        "try:",
        f"    primal, shadow = _forward({', '.join(unpacked)}, _table, tape.address)",
        "except _Fallback:  # (the sweep did not start)",
        "    tape._pending = False",
        "    return _other(*args)",
        "except BaseException:",
        "    tape._release()  # the forward sweep left a complete, consistent tape",
        "    raise",
        f"return tape, {primal}, {shadow}",
    ]
    return dispatching(params, tests[0], body, names)


def _fast_reverse(
    t: _Thunk, annotated: list[Annotation], checked: Callable[..., Any]
) -> Callable[..., Any] | None:
    """`rev` for the tapes of `_fast_forward`, given the annotations its `fwd` got or ones
    of their classes wrapping the same values and shadows, and a float cotangent of a float
    return (else `checked`); None for a tuple's cotangent."""
    if t.ret == "active" and not isinstance(t.derivative.restype, numba.types.Float):
        return None
    params = [f"a{k}" for k in range(len(annotated))]
    same = []
    for k, (p, a) in enumerate(zip(params, annotated, strict=True)):
        wrapped = [f"{p}.{w} is s[{k}].{w}" for w in _wraps(a)]
        same.append(f"({p} is s[{k}] or (type({p}) is _C{k} and {' and '.join(wrapped)}))")
    checks = ["type(tape) is _Tape", "tape._thunk is _t", "tape._pending", "not tape._copies"]
    if t.ret == "active":
        params.append("dret")
        checks.append("type(dret) is float")
    out = ["None"] * len(annotated)
    for j, k in enumerate(t.active):
        out[k] = f"r[{j}]"
    names: dict[str, Any] = {"_other": checked, "_t": t, "_Tape": Tape}
    names.update({f"_C{k}": type(a) for k, a in enumerate(annotated)})
    names["_reverse"] = t.derivative.split[0].driver
    dret = ", dret" if t.ret == "active" else ""
    body = [
        "s = tape._annotated",
        f"if {' and '.join(same)}:",
        "    tape._pending = False",
        f"    r = _reverse(*tape._args, tape.address{dret})",
        f"    return {tuple_source(out)}",
    ]
    return dispatching([*params, "tape"], checks, body, names)


def _wraps(a: Annotation) -> tuple[str, ...]:
    """The attributes of what an annotation like `a` wraps: its value, its shadow."""
    return ("val", "dval") if a.shadows else ("val",)


_UNPICKLABLE_PASS = (
    "the passes of ez.autodiff_thunk hold compiled code and cannot be pickled: pickle the "
    "@ez.enzyme_jit function and call ez.autodiff_thunk where it is unpickled"
)


def autodiff_thunk(
    mode: Mode, f: EnzymeJit, *args: Any, modified_between: bool | Sequence[bool] = True
) -> tuple[ForwardPass, ReversePass]:
    """Split reverse mode: the forward and the reverse pass of `f` as two callables.

    `mode` is `ReverseSplitWithPrimal` or `ReverseSplitNoPrimal`; then optionally the return
    activity (`Active` for a float return, `Duplicated` for a returned array or tuple of
    arrays, `Const`; by default `Active` for a float, `Duplicated` for other returns holding
    floats), then annotated arguments fixing the argument types (their values are not used).

    `fwd(*args)` returns `(tape, primal or None, shadow of the return or None)`: the caller
    seeds a returned array's shadow (`+=` its cotangent) before `rev`. `rev(*args, [dret,]
    tape)` adds `Jᵀ`-products into the shadows and returns the adjoints of `Active` arguments
    (`dret`, the return's cotangent, only for an `Active` return). The reverse pass computes
    the derivative at the values the forward pass saw, even if arguments changed since.

    `modified_between=False` (Enzyme's `ReverseSplitModified` with no argument modified):
    the caller leaves the arguments as `fwd` left them until `rev` runs. The reverse pass
    then reads from them what the function read and did not overwrite, instead of keeping
    it on the tape, as combined mode does: less tape, a faster forward pass. `fwd` keeps a
    copy of the arrays' bytes and `rev` raises `EnzpyError` if they changed (arguments must
    be arrays, scalars or tuples of them). A sequence of one bool per argument says it of
    each (Enzyme.jl's tuple): arguments marked `False` are read again and checked, the
    others' values are kept on the tape.

    Examples
    --------
    >>> import numpy as np, enzpy as ez
    >>> @ez.enzyme_jit
    ... def f(x, a):
    ...     return a * (x * x).sum()
    >>> x, dx = np.array([1.0, 2.0]), np.zeros(2)
    >>> fwd, rev = ez.autodiff_thunk(ez.ReverseSplitWithPrimal, f, ez.Active,
    ...                              ez.Duplicated(x, dx), ez.Active(3.0))
    >>> tape, z, _ = fwd(ez.Duplicated(x, dx), ez.Active(3.0))
    >>> rev(ez.Duplicated(x, dx), ez.Active(3.0), 2.0, tape)   # return seeded 2.0
    (None, 10.0)
    >>> dx.tolist()
    [12.0, 24.0]
    """
    if mode not in (ReverseSplitWithPrimal, ReverseSplitNoPrimal):
        raise AnnotationError(
            f"autodiff_thunk takes ReverseSplitWithPrimal or ReverseSplitNoPrimal, got {mode!r}"
        )
    ret_activity, annotated = parse_arguments(mode, f, args, thunk=True)
    argtypes, kinds, ret = derivative_signature(mode, f, ret_activity, annotated)
    width = _width(annotated)
    general = partial(derivative, mode, f, argtypes, kinds, ret, width)
    kept = _unmodified(modified_between, len(annotated))
    if not kept:
        thunk = _Thunk(mode, f, ret, annotated, general(), width)
    else:
        for k in kept:
            _checkable(k, annotated[k].val)
        which = True if len(kept) == len(annotated) else kept
        unmodified = derivative(mode, f, argtypes, kinds, ret, width, unmodified=which)
        thunk = _Thunk(mode, f, ret, annotated, unmodified, width, general, kept)
    return ForwardPass(thunk, annotated), ReversePass(thunk, annotated)


def _unmodified(modified_between: bool | Sequence[bool], n: int) -> tuple[int, ...]:
    """The indices of the arguments `modified_between` says stay unmodified."""
    if isinstance(modified_between, bool):
        return () if modified_between else tuple(range(n))
    flags = tuple(modified_between)
    if len(flags) != n or not all(isinstance(m, bool) for m in flags):
        raise AnnotationError(
            f"modified_between is a bool or one bool per argument ({n}), got {modified_between!r}"
        )
    return tuple(k for k, m in enumerate(flags) if not m)
