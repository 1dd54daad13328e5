"""The prange kernels the parallel tests differentiate, and each compiled once (with or
without parallel=True) for all the tests that use it."""

from __future__ import annotations

import functools

import numba
import numpy as np

import enzpy as ez


def elementwise(x, y):
    for i in numba.prange(x.shape[0]):
        y[i] = np.sin(x[i]) * x[i]


def two_d(a, b):
    for i in numba.prange(a.shape[0]):
        for j in range(a.shape[1]):
            b[i, j] = a[i, j] * a[i, j] + np.cos(a[i, j]) * a[i, (j + 1) % a.shape[1]]


def captured_scalar(x, a, y):
    for i in numba.prange(x.shape[0]):
        y[i] = a * np.exp(-a * x[i])


def reduction(x):
    s = 0.0
    for i in numba.prange(x.shape[0]):
        s += x[i] * x[i]
    return s


def array_expression(x):
    return np.sum(x * x)


def stencil(x, y):
    for i in numba.prange(1, x.shape[0] - 1):
        y[i] = x[i - 1] * x[i + 1] - np.sin(x[i])


def periodic(x, y):  # x[i - 1] wraps around at i = 0: the last chunk's cell
    for i in numba.prange(x.shape[0]):
        y[i] = x[i - 1] * np.cos(x[i]) + x[i]


def from_start(x, y, lo):  # a stencil from where the caller says (x[-1] when lo is 0)
    for i in numba.prange(lo, x.shape[0] - 1):
        y[i] = x[i - 1] * x[i + 1] - np.sin(x[i])


def shifted(x):  # two views of x a cell apart: neighbouring chunks load the same cells
    y = x[1:]
    s = 0.0
    for i in numba.prange(y.shape[0]):
        s += x[i] * np.sin(y[i])
    return s


def then_scaled(x):  # x changed after the parallel loop read it
    s = 0.0
    for i in numba.prange(x.shape[0]):
        s += np.sin(x[i]) * x[i]
    x *= 2.0
    return s + x[0]


def then_rewritten(x):  # a second parallel loop writes what the first read
    s = 0.0
    for i in numba.prange(x.shape[0]):
        s += np.sin(x[i]) * x[i]
    for i in numba.prange(x.shape[0]):
        x[i] = x[i] * x[i]
    return s


def product(x):
    p = 1.0
    for i in numba.prange(x.shape[0]):
        p *= 1.0 + 0.1 * x[i]
    return p


def maximum(x):
    m = -np.inf
    for i in numba.prange(x.shape[0]):
        m = max(m, np.sin(3.0 * x[i]) + x[i])
    return m


def local_array(x, y):
    for i in numba.prange(x.shape[0]):
        t = np.empty(3)
        for k in range(3):
            t[k] = x[i] ** (k + 1)
        y[i] = t.sum()


def returned_array(x, z):
    return np.exp(x) * z + np.sin(x)


def two_loops(x, y):
    s = 0.0
    for i in numba.prange(x.shape[0]):
        s += x[i]
    for i in numba.prange(x.shape[0]):
        y[i] = x[i] * s


def subtraction(x):
    s = 1.0
    for i in numba.prange(x.shape[0]):
        s -= np.sin(x[i]) * x[i]
    return s


def gather(x, idx, y):
    for i in numba.prange(idx.shape[0]):
        y[i] = np.sin(x[idx[i]]) * x[idx[i]]


def scatter(x, idx, out):
    for i in numba.prange(x.shape[0]):
        out[idx[i]] += x[i] * x[i]


def copy(x, y):
    for i in numba.prange(x.shape[0]):
        y[i] = x[i]  # LLVM makes it a memcpy of the chunk's rows


def copy_rows(v, b):
    for i in numba.prange(b.shape[0]):
        for j in range(v.shape[0]):
            b[i, j] = v[j]  # a memcpy from the same cells in every chunk


def matvec(a, v, y):
    for i in numba.prange(a.shape[0]):
        s = 0.0
        for j in range(a.shape[1]):
            s += a[i, j] * v[j]
        y[i] = s


@functools.cache  # one compiled function per kernel: its tests share derivatives
def compiled(kernel, parallel: bool):
    return ez.enzyme_jit(parallel=parallel)(kernel) if parallel else ez.enzyme_jit(kernel)


def inputs(rng: np.random.Generator) -> dict:
    """Per kernel: (arguments, positions of the active ones)."""
    x = rng.uniform(-1.0, 1.0, 37)
    idx = rng.integers(0, 6, 37)  # many rows read the same cells
    return {
        elementwise: ([x, np.zeros_like(x)], (0, 1)),
        two_d: ([rng.uniform(-1.0, 1.0, (9, 5)), np.zeros((9, 5))], (0, 1)),
        captured_scalar: ([x, 0.7, np.zeros_like(x)], (0, 1, 2)),
        reduction: ([x], (0,)),
        subtraction: ([x], (0,)),
        product: ([x], (0,)),
        maximum: ([x], (0,)),
        array_expression: ([x], (0,)),
        returned_array: ([x, rng.uniform(-1.0, 1.0, 37)], (0, 1)),
        stencil: ([x, np.zeros_like(x)], (0, 1)),
        gather: ([x[:6].copy(), idx, np.zeros(37)], (0, 2)),
        scatter: ([x, rng.permutation(37), rng.uniform(-1.0, 1.0, 37)], (0, 2)),
        copy: ([x, rng.uniform(-1.0, 1.0, 37)], (0, 1)),
        copy_rows: ([x[:4].copy(), np.zeros((9, 4))], (0, 1)),
        matvec: ([rng.uniform(-1.0, 1.0, (11, 7)), x[:7].copy(), np.zeros(11)], (0, 1, 2)),
        local_array: ([x, np.zeros_like(x)], (0, 1)),
        two_loops: ([x, np.zeros_like(x)], (0, 1)),
    }
