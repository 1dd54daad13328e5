"""ctypes loader for the native C reference kernels (``libenzpy_bench_native``)."""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
ABI_VERSION = 2

_dbl = ctypes.c_double
_i64 = ctypes.c_int64
_ptr = ctypes.POINTER(ctypes.c_double)

# name -> (restype, argtypes)
_SIGNATURES: dict[str, tuple[type, list[type]]] = {
    "reduction_primal": (_dbl, [_ptr, _i64]),
    "reduction_fwd": (_dbl, [_ptr, _ptr, _i64]),
    "reduction_rev": (_dbl, [_ptr, _ptr, _i64, _dbl]),
    "lv_primal": (_dbl, [_ptr, _ptr, _dbl, _i64]),
    "lv_fwd": (_dbl, [_ptr, _ptr, _ptr, _ptr, _dbl, _i64]),
    "lv_rev": (_dbl, [_ptr, _ptr, _ptr, _ptr, _dbl, _i64, _dbl]),
    "stencil_primal": (_dbl, [_ptr, _i64, _i64, _dbl, _dbl, _i64]),
    "stencil_fwd": (_dbl, [_ptr, _ptr, _i64, _i64, _dbl, _dbl, _i64]),
    "gmm_primal": (_dbl, [_i64, _i64, _i64, _ptr, _ptr, _ptr, _ptr, _ptr, _dbl, _i64, _dbl]),
    "gmm_rev": (
        _dbl,
        [_i64, _i64, _i64, _ptr, _ptr, _ptr, _ptr, _ptr, _ptr, _ptr, _ptr, _ptr, _dbl, _i64]
        + [_dbl, _dbl],
    ),
}


def _libname() -> str:
    """Platform file name of the shared library."""
    if sys.platform == "darwin":
        return "libenzpy_bench_native.dylib"
    if sys.platform == "win32":
        return "enzpy_bench_native.dll"
    return "libenzpy_bench_native.so"


def candidates() -> list[Path]:
    """Paths searched for the library, in order."""
    env = os.environ.get("ENZPY_BENCH_NATIVE")
    name = _libname()
    paths = [Path(env)] if env else []
    paths += [
        REPO / "build" / "native" / name,
        REPO / "bench" / "native" / "build" / name,
        REPO / "build" / name,
    ]
    return paths


def load(path: str | Path | None = None) -> ctypes.CDLL | None:
    """Load the library (from ``path`` or the first candidate that exists); None if not built."""
    paths = [Path(path)] if path else candidates()
    for p in paths:
        if p.is_file():
            lib = ctypes.CDLL(str(p))
            if lib.enzpy_bench_native_abi_version() != ABI_VERSION:
                raise RuntimeError(f"{p}: ABI version mismatch; rebuild the native kernels")
            for fname, (res, args) in _SIGNATURES.items():
                fn = getattr(lib, fname)
                fn.restype = res
                fn.argtypes = args
            lib._enzpy_path = str(p)  # type: ignore[attr-defined]
            return lib
    return None


def ptr(a: np.ndarray) -> ctypes._Pointer:
    """Pointer to the data of a C-contiguous float64 array."""
    if a.dtype != np.float64 or not a.flags.c_contiguous:
        raise ValueError("native kernels take C-contiguous float64 arrays")
    return a.ctypes.data_as(_ptr)
