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


def _gradient_into(kernel, parallel: bool):
    """g(x, out): out = the gradient of `kernel`'s return (or of sum(cos(x) * y) for a
    kernel writing y) by reverse mode inside; returns |out|^2."""
    f = compiled(kernel, parallel)
    if kernel is stencil:

        def loss_gradient(x, dx):
            y, dy = np.zeros_like(x), np.cos(x)
            ez.autodiff(ez.Reverse, f, ez.Duplicated(x, dx), ez.Duplicated(y, dy))

    else:

        def loss_gradient(x, dx):
            ez.autodiff(ez.Reverse, f, ez.Duplicated(x, dx))

    inner = numba.njit(loss_gradient)

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


@pytest.mark.parametrize("kernel", [reduction, stencil], ids=lambda k: k.__name__)
def test_forward_and_reverse_over_a_gradient_taken_inside(kernel):
    rng = np.random.default_rng(10)
    x, v = rng.uniform(-1.0, 1.0, 29), rng.uniform(-1.0, 1.0, 29)
    results = []
    for parallel in (True, False):
        g = _gradient_into(kernel, parallel)
        out, hv = np.zeros_like(x), np.zeros_like(x)
        with numba.parallel_chunksize(4):
            ez.autodiff(ez.Forward, g, ez.Duplicated(x.copy(), v.copy()), ez.Duplicated(out, hv))
            (grad_norm,) = ez.gradient(ez.Reverse, g, x.copy(), np.zeros_like(x))[:1]
        results.append((hv, grad_norm, g))
    (hv, grad_norm, g), (hv_serial, grad_norm_serial, _) = results
    assert_close(hv, hv_serial, 1e-12, 1e-14, "forward over reverse: parallel vs serial")
    assert_close(grad_norm, grad_norm_serial, 1e-12, 1e-14, "reverse over reverse")

    def gradient(y):
        out = np.zeros_like(y)
        return g(y.copy(), out), out

    fd = (gradient(x + 1e-6 * v)[1] - gradient(x - 1e-6 * v)[1]) / 2e-6
    assert_close(hv, fd, 1e-6, 1e-8, "vs central differences of the gradient")
    fd_norm = np.array(
        [(gradient(x + h)[0] - gradient(x - h)[0]) / 2e-6 for h in np.eye(x.size) * 1e-6]
    )
    assert_close(grad_norm, fd_norm, 1e-6, 1e-8, "vs central differences of |gradient|^2")
