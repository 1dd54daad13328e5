"""`ez.hvp` and `ez.hessian`, and a forward-over-reverse product inside jitted code, against
JAX's `jvp(grad)` and `hessian` of the same functions written in `jax.numpy` (skipped
without JAX)."""

import math

import numpy as np
import pytest

import enzpy as ez

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
jax.config.update("jax_enable_x64", True)


@ez.enzyme_jit
def loss(x, w):
    """A small network's loss: tanh layers by loops, a log-sum-exp at the end."""
    h = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        acc = 0.0
        for j in range(x.shape[0]):
            acc += w[i, j] * x[j]
        h[i] = math.tanh(acc + x[i] * x[i])
    m = h.max()
    s = 0.0
    for i in range(h.shape[0]):
        s += math.exp(h[i] - m)
    return m + math.log(s)


def loss_jax(x, w):
    h = jnp.tanh(w @ x + x * x)
    return jax.scipy.special.logsumexp(h)


@ez.enzyme_jit
def gradient_into(x, w, g):
    ez.autodiff(ez.Reverse, loss, ez.Active, ez.Duplicated(x, g), ez.Const(w))
    return 0.0


RNG = np.random.default_rng(11)
X = RNG.standard_normal(6)
W = RNG.standard_normal((6, 6)) * 0.5
V = RNG.standard_normal(6)


def test_hvp_and_hessian():
    expected = np.asarray(jax.jvp(jax.grad(lambda x: loss_jax(x, W)), (X,), (V,))[1])
    np.testing.assert_allclose(ez.hvp(loss, X, V, W), expected, rtol=1e-12, atol=1e-14)
    hess = np.asarray(jax.hessian(loss_jax)(X, W))
    np.testing.assert_allclose(ez.hessian(loss, X, W), hess, rtol=1e-12, atol=1e-14)


def test_forward_over_reverse():
    g, hv = np.zeros_like(X), np.zeros_like(X)
    ann = (ez.Duplicated(X.copy(), V.copy()), ez.Const(W), ez.Duplicated(g, hv))
    ez.autodiff(ez.Forward, gradient_into, *ann)
    np.testing.assert_allclose(g, np.asarray(jax.grad(loss_jax)(X, W)), rtol=1e-13)
    expected = np.asarray(jax.jvp(jax.grad(lambda x: loss_jax(x, W)), (X,), (V,))[1])
    np.testing.assert_allclose(hv, expected, rtol=1e-12, atol=1e-14)
