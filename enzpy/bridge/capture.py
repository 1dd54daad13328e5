"""Capture Numba's function-optimized LLVM IR, keyed by mangled symbol name."""

from __future__ import annotations

import gc
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numba
from numba.core import codegen as _codegen
from numba.core.dispatcher import Dispatcher

from .names import demangle

__all__ = [
    "install_hook",
    "function_ir",
    "modules_for",
    "defined_symbols",
    "declared_symbols",
    "is_runtime_symbol",
    "suspended",
    "compiled_function",
]

# `define ... @name(` or `define ... @"quoted name"(`
_DEFINE_RE = re.compile(r'^define\b[^@\n]*@(?:"((?:[^"\\]|\\.)*)"|([-\w$.]+))\(', re.M)
_DECLARE_RE = re.compile(r'^declare\b[^@\n]*@(?:"((?:[^"\\]|\\.)*)"|([-\w$.]+))\(', re.M)

_RUNTIME_PREFIXES = ("NRT_", "nrt_", "numba_", "llvm.", "Py", "_Py")
_WRAPPER_PREFIXES = ("_ZN7cpython", "cfunc.")

_lock = threading.Lock()
_registry: dict[str, str] = {}
_state = threading.local()
_original_optimize: Any = None


def _names(regex: re.Pattern[str], text: str) -> list[str]:
    return [m.group(1) if m.group(1) is not None else m.group(2) for m in regex.finditer(text)]


def defined_symbols(module_text: str) -> list[str]:
    """Names of the functions *defined* in an LLVM module text."""
    return _names(_DEFINE_RE, module_text)


def declared_symbols(module_text: str) -> list[str]:
    """Names of the functions only *declared* in an LLVM module text."""
    return _names(_DECLARE_RE, module_text)


def is_runtime_symbol(name: str) -> bool:
    """True for NRT/C-helper/CPython/intrinsic symbols that must stay declarations."""
    return name.startswith(_RUNTIME_PREFIXES)


def _is_wrapper_symbol(name: str) -> bool:
    return name.startswith(_WRAPPER_PREFIXES)


def _record(module_text: str) -> None:
    """Register every Numba-compiled function defined in `module_text`."""
    names = [
        n
        for n in defined_symbols(module_text)
        if not is_runtime_symbol(n) and not _is_wrapper_symbol(n)
    ]
    if not names:
        return
    with _lock:
        for name in names:
            # The first definition is the one Numba compiled; later ones are copies.
            _registry.setdefault(name, module_text)


def _hooked_optimize_functions(self: Any, ll_module: Any) -> None:
    """Numba's function-level optimization, then record the resulting module text."""
    _original_optimize(self, ll_module)
    if getattr(_state, "suspended", 0):
        return
    try:
        _record(str(ll_module))
    except Exception:  # capture must never break Numba's compilation
        pass


def install_hook() -> None:
    """Hook `CPUCodeLibrary._optimize_functions` (idempotent)."""
    global _original_optimize
    cls = _codegen.CPUCodeLibrary
    current = cls._optimize_functions
    if getattr(current, "_enzpy_hook", False):
        return
    _original_optimize = current
    _hooked_optimize_functions._enzpy_hook = True  # type: ignore[attr-defined]
    cls._optimize_functions = _hooked_optimize_functions  # type: ignore[method-assign]


@contextmanager
def suspended() -> Iterator[None]:
    """Do not record modules optimized inside this block (in this thread)."""
    _state.suspended = getattr(_state, "suspended", 0) + 1
    try:
        yield
    finally:
        _state.suspended -= 1


@contextmanager
def _recorded() -> Iterator[None]:
    """Record the modules optimized inside this block, even inside `suspended`."""
    before = getattr(_state, "suspended", 0)
    _state.suspended = 0
    try:
        yield
    finally:
        _state.suspended = before


def function_ir(symbol: str) -> str | None:
    """The function-optimized module text that defines `symbol`, if captured."""
    with _lock:
        return _registry.get(symbol)


def modules_for(root: str, opaque: Callable[[str], bool] = lambda _: False) -> list[str]:
    """Module texts needed for `root`: its own, then those of its Numba callees, transitively.

    Callees are the declarations of a module that name a Numba-compiled function: their IR
    is the captured one or, for a function compiled while the hook did not see it (loaded
    from Numba's disk cache, compiled before enzpy was imported), that of a compilation
    made again (`compiled_again`). Runtime functions (NRT, C helpers, libm, intrinsics)
    stay declarations, and so do the callees `opaque` names and those whose IR cannot be
    had. Raises KeyError when `root` was not captured.
    """
    first = function_ir(root)
    if first is None:
        raise KeyError(
            f"no captured IR for {root!r} (compiled before enzpy.bridge was imported,"
            " or loaded from Numba's disk cache?)"
        )
    out: list[str] = []
    seen_texts: set[str] = set()
    seen_syms: set[str] = {root}
    stack = [first]
    while stack:
        text = stack.pop(0)
        if text in seen_texts:
            continue
        seen_texts.add(text)
        out.append(text)
        seen_syms.update(defined_symbols(text))
        for name in called_symbols(text):
            if name in seen_syms or is_runtime_symbol(name) or opaque(name):
                continue
            seen_syms.add(name)
            callee = function_ir(name)
            stack.extend([callee] if callee is not None else compiled_again(name))
    return out


UNRESOLVED = ".numba.unresolved$"  # + symbol: a pointer Numba's linker fills in


def called_symbols(module_text: str) -> list[str]:
    """The functions a module text calls without defining them: its declarations, and the
    targets of Numba's calls between overloads of a recursive function, made through a
    pointer the linker fills in (`@".numba.unresolved$<symbol>"`)."""
    pointers = re.findall(r'@"' + re.escape(UNRESOLVED) + r'([^"]+)"', module_text)
    return declared_symbols(module_text) + list(dict.fromkeys(pointers))


_again: dict[str, list[str]] = {}  # symbol -> module texts of a compilation made again
_kept: list[Any] = []  # the dispatchers of those compilations (their code stays loaded)


def compiled_again(symbol: str) -> list[str]:
    """Module texts defining `symbol`, a function Numba compiled without the hook seeing it,
    from compiling its Python function again for the same argument types (without a disk
    cache), the new symbol renamed `symbol`; [] when no dispatcher has it compiled."""
    if not symbol.startswith("_ZN"):  # not a function Numba compiled (libm, C helpers)
        return []
    if symbol not in _again:
        _again[symbol] = []
        found = _overload_named(symbol)
        if found is not None:
            dispatcher, argtypes = found
            try:
                fresh = compiled_afresh(dispatcher, argtypes)
            except Exception:  # noqa: BLE001 - no IR then: the refusal says so
                return []
            _kept.append(fresh)
            name = compiled_function(fresh, argtypes)[0]
            if function_ir(name) is not None:
                same = re.compile(re.escape(name) + r"(?![-\w$.])")
                _again[symbol] = [same.sub(lambda _: symbol, t) for t in modules_for(name)]
    return _again[symbol]


def compiled_afresh(dispatcher: Any, argtypes: tuple) -> Any:
    """A new dispatcher of `dispatcher`'s Python function and options but Numba's disk
    cache, compiled for `argtypes`: its IR captured (even inside `suspended`)."""
    options = {k: v for k, v in dispatcher.targetoptions.items() if k not in ("cache", "nopython")}
    fresh = numba.njit(**options)(dispatcher.py_func)
    with _recorded():
        fresh.compile(argtypes)
    return fresh


def _overload_named(symbol: str) -> tuple[Any, tuple] | None:
    """(dispatcher, argument types) of the compiled overload whose symbol is `symbol`."""
    for obj in _dispatchers_named(symbol):
        if issubclass(type(obj), Dispatcher):  # (not a proxy to a dead object)
            for argtypes, cres in list(obj.overloads.items()):
                if getattr(cres.fndesc, "mangled_name", None) == symbol:
                    return obj, argtypes
    return None


def _dispatchers_named(symbol: str) -> Iterator[Any]:
    """The module-level function `symbol` names (usually its dispatcher, or an object
    holding it as `dispatcher`), then every object (for a function defined in a function,
    or bound to another name)."""
    module, _, name = demangle(symbol).rpartition(".")
    named = getattr(sys.modules.get(module), name, None)
    yield getattr(named, "dispatcher", named)
    yield from gc.get_objects()


def compiled_function(dispatcher: Any, argtypes: tuple | None = None) -> tuple[str, Any, Any]:
    """(mangled symbol, code library, signature) of a compiled overload of `dispatcher`.

    With `argtypes` None the dispatcher must have exactly one compiled overload.
    """
    if argtypes is None:
        if len(dispatcher.overloads) != 1:
            raise ValueError(
                f"{dispatcher} has {len(dispatcher.overloads)} overloads; pass argtypes"
            )
        cres = next(iter(dispatcher.overloads.values()))
    else:
        cres = dispatcher.overloads[tuple(argtypes)]
    return cres.fndesc.mangled_name, cres.library, cres.signature


install_hook()
