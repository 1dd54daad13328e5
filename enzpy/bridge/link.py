"""Turn a synthesized derivative module into a Numba code library and an njit driver."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import llvmlite.binding as llvm
import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.core.callconv import RETCODE_USEREXC, excinfo_t
from numba.core.compiler_lock import global_compiler_lock
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic
from numba.np.arrayobj import extents_may_overlap, get_array_memory_extents

from llvm_passes import tape
from llvm_passes.ir import PTR, GlobalRef, Module, Value, parse_module

from ..errors import EnzpyError
from . import capture, pool
from .abi import Activity, argument_layout, as_activity, shadowed_args, target_context
from .by_address import ADDRESSED
from .inline import inline_always
from .parfors import lower_parallel_calls

__all__ = [
    "CallShape",
    "DerivativeDriver",
    "EntryPoint",
    "make_driver",
    "make_drivers",
    "clear_cache",
]

_counter = itertools.count(1)
# the derivatives' machine code as callers see it: address -> (entry name, how it is called)
_addresses: dict[int, tuple[str, EntryPoint]] = {}
# for nested differentiation, per entry name: the IR of its module (forward mode), or how to
# build the IR of its nestable twin (reverse mode) and the name the twin's entry takes
_texts: dict[str, str] = {}
_nestable: dict[str, tuple[Callable[[], tuple[str, str]], str]] = {}
TAPE_BYTES = tape.TAPE_BYTES  # the header: llvm_passes.tape.TAPE_TYPE
_cache: dict[Any, dict[str, DerivativeDriver]] = {}  # per module and call shapes
_cache_lock = threading.Lock()


class TwinNeeded(Exception):
    """Raised by the code calling a derivative from Python when the memory of two array
    arguments overlaps and the derivative's aliased twin is not built yet: build it
    (`DerivativeDriver.twin_address`) and call again."""


@dataclass
class DerivativeDriver:
    """A compiled derivative: njit driver, intrinsic for use inside njit code, and its library.

    Both call the library's machine code by address: calling them, from Python or from njit
    code, optimizes and compiles nothing more (the calling njit code cannot be cached). The
    driver is shared by every derivative of its calling shape (`CallShape`), compiled on
    first use, and given this derivative's `table`."""

    shape: CallShape
    call: Any  # the @intrinsic for njit code, same arguments: an outcome for `finish`
    table: np.ndarray  # the entry point's address, and the aliased entry's (or 0)
    library: Any  # the Numba code library holding the derivative
    symbol: str  # the derivative's (unique) symbol in `library`
    exports: dict[str, int] = field(default_factory=dict)  # other functions: name -> address
    twin: Twin | None = None  # the aliased twin, built on first need

    def twin_address(self) -> int:
        """The aliased twin's address, in the table from now on (built if it is not)."""
        if not self.table[1]:
            assert self.twin is not None, "a derivative without a twin needs none"
            self.table[1] = self.twin.address(self.twin.entry)
        return int(self.table[1])

    @functools.cached_property
    def driver(self) -> Any:
        """driver(*primal_args, *shadows) -> (primal, tangent): the shared Numba dispatcher
        with this derivative's table bound (its twin built when a call needs it)."""
        call = functools.partial(self.shape.driver(), self.table.ctypes.data)
        if self.twin is None:
            return call

        def driver(*args: Any) -> Any:
            try:
                return call(*args)
            except TwinNeeded:
                self.twin_address()
                return call(*args)

        return driver

    def __call__(self, *args: Any) -> Any:
        """Call the driver: primal arguments, then one shadow per shadowed argument."""
        return self.driver(*args)

    @property
    def argtypes(self) -> tuple[types.Type, ...]:
        return self.shape.argtypes

    @property
    def restype(self) -> types.Type:
        return self.shape.restype

    @property
    def activities(self) -> tuple[Activity, ...]:
        return self.shape.activities

    @property
    def shadowed(self) -> tuple[int, ...]:
        """Python argument indices that take a shadow, in order."""
        return self.shape.shadowed


@dataclass(frozen=True)
class CallShape:
    """What the code calling a derivative depends on: the primal's types, the activities, the
    entry point's conventions and whether it has an aliased twin; not which derivative it
    calls. Derivatives of one shape share their callers' compiled code."""

    argtypes: tuple[types.Type, ...]
    restype: types.Type
    activities: tuple[Activity, ...]
    shadowed: tuple[int, ...]
    ep: EntryPoint
    aliased: bool

    @functools.cached_property
    def signature(self) -> Any:
        """The driver's Numba signature, without the table."""
        return _signature(self.argtypes, self.restype, self.activities, self.shadowed, self.ep)

    def intrinsic(self, symbols: tuple[Callable[[str], int], str, str | None] | None = None) -> Any:
        """An intrinsic calling the derivative (see `_make_codegen`): at the addresses of
        `symbols`, or given a table and a row before the driver's arguments."""
        sig = self.signature
        head = () if symbols else (types.intp, types.intp)
        codegen = _make_codegen(self, symbols)
        outcome = outcome_type(sig.return_type)(*head, *sig.args)
        return _make_intrinsic(f"_enzpy_call_{next(_counter)}", len(outcome.args), outcome, codegen)

    def call_table(self) -> Any:
        """The intrinsic shared by derivatives of this shape: `call(table, row, *args)`."""
        return _shared(_calls, self, self.intrinsic)

    def driver(self) -> Any:
        """The njit driver shared by derivatives of this shape: `driver(table, *args)`,
        compiled on first use."""
        return _shared(_drivers, self, self._compile_driver)

    def _compile_driver(self) -> Any:
        sig = self.signature
        a = ", ".join(f"a{i}" for i in range(len(sig.args)))
        src = f"def driver(t, {a}):\n    o = _intr(t, 0, {a})\n    return _finish(o, o[3])\n"
        ns: dict[str, Any] = {"_intr": self.call_table(), "_finish": finish}
        exec(compile(src, "<enzpy.bridge.link driver>", "exec"), ns)
        return njit_glue(sig.return_type(types.intp, *sig.args))(ns["driver"])


_calls: dict[CallShape, Any] = {}
_drivers: dict[CallShape, Any] = {}


def _shared(cache: dict[CallShape, Any], shape: CallShape, make: Callable[[], Any]) -> Any:
    with _cache_lock:
        hit = cache.get(shape)
    if hit is None:
        made = make()
        with _cache_lock:
            hit = cache.setdefault(shape, made)
    return hit


def clear_cache() -> None:
    """Forget every cached driver."""
    with _cache_lock:
        _cache.clear()


def _primal_shaped(
    name: str, argtypes: Sequence[types.Type], restype: types.Type, extra: Sequence[Any] = ()
) -> tuple[Any, Any, Any]:
    """An internal function `name` returning the primal's status for `argtypes`, with its
    parameters and then `extra` (llvmlite types): (context, function, its builder)."""
    ctx = target_context()
    fnty = ctx.call_conv.get_function_type(restype, tuple(argtypes))
    fnty = ir.FunctionType(fnty.return_type, [*fnty.args, *extra])
    fn = ir.Function(ir.Module(), fnty, name)
    fn.linkage = "internal"
    return ctx, fn, ir.IRBuilder(fn.append_basic_block())


def _text(fn: Any) -> str:
    return str(llvm.parse_assembly(str(fn.module)))  # as LLVM prints it (opaque pointers)


def out_of_memory(argtypes: Sequence[types.Type], restype: types.Type) -> str:
    """IR of a function with the signature of the primal for `argtypes` that raises
    `MemoryError` (Numba's calling convention): what a reverse-mode derivative returns when
    memory for its tape or shadows runs out (`llvm_passes.reverse`'s `out_of_memory`)."""
    ctx, fn, builder = _primal_shaped("enzpy.out_of_memory", argtypes, restype)
    exc = ctx.call_conv.build_excinfo_struct(
        MemoryError,
        ("Allocation failed (probably too large): no memory for the derivative",),
        None,
        None,
    )
    builder.store(ctx.get_python_api(builder).serialize_object(exc), fn.args[1])
    builder.ret(RETCODE_USEREXC)
    return _text(fn)


def reverse_failed(argtypes: Sequence[types.Type], restype: types.Type) -> str:
    """IR of a function with the parameters of the primal for `argtypes`, then an integer,
    giving the status of a reverse sweep (`llvm_passes.reverse`'s `reverse_failed`): 0 for
    0, else that of the exception a rule's reverse raised, the integer being the address of
    its exception info (Numba's calling convention)."""
    # (named by its type: nested derivatives of other primals link theirs into one module)
    shape = repr((tuple(map(str, argtypes)), str(restype)))
    tag = hashlib.sha1(shape.encode()).hexdigest()[:16]
    _, fn, builder = _primal_shaped(
        f"enzpy.reverse_failed.{tag}", argtypes, restype, [ir.IntType(64)]
    )
    failure = fn.args[-1]
    failed = builder.icmp_unsigned("!=", failure, ir.Constant(failure.type, 0))
    with builder.if_then(failed):
        builder.store(builder.inttoptr(failure, ir.PointerType(excinfo_t)), fn.args[1])
    builder.ret(builder.select(failed, RETCODE_USEREXC, ir.Constant(ir.IntType(32), 0)))
    return _text(fn)


def _is_dup(act: Any) -> bool:
    return act is not Activity.CONST


def _demote(mod: Any, keep: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    """Make every external definition but `keep` linkonce_odr if it is a Numba function
    (copies may be linked twice), else internal: functions the engine synthesized have the
    same names in every derivative of one primal, and different bodies (modes, tapes)."""
    for f in mod.functions:
        if f.name not in keep and not f.is_declaration and f.linkage == llvm.Linkage.external:
            f.linkage = "linkonce_odr" if f.name.startswith("_ZN") else "internal"


def _link_captured_callees(mod: Any, kept: bool) -> None:
    """Link in the captured IR of every Numba function `mod` still only declares (the
    primal's library may have inlined and dropped its callees; transitively). Unless the
    machine code is `kept` on disk, functions called by address stay declarations (their
    machine code is loaded already); if it is, a function without captured IR (loaded from
    Numba's disk cache, called by a function declared inactive, say) is linked in from a
    compilation made again: kept machine code must need none from the process.
    """
    tried = set() if kept else set(ADDRESSED)
    while True:
        missing = [
            f.name
            for f in mod.functions
            if f.is_declaration and f.name not in tried and not capture.is_runtime_symbol(f.name)
        ]
        if not missing:
            return
        for name in missing:
            tried.add(name)
            if not mod.get_function(name).is_declaration:
                continue
            text = capture.function_ir(name)
            if text is not None:
                texts = [text]
            else:  # (compiled again only for machine code kept on disk)
                texts = capture.compiled_again(name) if kept else []
            for text in texts:
                sub = llvm.parse_assembly(text)
                _demote(sub)
                mod.link_in(sub)


def _build_library(
    module_text: str,
    renames: dict[str, str],
    library: Any,
    nestable: Iterable[str] = (),
    stored: Any = None,
) -> Any:
    """The code library of `module_text`, its entry points renamed, linked with `library`
    (the primal's). `stored` (a `disk_cache.Stored`): its library when it has one, else the
    library built is kept there, its machine code ready to be written."""
    ctx = target_context()
    codegen = ctx.codegen()
    lowered = lower_parallel_calls(module_text)  # (also when loaded: starts the threads)
    with global_compiler_lock, capture.suspended():
        built = stored is not None and stored.library is not None
        if built and not nestable:
            return stored.library
        mod = _renamed(lowered, renames)
        if nestable:  # the engine's form, parallel calls not lowered: differentiable again
            text = str(mod if lowered is module_text else _renamed(module_text, renames))
            _texts.update((unique, text) for unique in nestable)
        if built:
            return stored.library
        _allocate_from_pool(mod)
        _link_captured_callees(mod, kept=stored is not None)
        mod.verify()
        lib = codegen.create_library(f"enzpy.{next(iter(renames.values()))}")
        if stored is not None:
            lib.enable_object_caching()
            stored.library = lib
        if library is not None:
            lib.add_linking_library(library)
        lib.add_llvm_module(mod)
        with _overlap_checks_per_loop():
            lib.finalize()
    return lib


@contextlib.contextmanager
def _overlap_checks_per_loop() -> Iterator[None]:
    """Optimize with the overlap checks of a vectorized inner loop made before each run of
    it, not once for the whole outer loop (LLVM's `-hoist-runtime-checks`, on by default).
    A hoisted check spans the memory of every outer iteration, so it fails for an inner loop
    writing neighbouring rows of one array, as a stencil's reverse loop does (row i ± 1's
    adjoints): the scalar loop would always run. LLVM's default is restored after."""
    llvm.set_option("enzpy", "-hoist-runtime-checks=false")
    try:
        yield
    finally:
        llvm.set_option("enzpy", "-hoist-runtime-checks=true")


def _allocate_from_pool(mod: Any) -> None:
    """The Numba arrays `mod` allocates come from `pool` (large blocks kept between calls)."""
    try:
        declared = mod.get_function(pool.REPLACED)
    except NameError:
        return
    pool.ensure()
    declared.name = pool.ALLOCATOR


class Twin:
    """An aliased twin, compiled with the module's exports into a library of its own on the
    first call of `address` (most calls never need it)."""

    def __init__(self, module_text: str, renames: dict[str, str], entry: str, library: Any):
        self.text, self.renames, self.entry, self.library = module_text, renames, entry, library

    @functools.cached_property
    def _compiled(self) -> Any:
        return _build_library(self.text, self.renames, self.library)

    @property
    def built(self) -> bool:
        return "_compiled" in self.__dict__

    def address(self, name: str) -> int:
        """The address of the function the module calls `name` (the entry or an export)."""
        return self._compiled.get_pointer_to_function(self.renames[name])


def _renamed(module_text: str, renames: dict[str, str]) -> Any:
    """The parsed module, its entry points renamed (name -> unique name), the rest of its
    functions internal."""
    try:
        mod = llvm.parse_assembly(module_text)
    except RuntimeError as e:
        detail = " ".join(str(e).split("\n")[1:2]).strip()
        raise EnzpyError(
            "enzpy built a derivative that LLVM does not accept, a bug in enzpy: please "
            "report it with the IR that ENZPY_DUMP_IR=<directory> writes (" + detail + ")"
        ) from None
    for name, unique in renames.items():
        fn = mod.get_function(name)
        if fn.is_declaration:
            raise ValueError(f"{name!r} is only declared in the derivative module")
        fn.name = unique
    _demote(mod, keep=set(renames.values()))
    return mod


@dataclass(frozen=True)
class EntryPoint:
    """How a driver calls one entry point of a linked derivative.

    `scalars`: what a float scalar argument's shadow is: its tangent (forward, passed by the
    caller), an adjoint accumulator (reverse; the adjoints are returned), or null (the
    forward and release sweeps of split mode). `seed`: the initial value of the return's
    shadow slot: 0 (None), a constant, or 'arg' (the driver's last argument). `tape`: the
    driver takes the tape's address (an integer) after the shadows; the tape (`TAPE_BYTES`)
    is followed in memory by the return's shadow slot. `returns`: 'forward'
    (primal, tangent), 'reverse' (primal, adjoints), 'augment' (primal, the return's shadow,
    owned by the caller too), 'adjoints', or 'nothing'. `width`: the number of shadows per
    shadowed argument (batch mode); the driver takes them in a row and, when it is more than
    1, returns a tuple of `width` tangents, or per float scalar a tuple of `width` adjoints.
    """

    scalars: str = "tangent"
    seed: float | str | None = None
    tape: bool = False
    returns: str = "forward"
    width: int = 1


FORWARD = EntryPoint()
AUGMENT = EntryPoint(scalars="null", tape=True, returns="augment")
REVERSE_SPLIT = EntryPoint(scalars="accumulator", seed="arg", tape=True, returns="adjoints")
RELEASE = EntryPoint(scalars="null", tape=True, returns="nothing")


def reverse_entry(seed: float, width: int = 1) -> EntryPoint:
    """Combined reverse mode with the return seeded `seed` (in each of `width` lanes)."""
    return EntryPoint(scalars="accumulator", seed=seed, returns="reverse", width=width)


def outcome_type(value: types.Type) -> types.Type:
    """The Numba type of what a derivative's `call` returns: (whether it raised, Numba's
    status code, its exception info, `value` (zero if it raised))."""
    return types.Tuple((types.boolean, types.int32, types.voidptr, value))


@intrinsic
def finish(typingctx: Any, outcome: types.Type, value: types.Type) -> Any:
    """`value`, or the exception of `outcome` (a derivative's `call`) raised.

    A derivative is called in two steps so that an exception leaves no reference behind:
    Numba releases a function's references where their last use is, but a call that raises
    returns at once, skipping the releases that follow it in the caller. Between `call` and
    `finish` the caller releases everything but the outcome, which holds no reference when
    the call raised."""

    def codegen(context: Any, builder: Any, signature: Any, args: Sequence[Any]) -> Any:
        failed, code, excinfo = (builder.extract_value(args[0], i) for i in range(3))
        with cgutils.if_unlikely(builder, failed):
            excinfo = builder.bitcast(excinfo, ir.PointerType(excinfo_t))
            status = context.call_conv._get_return_status(builder, code, excinfo)
            context.call_conv.return_status_propagate(builder, status)
        return impl_ret_borrowed(context, builder, signature.return_type, args[1])

    return value(outcome, value), codegen


def _make_codegen(
    shape: CallShape, symbols: tuple[Callable[[str], int], str, str | None] | None = None
) -> Callable[..., Any]:
    """The codegen of an intrinsic calling a derivative of `shape`: with the primal's
    flattened LLVM arguments (Numba's calling convention), then one shadow per active LLVM
    argument in order, then the tape (see `EntryPoint`); returns an `outcome_type` for
    `finish`. With `shape.aliased`, a second entry point is called instead when the memory
    of two array arguments overlaps.

    The derivative is called by address: linking its library instead would optimize and
    compile the whole derivative again in every caller. `symbols` (the address of a
    symbol, entry, aliased entry): the addresses are constants (dynamic globals, so the
    caller cannot be cached, and nested differentiation finds the derivative it calls).
    Without, the intrinsic is shared by every derivative of this calling shape: it takes
    first a table's address and a row, the row holding the entry's and the aliased entry's
    addresses (`call_table`; an aliased address 0, the twin not built yet, raises
    `TwinNeeded` when the arrays overlap)."""
    argtypes, restype, activities, ep = shape.argtypes, shape.restype, shape.activities, shape.ep
    layout = argument_layout(argtypes)
    nargs = len(argtypes)
    passed = _passed_shadows(layout, shape.shadowed, ep)

    def constant(context: Any, builder: Any, fnty: ir.FunctionType, name: str) -> Any:
        assert symbols is not None
        at = symbols[0](name)
        _addresses[at] = (name, ep)
        return builder.bitcast(context.add_dynamic_addr(builder, at, name), fnty.as_pointer())

    def entries(context: Any, builder: Any, fnty: ir.FunctionType, head: Any) -> list[Any]:
        """The entry point (and the aliased one) the call goes to."""
        if symbols is not None:
            return [constant(context, builder, fnty, name) for name in symbols[1:] if name]
        table, row = head
        words = builder.inttoptr(table, ir.PointerType(ir.IntType(64)))
        at = builder.mul(row, ir.Constant(row.type, 2))
        return [
            builder.inttoptr(
                builder.load(builder.gep(words, [builder.add(at, ir.Constant(row.type, k))])),
                fnty.as_pointer(),
            )
            for k in range(1 + shape.aliased)
        ]

    def codegen(context: Any, builder: Any, signature: Any, args: Sequence[Any]) -> Any:
        head = args[: 2 * (symbols is None)]  # the table and row
        args = args[len(head) :]
        call_conv = context.call_conv
        primal_fnty = call_conv.get_function_type(restype, argtypes)
        flat = list(context.get_arg_packer(argtypes).as_arguments(builder, list(args[:nargs])))
        ret_ty = context.data_model_manager[restype].get_return_type()
        retslot = cgutils.alloca_once_value(builder, cgutils.get_null_value(ret_ty))
        excinfoptr = cgutils.alloca_once(builder, ir.PointerType(excinfo_t), name="excinfo")

        width = ep.width
        by_position: dict[int, list[Any]] = {}
        given = args[nargs : nargs + len(passed) * width]
        for j, idx in enumerate(passed):
            for sval in given[j * width : (j + 1) * width]:
                sflat = context.get_arg_packer([argtypes[idx]]).as_arguments(builder, [sval])
                for leaf, v in zip(layout[idx], sflat, strict=True):
                    by_position.setdefault(leaf.position, []).append(v)
        i8p = ir.PointerType(ir.IntType(8))
        tape = [builder.inttoptr(args[nargs + len(given)], i8p)] if ep.tape else []
        seeded = ep.seed == "arg" and float_valued(restype) and _is_dup(activities[0])
        drets = list(args[len(args) - width :]) if seeded else [None] * width
        sretslots: list[Any] = []
        accumulators = []
        shadows = []
        for pos, act in enumerate(activities):
            if not _is_dup(act):
                continue
            lty = primal_fnty.args[pos]
            if pos == 0:
                sretslots = [
                    _return_shadow_slot(context, builder, restype, ep, tape, dret, lane)
                    for lane, dret in enumerate(drets)
                ]
                shadows.extend(sretslots)
            elif pos in by_position:
                shadows.extend(by_position[pos])
            elif ep.scalars == "accumulator":
                accs = [
                    cgutils.alloca_once_value(builder, ir.Constant(lty, 0.0)) for _ in range(width)
                ]
                accumulators.append(accs)
                shadows.extend(accs)
            else:
                shadows.extend([ir.Constant(i8p, None)] * width)
        tys = [v.type for v in (*shadows, *tape)]
        status_returned = ep.returns != "nothing"
        fnty = ir.FunctionType(
            primal_fnty.return_type if status_returned else ir.VoidType(),
            list(primal_fnty.args) + tys,
        )
        fn, *other = entries(context, builder, fnty, head)
        if shape.aliased:
            overlap = _arrays_overlap(context, builder, argtypes, args[:nargs])
            if symbols is None:  # a table's twin is built on first need
                unbuilt = builder.icmp_unsigned("==", other[0], ir.Constant(other[0].type, None))
                with cgutils.if_unlikely(builder, builder.and_(overlap, unbuilt)):
                    context.call_conv.return_user_exc(builder, TwinNeeded, ())
            fn = builder.select(overlap, other[0], fn)
        code = builder.call(fn, [retslot, excinfoptr, *flat, *shadows, *tape])
        failed, excinfo = cgutils.false_bit, cgutils.voidptr_t(None)
        if status_returned:
            status = call_conv._get_return_status(builder, code, builder.load(excinfoptr))
            failed, excinfo = status.is_error, builder.bitcast(status.excinfoptr, cgutils.voidptr_t)
        else:
            code = ir.Constant(ir.IntType(32), 0)
        rtype = signature.return_type.types[3]

        def returned(slot: Any) -> Any:
            if slot is None:
                return context.get_dummy_value()
            return context.get_returned_value(builder, restype, builder.load(slot))

        def value() -> Any:
            """What the call returns (`EntryPoint.returns`), once it has not raised."""
            adjoints = [builder.load(accs[0]) for accs in accumulators]
            if width > 1 and accumulators:
                lanes = rtype.types[1] if ep.returns == "reverse" else rtype
                adjoints = [
                    context.make_tuple(builder, t, [builder.load(acc) for acc in accs])
                    for t, accs in zip(lanes.types, accumulators, strict=True)
                ]
            if ep.returns == "nothing":
                return context.get_dummy_value()
            if ep.returns == "adjoints":
                return context.make_tuple(builder, rtype, adjoints)
            primal = returned(retslot)
            if ep.returns == "reverse":
                packed = context.make_tuple(builder, rtype.types[1], adjoints)
                return context.make_tuple(builder, rtype, [primal, packed])
            # split mode seeds a float return in the reverse pass
            seeded_later = ep.returns == "augment" and float_valued(restype)
            shadow_rets = [] if seeded_later else [returned(slot) for slot in sretslots]
            if ep.returns == "augment":
                for shadow_ret in shadow_rets:  # the tape keeps its own
                    context.nrt.incref(builder, restype, shadow_ret)
            if width == 1 or not shadow_rets:
                shadow_rets = shadow_rets or [returned(None)]
                return context.make_tuple(builder, rtype, [primal, shadow_rets[0]])
            batch = context.make_tuple(builder, rtype.types[1], shadow_rets)
            return context.make_tuple(builder, rtype, [primal, batch])

        slot = cgutils.alloca_once_value(
            builder, cgutils.get_null_value(context.get_value_type(rtype))
        )
        with builder.if_then(builder.not_(failed), likely=True):
            builder.store(value(), slot)
        return context.make_tuple(
            builder, signature.return_type, [failed, code, excinfo, builder.load(slot)]
        )

    return codegen


def _return_shadow_slot(
    context: Any,
    builder: Any,
    restype: types.Type,
    ep: EntryPoint,
    tape: list[Any],
    dret: Any,
    lane: int = 0,
) -> Any:
    """The memory holding the return's shadow (of batch lane `lane`): on the stack, or
    (split mode, `tape` given) after the tape, where it lives from the forward to the
    reverse pass (the forward sweep may keep addresses inside it). Holds the return's
    cotangent when the call starts: `dret` (a value the driver got), the constant seed, or
    zero."""
    ret_ty = context.data_model_manager[restype].get_return_type()
    if dret is not None:
        init = context.get_return_value(builder, restype, dret)
    elif ep.seed is not None and isinstance(restype, types.Float):
        init = ir.Constant(ret_ty, ep.seed)
    else:
        init = cgutils.get_null_value(ret_ty)
    if not tape:
        return cgutils.alloca_once_value(builder, init)
    at = TAPE_BYTES + lane * 8 * slot_words(restype)
    slot = builder.bitcast(
        builder.gep(tape[0], [ir.Constant(ir.IntType(64), at)]), ret_ty.as_pointer()
    )
    if dret is not None:
        builder.store(init, slot)
    return slot


@functools.cache
def slot_words(restype: types.Type) -> int:
    """8-byte words of the return's shadow slot (one per batch lane) that follows a
    split-mode tape."""
    ctx = target_context()
    return -(-ctx.get_abi_sizeof(ctx.data_model_manager[restype].get_return_type()) // 8)


def float_valued(t: types.Type) -> bool:
    """A float, or a tuple of floats: a return seeded by a value rather than a shadow."""
    if isinstance(t, types.BaseTuple):
        return len(t.types) > 0 and all(float_valued(e) for e in t.types)
    return isinstance(t, types.Float)


def _passed_shadows(
    layout: list[list[Any]], shadowed: tuple[int, ...], ep: EntryPoint
) -> list[int]:
    """The Python arguments whose shadows the driver takes (float scalars only when their
    tangents are passed)."""
    return [i for i in shadowed if ep.scalars == "tangent" or not _scalar(layout[i])]


def _signature(
    argtypes: tuple[types.Type, ...],
    restype: types.Type,
    activities: tuple[Activity, ...],
    shadowed: tuple[int, ...],
    ep: EntryPoint,
) -> Any:
    """The driver's Numba signature for entry point `ep`."""
    layout = argument_layout(argtypes)
    params = argtypes + tuple(
        argtypes[i] for i in _passed_shadows(layout, shadowed, ep) for _ in range(ep.width)
    )
    if ep.tape:
        params += (types.uintp,)
    if ep.seed == "arg" and float_valued(restype) and _is_dup(activities[0]):
        params += (restype,) * ep.width
    scalars = [argtypes[i] for i in shadowed if _scalar(layout[i])]
    if ep.width > 1:
        scalars = [types.UniTuple(t, ep.width) for t in scalars]
    adjoints = types.Tuple(tuple(scalars))
    ret_dup = _is_dup(activities[0])
    shadow_ret = (
        restype
        if ret_dup and not (ep.returns == "augment" and float_valued(restype))
        else types.none
    )
    if ep.width > 1 and shadow_ret is not types.none:
        shadow_ret = types.UniTuple(restype, ep.width)
    ret = {
        "forward": types.Tuple((restype, shadow_ret)),
        "augment": types.Tuple((restype, shadow_ret)),
        "reverse": types.Tuple((restype, adjoints)),
        "adjoints": adjoints,
        "nothing": types.none,
    }[ep.returns]
    return ret(*params)


def _called_derivatives(global_names: Iterable[str]) -> dict[str, tuple[str, EntryPoint]]:
    """The globals holding the address of a derivative enzpy built (Numba names the global
    holding a dynamic address `numba.dynamic.globals.<hex address>`), and what each holds."""
    out = {}
    for name in global_names:
        m = re.match(r"numba\.dynamic\.globals\.([0-9a-f]+)$", name)
        if m is not None and int(m.group(1), 16) in _addresses:
            out[name] = _addresses[int(m.group(1), 16)]
    return out


def link_derivatives(module: Module) -> tuple[set[str], list[str]]:
    """Calls of derivatives enzpy built, made direct calls of their IR (merged into
    `module`), so that a function calling `ez.autodiff` can be differentiated itself:
    forward mode's own IR, reverse mode's nestable twin (built on first use). Returns the
    functions linked, and the entry names of the derivatives that cannot be linked (split
    mode's)."""
    called = _called_derivatives(module.globals)
    linked: dict[str, str] = {}  # global -> the function its calls now call
    for g, (name, ep) in called.items():
        if ep == FORWARD:
            linked[g] = name
        elif name in _nestable:
            linked[g] = _nestable[name][1]
    for name in set(linked.values()):
        module.merge(parse_module(inline_always(_nestable_text(name))))
    calls_made_direct(module, linked)
    return set(linked.values()), [name for g, (name, _) in called.items() if g not in linked]


def _nestable_text(name: str) -> str:
    """The IR defining `name`, a forward-mode entry or a reverse-mode entry's twin."""
    if name not in _texts:
        build, _ = _nestable[name]
        text, entry = build()
        with global_compiler_lock, capture.suspended():
            _texts[name] = str(_renamed(text, {entry: name}))
    return _texts[name]


def calls_made_direct(module: Module, pointers: dict[str, str]) -> None:
    """Calls through a function pointer loaded from one of the globals `pointers` names
    (global -> the function it holds), or chosen between two such that hold the same
    function, made direct calls of that function."""
    if not pointers:  # (nothing to look at: function bodies stay unparsed)
        return
    for fn in module.functions.values():
        held: dict[Value, str] = {
            inst: pointers[inst.operands[0].name]
            for inst in fn.instructions()
            if inst.opcode == "load"
            and isinstance(inst.operands[0], GlobalRef)
            and inst.operands[0].name in pointers
        }
        for inst in fn.instructions():
            if inst.opcode == "select":
                one, other = (held.get(v) for v in inst.operands[1:])
                if one is not None and one == other:
                    held[inst] = one
            if inst.opcode == "call" and inst.callee in held:
                inst.callee = GlobalRef(held[inst.callee], PTR)


def distinct_arrays(argtypes: Sequence[types.Type]) -> frozenset[int]:
    """LLVM positions of the data pointers of the array arguments: the memory a derivative
    may assume apart when its driver is given an `aliased` entry (see `make_driver`)."""
    layout = argument_layout(tuple(argtypes))
    return frozenset(
        leaf.position
        for ty, group in zip(argtypes, layout, strict=True)
        if isinstance(ty, types.Array)
        for leaf in group
        if leaf.role == "data"
    )


def _arrays_overlap(
    context: Any, builder: Any, argtypes: Sequence[types.Type], values: Sequence[Any]
) -> Any:
    """An i1: whether the memory extents of two of the array arguments intersect."""
    extents = []
    for ty, value in zip(argtypes, values, strict=True):
        if isinstance(ty, types.Array):
            ary = context.make_array(ty)(context, builder, value)
            shape, strides = (cgutils.unpack_tuple(builder, t) for t in (ary.shape, ary.strides))
            extents.append(
                get_array_memory_extents(context, builder, ty, ary, shape, strides, ary.data)
            )
    overlap = cgutils.false_bit
    for (a0, a1), (b0, b1) in itertools.combinations(extents, 2):
        overlap = builder.or_(overlap, extents_may_overlap(context, builder, a0, a1, b0, b1))
    return overlap


def _scalar(group: Sequence[Any]) -> bool:
    return len(group) == 1 and group[0].role == "scalar_float"


def _make_intrinsic(name: str, arity: int, sig: Any, codegen: Callable[..., Any]) -> Any:
    """An @intrinsic of fixed arity with the given signature and codegen."""
    params = ", ".join(f"a{i}" for i in range(arity))
    src = f"def {name}(typingctx{', ' if params else ''}{params}):\n    return _sig, _codegen\n"
    ns: dict[str, Any] = {"_sig": sig, "_codegen": codegen}
    exec(compile(src, f"<enzpy.bridge.link {name}>", "exec"), ns)
    return intrinsic(ns[name])


#: the jit options of all code enzpy generates (drivers, entries, rule glue, the overloads
#: of its API inside jitted code): never with debug information (`NUMBA_DEBUGINFO`), which
#: has no source to describe and keeps references alive until a function returns, also when
#: it raises
GLUE_OPTIONS: Any = {"debug": False}  # (numba.extending's _JITOptions)
_GLUE: dict[str, Any] = {"no_cfunc_wrapper": True, **GLUE_OPTIONS}


def njit_glue(*signature: Any) -> Any:
    """`numba.njit` for enzpy's generated glue (drivers, entries, checks), called from Python
    or jitted code only: without the C-callable wrapper Numba makes for use as a first-class
    function, a sixth of a small function's compile time (`GLUE_OPTIONS`)."""
    return numba.njit(*signature, **_GLUE)


def make_driver(
    module_text: str,
    fn_name: str,
    library: Any,
    argtypes: Sequence[types.Type],
    restype: types.Type,
    activities: Sequence[Activity],
    *,
    key: Any = None,
    seed: float | None = None,
    aliased: str | None = None,
    exports: tuple[str, ...] = (),
    nestable: Callable[[], tuple[str, str]] | None = None,
    width: int = 1,
    stored: Any = None,
) -> DerivativeDriver:
    """Link the derivative `fn_name` of `module_text` and build its njit driver.

    `fn_name` takes the primal's LLVM arguments, then one shadow per non-CONST entry of
    `activities` (one per LLVM argument of the primal, retptr and excinfo included). The
    driver takes the primal's Python arguments followed by one shadow (same Numba type)
    per Python argument with a shadowed LLVM argument, and returns (primal, tangent);
    tangent is None when retptr is CONST. With `seed` (reverse mode) float scalars take no
    shadow and the driver returns (primal, their adjoints). `library` is the primal's code
    library (it resolves the primal's callees). Results are cached by `key` (default: a
    digest of the inputs). `aliased`: the entry point to call instead when the memory of two
    array arguments overlaps (see `distinct_arrays`). `exports`: other functions of the
    module whose addresses the driver's `exports` gives. `nestable` (reverse mode): builds
    the IR (text, entry name) that nested differentiation links for calls of `fn_name`
    (`link_derivatives`). `width` (forward): shadows per shadowed argument (batch mode).
    `stored`: the derivative's entry in the disk cache (`disk_cache.Stored`).
    """
    entry = EntryPoint(width=width) if seed is None else reverse_entry(seed, width)
    return make_drivers(
        module_text,
        {fn_name: entry},
        library,
        argtypes,
        restype,
        activities,
        key=key,
        aliased={fn_name: aliased} if aliased else None,
        exports=exports,
        nestable=nestable,
        stored=stored,
    )[fn_name]


def make_drivers(
    module_text: str,
    entries: dict[str, EntryPoint],
    library: Any,
    argtypes: Sequence[types.Type],
    restype: types.Type,
    activities: Sequence[Activity],
    *,
    key: Any = None,
    aliased: dict[str, str] | None = None,
    exports: tuple[str, ...] = (),
    nestable: Callable[[], tuple[str, str]] | None = None,
    stored: Any = None,
) -> dict[str, DerivativeDriver]:
    """Link the entry points of `module_text` (name -> how the driver calls it) into one
    library and build one driver per entry point (see `make_driver`). `stored`: the
    derivative's entry in the disk cache, whose library is used, or filled."""
    aliased = aliased or {}
    argtypes = tuple(argtypes)
    activities = tuple(as_activity(a) for a in activities)
    ctx = target_context()
    n_llvm = len(ctx.call_conv.get_function_type(restype, argtypes).args)
    if len(activities) != n_llvm:
        raise ValueError(f"{len(activities)} activities for {n_llvm} LLVM arguments")
    if _is_dup(activities[1]):
        raise ValueError("excinfo cannot be active")
    if key is None:
        digest = hashlib.sha1(module_text.encode()).hexdigest()
        key = (digest, tuple(entries.items()), argtypes, restype, activities)
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None:
        return hit

    shadowed = tuple(shadowed_args(argtypes, activities))
    suffix = stored.suffix if stored is not None else f"enzpy{next(_counter)}"
    renames = {name: f"{name}.{suffix}" for name in (*entries, *aliased.values(), *exports)}
    forward = [renames[name] for name, ep in entries.items() if ep == FORWARD]
    # twins built on first need, each alone in a library (a cached derivative keeps its own)
    later = set(aliased.values()) if stored is None else set()
    now = {name: unique for name, unique in renames.items() if name not in later}
    lib = _build_library(module_text, now, library, nestable=forward, stored=stored)
    twins = {  # unique name -> its twin (with exports of its own: their cells are its own)
        renames[twin]: Twin(
            module_text,
            {twin: renames[twin], **{e: f"{renames[e]}.twin" for e in exports}},
            twin,
            library,
        )
        for twin in later
    }

    def address(symbol: str) -> int:
        twin = twins.get(symbol)
        return twin.address(twin.entry) if twin else lib.get_pointer_to_function(symbol)

    if nestable is not None:
        for name, ep in entries.items():
            if ep.returns == "reverse":
                for unique in (renames[name], renames.get(aliased.get(name, ""))):
                    if unique is not None:
                        _nestable[unique] = (nestable, renames[name])
    addresses = {name: lib.get_pointer_to_function(renames[name]) for name in exports}
    result = {}
    for name, ep in entries.items():
        shape = CallShape(argtypes, restype, activities, shadowed, ep, name in aliased)
        symbols = (address, renames[name], renames.get(aliased.get(name, "")))
        table = np.array([address(s) if s and s not in twins else 0 for s in symbols[1:]])
        result[name] = DerivativeDriver(
            shape,
            shape.intrinsic(symbols),
            table.astype(np.uint64),
            lib,
            renames[name],
            addresses,
            twins.get(symbols[2] or ""),
        )
    with _cache_lock:
        result = _cache.setdefault(key, result)
    return result
