"""`enzyme_jit`: a Numba-compiled function that enzpy can differentiate."""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from typing import Any

import numba

from . import bridge  # noqa: F401  (installs the IR capture hook before any compilation)


class EnzymeJit:
    """A Numba dispatcher that runs the primal when called and can be differentiated.

    Compiles lazily per signature, as `numba.njit` does; `py_func` is the Python function.
    """

    def __init__(self, py_func: Callable[..., Any], options: dict[str, Any]) -> None:
        self.py_func = py_func
        self.options = dict(options)
        self.dispatcher = numba.njit(**self.options)(py_func)
        functools.update_wrapper(self, py_func)
        _by_dispatcher[self.dispatcher] = self

    def __call__(self, *args: Any) -> Any:
        return self.dispatcher(*args)

    def __repr__(self) -> str:
        return f"<enzpy.enzyme_jit {self.py_func.__qualname__}>"

    # Numba treats the object like its dispatcher when it is called from jitted code.
    @property
    def _numba_type_(self) -> Any:
        return numba.typeof(self.dispatcher)


_by_dispatcher: weakref.WeakKeyDictionary[Any, EnzymeJit] = weakref.WeakKeyDictionary()


def from_dispatcher(dispatcher: Any) -> EnzymeJit | None:
    """The `EnzymeJit` whose Numba dispatcher is `dispatcher` (how jitted code names it),
    or None for a plain `numba.njit` function."""
    return _by_dispatcher.get(dispatcher)


def enzyme_jit(fn: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Compile `fn` with Numba (`numba.njit` options pass through) for use with enzpy.

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
