"""The decorator the eval kernels are written under: ``ez.enzyme_jit``, or ``numba.njit`` when
enzpy cannot be imported (the primal, FD and peer columns still run)."""

from __future__ import annotations

from typing import Any

import numba

try:
    import enzpy as ez

    jit: Any = ez.enzyme_jit
    ENZPY_IMPORT_ERROR: str | None = None
except Exception as _exc:  # noqa: BLE001
    ez = None
    jit = numba.njit
    ENZPY_IMPORT_ERROR = f"{type(_exc).__name__}: {_exc}"

#: hand-written gradients are plain Numba
njit = numba.njit(cache=False)

__all__ = ["ENZPY_IMPORT_ERROR", "ez", "jit", "njit"]
