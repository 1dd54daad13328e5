"""Turn a synthesized derivative module into a Numba code library and an njit driver."""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import llvmlite.binding as llvm
import numba
from llvmlite import ir
from numba.core import cgutils, types
from numba.core.callconv import excinfo_t
from numba.core.compiler_lock import global_compiler_lock
from numba.extending import intrinsic

from . import capture
from .abi import Activity, argument_layout, as_activity, shadowed_args, target_context

__all__ = ["DerivativeDriver", "make_driver", "clear_cache"]

_counter = itertools.count(1)
_cache: dict[Any, DerivativeDriver] = {}
_cache_lock = threading.Lock()


@dataclass
class DerivativeDriver:
    """A linked derivative: njit driver, intrinsic for use inside njit code, and its library."""

    driver: Any  # numba Dispatcher: driver(*primal_args, *shadows) -> (primal, tangent)
    intrinsic: Any  # the @intrinsic; callable from njit code with the same arguments
    library: Any  # the Numba code library holding the derivative
    symbol: str  # the derivative's (unique) symbol in `library`
    argtypes: tuple[types.Type, ...]
    restype: types.Type
    activities: tuple[Activity, ...]
    shadowed: tuple[int, ...]  # Python argument indices that take a shadow, in order
    signature: Any = field(default=None)  # the driver's Numba signature

    def __call__(self, *args: Any) -> Any:
        """Call the driver: primal arguments, then one shadow per shadowed argument."""
        return self.driver(*args)


def clear_cache() -> None:
    """Forget every cached driver."""
    with _cache_lock:
        _cache.clear()


def _is_dup(act: Any) -> bool:
    return act is not Activity.CONST


def _demote(mod: Any, keep: str | None = None) -> None:
    """Make every external definition but `keep` linkonce_odr (copies may be linked twice)."""
    for f in mod.functions:
        if f.name != keep and not f.is_declaration and f.linkage == llvm.Linkage.external:
            f.linkage = "linkonce_odr"


def _link_captured_callees(mod: Any) -> None:
    """Link in the captured IR of every Numba function `mod` still only declares.

    The primal's library may have inlined and dropped its callees, so they are taken
    from the capture registry instead (transitively).
    """
    tried: set[str] = set()
    while True:
        missing = [f.name for f in mod.functions
                   if f.is_declaration and f.name not in tried
                   and not capture.is_runtime_symbol(f.name)]
        if not missing:
            return
        for name in missing:
            tried.add(name)
            if not mod.get_function(name).is_declaration:
                continue
            text = capture.function_ir(name)
            if text is None:
                continue
            sub = llvm.parse_assembly(text)
            _demote(sub)
            mod.link_in(sub)


def _build_library(module_text: str, fn_name: str, library: Any, unique: str) -> Any:
    """Parse, rename the derivative to `unique`, resolve callees, finalize a library."""
    ctx = target_context()
    codegen = ctx.codegen()
    with global_compiler_lock, capture.suspended():
        mod = llvm.parse_assembly(module_text)
        fn = mod.get_function(fn_name)
        if fn.is_declaration:
            raise ValueError(f"{fn_name!r} is only declared in the derivative module")
        fn.name = unique
        _demote(mod, keep=unique)
        _link_captured_callees(mod)
        mod.verify()
        lib = codegen.create_library(f"enzpy.{unique}")
        if library is not None:
            lib.add_linking_library(library)
        lib.add_llvm_module(mod)
        lib.finalize()
    return lib


def _make_codegen(lib: Any, symbol: str, argtypes: tuple[types.Type, ...],
                  restype: types.Type, activities: tuple[Activity, ...],
                  shadowed: tuple[int, ...], seed: float | None = None) -> Callable[..., Any]:
    """The intrinsic's codegen: call the derivative through Numba's calling convention.

    Forward (`seed` None): returns (primal, tangent of the return). Reverse (`seed` is the
    return's cotangent, placed in the shadow return slot): float scalar arguments get
    adjoint accumulators instead of shadow arguments, returned as (primal, adjoints).
    """
    layout = argument_layout(argtypes)
    nargs = len(argtypes)
    ret_dup = _is_dup(activities[0])
    reverse = seed is not None

    def codegen(context: Any, builder: Any, signature: Any, args: Sequence[Any]) -> Any:
        context.active_code_library.add_linking_library(lib)
        call_conv = context.call_conv
        primal_fnty = call_conv.get_function_type(restype, argtypes)
        flat = list(context.get_arg_packer(argtypes).as_arguments(builder, list(args[:nargs])))

        ret_ty = context.data_model_manager[restype].get_return_type()
        retslot = cgutils.alloca_once_value(builder, cgutils.get_null_value(ret_ty))
        excinfoptr = cgutils.alloca_once(builder, ir.PointerType(excinfo_t), name="excinfo")

        shadow_vals: list[Any] = []
        shadow_tys: list[Any] = []
        sretslot = None
        if ret_dup:
            init = cgutils.get_null_value(ret_ty)
            if reverse and isinstance(restype, types.Float):
                init = ir.Constant(ret_ty, seed)
            sretslot = cgutils.alloca_once_value(builder, init)
            shadow_vals.append(sretslot)
            shadow_tys.append(primal_fnty.args[0])
        accumulators = []
        for leaf in (x for group in layout for x in group):
            if reverse and leaf.role == "scalar_float" and _is_dup(activities[leaf.position]):
                lty = primal_fnty.args[leaf.position]
                acc = cgutils.alloca_once_value(builder, ir.Constant(lty, 0.0))
                accumulators.append((leaf.position, acc))
        acc_by_position = dict(accumulators)
        array_shadowed = [i for i in shadowed if not (reverse and _scalar(layout[i]))]
        for idx, sval in zip(array_shadowed, args[nargs:], strict=True):
            sflat = context.get_arg_packer([argtypes[idx]]).as_arguments(builder, [sval])
            for leaf, v in zip(layout[idx], sflat, strict=True):
                if _is_dup(activities[leaf.position]):
                    shadow_vals.append(v)
                    shadow_tys.append(primal_fnty.args[leaf.position])

        if reverse:  # shadows in argument order: retptr, then arrays and accumulators
            ordered = [(0, shadow_vals[0], shadow_tys[0])] if ret_dup else []
            it = iter(zip(shadow_vals[int(ret_dup):], shadow_tys[int(ret_dup):], strict=True))
            for k, act in enumerate(activities[2:], start=2):
                if not _is_dup(act):
                    continue
                if k in acc_by_position:
                    acc = acc_by_position[k]
                    ordered.append((k, acc, acc.type))
                else:
                    v, t = next(it)
                    ordered.append((k, v, t))
            shadow_vals = [v for _, v, _ in ordered]
            shadow_tys = [t for _, _, t in ordered]
        fnty = ir.FunctionType(primal_fnty.return_type, list(primal_fnty.args) + shadow_tys)
        fn = cgutils.get_or_insert_function(builder.module, fnty, symbol)
        code = builder.call(fn, [retslot, excinfoptr, *flat, *shadow_vals])
        status = call_conv._get_return_status(builder, code, builder.load(excinfoptr))
        with cgutils.if_unlikely(builder, status.is_error):
            call_conv.return_status_propagate(builder, status)

        primal = context.get_returned_value(builder, restype, builder.load(retslot))
        if reverse:
            adjoints = [builder.load(acc) for _, acc in accumulators]
            adj_ty = signature.return_type.types[1]
            packed = context.make_tuple(builder, adj_ty, adjoints)
            return context.make_tuple(builder, signature.return_type, [primal, packed])
        if sretslot is not None:
            tangent = context.get_returned_value(builder, restype, builder.load(sretslot))
        else:
            tangent = context.get_dummy_value()
        return context.make_tuple(builder, signature.return_type, [primal, tangent])

    return codegen


def _scalar(group: Sequence[Any]) -> bool:
    return len(group) == 1 and group[0].role == "scalar_float"


def _make_intrinsic(name: str, arity: int, sig: Any, codegen: Callable[..., Any]) -> Any:
    """An @intrinsic of fixed arity with the given signature and codegen."""
    params = ", ".join(f"a{i}" for i in range(arity))
    src = (f"def {name}(typingctx{', ' if params else ''}{params}):\n"
           f"    return _sig, _codegen\n")
    ns: dict[str, Any] = {"_sig": sig, "_codegen": codegen}
    exec(compile(src, f"<enzpy.bridge.link {name}>", "exec"), ns)
    return intrinsic(ns[name])


def _make_njit_driver(name: str, arity: int, intr: Any, sig: Any) -> Any:
    """`@njit(sig) def driver(a0, ...): return intr(a0, ...)`, compiled eagerly."""
    params = ", ".join(f"a{i}" for i in range(arity))
    src = f"def {name}({params}):\n    return _intr({params})\n"
    ns: dict[str, Any] = {"_intr": intr}
    exec(compile(src, f"<enzpy.bridge.link {name}>", "exec"), ns)
    return numba.njit(sig)(ns[name])


def make_driver(module_text: str, fn_name: str, library: Any,
                argtypes: Sequence[types.Type], restype: types.Type,
                activities: Sequence[Activity], *, key: Any = None,
                seed: float | None = None) -> DerivativeDriver:
    """Link the derivative `fn_name` of `module_text` and build its njit driver.

    `fn_name` takes the primal's LLVM arguments, then one shadow per non-CONST entry of
    `activities` (one per LLVM argument of the primal, retptr and excinfo included). The
    driver takes the primal's Python arguments followed by one shadow (same Numba type)
    per Python argument with a shadowed LLVM argument, and returns (primal, tangent);
    tangent is None when retptr is CONST. `library` is the primal's code library (it
    resolves the primal's callees). Results are cached by `key` (default: a digest of
    the inputs).
    """
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
        key = (digest, fn_name, argtypes, restype, activities, seed)
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None:
        return hit

    shadowed = tuple(shadowed_args(argtypes, activities))
    n = next(_counter)
    unique = f"{fn_name}.enzpy{n}"
    lib = _build_library(module_text, fn_name, library, unique)

    layout = argument_layout(argtypes)
    if seed is None:
        ret_tuple = types.Tuple((restype, restype if _is_dup(activities[0]) else types.none))
        all_types = argtypes + tuple(argtypes[i] for i in shadowed)
    else:
        scalars = [argtypes[i] for i in shadowed if _scalar(layout[i])]
        ret_tuple = types.Tuple((restype, types.Tuple(tuple(scalars))))
        all_types = argtypes + tuple(argtypes[i] for i in shadowed if not _scalar(layout[i]))
    sig = ret_tuple(*all_types)
    cg = _make_codegen(lib, unique, argtypes, restype, activities, shadowed, seed)
    intr = _make_intrinsic(f"_enzpy_call_{n}", len(all_types), sig, cg)
    drv = _make_njit_driver(f"enzpy_driver_{n}", len(all_types), intr, sig)
    result = DerivativeDriver(drv, intr, lib, unique, argtypes, restype, activities, shadowed,
                              sig)
    with _cache_lock:
        result = _cache.setdefault(key, result)
    return result
