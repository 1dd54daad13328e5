"""Copies of arrays (`x.copy()`, a memcpy in Numba's IR) carry their tangents."""

from __future__ import annotations

import numpy as np
import pytest
from harness import check_forward

import enzpy as ez


@ez.enzyme_jit
def copy_then_overwrite(x):
    y = x.copy()
    y[0] = 2.0
    return (y * y).sum()


def test_forward_through_copy():
    check_forward(copy_then_overwrite, (np.array([1.0, 2.0, 3.0]),), (0,))
    (g,) = ez.gradient(ez.Forward, copy_then_overwrite, np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(g, [0.0, 4.0, 6.0], rtol=1e-14)


def test_reverse_through_copy_is_refused_by_name():
    with pytest.raises(ez.NoDerivativeError, match="llvm.memcpy"):
        ez.gradient(ez.Reverse, copy_then_overwrite, np.array([1.0, 2.0, 3.0]))
