"""Helpers the eval modules share: enzpy reverse-mode gradients for GradBench answers, random
directions, and the error for an unknown GradBench function name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _jit


def require_enzpy() -> Any:
    """The enzpy module, or ImportError with the reason it could not be imported."""
    if _jit.ez is None:
        raise ImportError(_jit.ENZPY_IMPORT_ERROR)
    return _jit.ez


def reverse_gradient(fn: Any, args: Sequence[Any], active: Sequence[bool]) -> list[Any]:
    """Gradient of the float returned by ``fn(*args)`` with respect to each active argument
    (an array -> an array from its zeroed shadow, a float -> its adjoint; None elsewhere), by
    one ``ez.autodiff(ez.Reverse, ...)`` call seeded with 1.0."""
    ez = require_enzpy()
    shadows = [
        np.zeros_like(a) if on and isinstance(a, np.ndarray) else None
        for a, on in zip(args, active, strict=True)
    ]
    annotated = []
    for a, on, s in zip(args, active, shadows, strict=True):
        if not on:
            annotated.append(ez.Const(a))
        elif s is not None:
            annotated.append(ez.Duplicated(a, s))
        else:
            annotated.append(ez.Active(a))
    adjoints = ez.autodiff(ez.Reverse, fn, ez.Active, *annotated)
    return [
        s if s is not None else (adj if on else None)
        for s, on, adj in zip(shadows, active, adjoints, strict=True)
    ]


def random_direction(args: Sequence[Any], active: Sequence[bool], seed: int = 5) -> tuple[Any, ...]:
    """A random normal tangent for every active argument (None for the others)."""
    r = np.random.default_rng(seed)
    out: list[Any] = []
    for a, on in zip(args, active, strict=True):
        if not on:
            out.append(None)
        elif isinstance(a, np.ndarray):
            out.append(r.standard_normal(a.shape))
        else:
            out.append(float(r.standard_normal()))
    return tuple(out)


def unknown(module: str, function: str, known: Sequence[str]) -> ValueError:
    """The error for a GradBench function name an eval does not answer."""
    return ValueError(f"{module}: unknown function {function!r}; expected one of {tuple(known)}")


def floats(values: Any, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A C-contiguous float64 array from JSON numbers (reshaped when ``shape`` is given)."""
    a = np.asarray(values, dtype=np.float64)
    return np.ascontiguousarray(a.reshape(shape) if shape is not None else a)
