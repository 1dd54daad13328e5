"""Derivatives kept on disk for `@ez.enzyme_jit(cache=True)` functions, beside Numba's cache.

An entry is keyed by the function's fingerprint (its code and constants, the values it
reads from globals and closures, those of the jitted functions it calls, transitively, and
the derivative rules users registered), by the call shape (argument types, annotations,
mode, batch width) and by enzpy's sources, Numba's and llvmlite's versions and the CPU. It holds
the synthesized IR (for nested differentiation), the engine's names of its entry points,
the warnings its synthesis gave, and the machine code. Small facts found by analysing the
primal (which arguments it may write) are kept the same way (`remember`, `recalled`). A
file that cannot be read, whose checksum or key does not match, or whose machine code needs
a symbol this process does not have, is rebuilt and written again, never loaded.

Like Numba's own cache, a fingerprint sees what the function's code names; it does not see
a change in what a module attribute it reads (`np.pi`, `helpers.scale`) holds.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pathlib
import pickle
import re
import tempfile
import types as pytypes
import zlib
from dataclasses import dataclass, field
from typing import Any

import llvmlite
import llvmlite.binding as llvm
import numba
import numpy as np
from numba.core.compiler_lock import global_compiler_lock
from numba.core.registry import cpu_target

import llvm_passes

from . import rules
from .bridge import pool

_FORMAT = 1  # the layout of an entry's file
#: entries loaded and written by this process
stats = {"loaded": 0, "written": 0, "pools loaded": 0}
_ADDRESS = re.compile(r"inttoptr \(i64 \d{5,}")  # an address of this process, in IR


@dataclass
class Stored:
    """What a cache entry holds, or will hold once the derivative is built."""

    path: str
    key: str
    suffix: str  # makes the entry points' names unique in the process (from the key)
    text: str = ""  # the synthesized module
    names: dict[str, Any] = field(default_factory=dict)  # the engine's entry-point names
    warnings: list[str] = field(default_factory=list)
    library: Any = None  # the machine code, once loaded or built

    def save(self) -> None:
        """Write the entry (atomically: a reader sees the old file or the new one), unless
        its machine code holds what only this process has: addresses, or calls of
        compiled functions by address (nested differentiation)."""
        needs = _undefined(self.library)
        if (
            self.library.has_dynamic_globals
            or _ADDRESS.search(str(self.library._final_module))
            or any(name.startswith("_ZN") for name in needs)
        ):
            return
        payload = {
            "text": zlib.compress(self.text.encode()),
            "names": self.names,
            "warnings": self.warnings,
            "library": self.library.serialize_using_object_code(),
            "needs": sorted(needs),
        }
        if _write(self.path, self.key, payload):
            stats["written"] += 1
        if pool.ALLOCATOR in needs:
            _ensure_pool(os.path.dirname(self.path))


def _write(path: str, key: str, content: Any) -> bool:
    """Write `content` under `key` at `path` (atomically: a reader sees the old file or the
    new one); whether it was written (not in a read-only or full cache directory)."""
    payload = pickle.dumps(content)
    blob = pickle.dumps(
        {
            "format": _FORMAT,
            "key": key,
            "sha256": hashlib.sha256(payload).hexdigest(),
            "payload": payload,
        }
    )
    tmp = None
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
        os.replace(tmp, path)
        return True
    except OSError:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        return False


def _read(path: str, key: str) -> Any:
    """What `_write` wrote under `key` at `path`; raises when it is missing, truncated,
    corrupt, of another layout or key."""
    with open(path, "rb") as fh:
        blob = pickle.load(fh)
    payload = blob["payload"]
    if (
        blob["format"] != _FORMAT
        or blob["key"] != key
        or hashlib.sha256(payload).hexdigest() != blob["sha256"]
    ):
        raise ValueError(f"stale or corrupt cache entry {path}")
    return pickle.loads(payload)


def _place(f: Any, shape: tuple, kind: str = "enzpy") -> tuple[str, str] | None:
    """The file (`kind` its extension) and key of `f`'s entry for `shape`; None when `f`
    is not cached."""
    if not f.options.get("cache"):
        return None
    cache = getattr(f.dispatcher, "_cache", None)
    directory = getattr(cache, "_cache_path", None)
    if directory is None:
        return None
    where = repr(shape)  # one file per call shape: a new version of anything replaces it
    try:
        key = repr((_fingerprint(f.dispatcher), where, _environment()))
    except Exception:  # a value it reads cannot be described (its repr raises): not cached
        return None
    name = re.sub(r"[^\w.]", "_", _name(f.py_func))
    return os.path.join(directory, "enzpy", f"{name}-{_digest(where)[:24]}.{kind}"), key


def entry(f: Any, shape: tuple) -> Stored | None:
    """The cache entry of `f`'s derivative for the call shape `shape` (the derivative's
    in-memory cache key), loaded when a valid one is on disk; None when `f` is not cached."""
    place = _place(f, shape)
    if place is None:
        return None
    path, key = place
    stored = Stored(path, key, f"enzpy.{_digest(key)[:16]}")
    _load(stored)
    return stored


def recalled(f: Any, what: tuple) -> Any:
    """A fact about `f` that `remember` kept on disk under `what`; None when there is none
    (or `f` is not cached)."""
    place = _place(f, what, "fact")
    try:
        return None if place is None else _read(*place)
    except Exception:  # missing, truncated, corrupt or stale: found again
        return None


def remember(f: Any, what: tuple, value: Any) -> None:
    """Keep `value` (picklable) on disk under `what`, for `recalled` in later processes."""
    place = _place(f, what, "fact")
    if place is not None:
        _write(*place, value)


def _load(stored: Stored) -> None:
    try:
        content = _read(stored.path, stored.key)
        codegen = cpu_target.target_context.codegen()
        if pool.ALLOCATOR in content["needs"]:
            _ensure_pool(os.path.dirname(stored.path))
        if not all(_resolvable(codegen, name) for name in content["needs"]):
            return
        with global_compiler_lock:
            library = codegen.unserialize_library(content["library"])
        stored.text = zlib.decompress(content["text"]).decode()
        stored.names, stored.warnings = content["names"], content["warnings"]
        stored.library = library
        stats["loaded"] += 1
    except Exception:  # missing, truncated, corrupt or from another layout: rebuilt
        return


def _ensure_pool(directory: str) -> None:
    """The derivatives' allocator (`pool`) in this process, and a copy of its machine code
    in `directory`: loaded from there where a valid copy is, else compiled (or already
    compiled) and the copy written."""
    path, key = os.path.join(directory, "pool.lib"), repr(("pool", _environment()))
    try:
        compiled = _read(path, key)
    except Exception:  # missing, truncated, corrupt or stale: written again
        _write(path, key, pool.compiled_code())
    else:
        stats["pools loaded"] += pool.ensure(compiled)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _resolvable(codegen: Any, name: str) -> bool:
    """Whether machine code loaded now finds `name` (in the process, or in Numba's JIT)."""
    return llvm.address_of_symbol(name) is not None or codegen._engine.is_symbol_defined(name)


def _undefined(library: Any) -> set[str]:
    """The symbols the library's machine code takes from the process."""
    module = library._final_module
    found = {g.name for g in module.global_variables if g.is_declaration}
    found |= {f.name for f in module.functions if f.is_declaration}
    return {name for name in found if not name.startswith("llvm.")}


@functools.cache
def _environment() -> tuple:
    return (
        _enzpy_sources(),
        numba.__version__,
        llvmlite.__version__,
        llvm.get_process_triple(),
        llvm.get_host_cpu_name(),
        llvm.get_host_cpu_features().flatten(),
    )


def _enzpy_sources() -> str:
    """A digest of enzpy's and its engine's source files (the version, to the byte)."""
    h = hashlib.sha256()
    for package in (pathlib.Path(__file__).parent, pathlib.Path(llvm_passes.__file__).parent):
        for path in sorted(package.rglob("*.py")):
            h.update(path.read_bytes())
    return h.hexdigest()


def _fingerprint(dispatcher: Any) -> str:
    """A digest of what Numba compiles for `dispatcher` and the rules users declared for
    the functions it reaches (and their rules reach)."""
    h = hashlib.sha256()
    seen: set[int] = set()  # the Python functions hashed
    _function(h, dispatcher.py_func, seen)
    hashed: set[int] = set()
    while reached := [r for r in rules.ruled().values() if id(r.py_func) in seen - hashed]:
        for r in sorted(reached, key=lambda r: _name(r.py_func)):
            hashed.add(id(r.py_func))
            h.update(repr((_name(r.py_func), r.inactive, sorted(r.inactive_args))).encode())
            for rule in (r.forward, r.augmented, r.reverse):
                if rule is not None:
                    _function(h, rule.py_func, seen)
    return h.hexdigest()


def _function(h: Any, fn: Any, seen: set[int]) -> None:
    if id(fn) in seen:
        return
    seen.add(id(fn))
    h.update(_name(fn).encode())
    _code(h, fn.__code__)
    for cell in fn.__closure__ or ():
        _value(h, cell.cell_contents, seen)
    for name in sorted(_names(fn.__code__)):
        if name in fn.__globals__:
            h.update(name.encode())
            _value(h, fn.__globals__[name], seen)


def _name(fn: Any) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def _code(h: Any, code: pytypes.CodeType) -> None:
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    for const in code.co_consts:
        if isinstance(const, pytypes.CodeType):
            _code(h, const)
        else:
            h.update(repr(const).encode())


def _names(code: pytypes.CodeType) -> set[str]:
    out = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, pytypes.CodeType):
            out |= _names(const)
    return out


def _value(h: Any, value: Any, seen: set[int]) -> None:
    """Hash what Numba freezes of a global or closure value (or names it, for modules)."""
    py_func = getattr(value, "py_func", None)
    if py_func is not None:  # a jitted function (Numba's or enzpy's)
        _function(h, py_func, seen)
    elif isinstance(value, pytypes.FunctionType):  # (overloaded for Numba)
        _function(h, value, seen)
    elif isinstance(value, pytypes.ModuleType):
        h.update(value.__name__.encode())
    elif isinstance(value, np.ndarray):
        h.update(repr((value.dtype.str, value.shape)).encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, tuple):
        for item in value:
            _value(h, item, seen)
    else:  # numbers, strings, types; objects whose repr shows their address never match
        h.update(f"{type(value).__qualname__}:{value!r}".encode())
