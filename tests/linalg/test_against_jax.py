"""The linear-algebra rules against JAX's derivatives of the same functions (when JAX is
installed: `pip install -e '.[bench]'`)."""

import numpy as np
import pytest

import enzpy as ez

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
jax.config.update("jax_enable_x64", True)

rng = np.random.default_rng(5)
A = rng.standard_normal((5, 5)) + 5 * np.eye(5)
SPD = A @ A.T + np.eye(5)
b = rng.standard_normal(5)
W = rng.standard_normal((5, 5))


@ez.enzyme_jit
def ours(a, b, w):
    s = np.sin(np.linalg.solve(a, b)).sum() + (np.linalg.inv(a) * w).sum()
    s += np.linalg.slogdet(a)[1] + np.linalg.norm(b) * np.linalg.det(a) * 1e-3
    return s


def theirs(a, b, w):
    s = jnp.sin(jnp.linalg.solve(a, b)).sum() + (jnp.linalg.inv(a) * w).sum()
    s += jnp.linalg.slogdet(a)[1] + jnp.linalg.norm(b) * jnp.linalg.det(a) * 1e-3
    return s


@ez.enzyme_jit
def ours_symmetric(a, w):
    lower = np.linalg.cholesky(a)
    values, vectors = np.linalg.eigh(a)
    return (lower * w).sum() + (values * np.arange(5.0)).sum() + (vectors[:, 0] ** 4).sum()


def theirs_symmetric(a, w):
    lower = jnp.linalg.cholesky(a)
    values, vectors = jnp.linalg.eigh(a)
    return (lower * w).sum() + (values * jnp.arange(5.0)).sum() + (vectors[:, 0] ** 4).sum()


def test_general_matrices():
    ga, gb, _ = ez.gradient(ez.Reverse, ours, A, b, ez.Const(W))
    ja, jb = jax.grad(theirs, argnums=(0, 1))(A, b, W)
    np.testing.assert_allclose(ga, ja, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gb, jb, rtol=1e-9, atol=1e-12)


def test_symmetric_matrices_on_the_lower_triangle():
    """JAX symmetrizes its input, enzpy (as NumPy) reads the lower triangle: the gradients
    agree after folding JAX's onto the lower triangle."""
    ga, _ = ez.gradient(ez.Reverse, ours_symmetric, SPD, ez.Const(W))
    ja = np.asarray(jax.grad(theirs_symmetric)(SPD, W))
    folded = np.tril(ja + ja.T) - np.diag(np.diag(ja))
    np.testing.assert_allclose(ga, folded, rtol=1e-8, atol=1e-10)
