"""`ez.jacobian`: dense (forward in chunks, reverse by rows) and sparse (colored seeds)
Jacobians against central finite differences, each other, and JAX where installed."""

import numpy as np
import pytest
import scipy.sparse as sp

import enzpy as ez


@ez.enzyme_jit
def _mix(x, A, a):
    """A tuple return: an array and a float, with a Const matrix and a float parameter."""
    y = A @ np.sin(x) * a
    return y, (x * x).sum() * a


@ez.enzyme_jit
def _vector(x, a):
    return np.exp(x[::-1]) * a + x.cumsum()


@ez.enzyme_jit
def _band(x):
    n = x.shape[0]
    y = np.empty(n)
    for i in range(n):
        y[i] = x[i] * x[i]
        if i > 0:
            y[i] += np.sin(x[i - 1])
        if i + 1 < n:
            y[i] += x[i] * x[i + 1]
    return y


def _fd(f, args, k, eps=1e-6):
    """Central differences of the flattened float return with respect to argument k."""

    def flat(out):
        parts = out if isinstance(out, tuple) else (out,)
        return np.concatenate([np.ravel(p) for p in parts])

    x = args[k]
    cols = []
    for i in range(np.size(x)):
        hi, lo = list(args), list(args)
        if isinstance(x, np.ndarray):
            hi[k], lo[k] = x.copy(), x.copy()
            hi[k].reshape(-1)[i] += eps
            lo[k].reshape(-1)[i] -= eps
        else:
            hi[k], lo[k] = x + eps, x - eps
        cols.append((flat(f.py_func(*hi)) - flat(f.py_func(*lo))) / (2 * eps))
    return np.stack(cols, axis=1)


@pytest.mark.parametrize(
    ("mode", "chunk"),
    [(ez.Forward, None), (ez.Forward, 1), (ez.Forward, 64), (ez.Reverse, None), (ez.Reverse, 3)],
)
def test_dense_against_finite_differences(mode, chunk):
    rng = np.random.default_rng(0)
    x, a = rng.standard_normal(7), 1.3
    jx, ja = ez.jacobian(mode, _vector, x, a, chunk=chunk)
    assert jx.shape == (7, 7) and ja.shape == (7,)
    np.testing.assert_allclose(jx, _fd(_vector, [x, a], 0), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(ja, _fd(_vector, [x, a], 1)[:, 0], rtol=1e-7, atol=1e-8)


def test_tuple_return_const_and_shapes():
    rng = np.random.default_rng(1)
    x, A, a = rng.standard_normal((3, 4)), rng.standard_normal((5, 12)), 0.7
    for mode in (ez.Forward, ez.Reverse):
        _check_mix(mode, x.ravel(), A, a)


def _check_mix(mode, x, A, a):
    jx, j_a_const, ja = ez.jacobian(mode, _mix, x, ez.Const(A), a)
    (jy, js), (jya, jsa) = jx, ja
    assert j_a_const is None
    assert jy.shape == (5, 12) and js.shape == (12,) and jya.shape == (5,) and jsa.shape == ()
    fd = _fd(_mix, [x, A, a], 0)
    np.testing.assert_allclose(np.vstack([jy, js]), fd, rtol=1e-7, atol=1e-8)
    fd_a = _fd(_mix, [x, A, a], 2)[:, 0]
    np.testing.assert_allclose(np.append(jya, jsa), fd_a, rtol=1e-7, atol=1e-8)


def test_matrix_argument_shapes():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4))

    @ez.enzyme_jit
    def rows(x):
        return np.sin(x).sum(axis=1)

    for mode in (ez.Forward, ez.Reverse):
        (j,) = ez.jacobian(mode, rows, x)
        assert j.shape == (3, 3, 4)
        np.testing.assert_allclose(j.reshape(3, 12), _fd(rows, [x], 0), rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("mode", [ez.Forward, ez.Reverse], ids=["forward", "reverse"])
def test_sparse_by_coloring(mode):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(40)
    pattern = sp.diags([1.0, 1.0, 1.0], [-1, 0, 1], shape=(40, 40))
    (dense,) = ez.jacobian(ez.Forward, _band, x)
    got = ez.jacobian(mode, _band, x, sparsity=pattern)
    assert isinstance(got, sp.csr_matrix) and got.nnz == pattern.nnz
    np.testing.assert_allclose(got.toarray(), dense, rtol=1e-14, atol=0)
    np.testing.assert_allclose(dense, _fd(_band, [x], 0), rtol=1e-7, atol=1e-8)
    colors = ez.greedy_coloring(pattern)
    assert colors.max() + 1 == 3  # a tridiagonal pattern needs three colors
    given = ez.jacobian(mode, _band, x, sparsity=pattern, colors=np.arange(40) % 3)
    np.testing.assert_array_equal(given.toarray(), got.toarray())


def test_errors():
    x = np.ones(6)
    pattern = sp.diags([1.0, 1.0, 1.0], [-1, 0, 1], shape=(6, 6))
    with pytest.raises(ez.AnnotationError, match="two nonzeros of line"):
        ez.jacobian(ez.Forward, _band, x, sparsity=pattern, colors=np.arange(6) % 2)
    with pytest.raises(ez.AnnotationError, match="takes enzpy.Forward or enzpy.Reverse"):
        ez.jacobian(ez.ForwardWithPrimal, _band, x)
    with pytest.raises(ez.AnnotationError, match="chunk must be a positive integer"):
        ez.jacobian(ez.Forward, _band, x, chunk=0)
    with pytest.raises(ez.AnnotationError, match="no float or float-array argument"):
        ez.jacobian(ez.Forward, _band, ez.Const(x))
    with pytest.raises(ez.AnnotationError, match="exactly one differentiated argument"):
        ez.jacobian(ez.Forward, _vector, x, 1.0, sparsity=pattern)


def test_against_jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    rng = np.random.default_rng(4)
    x, a = rng.standard_normal(9), 0.4

    def reference(x, a):
        return jnp.exp(x[::-1]) * a + jnp.cumsum(x)

    want = jax.jacfwd(reference, argnums=(0, 1))(x, a)
    for mode in (ez.Forward, ez.Reverse):
        got = ez.jacobian(mode, _vector, x, a)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, np.asarray(w), rtol=1e-13, atol=1e-14)


# ---- inside jitted code ----------------------------------------------------------------------


@ez.enzyme_jit
def _mix_jacobians(x, A, a):
    return (
        ez.jacobian(ez.Forward, _mix, x, ez.Const(A), a),
        ez.jacobian(ez.Reverse, _mix, x, ez.Const(A), a),
    )


def test_inside_jitted_code_equals_python():
    rng = np.random.default_rng(5)
    x, A, a = rng.standard_normal(12), rng.standard_normal((5, 12)), 0.7
    forward, reverse = _mix_jacobians(x, A, a)
    for mode, got in ((ez.Forward, forward), (ez.Reverse, reverse)):
        want = ez.jacobian(mode, _mix, x, ez.Const(A), a)
        assert got[1] is None
        for g, w in zip((*got[0], *got[2]), (*want[0], *want[2]), strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-14, atol=1e-15)
    (jy, js), _, (jya, jsa) = forward
    np.testing.assert_allclose(np.vstack([jy, js]), _fd(_mix, [x, A, a], 0), rtol=1e-7, atol=1e-8)
    fd_a = _fd(_mix, [x, A, a], 2)[:, 0]
    np.testing.assert_allclose(np.append(jya, jsa), fd_a, rtol=1e-7, atol=1e-8)


@ez.enzyme_jit
def _decay(p, t, y):
    return p[0] * np.exp(-p[1] * t) + p[2] - y


@ez.enzyme_jit
def _gauss_newton(p, t, y, steps):
    for _ in range(steps):
        J = ez.jacobian(ez.Forward, _decay, p, ez.Const(t), ez.Const(y))[0]
        p = p - np.linalg.solve(J.T @ J, J.T @ _decay(p, t, y))
    return p


def test_gauss_newton_inside_jitted_code():
    """A fit as a user writes it: the Jacobian of the residuals in a jitted loop."""
    t = np.linspace(0.0, 4.0, 30)
    truth = np.array([2.0, 0.7, 0.3])
    y = truth[0] * np.exp(-truth[1] * t) + truth[2]
    np.testing.assert_allclose(_gauss_newton(np.array([1.5, 1.0, 0.0]), t, y, 12), truth)


@ez.enzyme_jit
def _jacobian_in_mode(mode, f, x):
    return ez.jacobian(mode, f, x)


@ez.enzyme_jit
def _jacobian_of_const(f, x):
    return ez.jacobian(ez.Forward, f, ez.Const(x))


def _python_jacobian_of_const(f, x):
    return ez.jacobian(ez.Forward, f, ez.Const(x))


@ez.enzyme_jit
def _counts(x):
    return x.shape[0]


@pytest.mark.parametrize(
    ("jacobian", "of_const"),
    [(ez.jacobian, _python_jacobian_of_const), (_jacobian_in_mode, _jacobian_of_const)],
    ids=["python", "jitted"],
)
def test_same_errors_from_python_and_jitted_code(jacobian, of_const):
    x = np.ones(6)
    with pytest.raises(ez.AnnotationError, match="takes enzpy.Forward or enzpy.Reverse"):
        jacobian(ez.ForwardWithPrimal, _band, x)
    with pytest.raises(ez.AnnotationError, match="no float or float-array argument"):
        of_const(_band, x)
    with pytest.raises(ez.AnnotationError, match="_counts returns no float data"):
        jacobian(ez.Reverse, _counts, x)
