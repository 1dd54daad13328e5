"""Second derivatives of prange functions: `ez.hvp` (reverse mode over the forward
derivative, whose parallel loops the outer derivative runs in parallel too) against the
serial function's Hessian-vector product and central differences of its gradient."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from harness import assert_close

import enzpy as ez
from parallel.kernels import array_expression, compiled, reduction, shifted, then_scaled


@pytest.mark.parametrize(
    "kernel", [reduction, array_expression, shifted, then_scaled], ids=lambda k: k.__name__
)
def test_hvp_against_the_serial_function_and_differences_of_the_gradient(kernel):
    rng = np.random.default_rng(9)
    x, v = rng.uniform(-1.0, 1.0, 33), rng.uniform(-1.0, 1.0, 33)
    with numba.parallel_chunksize(4):
        got = ez.hvp(compiled(kernel, True), x.copy(), v)
    serial = compiled(kernel, False)
    assert_close(got, ez.hvp(serial, x.copy(), v), 1e-12, 1e-14, "parallel vs serial")

    def gradient(y):
        return ez.gradient(ez.Reverse, serial, y.copy())[0]

    fd = (gradient(x + 1e-6 * v) - gradient(x - 1e-6 * v)) / 2e-6
    assert_close(got, fd, 1e-6, 1e-8, "vs central differences of the gradient")
