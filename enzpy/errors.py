"""enzpy's exceptions. `EnzpyError` is the base of all of them."""

from __future__ import annotations


class EnzpyError(Exception):
    """Base class of every error enzpy raises."""


class AnnotationError(EnzpyError, TypeError):
    """An annotation, mode or return activity that does not fit the call."""


class ShadowError(EnzpyError, ValueError):
    """A shadow whose shape, dtype or memory does not match its primal."""


class NoDerivativeError(EnzpyError):
    """Code the engine cannot differentiate; names the instruction or callee and, where
    Numba kept it, the Python source line."""


class DroppedDerivativeWarning(UserWarning):
    """Active data was stored into `Const` memory and read back: as in Enzyme, that part of
    the derivative is dropped. Mark the memory `Duplicated` to keep it."""
