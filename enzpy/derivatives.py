"""Build (and cache) the native derivative of an `enzyme_jit` function for one signature.

Numba compiles the primal; the bridge hands its function-optimized IR (and its callees')
to the engine; the engine synthesizes the derivative; the bridge links it as a driver.
Set `ENZPY_DUMP_IR=1` to print the synthesized IR, or `ENZPY_DUMP_IR=<dir>` to write it.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import llvmlite.binding as llvm
import numba
import numpy as np
from numba.core.errors import NumbaDebugInfoWarning

import llvm_passes
from llvm_passes.analysis import readonly
from llvm_passes.ir import Module, parse_module, parse_type_text
from llvm_passes.rules.parallel import PARALLEL_FOR
from llvm_passes.transforms.sign_tests import fold_sign_tests

from . import bridge, disk_cache
from .bridge import link, pool, rule_calls
from .bridge.inline import inline_into_root, inline_small_callees
from .bridge.names import construct_hint, demangle_all
from .bridge.parfors import (
    ADDITIVE,
    REDUCTIONS,
    combiners,
    non_additive_updates,
    parallel_calls,
)
from .bridge.powers import powers_as_intrinsics
from .bridge.refcounts import drop_argument_refcounts
from .errors import AnnotationError, DroppedDerivativeWarning, EnzpyError, NoDerivativeError
from .modes import Mode
from .rules import rules_of
from .signatures import check_jit

_cache: dict[tuple, Derivative] = {}
_SIZE_ROLES = ("nitems", "itemsize", "shape")  # flattened array arguments never negative


@dataclass(frozen=True)
class Derivative:
    """A compiled derivative: its driver and what produced it (for introspection)."""

    linked: link.DerivativeDriver  # (the driver compiles on first use)
    call: Any  # the driver's intrinsic, for njit code: an outcome for `link.finish`
    symbol: str
    restype: Any
    argtypes: tuple
    synthesis: Callable[[], llvm_passes.ForwardResult | llvm_passes.ReverseResult]  # engine's
    split: tuple = ()  # split mode: the reverse and release drivers (`driver` augments)
    drop_tapes: Any = None  # reverse: frees the storage kept between calls, returns its bytes
    parallel: bool = False  # launches parallel loops (Numba's thread pool)

    @property
    def driver(self) -> Any:
        """driver(*primal_args, *shadows) -> (primal, tangent or adjoints), a Numba dispatcher."""
        return self.linked.driver


_unused: dict[tuple, tuple[Module, str, Any, Any]] = {}  # made by `may_write`


def primal_module(dispatcher: Any, argtypes: tuple) -> tuple[Module, str, Any, Any]:
    """The merged function-optimized IR of the compiled primal and its Numba callees, small
    callees inlined, the reference counting of argument arrays dropped where it is idle,
    negative-index wraparound dropped where an index is never negative, the calls between
    overloads of a recursive function made direct, and the IR of the derivatives it calls
    linked in (nested differentiation).

    A primal loaded from Numba's disk cache (or compiled before enzpy was imported) has no
    captured IR: it is compiled again, uncached, for differentiation. (Each call gets a
    module of its own to change.)"""
    made = _unused.pop((dispatcher, argtypes), None)
    if made is not None:
        return made
    dispatcher.compile(argtypes)
    symbol, library, signature = bridge.compiled_function(dispatcher, argtypes)
    if bridge.function_ir(symbol) is None:
        dispatcher = bridge.capture.compiled_afresh(dispatcher, argtypes)
        symbol, library, signature = bridge.compiled_function(dispatcher, argtypes)
    texts = parallel_calls(_modules_for(symbol))
    rule_calls.register(
        name
        for text in texts
        for name in (*bridge.capture.defined_symbols(text), *bridge.capture.called_symbols(text))
    )
    module = inline_small_callees(powers_as_intrinsics(texts), symbol)
    unresolved = bridge.capture.UNRESOLVED  # recursion between overloads: direct calls
    link.calls_made_direct(
        module, {g: g[len(unresolved) :] for g in module.globals if g.startswith(unresolved)}
    )
    linked, refused = link.link_derivatives(module)
    if linked:
        module = _inlined_into(module, symbol, linked)
    if refused:
        raise NoDerivativeError(
            f"{dispatcher.py_func.__qualname__} calls a split-mode derivative "
            "(ez.autodiff_thunk): differentiating it (nested differentiation over split "
            "mode) is not supported; call ez.autodiff or ez.gradient inside instead."
        )
    flat = bridge.abi.flat_arguments(argtypes)
    root = module.functions[symbol]
    drop_argument_refcounts(root, [a.position for a in flat if a.role == "meminfo"])
    fold_sign_tests(root, frozenset(a.position for a in flat if a.role in _SIZE_ROLES))
    return module, symbol, library, signature.return_type


def _modules_for(symbol: str) -> list[str]:
    """The module texts of `symbol` and its Numba callees, but for callees declared inactive
    (the engine does not read their code)."""
    return bridge.modules_for(symbol, opaque=rule_calls.declared_inactive)


_written: dict[tuple, tuple[bool, ...]] = {}


def may_write(f: Any, argtypes: tuple) -> tuple[bool, ...]:
    """Per argument of the function of `f` (an `EnzymeJit`) for `argtypes`, whether it may
    write the argument's memory; True where unknown (every argument of a function with
    rules). Kept on disk for `cache=True` functions (whose derivatives load without the
    IR this analysis reads)."""
    dispatcher = f.dispatcher
    key = (dispatcher, argtypes)
    if key not in _written:
        _written[key] = disk_cache.recalled(f, ("written", argtypes)) or _written_by(f, argtypes)
    return _written[key]


def _written_by(f: Any, argtypes: tuple) -> tuple[bool, ...]:
    everything = (True,) * len(argtypes)
    if rules_of(f.dispatcher) is not None:
        return everything
    try:
        made = primal_module(f.dispatcher, argtypes)
    except EnzpyError:  # (it is raised again where the derivative is built)
        return everything
    _unused[(f.dispatcher, argtypes)] = made  # for the derivative built next (this only reads it)
    module, symbol = made[:2]
    at = readonly.written_arguments(module, module.functions[symbol])
    if at is None:
        return everything
    layout = bridge.abi.argument_layout(argtypes)
    written = tuple(any(a.position in at for a in g) for g in layout)
    disk_cache.remember(f, ("written", argtypes), written)
    return written


def _inlined_into(module: Module, root: str, linked: set[str]) -> Module:
    """`module` with the derivatives it links, and the functions calling them (the code of
    `ez.autodiff` in jitted code), inlined into their callers: in the root, the engine may
    load the inner derivative's inputs again rather than keep them."""
    callers = {
        fn.name
        for fn in module.functions.values()
        if fn.name != root
        and any(i.opcode == "call" and i.callee_name in linked for i in fn.instructions())
    }
    return parse_module(inline_into_root(module.text(), root, linked | callers))


def derivative(
    how: Mode,
    f: Any,
    argtypes: tuple,
    kinds: tuple[str, ...],
    ret: str,
    width: int = 1,
    unmodified: bool | tuple[int, ...] = False,
) -> Derivative:
    """The derivative of `f` for `argtypes` in mode `how` (forward, reverse or split mode;
    with or without the primal, one derivative); `kinds` gives 'const' / 'dup' per
    argument, `ret` the return activity ('dup', 'active' or 'const'); `width` the number of
    derivatives carried per active value (batch mode); `unmodified` (split mode): the caller
    leaves the arguments' memory unchanged between the passes, which may read it again, and
    passes arrays whose memory does not overlap (`link.distinct_arrays`); a tuple: the
    indices of the arguments whose memory it leaves unchanged (the others' is taped). With
    `cache=True` it is loaded from, or written to, the disk cache (`disk_cache`)."""
    key = (how.reverse, how.split, unmodified, f, argtypes, kinds, ret, width)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    check_jit()
    with _gc_paused():
        out = _derivative(how, f, argtypes, kinds, ret, width, unmodified)
    _cache[key] = out
    return out


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused: synthesis makes millions of objects that
    live until it ends (the parsed IR), each of which would make the collector traverse the
    process's whole heap again."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _derivative(
    how: Mode,
    f: Any,
    argtypes: tuple,
    kinds: tuple[str, ...],
    ret: str,
    width: int,
    unmodified: bool | tuple[int, ...],
) -> Derivative:
    primal = _primal(f, how.reverse, kinds)
    shape = (how.reverse, how.split, unmodified, argtypes, kinds, ret, width, f.flush_denormals)
    stored = disk_cache.entry(f, shape)
    loaded = stored is not None and stored.library is not None
    synthesis = partial(_synthesis, how, f, primal, argtypes, kinds, ret, width, unmodified)
    s = _stored_synthesis(primal, argtypes, kinds, ret, stored) if loaded else synthesis()
    for message in s.warnings:
        warnings.warn(message, DroppedDerivativeWarning, stacklevel=_user_frame())
    text, names = s.text, s.names
    drop = names.get("drop")
    exports = (drop,) if drop else ()
    split: tuple[Any, ...] = ()
    if how.split:
        entry_names = (names["fn"], *names["split"])
        points = (link.AUGMENT, link.REVERSE_SPLIT, link.RELEASE)
        entries = {n: replace(ep, width=width) for n, ep in zip(entry_names, points, strict=True)}
        drvs = bridge.make_drivers(
            text, entries, s.library, argtypes, s.restype, s.acts, exports=exports, stored=stored
        )
        drv = drvs[entry_names[0]]
        split = (drvs[entry_names[1]], drvs[entry_names[2]])
    else:
        seed = (1.0 if ret == "active" else 0.0) if how.reverse else None
        drv = bridge.make_driver(
            text,
            names["fn"],
            s.library,
            argtypes,
            s.restype,
            s.acts,
            seed=seed,
            aliased=names.get("aliased"),
            exports=exports,
            nestable=partial(_nestable, primal, argtypes, s.acts, s.pointee)
            if how.reverse and width == 1
            else None,
            width=width,
            stored=stored,
        )
    if stored is not None and not loaded:
        stored.text, stored.names, stored.warnings = text, names, s.warnings
        stored.save()

    def engine_result() -> llvm_passes.ForwardResult | llvm_passes.ReverseResult:
        result = s.result or synthesis().result  # (synthesized again when loaded)
        assert result is not None
        return result

    return Derivative(
        drv,
        drv.call,
        s.symbol,
        s.restype,
        argtypes,
        engine_result,
        split,
        partial(_drop_tapes, drv, drop) if drop else None,
        PARALLEL_FOR in text,
    )


def _drop_tapes(drv: link.DerivativeDriver, drop: str) -> int:
    """Free the storage the derivative's tape cells keep (its aliased twin's too, if built);
    the bytes freed."""
    freed = int(ctypes.CFUNCTYPE(ctypes.c_int64)(drv.exports[drop])())
    if drv.twin is not None and drv.twin.built:
        freed += int(ctypes.CFUNCTYPE(ctypes.c_int64)(drv.twin.address(drop))())
    return freed


@dataclass
class _Synthesis:
    """A synthesized derivative (or one loaded from the disk cache: `result` None)."""

    text: str
    names: dict[str, Any]  # the engine's entry points: fn, split, aliased, drop
    symbol: str  # the primal's
    library: Any  # the primal's code library (None when loaded)
    restype: Any
    acts: list
    pointee: list
    warnings: list[str]
    result: llvm_passes.ForwardResult | llvm_passes.ReverseResult | None = None


def _refuse_non_additive_reductions(f: Any, primal: Any, argtypes: tuple, symbol: str) -> None:
    """Refuse reverse mode of a parallel loop reducing other than by `+=`/`-=`: the adjoint
    of a per-thread partial result would depend on which thread ran which chunk."""
    other = combiners(_modules_for(symbol)) - {ADDITIVE}
    if other:
        lines = non_additive_updates(primal, argtypes)
        raise NoDerivativeError(
            f"{f.py_func.__qualname__}: reverse mode of a prange reduction combined by "
            + ", ".join(f"{c} ({REDUCTIONS.get(c, 'not a sum')})" for c in sorted(other))
            + "".join(f"\n  at {line}" for line in lines)
            + "\n(only additive reductions, s += ... or s -= ..., are supported): its "
            "partial results' adjoints depend on the thread that computed them; use forward "
            "mode, or differentiate a serial version of the function"
        )


def _synthesis(
    how: Mode,
    f: Any,
    primal: Any,
    argtypes: tuple,
    kinds: tuple[str, ...],
    ret: str,
    width: int,
    unmodified: bool | tuple[int, ...],
) -> _Synthesis:
    """The engine's derivative of `primal`; its errors raised with the Python names."""
    module, symbol, library, restype = primal_module(primal, argtypes)
    if how.reverse:
        _refuse_non_additive_reductions(f, primal, argtypes, symbol)
    acts, pointee = _activities(argtypes, restype, kinds, ret)
    synthesize = _synthesizer(how, argtypes, restype, pointee, width, unmodified, f.flush_denormals)
    try:
        result = synthesize(module, symbol, acts)
    except llvm_passes.NoDerivativeError as e:
        unseen = _without_ir(module, e)
        if unseen is not None:
            raise NoDerivativeError(_with_python_name(unseen, f)) from None
        located = e if e.located else _debug_build(synthesize, f, argtypes, acts)
        if not isinstance(located, llvm_passes.NoDerivativeError):
            located = e
        if not located.given:  # (a function with rules: the engine's hint says why not)
            located.hint = construct_hint(demangle_all(str(located))) or located.hint
        raise NoDerivativeError(_with_python_name(str(located), f)) from None
    dropped = result.activity.dropped
    messages = _dropped_messages(f, argtypes, dropped, synthesize, acts) if dropped else []
    text = result.module_text  # (printed once: a derivative's whole module)
    _dump(f, text)
    names = {
        "fn": result.fn_name,
        "split": tuple(getattr(result, "split_names", ())),
        "aliased": getattr(result, "aliased_name", None),
        "drop": getattr(result, "drop_name", None),
    }
    return _Synthesis(text, names, symbol, library, restype, acts, pointee, messages, result)


def _stored_synthesis(
    primal: Any, argtypes: tuple, kinds: tuple[str, ...], ret: str, stored: Any
) -> _Synthesis:
    """The synthesis a disk-cache entry holds, for the primal Numba compiled (or loaded)."""
    primal.compile(argtypes)
    symbol, _, signature = bridge.compiled_function(primal, argtypes)
    acts, pointee = _activities(argtypes, signature.return_type, kinds, ret)
    return _Synthesis(
        stored.text,
        stored.names,
        symbol,
        None,
        signature.return_type,
        acts,
        pointee,
        stored.warnings,
    )


def _activities(argtypes: tuple, restype: Any, kinds: tuple[str, ...], ret: str) -> tuple:
    """The engine's activity of each LLVM argument, and the element types of pointers."""
    ret_kind = (
        "const"
        if ret == "const" or not bridge.abi.contains_float(restype)
        else "dup_noneed"
        if ret == "dup_noneed" and link.float_valued(restype)
        else "dup"
    )  # a returned array is boxed: its primal must exist
    acts = bridge.llvm_activities(argtypes, restype, kinds, ret=ret_kind)
    pointee = [t and parse_type_text(t) for t in bridge.abi.pointee_types(argtypes, restype)]
    return acts, pointee


def _primal(f: Any, reverse: bool, kinds: tuple[str, ...]) -> Any:
    """The dispatcher to differentiate for `f`: its own, or a caller of it when rules
    give its derivative (they are applied where it is called)."""
    declared = rules_of(f.dispatcher)
    if declared is None:
        return f.dispatcher
    named = [declared.params[k] for k in declared.inactive_args if kinds[k] != "const"]
    if named:
        raise AnnotationError(
            f"{f.py_func.__qualname__}: {', '.join(named)} never carries a derivative "
            "(ez.inactive_arg): pass it as Const"
        )
    if declared.inactive or declared.has("reverse" if reverse else "forward"):
        return rule_calls.caller(f.dispatcher, len(kinds))
    return f.dispatcher


def _nestable(dispatcher: Any, argtypes: tuple, acts: list, pointee: list) -> tuple[str, str]:
    """The IR (text, entry name) of a reverse derivative's twin for nested differentiation:
    the same derivative on the nestable tape runtime."""
    module, symbol, _, restype = primal_module(dispatcher, argtypes)
    result = llvm_passes.reverse(
        module,
        symbol,
        acts,
        pointee=pointee,
        nestable=True,
        reverse_failed=link.reverse_failed(argtypes, restype),
    )
    return result.module_text, result.fn_name


_X86_64 = llvm.get_process_triple().startswith("x86_64")  # (flush_denormals: MXCSR)
_TAPE_BYTES = np.zeros(1, dtype=np.int64)  # the bytes of the last tape, as the symbol:
_TAPE_BYTES_SYMBOL = "enzpy.last_tape_bytes"
llvm.add_symbol(_TAPE_BYTES_SYMBOL, _TAPE_BYTES.ctypes.data)


def _synthesizer(
    how: Mode,
    argtypes: tuple,
    restype: Any,
    pointee: list,
    width: int,
    unmodified: bool | tuple[int, ...],
    flush_denormals: bool,
) -> Callable[..., Any]:
    """The engine's synthesizer for mode `how`, with its options for these types."""
    if not how.reverse:
        return partial(llvm_passes.forward, pointee=pointee, width=width)
    return partial(
        llvm_passes.reverse,
        pointee=pointee,
        width=width,
        tape_bytes=_TAPE_BYTES_SYMBOL,
        out_of_memory=link.out_of_memory(argtypes, restype),  # raising MemoryError
        reverse_failed=link.reverse_failed(argtypes, restype),  # raising a rule's exception
        split=how.split,
        flush_denormals=flush_denormals and _X86_64,
        unmodified=(
            unmodified
            if isinstance(unmodified, bool)
            else frozenset(
                leaf.position
                for k in unmodified
                for leaf in bridge.abi.argument_layout(argtypes)[k]
            )
        ),
        # the driver (combined mode) or the thunk (split, unmodified) checks that the arrays'
        # memory does not overlap
        distinct=link.distinct_arrays(argtypes) if unmodified or not how.split else frozenset(),
    )


def clear_cache() -> None:
    """Forget every derivative built (freeing the tape storage they keep)."""
    release_tapes()
    _cache.clear()
    _written.clear()
    _unused.clear()


def release_tapes() -> int:
    """Free the memory that derivatives keep between calls: the tape storage of
    reverse-mode derivatives (each keeps the largest tape it has needed, so that later calls
    find their memory ready) and the large blocks they allocated (`bridge.pool`); returns
    how many bytes were freed. The next call of a derivative allocates them afresh.

    Examples
    --------
    >>> import numpy as np, enzpy as ez
    >>> @ez.enzyme_jit
    ... def f(x):
    ...     s = 0.0
    ...     for i in range(x.shape[0]):
    ...         s += np.sin(x[i]) * x[i]
    ...     return s
    >>> x = np.linspace(0.0, 1.0, 1000)
    >>> _ = ez.autodiff(ez.Reverse, f, ez.Active, ez.Duplicated(x, np.zeros_like(x)))
    >>> ez.release_tapes() >= ez.last_tape_bytes() > 0
    True
    >>> ez.release_tapes()
    0
    """
    tapes = sum(d.drop_tapes() for d in list(_cache.values()) if d.drop_tapes is not None)
    return tapes + pool.release()


def last_tape_bytes() -> int:
    """Bytes the most recent reverse-mode call kept on its tape (values the reverse pass
    needs and the control-flow path); released when the call returns."""
    return int(_TAPE_BYTES[0])


def _debug_build(synthesize: Any, f: Any, argtypes: tuple, acts: list) -> Any:
    """Recompile `f` with debug info and differentiate again, to learn source lines (Numba
    keeps them only in debug builds): the result, the engine's error, or None."""
    options = {**f.numba_options, "debug": True}
    debug = numba.njit(**options)(f.py_func)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NumbaDebugInfoWarning)
            module, symbol, _, _ = primal_module(debug, argtypes)
            return synthesize(module, symbol, acts)
    except llvm_passes.NoDerivativeError as e:
        return e
    except Exception:  # locating is a courtesy; never mask the original error
        return None


def _user_frame() -> int:
    """The `stacklevel` of the innermost caller outside enzpy, the code it generates and
    Numba's compiler (warnings point at it)."""
    inside = (os.path.dirname(__file__), "<enzpy", os.path.dirname(numba.__file__))
    frame: Any = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(inside):
        frame, level = frame.f_back, level + 1
    return level


def _dropped_messages(
    f: Any, argtypes: tuple, dropped: dict, synthesize: Any, acts: list
) -> list[str]:
    """Warnings that active data stored into a Const argument and read back loses its
    derivative, naming the argument and the Python line of the write."""
    if not all(inst.loc for inst in dropped.values()):
        debug = _debug_build(synthesize, f, argtypes, acts)
        if isinstance(debug, llvm_passes.ForwardResult | llvm_passes.ReverseResult):
            dropped = {**dropped, **{k: i for k, i in debug.activity.dropped.items() if i.loc}}
    names = f.py_func.__code__.co_varnames
    messages = []
    for k, group in enumerate(bridge.abi.argument_layout(argtypes)):
        insts = [dropped[a.position] for a in group if a.position in dropped]
        if insts:
            where = f" at {insts[0].loc}" if insts[0].loc else ""
            messages.append(
                f"{f.py_func.__qualname__}: active data is written into `{names[k]}` "
                f"(argument {k}, Const){where} and read back: that part of the derivative "
                f"is dropped (Const memory carries no derivative). Pass `{names[k]}` as "
                "Duplicated to keep it."
            )
    return messages


def _without_ir(module: Module, e: llvm_passes.NoDerivativeError) -> str | None:
    """The message for `e` when it refuses a call to a Numba function enzpy has no IR for."""
    for fn in module.functions.values():
        if (
            fn.is_declaration
            and fn.name.startswith("_ZN")
            and e.what.startswith(f"a call to {fn.name}")
        ):
            if fn.name in rule_calls.GLUE:
                return (
                    f"the derivative of {rule_calls.wrapped(e.fn)} is given by rules "
                    "(enzpy.rules: a user's, or enzpy's for np.linalg, np.interp, np.sort), "
                    "whose calls cannot be differentiated again: nested differentiation "
                    "through a function with rules is not supported"
                )
            return (
                f"enzpy has no IR for helper {fn.name} (loaded from Numba's disk cache, "
                "or compiled before enzpy was imported, and it could not be compiled "
                f"again), so it cannot differentiate the call to it in function {e.fn}"
                f"{' at ' + e.loc if e.loc else ''}"
            )
    return None


def _with_python_name(msg: str, f: Any) -> str:
    msg = demangle_all(msg)
    code = getattr(f.py_func, "__code__", None)
    where = f"{code.co_filename}:{code.co_firstlineno}" if code else "?"
    return f"{msg}\n(while differentiating {f.py_func.__qualname__}, defined at {where})"


def _dump(f: Any, text: str) -> None:
    target = os.environ.get("ENZPY_DUMP_IR", "")
    if not target or target == "0":
        return
    if target in ("1", "stderr"):
        print(f"; ---- enzpy IR for {f.py_func.__qualname__}\n{text}", file=sys.stderr)
        return
    os.makedirs(target, exist_ok=True)
    path = os.path.join(target, f"{f.py_func.__qualname__}.ll")
    with open(path, "w") as fh:
        fh.write(text)
