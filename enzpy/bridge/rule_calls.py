"""Users' derivative rules (`enzpy.rules`) entered into the engine's table.

For each compiled overload of a function with rules, a `FunctionRule` keyed by its symbol:
its builders add to the derivative module wrappers with the interface of the derivative the
engine would synthesize (the function's LLVM parameters, then one shadow per active one,
then the tape in reverse mode). A wrapper calls a *glue* function compiled by Numba, which
calls the user's rule with Python values (linked in when the rule's code is small, else by
address: `by_address`):

- forward: `glue(a..., t...)` (the tangents of the active arguments) calls
  `rule(a0, t0, a1, t1, ...)` with zeros for inactive floats and arrays and None for the
  rest, and returns `(y, dy)`; the wrapper stores them in the return slot and its shadow;
- augmented: `glue(a...)` returns `(y, saved[, zeros_like(y)])`, the last for an array
  result (its shadow); the wrapper pushes the status, `saved` and that shadow on the tape
  (their scalar leaves, the order in which Numba passes them flattened);
- reverse: the wrapper pops them and, if the forward sweep succeeded, calls
  `glue(saved, dy, a..., shadows of the active arrays...)`, which calls `rule(saved, dy,
  a0, [s0,] a1, ...)`, then drops the tape's references to `saved` and the result's shadow;
  the wrapper adds the returned adjoints of active float arguments into their accumulators.
  `dy` is the result's shadow (an array result) or the cotangent in the return slot's
  shadow, which the wrapper takes (zeroes);
- release (a tape whose reverse sweep never runs): drops those references.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import numba
import numpy as np
from numba.core import types
from numba.core.errors import NumbaError
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic, overload, register_jitable

from llvm_passes import rules as table
from llvm_passes.ir import (
    I32,
    PTR,
    VOID,
    Argument,
    Block,
    Constant,
    Function,
    Instruction,
    Module,
    Type,
    Value,
    parse_type_text,
)
from llvm_passes.ir.builder import Builder, Namer
from llvm_passes.ir.values import const
from llvm_passes.tape import fail, pop, push

from ..memory import with_strides
from ..rules import RuleError, Rules, dispatcher_of, implementation, implemented, ruled, rules_of
from . import abi, capture
from .by_address import by_address
from .inline import MAX_INSTRUCTIONS
from .link import GLUE_OPTIONS
from .names import argument_types, demangle

_kept: list[Any] = []  # the glue dispatchers (their code stays loaded)
GLUE: set[str] = set()  # their symbols
# a wrapper's name: `{kind}_{ruled function}.{pattern}[.w{width}]` (`_Wrapper`)
_WRAPPER_NAME = re.compile(r"^(?:fwd|aug|rev|rel)rule_(.*)\.[cd]+(?:\.w\d+)?$")


def wrapped(wrapper: str) -> str:
    """The function whose rule the wrapper named `wrapper` calls (else `wrapper`)."""
    m = _WRAPPER_NAME.match(wrapper)
    return m.group(1) if m else wrapper


@intrinsic
def _release(typingctx: Any, value: Any) -> Any:
    """Drop one reference to `value` (the one the tape held)."""

    def codegen(context: Any, builder: Any, signature: Any, args: Sequence[Any]) -> Any:
        context.nrt.decref(builder, signature.args[0], args[0])
        return context.get_dummy_value()

    return types.none(value), codegen


def _conform(like, value):  # (no annotations: Numba compares the implementations')
    """`value`, laid out and typed as `like` (a copy where an array's layout or dtype
    differs): a rule's tangent computed by operations that return another layout."""


@intrinsic
def _typed_as(typingctx: Any, like: Any, value: Any) -> Any:
    """`value` (an array) with the type of `like`, an array of any layout with its dtype
    and dimensions: the same array (array types share one data model)."""

    def codegen(context: Any, builder: Any, signature: Any, args: Sequence[Any]) -> Any:
        return impl_ret_borrowed(context, builder, signature.return_type, args[1])

    return like(like, value), codegen


@register_jitable
def _strided_like(like, value):  # pragma: no cover  (compiled)
    """`value` laid out as `like`, an array of any layout: the same strides (the engine
    replays the primal's address arithmetic on its shadow)."""
    if value.shape != like.shape:
        raise ValueError("a rule returned a tangent shaped unlike its result")
    for stride in like.strides:
        if stride % like.itemsize:
            raise ValueError("a rule's result has strides enzpy cannot give its tangent")
    return _typed_as(like, with_strides(like, value))  # type: ignore[call-arg]  # (an intrinsic)


def _zeros_like(like):  # (no annotations: Numba compares the implementations')
    """Zeros laid out as `like` (its shadow): an array's with its strides."""


@overload(_zeros_like, jit_options=GLUE_OPTIONS)
def _zeros_like_impl(like):
    if isinstance(like, types.Array) and like.layout == "A":
        return lambda like: _strided_like(like, np.zeros(like.shape, like.dtype))
    return lambda like: np.zeros_like(like)


@overload(_conform, jit_options=GLUE_OPTIONS)
def _conform_impl(like, value):
    if (
        isinstance(like, types.Array)
        and isinstance(value, types.Array)
        and like.layout == "A"
        and (like.dtype, like.ndim) == (value.dtype, value.ndim)
    ):
        return _strided_like
    if isinstance(like, types.Array) and isinstance(value, types.Array) and like != value:

        def copy(like, value):  # pragma: no cover  (compiled)
            out = np.empty_like(like)
            for idx in np.ndindex(like.shape):
                out[idx] = value[idx]
            return out

        return copy
    return lambda like, value: value


def _conformed(t: types.Type, like: str, value: str) -> str:
    """Source of `value` conformed to `like` of type `t`, part by part for a tuple."""
    if isinstance(t, types.BaseTuple):
        parts = (_conformed(p, f"{like}[{k}]", f"{value}[{k}]") for k, p in enumerate(t.types))
        return "(" + "".join(f"{p}, " for p in parts) + ")"
    return f"_conform({like}, {value})"


def register(symbols: Iterable[str]) -> None:
    """Enter into the engine's table the rules of the functions among `symbols`: overloads
    of functions with rules, and library implementations declared to take some."""
    for name in set(symbols):
        found = _rules_of_symbol(name)
        if found is not None:
            _register(name, *found)


def declared_inactive(name: str) -> bool:
    """Whether calls to the function `name` were declared to carry no derivative
    (`ez.inactive`): the engine need not read its code."""
    found = _rules_of_symbol(name)
    return found is not None and found[0].inactive


def _rules_of_symbol(
    name: str,
) -> tuple[Rules, tuple, types.Type, frozenset[int] | None] | None:
    """(rules, argument types, result type, arguments written) of the function `name` when
    it is an overload of a function with rules or a library implementation declared to take
    some."""
    for dispatcher, rules in list(ruled().items()):
        for argtypes, cres in list(dispatcher.overloads.items()):
            if cres.fndesc.mangled_name == name:
                return rules, tuple(argtypes), cres.signature.return_type, None
    qualname = demangle(name)
    argtypes = argument_types(name) if implemented(qualname) else None
    if argtypes is None:
        return None
    argtypes = tuple(t for t in argtypes if not isinstance(t, types.Omitted))
    library = implementation(qualname, argtypes)
    if library is None:
        return None
    f = dispatcher_of(library.f)
    given = rules_of(f)
    if given is None:
        return None
    f.compile(argtypes)
    return given, argtypes, f.overloads[argtypes].signature.return_type, library.writes


def _register(
    name: str,
    rules: Rules,
    argtypes: tuple,
    restype: types.Type,
    writes: frozenset[int] | None = None,
) -> None:
    """`writes`: the arguments whose memory the function writes (None: any array)."""
    if rules.inactive:
        _register_inactive(name, argtypes)
        return
    call = _Call(rules, argtypes, restype, writes)
    inactive = frozenset(leaf.position for k in rules.inactive_args for leaf in call.layout[k])
    table.function_rule(
        name,
        table.FunctionRule(
            forward=call.forward if rules.forward is not None else None,
            reverse=call.reverse if rules.has("reverse") else None,
            inactive=inactive,
            outputs=call.outputs,
        ),
    )


def _register_inactive(name: str, argtypes: tuple) -> None:
    if name in table.RULES:
        return
    data = tuple(a.position for a in abi.flat_arguments(argtypes) if a.role == "data")
    table.no_derivative(
        name, why="declared inactive (ez.inactive)", effects=table.Effects(writes=(0, *data))
    )


def caller(dispatcher: Any, arity: int) -> Any:
    """An njit function calling `dispatcher`: what is differentiated when the function
    itself has rules (the engine then meets one call to it)."""
    params = ", ".join(f"a{k}" for k in range(arity))
    ns: dict[str, Any] = {"_f": dispatcher}
    exec(f"def call({params}):\n    return _f({params})\n", ns)  # noqa: S102 (our source)
    return numba.njit(**GLUE_OPTIONS)(ns["call"])


def _kind(t: types.Type, what: str) -> str:
    if isinstance(t, types.Float):
        return "float"
    if isinstance(t, types.Array) and isinstance(t.dtype, types.Float):
        return "array"
    if abi.contains_float(t):
        raise RuleError(
            f"{what} has type {t}: rules take floats, float arrays and values without "
            "derivative (integers, integer arrays)"
        )
    return "other"


def _result_kind(t: types.Type, what: str) -> str:
    """'none' (no floats), 'value' (a float or a tuple of floats: its cotangent is in the
    return slot's shadow), 'arrays' (a float array or a tuple of them: shadow arrays)."""
    if not abi.contains_float(t):
        return "none"
    parts = t.types if isinstance(t, types.BaseTuple) else (t,)
    if all(isinstance(p, types.Float) for p in parts):
        return "value"
    if all(_kind(p, what) in ("array", "other") for p in parts):
        return "arrays"
    raise RuleError(f"{what} has type {t}: a tuple mixing floats and arrays")


def _zeros(t: types.Type, expr: str) -> str:
    """Source of a shadow of `expr` of type `t`: zeros for float arrays, the value itself
    for parts without floats (the shadow of an integer is the integer)."""
    if isinstance(t, types.BaseTuple):
        return "(" + "".join(f"{_zeros(p, f'{expr}[{k}]')}, " for k, p in enumerate(t.types)) + ")"
    return f"_zeros_like({expr})" if abi.contains_float(t) else expr


def _leaves(b: Builder, v: Value) -> list[Value]:
    """The scalar leaves of an aggregate, in the order Numba passes them flattened."""
    t = v.type
    if t.kind not in ("struct", "array"):
        return [v]
    n = len(t.elems) if t.kind == "struct" else t.count
    return [leaf for k in range(n) for leaf in _leaves(b, b.extractvalue(v, k, hint="leaf"))]


def _leaf_types(t: Type) -> list[Type]:
    if t.kind == "struct":
        return [leaf for e in t.elems for leaf in _leaf_types(e)]
    if t.kind == "array":
        return _leaf_types(t.elems[0]) * t.count
    return [t]


def _llvm_type(t: types.Type) -> Type:
    return parse_type_text(abi.type_text(abi.target_context().get_value_type(t)))


class _Call:
    """One compiled overload of a function with rules, and the wrappers of its rules."""

    def __init__(
        self,
        rules: Rules,
        argtypes: tuple,
        restype: types.Type,
        writes: frozenset[int] | None = None,
    ) -> None:
        """`writes`: the arguments whose memory the function writes (None: any array)."""
        self.rules, self.argtypes, self.restype = rules, argtypes, restype
        self.writes = writes
        self.what = rules.py_func.__qualname__
        self.layout = abi.argument_layout(argtypes)
        self.kinds = [
            _kind(t, f"argument {name!r} of {self.what}")
            for t, name in zip(argtypes, rules.params, strict=True)
        ]
        self.result = _result_kind(restype, f"the result of {self.what}")
        self.stores = restype != types.none  # something to store in the return slot

    @property
    def outputs(self) -> frozenset[int]:
        """The return slot (a result with floats) and the data of the float arrays it may
        write."""
        ret = {0} if self.result != "none" else set()
        arrays = (
            g
            for k, (g, kind) in enumerate(zip(self.layout, self.kinds, strict=True))
            if kind == "array" and (self.writes is None or k in self.writes)
        )
        return frozenset(ret | {a.position for g in arrays for a in g if a.role == "data"})

    # ---- what the pattern says ------------------------------------------------------------
    def active(self, k: int, pattern: Sequence[bool]) -> bool:
        """Whether argument k comes with a tangent or shadow."""
        kind = self.kinds[k]
        roles = ("scalar_float",) if kind == "float" else ("data",) if kind == "array" else ()
        return any(pattern[a.position] for a in self.layout[k] if a.role in roles)

    def flat(self, k: int, params: list[Argument]) -> list[Value]:
        return [params[a.position] for a in self.layout[k]]

    def flat_shadow(self, k: int, params: list[Argument], shadows: dict[int, Argument]):
        """Argument k's tangent or shadow, flattened: a float's tangent, or a shadow array
        (the shadow pointers, the primal's sizes and strides)."""
        out: list[Value] = []
        for a in self.layout[k]:
            if a.position in shadows:
                out.append(shadows[a.position])
            elif a.role in ("meminfo", "parent"):
                out.append(Constant(PTR, "null"))
            else:
                out.append(params[a.position])
        return out

    # ---- glue -----------------------------------------------------------------------------
    def glue(self, kind: str, params: list[str], body: list[str], argtypes: list) -> tuple:
        """Compile a glue function calling the `kind` rule; (its symbol, its return type)."""
        rule = getattr(self.rules, kind, None)
        env: dict[str, Any] = {"_rule": rule and by_address(rule, MAX_INSTRUCTIONS), "np": np}
        env.update(_release=_release, _conform=_conform, _zeros_like=_zeros_like)
        for k, t in enumerate(self.argtypes):
            if self.kinds[k] == "float":
                env[f"_zero{k}"] = np.dtype(str(t)).type(0.0)
        source = f"def glue({', '.join(params)}):\n" + "".join(f"    {x}\n" for x in body)
        exec(source, env)  # noqa: S102 (our source)
        dispatcher = numba.njit(**GLUE_OPTIONS)(env["glue"])
        try:
            dispatcher.compile(tuple(argtypes))
        except NumbaError as e:
            raise RuleError(
                f"the {kind} rule of {self.what} does not compile for the argument types "
                f"{self.argtypes}: {e}"
            ) from None
        _kept.append(dispatcher)
        symbol, _, signature = capture.compiled_function(dispatcher, tuple(argtypes))
        GLUE.add(symbol)
        return symbol, signature.return_type

    def expect(self, got: types.Type, kind: str, want: types.Type, what: str) -> None:
        got = types.unliteral(got)
        if got != want:
            raise RuleError(f"the {kind} rule of {self.what} returns {what} {got}, not {want}")

    def rule_args(self, companions: list[str]) -> str:
        """The rule's arguments: each argument followed by its companion, if any."""
        return ", ".join(f"a{k}, {c}" if c else f"a{k}" for k, c in enumerate(companions))

    # ---- forward --------------------------------------------------------------------------
    def forward(
        self, module: Module, fn: Function, pattern: tuple[bool, ...], width: int = 1
    ) -> str:
        """The forward derivative; in batch mode (`width` lanes) the rule is called once per
        lane (the primal of the first call is the result, the others' are dropped)."""
        dup = [k for k in range(len(self.kinds)) if self.active(k, pattern)]
        ret = pattern[0] and self.result != "none"

        def call(lane: int) -> str:
            tangents = [
                f"t{k}_{lane}"
                if k in dup
                else f"_zero{k}"
                if kind == "float"
                else f"np.zeros_like(a{k})"
                if kind == "array"
                else "None"
                for k, kind in enumerate(self.kinds)
            ]
            return f"{'y' if lane == 0 else '_'}, dy{lane} = _rule({self.rule_args(tangents)})"

        lanes = range(width)
        dys = [_conformed(self.restype, "y", f"dy{lane}") if ret else "None" for lane in lanes]
        symbol, rt = self.glue(
            "forward",
            [f"a{k}" for k in range(len(self.kinds))]
            + [f"t{k}_{lane}" for k in dup for lane in lanes],
            [*map(call, lanes), f"return y, {', '.join(dys)}"],
            [*self.argtypes, *(self.argtypes[k] for k in dup for _ in lanes)],
        )
        self.expect(rt.types[0], "forward", self.restype, "a result of type")
        if ret:
            self.expect(rt.types[1], "forward", self.restype, "a tangent of type")
        w = _Wrapper(module, fn, pattern, "fwdrule", forward=True, width=width)
        flat = [v for k in range(len(self.kinds)) for v in self.flat(k, w.params)]
        flat += [
            v for k in dup for lane in lanes for v in self.flat_shadow(k, w.params, w.lanes[lane])
        ]
        out, status = w.call(symbol, rt, flat)
        if self.stores:
            w.b.store(w.b.extractvalue(out, 0, hint="y"), w.params[0])
        for lane in lanes if ret else ():
            w.b.store(w.b.extractvalue(out, 1 + lane, hint="dy"), w.lanes[lane][0])
        return w.finish(status)

    # ---- reverse --------------------------------------------------------------------------
    def reverse(
        self, module: Module, fn: Function, pattern: tuple[bool, ...], width: int = 1
    ) -> tuple:
        """The augmented, reverse and release functions; in batch mode (`width` lanes) the
        forward sweep runs the augmented rule once, the reverse sweep the reverse rule once
        per lane (each with its lane's cotangent and shadows)."""
        missing = "augmented" if self.rules.augmented is None else "reverse"
        if getattr(self.rules, missing) is None:
            raise RuleError(
                f"{self.what} has a {missing.replace('augmented', 'reverse')} "
                f"rule but no {missing} rule: reverse mode needs both"
            )
        n, lanes = len(self.kinds), range(width)
        array = self.result == "arrays"
        cotangents = [f"dy{lane}" for lane in lanes] if self.result != "none" else ["dy"]
        # the tape holds a reference to each array argument, as the reverse rule reads it:
        # a temporary freed after the call would hold other data by then
        held = "".join(f"a{k}, " for k, t in enumerate(self.argtypes) if abi.has_arrays(t))
        zeros = ", ".join(_zeros(self.restype, "y") for _ in lanes)  # a result shadow per lane
        aug, aug_rt = self.glue(
            "augmented",
            [f"a{k}" for k in range(n)],
            [
                f"y, s = _rule({', '.join(f'a{k}' for k in range(n))})",
                f"s = (s, ({held}))",
                f"return y, s, {zeros}" if array else "return y, s",
            ],
            list(self.argtypes),
        )
        self.expect(aug_rt.types[0], "augmented", self.restype, "a result of type")
        saved = aug_rt.types[1]
        shadows = cotangents if array else ["dy"]  # (the tape's result shadows, or None)
        release, _ = self.glue(
            "release",
            ["s", *shadows],
            ["_release(s)", *(f"_release({c})" for c in shadows if array), "return None"],
            [saved, *((self.restype,) * width if array else (types.none,))],
        )
        kept = [saved, *(self.restype for _ in lanes)] if array else [saved]  # on the tape
        dy = self.result != "none"
        dup = [k for k in range(n) if self.active(k, pattern)]
        arrays = [k for k in dup if self.kinds[k] == "array"]
        floats = [k for k, kind in enumerate(self.kinds) if kind == "float"]

        def call(lane: int) -> str:
            shadows = [
                "" if kind != "array" else f"d{k}_{lane}" if k in dup else f"np.zeros_like(a{k})"
                for k, kind in enumerate(self.kinds)
            ]
            cotangent = f"dy{lane}" if dy else "None"
            return f"r{lane} = _rule(s[0], {cotangent}, {self.rule_args(shadows)})"

        rev, rev_rt = self.glue(
            "reverse",
            ["s", *cotangents, *(f"a{k}" for k in range(n))]
            + [f"d{k}_{lane}" for k in arrays for lane in lanes],
            [
                *map(call, lanes),
                "_release(s)",
                *(f"_release({c})" for c in cotangents if array),
                f"return ({''.join(f'r{lane}, ' for lane in lanes)})",
            ],
            [
                saved,
                *((self.restype,) * width if dy else (types.none,)),
                *self.argtypes,
                *(self.argtypes[k] for k in arrays for _ in lanes),
            ],
        )
        one = rev_rt.types[0]  # (each lane's result)
        if floats and not (
            isinstance(one, types.BaseTuple)
            and len(one) == len(floats)
            and all(isinstance(t, types.Float) for t in one.types)
        ):
            names = ", ".join(self.rules.params[k] for k in floats)
            raise RuleError(
                f"the reverse rule of {self.what} returns {one}: it returns the adjoints "
                f"of the float arguments ({names}), a tuple of {len(floats)} floats"
            )
        return (
            self._augmented(module, fn, pattern, aug, aug_rt, width),
            self._reverse(module, fn, pattern, (rev, release), rev_rt, kept, arrays, floats, width),
            self._release(module, fn, pattern, release, kept, width),
        )

    def _augmented(self, module, fn, pattern, glue: str, rt: types.Type, width: int) -> str:
        w = _Wrapper(module, fn, pattern, "augrule", forward=False, width=width)
        flat = [v for k in range(len(self.kinds)) for v in self.flat(k, w.params)]
        out, status = w.call(glue, rt, flat)
        b = w.b
        if self.stores:
            b.store(b.extractvalue(out, 0, hint="y"), w.params[0])
        kept = [b.extractvalue(out, 1, hint="saved")]
        for lane, shadows in enumerate(w.lanes) if self.result == "arrays" else ():
            shadow = b.extractvalue(out, 2 + lane, hint="y.shadow")
            if 0 in shadows:
                b.store(shadow, shadows[0])
            kept.append(shadow)
        for leaf in (leaf for v in kept for leaf in _leaves(b, v)):
            push(b, w.tape, leaf)
        push(b, w.tape, status)
        return w.finish(status)

    def popped(self, w: _Wrapper, kept: list[types.Type]) -> tuple[Value, list[Value]]:
        """The status and the leaves of what the augmented wrapper pushed, in push order."""
        status = pop(w.b, w.tape, I32, "status")
        leaf_types = [leaf for t in kept for leaf in _leaf_types(_llvm_type(t))]
        return status, [pop(w.b, w.tape, t, "kept") for t in reversed(leaf_types)][::-1]

    def released(self, popped: list[Value]) -> list[Value]:
        """The release glue's arguments: what the augmented wrapper pushed, then None for
        the result's shadows when it has none."""
        return popped if self.result == "arrays" else [*popped, Constant(PTR, "null")]

    def _reverse(self, module, fn, pattern, glues, rt, kept, arrays, floats, width) -> str:
        """`glues`: the reverse glue, and the release glue, called if the other raises."""
        w = _Wrapper(module, fn, pattern, "revrule", forward=False, width=width)
        b = w.b
        status, popped = self.popped(w, kept)  # (saved, then each lane's result shadow)
        w.if_ok(status)
        leaves = popped
        if self.result == "value":
            ty = _llvm_type(self.restype)
            for shadows in w.lanes:  # each lane's cotangent, taken from its return shadow
                if 0 in shadows:
                    dy = b.load(ty, shadows[0], hint="dy")
                    b.store(Builder.zero(ty), shadows[0])
                else:
                    dy = Builder.zero(ty)
                leaves = leaves + _leaves(b, dy)
        elif self.result == "none":
            leaves = leaves + [Constant(PTR, "null")]  # dy: None
        flat = leaves + [v for k in range(len(self.kinds)) for v in self.flat(k, w.params)]
        flat += [
            v
            for k in arrays
            for lane in range(width)
            for v in self.flat_shadow(k, w.params, w.lanes[lane])
        ]
        out = w.call_reporting(glues[0], rt, flat, (glues[1], self.released(popped)))
        for lane, shadows in enumerate(w.lanes if floats else ()):
            adjoints = b.extractvalue(out, lane, hint="adj")
            for j, k in enumerate(floats):
                acc = shadows.get(self.layout[k][0].position)
                if acc is None:
                    continue
                ty = w.params[self.layout[k][0].position].type
                adj = b.extractvalue(adjoints, j, hint="adj")
                if adj.type != ty:
                    adj = b.cast("fptrunc" if adj.type.bits > ty.bits else "fpext", adj, ty)
                b.store(b.fadd(b.load(ty, acc, hint="acc"), adj, "acc"), acc)
        return w.finish(None)

    def _release(self, module, fn, pattern, glue: str, kept: list[types.Type], width) -> str:
        w = _Wrapper(module, fn, pattern, "relrule", forward=False, width=width)
        status, leaves = self.popped(w, kept)
        w.if_ok(status)
        w.call(glue, types.none, self.released(leaves))
        return w.finish(None)


class _Wrapper:
    """A function with the interface of a derivative the engine would make for `fn`."""

    def __init__(
        self,
        module: Module,
        fn: Function,
        pattern: tuple[bool, ...],
        kind: str,
        forward: bool,
        width: int = 1,
    ) -> None:
        self.module, self.forward = module, forward
        self.params = [Argument(a.type, a.name, "", k) for k, a in enumerate(fn.args)]
        # per lane (batch mode), parameter -> its shadow or tangent; `shadows`: lane 0's
        self.lanes: list[dict[int, Argument]] = [{} for _ in range(width)]
        self.shadows = self.lanes[0]
        extra: list[Argument] = []
        for k, (a, p) in enumerate(zip(fn.args, pattern, strict=True)):
            for lane, shadows in enumerate(self.lanes) if p else ():
                ty = a.type if forward or a.type.is_ptr else PTR  # reverse: accumulators
                shadows[k] = Argument(ty, f"{a.name}.shadow{lane or ''}", "", 0)
                extra.append(shadows[k])
        if not forward:
            self.tape = Argument(PTR, "tape", "", 0)
            extra.append(self.tape)
        every = [*self.params, *extra]
        for k, a in enumerate(every):
            a.index = k
        bits = "".join("d" if p else "c" for p in pattern) + (f".w{width}" if width > 1 else "")
        ret = fn.ret_type if kind in ("fwdrule", "augrule") else VOID
        self.fn = Function(f"{kind}_{fn.name}.{bits}", ret, every)
        self.fn.blocks.append(Block("entry"))
        self.b = Builder(module, Namer(self.fn), self.fn.blocks[0])

    def call(
        self, glue: str, rt: types.Type, args: list[Value], excinfo: Value | None = None
    ) -> tuple[Value, Value]:
        """Call a glue function (Numba's convention; `excinfo`: where an exception's info
        goes, by default the primal's); its loaded result and its status."""
        b = self.b
        ty = _llvm_type(rt)
        slot = b.alloca(ty, hint="out")
        excinfo = self.params[1] if excinfo is None else excinfo
        status = b.call(glue, [slot, excinfo, *args], I32, "status")
        return b.load(ty, slot, hint="out"), status

    def call_reporting(
        self, glue: str, rt: types.Type, args: list[Value], otherwise: tuple[str, list[Value]]
    ) -> Value:
        """Call a glue function from a reverse sweep, which cannot stop: an exception it
        raises is reported on the tape (`tape.fail`), for the entry to raise afterwards,
        and the glue function `otherwise` (name, arguments) called instead (what the
        other would have released)."""
        b = self.b
        excinfo = b.alloca(PTR, hint="excinfo")  # (the primal's may be gone by now)
        b.store(Constant(PTR, "null"), excinfo)
        out, status = self.call(glue, rt, args, excinfo)
        ok, failed = Block("called"), Block("raised")
        self.fn.blocks.extend([failed, ok])
        nonzero = b.icmp("ne", status, const(I32, 0), "nonzero")
        b.insert(Instruction("br", operands=[nonzero], labels=[failed.name, ok.name]))
        b.position_at_end(failed)
        fail(b, self.tape, b.load(PTR, excinfo, hint="failure"))
        self.call(otherwise[0], types.none, otherwise[1])
        b.insert(Instruction("br", labels=[ok.name]))
        b.position_at_end(ok)
        return out

    def if_ok(self, status: Value) -> None:
        """Continue in a block reached when `status` is 0; the other path returns."""
        ok, done = Block("ok"), Block("done")
        self.fn.blocks.extend([ok, done])
        failed = self.b.icmp("ne", status, const(I32, 0), "failed")
        self.b.insert(Instruction("br", operands=[failed], labels=["done", "ok"]))
        self.b.position_at_end(done)
        self.b.insert(Instruction("ret"))
        self.b.position_at_end(ok)

    def finish(self, status: Value | None) -> str:
        self.b.insert(Instruction("ret", operands=[status] if status is not None else []))
        self.module.add_function(self.fn)
        return self.fn.name
