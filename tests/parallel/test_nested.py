"""Second derivatives of prange functions: `ez.hvp` (reverse mode over the forward
derivative, whose parallel loops the outer derivative runs in parallel too), and forward
and reverse mode over a function taking a gradient by reverse mode inside (the chunks'
atomic adds differentiated), against the serial function's and central differences of the
gradient."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from harness import assert_close

import enzpy as ez
from parallel.kernels import (
    array_expression,
    compiled,
    reduction,
    shifted,
    stencil,
    then_scaled,
)


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


def _gradient_into(kernel):
    """g(x, out): out = the gradient of sum(cos(x) * y) for `kernel(x, y)` (parallel) by
    reverse mode inside; returns |out|^2."""
    f = compiled(kernel, True)

    @numba.njit
    def inner(x, dx):
        y, dy = np.zeros_like(x), np.cos(x)
        ez.autodiff(ez.Reverse, f, ez.Duplicated(x, dx), ez.Duplicated(y, dy))

    @ez.enzyme_jit
    def g(x, out):
        dx = np.zeros_like(x)
        inner(x, dx)
        s = 0.0
        for i in range(x.shape[0]):
            out[i] = dx[i]
            s += dx[i] * dx[i]
        return s

    return g


def test_forward_and_reverse_over_a_gradient_taken_inside():
    # the stencil: atomic adds at the chunks' borders, plain ones inside (the serial
    # function's derivatives agree to 1e-12 too; not compiled here for the suite's time)
    rng = np.random.default_rng(10)
    x, v = rng.uniform(-1.0, 1.0, 29), rng.uniform(-1.0, 1.0, 29)
    g = _gradient_into(stencil)
    out, hv = np.zeros_like(x), np.zeros_like(x)
    with numba.parallel_chunksize(4):
        ez.autodiff(ez.Forward, g, ez.Duplicated(x.copy(), v.copy()), ez.Duplicated(out, hv))
        (grad_norm,) = ez.gradient(ez.Reverse, g, x.copy(), np.zeros_like(x))[:1]

    def gradient(y):
        out = np.zeros_like(y)
        return g(y.copy(), out), out

    fd = (gradient(x + 1e-6 * v)[1] - gradient(x - 1e-6 * v)[1]) / 2e-6
    assert_close(hv, fd, 1e-6, 1e-8, "forward over reverse vs central differences")
    fd_norm = np.array(
        [(gradient(x + h)[0] - gradient(x - h)[0]) / 2e-6 for h in np.eye(x.size) * 1e-6]
    )
    assert_close(grad_norm, fd_norm, 1e-6, 1e-8, "reverse over reverse vs central differences")
