"""np.linalg (solve, inv, det, slogdet, cholesky, norm, eigh, eigvalsh, eig, eigvals, svd, qr,
lstsq, matrix_rank), np.sort, np.median, np.interp and np.convolve called on data with
derivatives: differentiated through the rules of `enzpy.linalg`, against finite differences
of the whole map and the dot test, in both modes, in loops and in split mode."""

import warnings

import numpy as np
import pytest
from harness import check_all, check_forward, check_reverse

import enzpy as ez

rng = np.random.default_rng(0)
A = rng.standard_normal((4, 4)) + 4 * np.eye(4)
B = rng.standard_normal((4, 2))
b = rng.standard_normal(4)
SPD = A @ A.T + np.eye(4)
WEIGHTS = np.arange(16.0).reshape(4, 4) / 10


@ez.enzyme_jit
def solve_vector(a, b):
    return np.sin(np.linalg.solve(a, b)).sum()


@ez.enzyme_jit
def solve_matrix(a, b):
    return (np.linalg.solve(a, b) ** 2).sum()


@ez.enzyme_jit
def inverse(a):
    return (np.linalg.inv(a) * WEIGHTS).sum()


@ez.enzyme_jit
def determinants(a):
    sign, logdet = np.linalg.slogdet(a)
    return np.linalg.det(a) * 0.01 + logdet * sign


@ez.enzyme_jit
def cholesky(a):
    return (np.linalg.cholesky(a) * WEIGHTS).sum()


@ez.enzyme_jit
def norms(x, m):
    return np.linalg.norm(x) * np.linalg.norm(m)


@ez.enzyme_jit
def norms_of_orders(x, m):
    """The norms of every order NumPy takes as a number, of a vector and of a matrix."""
    v = np.linalg.norm(x, 1) + np.linalg.norm(x, ord=3) + np.linalg.norm(x, np.inf)
    v += np.linalg.norm(x, -np.inf) + np.linalg.norm(x, 0) + np.linalg.norm(x, 1.5)
    v += np.linalg.norm(x, -1) + np.linalg.norm(x, 2)
    w = np.linalg.norm(m, 1) + np.linalg.norm(m, -1) + np.linalg.norm(m, np.inf)
    w += np.linalg.norm(m, -np.inf) + np.linalg.norm(m, 2) + np.linalg.norm(m, -2)
    return v * w


@ez.enzyme_jit
def norm_by_order(x, orders, p):
    """Orders known when the code runs (an L1 penalty beside L2, say), and a float order
    differentiated."""
    s = np.linalg.norm(x, p)
    for o in orders:
        s += np.linalg.norm(x, o) ** 2
    return s


@ez.enzyme_jit
def thin_singular(a, w):
    """The thin SVD: singular values and both sets of singular vectors."""
    u, s, vh = np.linalg.svd(a, full_matrices=False)
    k = s.shape[0]
    return np.sum(s * w[0, :k]) + np.sum(u[:, 0] ** 3) * np.sum(vh[-1] ** 3) + np.sum(u * w[:, :k])


@ez.enzyme_jit
def pseudo_inverses(a, b):
    """pinv of a tall and of a wide matrix, the cut-off given and not."""
    return np.sum(np.linalg.pinv(a) ** 2) + np.sum(np.linalg.pinv(a.T, 1e-10) @ b)


@ez.enzyme_jit
def orthogonalized(a, w):
    """Both factors of a QR decomposition (the signs LAPACK picks are kept)."""
    q, r = np.linalg.qr(a)
    return np.sum(q * w) + np.sum(np.triu(r) ** 2 * w[: r.shape[0], : r.shape[1]])


@ez.enzyme_jit
def eigen(a):
    w, v = np.linalg.eigh(a)
    return (w * np.arange(4.0)).sum() + (v[:, 0] ** 4).sum() + (v[:, 3] ** 4).sum()


@ez.enzyme_jit
def symmetric_spectrum(a):
    w = np.linalg.eigvalsh(a)
    return (w * np.arange(1.0, 5.0)).sum() + w[3] ** 2


@ez.enzyme_jit
def general_eigen(a):
    w, v = np.linalg.eig(a)
    return (w * np.arange(4.0)).sum() + (v[:, 1] ** 3).sum() + (v * WEIGHTS).sum()


@ez.enzyme_jit
def singular(a):
    """Singular values and both sets of singular vectors."""
    u, s, vh = np.linalg.svd(a)
    return np.sum(s * np.arange(1.0, 5.0)) + np.sum(u[:, 0] ** 3 * vh[1] ** 2) + np.sum(u * vh)


@ez.enzyme_jit
def spectral_penalty(a, c):
    """A loss through eigvals of a matrix made in the function."""
    m = a + c * a.T @ a * 0.1
    return np.sum(np.linalg.eigvals(m) ** 2) + np.max(np.linalg.eigvals(a))


@ez.enzyme_jit
def least_squares(a, b):
    x, residuals, rank, sv = np.linalg.lstsq(a, b)
    return (x**2).sum() + 0.3 * residuals.sum() + (sv * np.arange(sv.shape[0])).sum() + rank


TALL = rng.standard_normal((6, 3))
# non-symmetric, real distinct eigenvalues (about 2, 4, 6, 8)
GENERAL = np.diag([2.0, 4.0, 6.0, 8.0]) + np.triu(rng.standard_normal((4, 4)), 1)
GENERAL += 0.2 * rng.standard_normal((4, 4))


@ez.enzyme_jit
def sorted_in_place(x, w):
    """x.sort() on an argument and on a temporary."""
    y = x * w
    y.sort()
    x.sort()
    return np.sum(y * w) + np.sum(x * x * w)


@ez.enzyme_jit
def sorted_weights(x):
    return (np.sort(x) * np.arange(x.shape[0])).sum() + np.median(x)


KNOTS = np.array([-1.0, -0.2, 0.5, 1.3, 2.0])
VALUES = np.array([0.4, -0.7, 1.1, 0.2, 0.9])


@ez.enzyme_jit
def interpolated(x, xp, fp):
    """np.interp at an array of points (any shape), weighted."""
    return np.sum(np.interp(x, xp, fp) * np.arange(1.0, x.size + 1.0).reshape(x.shape))


@ez.enzyme_jit
def interpolated_at(t, xp, fp):
    """np.interp at float points."""
    return np.interp(t, xp, fp) ** 2 + np.interp(0.5 * t, xp, fp)


@ez.enzyme_jit
def misfit(k, t_obs, y_obs):
    """A model's misfit to observations at other points: cumulative sums interpolated."""
    t = np.linspace(0.0, 1.0, k.shape[0])
    model = np.interp(t_obs, t, np.cumsum(k) * 0.1)
    return np.sum((model - y_obs) ** 2)


@ez.enzyme_jit
def smoothed(x, k):
    """A signal convolved with a kernel, then overwritten (the reverse rule reads the
    signal as the call saw it), and convolved again in the other order."""
    y = np.convolve(x, k)
    x[0] = 3.0 * x[1]
    return np.sum(y * y) + np.sum(np.sin(np.convolve(k, x)))


@ez.enzyme_jit
def ranked(a, x):
    """np.linalg.matrix_rank, with and without a tolerance: an integer, no derivative."""
    return np.linalg.matrix_rank(a) * np.sum(a * a) + np.linalg.matrix_rank(a, 1e-3) * x[0] ** 2


@ez.enzyme_jit
def smoothed_in_mode(x, k):
    """With `mode` given: Numba's code, differentiated by the engine."""
    return np.sum(np.convolve(x, k, "same") ** 2)


CASES = {
    "solve_vector": (solve_vector, (A, b), (0, 1)),
    "solve_matrix": (solve_matrix, (A, B), (0, 1)),
    "inverse": (inverse, (A,), (0,)),
    "determinants": (determinants, (A,), (0,)),
    "cholesky": (cholesky, (SPD,), (0,)),
    "norms": (norms, (b, A), (0, 1)),
    "norms_of_orders": (norms_of_orders, (b, TALL), (0, 1)),
    "norm_by_order": (norm_by_order, (b, np.array([1, 3, 2]), 2.5), (0, 2)),
    "svd_tall": (thin_singular, (TALL, rng.standard_normal((6, 3))), (0, 1)),
    "svd_wide": (
        thin_singular,
        (np.ascontiguousarray(TALL[:3].T), rng.standard_normal((3, 3))),
        (0,),
    ),
    "pinv": (pseudo_inverses, (TALL, rng.standard_normal(3)), (0, 1)),
    "qr_tall": (orthogonalized, (TALL, rng.standard_normal((6, 3))), (0, 1)),
    "eigen": (eigen, (SPD,), (0,)),
    "eigvalsh": (symmetric_spectrum, (SPD,), (0,)),
    "eig": (general_eigen, (GENERAL,), (0,)),
    "eigvals": (spectral_penalty, (GENERAL, 0.3), (0, 1)),
    "svd": (singular, (A,), (0,)),
    "lstsq_vector": (least_squares, (TALL, rng.standard_normal(6)), (0, 1)),
    "lstsq_matrix": (least_squares, (TALL, rng.standard_normal((6, 2))), (0, 1)),
    "sort_median": (sorted_weights, (np.array([0.3, -1.2, 2.5, 0.7, 1.1]),), (0,)),
    "median_even": (sorted_weights, (b,), (0,)),
    "sort_in_place": (
        sorted_in_place,
        (np.array([0.3, -1.2, 2.5, 0.7, 1.1]), np.linspace(0.5, 1.5, 5)),
        (0, 1),
    ),
    "interp_2d": (
        interpolated,
        (np.array([[-0.6, 0.1, 0.9], [1.7, 0.33, -0.9]]), KNOTS, VALUES),
        (0, 1, 2),
    ),
    "interp_outside": (interpolated, (np.array([-3.0, 0.1, 5.0, 1.9]), KNOTS, VALUES), (0, 1, 2)),
    "interp_float": (interpolated_at, (0.37, KNOTS, VALUES), (0, 1, 2)),
    "convolve": (smoothed, (rng.standard_normal(9), rng.standard_normal(4)), (0, 1)),
    "convolve_longer_kernel": (smoothed, (rng.standard_normal(3), rng.standard_normal(5)), (0, 1)),
    "convolve_one": (smoothed, (rng.standard_normal(2), rng.standard_normal(1)), (0, 1)),
    "convolve_float32": (
        smoothed,
        (rng.standard_normal(7).astype(np.float32), rng.standard_normal(3).astype(np.float32)),
        (0, 1),
    ),
    "matrix_rank": (ranked, (TALL, rng.standard_normal(2)), (0, 1)),
    "convolve_mode": (smoothed_in_mode, (rng.standard_normal(8), rng.standard_normal(3)), (0, 1)),
    "interp_fit": (
        misfit,
        (np.linspace(1.0, 2.0, 9), np.linspace(0.05, 0.95, 7), np.linspace(0.0, 1.0, 7)),
        (0,),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_against_finite_differences_and_the_dot_test(name):
    f, args, active = CASES[name]
    check_all(f, args, active)


def test_interp_of_const_points_warns_nothing_and_follows_the_branch_taken():
    """Const points leave nothing dropped; on a knot, outside the knots and at NaN the
    derivative is that of the branch np.interp takes (a value of fp, or x itself)."""
    x = np.array([0.5, -4.0, 3.0, np.nan, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = ez.gradient(ez.Reverse, interpolated, ez.Const(x), KNOTS, VALUES)
    weights = np.arange(1.0, 6.0)
    t = 0.2 / 0.7  # 0.0 between the knots -0.2 and 0.5
    want_fp = np.array(
        [weights[1], (1 - t) * weights[4], weights[0] + t * weights[4], 0, weights[2]]
    )
    np.testing.assert_allclose(g[2], want_fp, rtol=1e-14)
    slope = (VALUES[2] - VALUES[1]) / 0.7
    want_xp = np.array([0, -slope * (1 - t) * weights[4], -slope * t * weights[4], 0, 0])
    np.testing.assert_allclose(g[1], want_xp, rtol=1e-14, atol=1e-15)
    dx = np.zeros(5)
    ez.autodiff(
        ez.Reverse,
        interpolated,
        ez.Active,
        ez.Duplicated(x.copy(), dx),
        ez.Const(KNOTS),
        ez.Const(VALUES),
    )
    np.testing.assert_array_equal(dx, [0, 0, 0, weights[3], slope * weights[4]])


@ez.enzyme_jit
def _interp_on_local_knots(w, t_obs):
    times = np.arange(w.shape[0]) * 0.1
    return np.sum(np.interp(t_obs, times, w))


def test_interp_on_knots_the_function_makes():
    """Knots in a temporary array the primal frees after the call, which the reverse rule
    reads (once read after other data took its memory: a heap corruption for 300 knots)."""
    w, t = np.linspace(1.0, 2.0, 300), np.array([0.55, 1.03, 23.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (g,) = ez.gradient(ez.Reverse, _interp_on_local_knots, w, ez.Const(t))[:1]
    want = np.zeros(300)
    for v in t:
        j = int(v // 0.1 + 1e-9)
        frac = (v - j * 0.1) / 0.1
        want[j] += 1 - frac
        want[j + 1] += frac
    np.testing.assert_allclose(g, want, atol=1e-12)


@ez.enzyme_jit
def newton_steps(a, x, c):
    """A loop solving with a matrix that changes, overwriting its inputs."""
    s = 0.0
    for _ in range(3):
        y = np.linalg.solve(a, x)
        s += np.linalg.norm(y) * c
        x[:] = np.tanh(y)
        a[0, 0] += 0.1 * y[0]
    return s + np.linalg.slogdet(a)[1]


def test_in_a_loop_that_overwrites_its_inputs():
    args = (A, b, 0.7)
    check_all(newton_steps, args, (0, 1, 2))


def test_split_mode_matches_combined():
    da, db = np.zeros_like(A), np.zeros_like(b)
    ann = (ez.Duplicated(A.copy(), da), ez.Duplicated(b.copy(), db), ez.Active(0.7))
    fwd, rev = ez.autodiff_thunk(ez.ReverseSplitNoPrimal, newton_steps, ez.Active, *ann)
    tape, _, _ = fwd(*ann)
    dc = rev(*ann, 1.0, tape)[2]
    ref_a, ref_b = np.zeros_like(A), np.zeros_like(b)
    ref = ez.autodiff(
        ez.Reverse,
        newton_steps,
        ez.Duplicated(A.copy(), ref_a),
        ez.Duplicated(b.copy(), ref_b),
        ez.Active(0.7),
    )
    np.testing.assert_allclose(da, ref_a, rtol=1e-12)
    np.testing.assert_allclose(db, ref_b, rtol=1e-12)
    assert dc == pytest.approx(ref[2], rel=1e-12)


def test_float32():
    a32, b32 = A.astype(np.float32), b.astype(np.float32)
    check_forward(solve_vector, (a32, b32), (0, 1))
    check_reverse(solve_vector, (a32, b32), (0, 1))
    check_reverse(norms_of_orders, (b32, TALL.astype(np.float32)), (0, 1))


@pytest.mark.parametrize(
    "name, args",
    [
        ("solve", (A, b)),
        ("eigh", (SPD,)),
        ("eigvalsh", (SPD,)),
        ("eig", (GENERAL,)),
        ("eigvals", (GENERAL,)),
        ("svd", (A,)),
        ("lstsq", (TALL, np.linspace(-1.0, 1.0, 6))),
        ("qr", (TALL,)),
        ("pinv_cut", (TALL.T.copy(), 1e-12)),
        ("norm_of_order", (b, 1.5)),
    ],
)
def test_the_rules_check_out(name, args):
    """`ez.check_rule` on rules with an array, a tuple of arrays and a mixed tuple result
    (the other functions' rules are checked through the functions above)."""
    ez.check_rule(getattr(ez.linalg, name), *args, engine=False)  # (the engine refuses LAPACK)


def test_without_rules_these_are_still_refused_by_name():
    @ez.enzyme_jit
    def condition(a):
        return np.linalg.cond(a)  # no rule

    with pytest.raises(ez.NoDerivativeError, match="np.linalg"):
        ez.gradient(ez.Reverse, condition, A)


@pytest.mark.parametrize("mode", ["Forward", "Reverse"])
def test_pinv_of_a_rank_deficient_matrix_raises(mode):
    with pytest.raises(ValueError, match="full rank"):
        ez.gradient(getattr(ez, mode), pseudo_inverses, np.ones((4, 3)), np.ones(3))


@pytest.mark.parametrize("mode", ["Forward", "Reverse"])
@pytest.mark.parametrize(
    "a, why", [(np.ones((2, 3)), "as many rows"), (np.ones((3, 2)), "full column rank")]
)
def test_qr_of_a_wide_or_rank_deficient_matrix_raises(mode, a, why):
    with pytest.raises(ValueError, match=why):
        ez.gradient(getattr(ez, mode), orthogonalized, a, np.ones(a.shape))


@pytest.mark.parametrize("mode", ["Forward", "Reverse"])
def test_the_2_norm_of_a_matrix_needs_a_distinct_singular_value(mode):
    @ez.enzyme_jit
    def spectral(a):
        return np.linalg.norm(a, 2)

    with pytest.raises(ValueError, match="distinct singular value"):
        ez.gradient(getattr(ez, mode), spectral, np.diag([3.0, 3.0, 1.0]))


def test_lstsq_of_a_rank_deficient_matrix_raises():
    a = np.ones((5, 2))
    with pytest.raises(ValueError, match="full column rank"):
        ez.gradient(ez.Reverse, least_squares, a, np.arange(5.0))


def test_svd_of_a_matrix_that_is_not_square_raises():
    with pytest.raises(ValueError, match="square"):
        ez.gradient(ez.Reverse, singular, np.ones((4, 3)) + np.eye(4, 3))


@pytest.mark.parametrize("mode", ["Forward", "Reverse"])
def test_thin_svd_of_a_rank_deficient_matrix_raises(mode):
    with pytest.raises(ValueError, match="full rank"):
        ez.gradient(getattr(ez, mode), thin_singular, np.ones((4, 3)), np.ones((4, 3)))


@pytest.mark.parametrize("mode", ["Forward", "Reverse"])
@pytest.mark.parametrize(
    "f", [singular, eigen, symmetric_spectrum, general_eigen], ids=lambda f: f.__name__
)
def test_repeated_eigenvalues_raise_in_both_modes(f, mode):
    """At a repeated eigenvalue (singular value) the vectors have no derivative: the rules
    raise ValueError in the call, in reverse mode from the forward sweep (an exception in a
    reverse rule would not reach the caller)."""
    with pytest.raises(ValueError, match="distinct"):
        ez.gradient(getattr(ez, mode), f, np.diag([2.0, 2.0, 3.0, 5.0]))
