"""`enzyme_jit`: a Numba-compiled function that enzpy can differentiate.

An `EnzymeJit` pickles as a Python function does: by reference (its module and qualified
name) when importing that module gives back the same object, by value otherwise (defined in
`__main__`, inside a function, or in a module cloudpickle was told to pickle by value): then
the Python function travels (through Numba's cloudpickle, with the globals and closures it
reads, jitted helpers included) with the `numba.njit` options and the rules declared for it
and for the `@njit` functions it calls. Compiled code and derivatives never travel: where it
is unpickled, the function is compiled again (Numba's cache is not used there) and its
derivatives are built again, or loaded from the derivative disk cache (`cache=True`) when
the cache directory is shared. Unpickling by value gives one object per original in a
process (the original itself in the process that pickled it), so a worker builds a
derivative once, not once per task.
"""

from __future__ import annotations

import functools
import sys
import threading
import uuid
import weakref
from collections.abc import Callable
from typing import Any

import numba
from numba import cloudpickle as numba_cloudpickle
from numba.core import serialize

from . import bridge  # noqa: F401  (installs the IR capture hook before any compilation)

#: `enzyme_jit` options that are enzpy's, not Numba's
ENZPY_OPTIONS = ("flush_denormals",)


class EnzymeJit:
    """A Numba dispatcher that runs the primal when called and can be differentiated.

    Compiles lazily per signature, as `numba.njit` does; `py_func` is the Python function.
    """

    _uuid: str | None = None  # names the object across processes once it is pickled by value

    def __init__(self, py_func: Callable[..., Any], options: dict[str, Any]) -> None:
        self.py_func = py_func
        self.options = dict(options)
        self.dispatcher = numba.njit(**self.numba_options)(py_func)
        functools.update_wrapper(self, py_func)
        _by_dispatcher[self.dispatcher] = self

    @property
    def flush_denormals(self) -> bool:
        """Whether reverse sweeps flush subnormal floats to zero (`enzyme_jit`)."""
        return bool(self.options.get("flush_denormals", True))

    @property
    def numba_options(self) -> dict[str, Any]:
        """The options passed to `numba.njit` (all but enzpy's own)."""
        return {k: v for k, v in self.options.items() if k not in ENZPY_OPTIONS}

    def __reduce__(self) -> Any:
        if _importable(self):
            return self.py_func.__qualname__  # by reference, as pickle saves a function
        from .rules import travelling  # (rules imports this module)

        with _lock:
            if self._uuid is None:
                self._uuid = str(uuid.uuid4())
                _by_uuid[self._uuid] = self
        return serialize.custom_reduce(  # by value, through Numba's cloudpickle
            EnzymeJit,
            {
                "uuid": self._uuid,
                "py_func": self.py_func,
                "options": self.options,
                "rules": travelling(self),
            },
        )

    @classmethod
    def _rebuild(
        cls, uuid: str, py_func: Callable[..., Any], options: dict[str, Any], rules: tuple
    ) -> EnzymeJit:
        """The function pickled by value as `uuid`: the one this process already has, else a
        new one (kept for the next task that names it) with the `rules` pickled with it."""
        from .rules import restore

        with _lock:
            self = _by_uuid.get(uuid)
            if self is None:
                try:
                    self = cls(py_func, options)
                except RuntimeError:  # Numba finds no cache directory for a source file that
                    if not options.get("cache"):  # is not on this machine: compiled uncached
                        raise
                    self = cls(py_func, {**options, "cache": False})
                # Numba's cache of the primal is left off, as for Numba's own unpickled
                # dispatchers: it would record this process's `__main__` as the module of a
                # function from another's. The derivative disk cache stays on.
                self.dispatcher._cache.disable()
                self._uuid = uuid
                _by_uuid[uuid] = _rebuilt[uuid] = self
                restore(self, rules)
        return self

    def __call__(self, *args: Any) -> Any:
        return self.dispatcher(*args)

    def __repr__(self) -> str:
        return f"<enzpy.enzyme_jit {self.py_func.__qualname__}>"

    # Numba treats the object like its dispatcher when it is called from jitted code.
    @property
    def _numba_type_(self) -> Any:
        return numba.typeof(self.dispatcher)


_by_dispatcher: weakref.WeakKeyDictionary[Any, EnzymeJit] = weakref.WeakKeyDictionary()
_by_uuid: weakref.WeakValueDictionary[str, EnzymeJit] = weakref.WeakValueDictionary()
_rebuilt: dict[str, EnzymeJit] = {}  # what unpickling made: kept for the next task
_lock = threading.Lock()


def _importable(f: EnzymeJit) -> bool:
    """Whether `f` is what its module, imported, holds under its qualified name (the module
    not `__main__` and not registered with cloudpickle to be pickled by value)."""
    name = f.py_func.__module__
    module = sys.modules.get(name)
    if module is None or name == "__main__":
        return False
    found: Any = module
    for attribute in f.py_func.__qualname__.split("."):
        found = getattr(found, attribute, None)
    if found is not f:
        return False
    by_value = set(numba_cloudpickle.list_registry_pickle_by_value())
    if "cloudpickle" in sys.modules:  # (dask's, distinct from Numba's copy)
        by_value |= sys.modules["cloudpickle"].list_registry_pickle_by_value()
    parts = name.split(".")
    return not any(".".join(parts[:i]) in by_value for i in range(1, len(parts) + 1))


def from_dispatcher(dispatcher: Any) -> EnzymeJit | None:
    """The `EnzymeJit` whose Numba dispatcher is `dispatcher` (how jitted code names it),
    or None for a plain `numba.njit` function."""
    return _by_dispatcher.get(dispatcher)


def enzyme_jit(fn: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Compile `fn` with Numba (`numba.njit` options pass through) for use with enzpy.

    enzpy's own option: `flush_denormals` (default True; x86-64): reverse sweeps run with
    subnormal floats flushed to zero, an adjoint below 2.2e-308 in magnitude being 0, since
    arithmetic on subnormals is a hundred times slower; the primal's results keep IEEE
    arithmetic. False keeps subnormal adjoints.

    Examples
    --------
    >>> import enzpy as ez
    >>> @ez.enzyme_jit
    ... def square(x):
    ...     return x * x
    >>> square(3.0)
    9.0
    """
    if fn is None:
        return lambda f: EnzymeJit(f, options)
    return EnzymeJit(fn, options)
