"""Derivatives of NumPy's linear algebra, sorting and interpolation, written as rules with
the public API (`enzpy.rules`) and declared for Numba's implementations of the NumPy
functions: code that calls `np.linalg.solve` (and the others below) on data with
derivatives differentiates.

    np.linalg.solve(a, b)     y = a⁻¹b:        ẏ = a⁻¹(ḃ - ȧy);          b̄ += g, ā -= g yᵀ, g = a⁻ᵀȳ
    np.linalg.inv(a)          y = a⁻¹:         ẏ = -y ȧ y;               ā -= yᵀ ȳ yᵀ
    np.linalg.det(a)          d:               ḋ = d <a⁻ᵀ, ȧ>;           ā += d̄ d a⁻ᵀ
    np.linalg.slogdet(a)      (s, l):          l̇ = <a⁻ᵀ, ȧ>;             ā += l̄ a⁻ᵀ
    np.linalg.cholesky(a)     a = LLᵀ:         L̇ = L Φ(L⁻¹ ȧ L⁻ᵀ);       ā = L⁻ᵀ Φ(Lᵀ L̄) L⁻¹
    np.linalg.norm(x)         ‖x‖₂ (Frobenius for a matrix): ṅ = <x, ẋ>/n;  x̄ += n̄ x / n
    np.linalg.norm(x, ord)    a number ord; g = ∂n/∂x: p-norm sign(x)(|x|/n)^(p-1), 1: sign(x),
                              ±inf: sign at the entry taken, 0: none; a matrix's ±1, ±inf:
                              sign(x) on the column (row) taken, ±2: u vᵀ of its singular
                              value; ṅ = <g, ẋ> (+ ∂n/∂p ṗ, a float p);  x̄ += n̄ g
    np.linalg.eigh(a)         a = V diag(w) Vᵀ: ẇ = diag(Vᵀ ȧ V), V̇ = V (F ∘ Vᵀ ȧ V);
                                               ā = V (diag(w̄) + F ∘ Vᵀ V̄) Vᵀ
    np.linalg.eigvalsh(a)     w of eigh:       ẇ = diag(Vᵀ ȧ V);         ā = V diag(w̄) Vᵀ
    np.linalg.eig(a)          a V = V diag(w), unit columns, real w: X = V⁻¹ ȧ V, ẇ = diag(X),
                              V̇ = P(V (F ∘ X)), P(u) = u - V diag(Vᵀu) (columns stay unit);
                              ā = V⁻ᵀ (diag(w̄) + F ∘ Vᵀ P(V̄)) Vᵀ   (eigvals: w alone)
    np.linalg.svd(a)          a = U S Vᵀ, square or thin, distinct s: P = Uᵀ ȧ V, ṡ = diag(P),
                              U̇ = U (F' ∘ (P S + S Pᵀ)), V̇ = V (F' ∘ (S P + Pᵀ S));
                              ā = U (diag(s̄) + (F' ∘ (UᵀŪ - ŪᵀU)) S + S (F' ∘ (VᵀV̄ - V̄ᵀV))) Vᵀ
                              thin: U̇ += (I - UUᵀ) ȧ V S⁻¹, V̇ += (I - VVᵀ) ȧᵀ U S⁻¹,
                              ā += (I - UUᵀ) Ū S⁻¹ Vᵀ + U S⁻¹ V̄ᵀ (I - VVᵀ)
    np.linalg.qr(a)           a = QR, m ≥ n, full column rank: X = Qᵀ ȧ R⁻¹, Ω = L - Lᵀ,
                              L = tril(X, -1): Ṙ = (X - Ω) R, Q̇ = (ȧ - Q Ṙ) R⁻¹;
                              C = R̄ Rᵀ - Qᵀ Q̄: ā = (Q̄ + Q (triu(C) + tril(Cᵀ, -1))) R⁻ᵀ
    np.linalg.pinv(a)         P, a of full rank: Ṗ = -P ȧ P + P Pᵀ ȧᵀ (I - a P) + (I - P a) ȧᵀ Pᵀ P;
                              ā = -Pᵀ P̄ Pᵀ + (I - a P) P̄ᵀ P Pᵀ + Pᵀ P P̄ᵀ (I - P a)
    np.linalg.lstsq(a, b)     x = (aᵀa)⁻¹aᵀb, r = b - ax, full column rank:
                              ẋ = (aᵀa)⁻¹(ȧᵀr + aᵀ(ḃ - ȧx)); residuals 2rᵀ(ḃ - ȧx);
                              singular values u_iᵀ ȧ v_i; the rank has no derivative
    np.sort(x), np.median(x)  a gather by the sorting permutation p: ẏ = ẋ[p]; x̄[p] += ȳ
    x.sort()                  in place: ẋ ← ẋ[p]; x̄ ← x̄ scattered back, x̄[p] = x̄ after
    np.interp(x, xp, fp)      y = (1-t) fp[k] + t fp[k+1], t = (x - xp[k]) / (xp[k+1] - xp[k]),
                              slope s: ẏ = s(ẋ - (1-t) ẋp[k] - t ẋp[k+1]) + (1-t) ḟp[k] + t ḟp[k+1]
    np.linalg.matrix_rank(a)  an integer, constant where defined: no derivative (`inactive`)
    np.convolve(a, v)         y[n] = Σ_j a[n-j] v[j] (mode 'full'): ẏ = ȧ * v + a * v̇;
                              ā[i] += Σ_j ȳ[i+j] v[j],  v̄[j] += Σ_i ȳ[i+j] a[i]

Φ takes the lower triangle with the diagonal halved; F_ij = 1 / (w_j - w_i) off the diagonal,
F'_ij = 1 / (s_j² - s_i²).
`cholesky`, `eigh` and `eigvalsh` read the lower triangle of `a` only (as NumPy's do): their
derivatives with respect to the upper triangle are zero, and ā is folded onto the lower
triangle. `eigh`, `eigvalsh` and `eig` assume distinct eigenvalues (`eig` and `eigvals` real
ones, as Numba's, which raise `ValueError` otherwise), `det` a nonsingular matrix, `lstsq` and
`qr` a matrix of full column rank (`qr` at least as many rows as columns), `pinv` one of full
rank, `svd` distinct singular values and a square matrix, or `full_matrices=False` and full
rank (else their rules raise `ValueError`); `norm` takes the orders given as numbers (a
matrix's ±2 with a distinct singular value; where entries, rows or columns tie, the
derivative is that of the one Numba's code takes, the first); `median` and `sort` take 1-D
arrays, `convolve` 1-D arrays of one dtype in its default mode (with `mode` given, the
engine differentiates Numba's code). `interp` follows np.interp's branches: outside the
knots and on a knot its value is a value of `fp` (no derivative along x or xp); a NaN x
gives x.
"""

from __future__ import annotations

import functools
from typing import Any

import numba
import numpy as np
from numba.core import types
from numba.extending import overload

from . import rules
from .jit import enzyme_jit
from .rules import implements

# kept in Numba's disk cache (else every process that differentiates through them compiles
# them: 0.4–0.6 s a rule calling LAPACK)
forward_rule = functools.partial(rules.forward_rule, cache=True)
augmented_rule = functools.partial(rules.augmented_rule, cache=True)
reverse_rule = functools.partial(rules.reverse_rule, cache=True)


def _impl(name: str) -> str:
    return f"numba.np.linalg.{name}_impl.<locals>.{name}_impl"


# ---- solve -------------------------------------------------------------------------------


@enzyme_jit
def solve(a, b):
    return np.linalg.solve(a, b)


@forward_rule(solve)
def _solve_fwd(a, da, b, db):
    y = np.linalg.solve(a, b)
    return y, np.linalg.solve(a, db - da @ y)


@augmented_rule(solve)
def _solve_aug(a, b):
    y = np.linalg.solve(a, b)
    return y, (a.copy(), y.copy())


def _subtract_product(da, g, y):  # (no annotations: Numba compares the implementations')
    """da -= g yᵀ, for vectors or matrices g and y."""


@overload(_subtract_product)
def _subtract_product_impl(da, g, y):
    if y.ndim == 2:

        def product(da, g, y):
            da -= g @ y.T

        return product

    def outer(da, g, y):  # (a loop: Numba compiles np.outer several times slower)
        for i in range(g.shape[0]):
            for j in range(y.shape[0]):
                da[i, j] -= g[i] * y[j]

    return outer


@reverse_rule(solve)
def _solve_rev(saved, dy, a, da, b, db):
    a0, y = saved
    g = np.linalg.solve(a0.T.copy(), dy)
    db += g
    _subtract_product(da, g, y)
    return ()


# ---- inv, det, slogdet --------------------------------------------------------------------


@enzyme_jit
def inv(a):
    return np.linalg.inv(a)


@forward_rule(inv)
def _inv_fwd(a, da):
    y = np.linalg.inv(a)
    return y, -(y @ da @ y)


@augmented_rule(inv)
def _inv_aug(a):
    y = np.linalg.inv(a)
    return y, y.copy()


@reverse_rule(inv)
def _inv_rev(y, dy, a, da):
    da -= y.T @ dy @ y.T
    return ()


@enzyme_jit
def det(a):
    return np.linalg.det(a)


@forward_rule(det)
def _det_fwd(a, da):
    d = np.linalg.det(a)
    return d, d * np.sum(np.linalg.inv(a).T * da)


@augmented_rule(det)
def _det_aug(a):
    d = np.linalg.det(a)
    return d, (np.linalg.inv(a).T.copy(), d)


@reverse_rule(det)
def _det_rev(saved, dd, a, da):
    inv_t, d = saved
    da += (dd * d) * inv_t
    return ()


@enzyme_jit
def slogdet(a):
    return np.linalg.slogdet(a)


@forward_rule(slogdet)
def _slogdet_fwd(a, da):
    s, logdet = np.linalg.slogdet(a)
    return (s, logdet), (0.0 * s, np.sum(np.linalg.inv(a).T * da))


@augmented_rule(slogdet)
def _slogdet_aug(a):
    return np.linalg.slogdet(a), np.linalg.inv(a).T.copy()


@reverse_rule(slogdet)
def _slogdet_rev(inv_t, dy, a, da):
    da += dy[1] * inv_t
    return ()


# ---- cholesky and eigh: functions of the lower triangle ------------------------------------


# (loops: Numba compiles np.tril and np.diag ten times slower than these)


@numba.njit
def _lower_symmetric(da):
    """The symmetric matrix a perturbation of the lower triangle stands for."""
    n = da.shape[0]
    out = np.empty((n, n), da.dtype)
    for i in range(n):
        for j in range(i + 1):
            out[i, j] = out[j, i] = da[i, j]
    return out


@numba.njit
def _onto_lower(g):
    """A gradient with respect to a symmetric matrix, as one with respect to its lower
    triangle (each off-diagonal entry stands for two)."""
    n = g.shape[0]
    out = np.zeros((n, n), g.dtype)
    for i in range(n):
        for j in range(i):
            out[i, j] = g[i, j] + g[j, i]
        out[i, i] = g[i, i]
    return out


@numba.njit
def _phi(x):
    """The lower triangle, the diagonal halved."""
    n = x.shape[0]
    out = np.zeros((n, n), x.dtype)
    for i in range(n):
        for j in range(i):
            out[i, j] = x[i, j]
        out[i, i] = 0.5 * x[i, i]
    return out


@enzyme_jit
def cholesky(a):
    return np.linalg.cholesky(a)


@forward_rule(cholesky)
def _cholesky_fwd(a, da):
    low = np.linalg.cholesky(a)
    low_inv = np.linalg.inv(low)
    x = low_inv @ _lower_symmetric(da) @ low_inv.T
    return low, low @ _phi(x)


@augmented_rule(cholesky)
def _cholesky_aug(a):
    low = np.linalg.cholesky(a)
    return low, low.copy()


@reverse_rule(cholesky)
def _cholesky_rev(low, dlow, a, da):
    low_inv = np.linalg.inv(low)
    g = low_inv.T @ _phi(low.T @ dlow) @ low_inv
    da += _onto_lower(g)
    return ()


@enzyme_jit
def eigh(a):
    return np.linalg.eigh(a)


@numba.njit
def _gaps(w):
    """F: 1 / (w_j - w_i) off the diagonal, 0 on it; raises unless the w are distinct (the
    vectors' derivative is undefined otherwise, the values' is not linear). Augmented rules
    compute it, so that the call fails in the forward pass, before a reverse sweep has run
    half-way."""
    n = w.shape[0]
    f = np.zeros((n, n), w.dtype)
    for i in range(n):
        for j in range(n):
            if i != j:
                if w[j] == w[i]:
                    raise ValueError("eigenvalue and svd rules need distinct eigenvalues")
                f[i, j] = 1.0 / (w[j] - w[i])
    return f


@forward_rule(eigh)
def _eigh_fwd(a, da):
    w, v = np.linalg.eigh(a)
    x = v.T @ _lower_symmetric(da) @ v
    return (w, v), (np.diag(x), v @ (_gaps(w) * x))


@augmented_rule(eigh)
def _eigh_aug(a):
    w, v = np.linalg.eigh(a)
    return (w, v), (v.copy(), _gaps(w))


@reverse_rule(eigh)
def _eigh_rev(saved, dy, a, da):
    v, f = saved
    dw, dv = dy
    g = v @ (np.diag(dw) + f * (v.T @ dv)) @ v.T
    da += _onto_lower(g)
    return ()


@enzyme_jit
def eigvalsh(a):
    return np.linalg.eigvalsh(a)


@forward_rule(eigvalsh)
def _eigvalsh_fwd(a, da):
    w, v = np.linalg.eigh(a)
    _gaps(w)
    return w, np.diag(v.T @ _lower_symmetric(da) @ v).copy()


@augmented_rule(eigvalsh)
def _eigvalsh_aug(a):
    w, v = np.linalg.eigh(a)
    _gaps(w)
    return w, v


@reverse_rule(eigvalsh)
def _eigvalsh_rev(v, dw, a, da):
    da += _onto_lower((v * dw) @ v.T)
    return ()


# ---- eig and eigvals: a general real matrix with real eigenvalues -------------------------


@enzyme_jit
def eig(a):
    return np.linalg.eig(a)


@enzyme_jit
def eigvals(a):
    return np.linalg.eigvals(a)


@numba.njit
def _off_unit(v, u):
    """`u` without its part along each column of `v` (unit columns): the tangent of columns
    kept at unit norm, and the transpose of that map."""
    return u - v * np.sum(v * u, axis=0)


@numba.njit
def _eig_conjugated(v, g):
    """V⁻ᵀ g Vᵀ: the adjoint of a from that of V⁻¹ a V."""
    return np.linalg.solve(np.ascontiguousarray(v.T), g @ v.T)


@forward_rule(eig)
def _eig_fwd(a, da):
    w, v = np.linalg.eig(a)
    x = np.linalg.solve(v, da @ v)
    return (w, v), (np.diag(x).copy(), _off_unit(v, v @ (_gaps(w) * x)))


@augmented_rule(eig)
def _eig_aug(a):
    w, v = np.linalg.eig(a)
    return (w, v), (v.copy(), _gaps(w))


@reverse_rule(eig)
def _eig_rev(saved, dy, a, da):
    v, f = saved
    dw, dv = dy
    da += _eig_conjugated(v, np.diag(dw) + f * (v.T @ _off_unit(v, dv)))
    return ()


@forward_rule(eigvals)
def _eigvals_fwd(a, da):
    w, v = np.linalg.eig(a)
    return w, np.diag(np.linalg.solve(v, da @ v)).copy()


@augmented_rule(eigvals)
def _eigvals_aug(a):
    w, v = np.linalg.eig(a)
    return w, v


@reverse_rule(eigvals)
def _eigvals_rev(v, dw, a, da):
    da += _eig_conjugated(v, np.diag(dw))
    return ()


# ---- svd: distinct singular values; thin (full_matrices=False) unless square -------------


@enzyme_jit
def svd(a):
    return np.linalg.svd(a)


@enzyme_jit
def svd_of(a, full_matrices):
    """`np.linalg.svd(a, full_matrices)`."""
    return np.linalg.svd(a, full_matrices)


@numba.njit
def _square_gaps(s):
    """F': 1 / (s_j² - s_i²) off the diagonal, 0 on it (distinct singular values)."""
    return _gaps(s * s)


@numba.njit
def _svd_checked(a, full_matrices):
    """U, S, Vᵀ of a matrix whose rules apply: square, or thin and of full rank (the
    components off U's or V's span then follow from S⁻¹)."""
    u, s, vh = np.linalg.svd(a, full_matrices)
    if a.shape[0] != a.shape[1]:
        if full_matrices:
            raise ValueError("svd's rules take a square matrix, or full_matrices=False")
        if s[-1] <= s[0] * max(a.shape) * np.finfo(s.dtype).eps:  # (matrix_rank's tolerance)
            raise ValueError("svd's rules take a matrix of full rank unless it is square")
    return u, s, vh


@numba.njit
def _svd_tangents(a, da, u, s, vh):
    """(U̇, ṡ, V̇ᵀ); off the spans of a thin U and V: (I - UUᵀ) ȧ V S⁻¹, (I - VVᵀ) ȧᵀ U S⁻¹."""
    v = np.ascontiguousarray(vh.T)
    p = u.T @ da @ v
    f, sm = _square_gaps(s), np.diag(s)
    du = u @ (f * (p @ sm + sm @ p.T))
    dv = v @ (f * (sm @ p + p.T @ sm))
    if a.shape[0] != a.shape[1]:
        du += (da @ v - u @ p) / s
        dv += (da.T @ u - v @ p.T) / s
    return du, np.diag(p).copy(), np.ascontiguousarray(dv.T)


@numba.njit
def _svd_adjoint(u, s, vh, f, dy):
    """ā of the cotangents dy = (Ū, s̄, V̄ᵀ)."""
    du, ds, dvh = dy
    v, dv = np.ascontiguousarray(vh.T), np.ascontiguousarray(dvh.T)
    sm = np.diag(s)
    inner = np.diag(ds) + (f * (u.T @ du - du.T @ u)) @ sm + sm @ (f * (v.T @ dv - dv.T @ v))
    out = u @ inner @ vh
    if u.shape[0] != v.shape[0]:
        out += ((du - u @ (u.T @ du)) / s) @ vh + (u / s) @ (dv.T - (dv.T @ v) @ vh)
    return out


@forward_rule(svd)
def _svd_fwd(a, da):
    u, s, vh = _svd_checked(a, True)
    return (u, s, vh), _svd_tangents(a, da, u, s, vh)


@augmented_rule(svd)
def _svd_aug(a):
    u, s, vh = _svd_checked(a, True)
    return (u, s, vh), (u.copy(), s.copy(), vh.copy(), _square_gaps(s))


@reverse_rule(svd)
def _svd_rev(saved, dy, a, da):
    u, s, vh, f = saved
    da += _svd_adjoint(u, s, vh, f, dy)
    return ()


@forward_rule(svd_of)
def _svd_of_fwd(a, da, full_matrices, dfull):
    u, s, vh = _svd_checked(a, full_matrices)
    return (u, s, vh), _svd_tangents(a, da, u, s, vh)


@augmented_rule(svd_of)
def _svd_of_aug(a, full_matrices):
    u, s, vh = _svd_checked(a, full_matrices)
    return (u, s, vh), (u.copy(), s.copy(), vh.copy(), _square_gaps(s))


@reverse_rule(svd_of)
def _svd_of_rev(saved, dy, a, da, full_matrices):
    u, s, vh, f = saved
    da += _svd_adjoint(u, s, vh, f, dy)
    return ()


# ---- qr: full column rank, m ≥ n (reduced) ------------------------------------------------


@enzyme_jit
def qr(a):
    return np.linalg.qr(a)


@numba.njit
def _qr_tall(a):
    """Q, R and R⁻¹ (a of full column rank, at least as many rows as columns)."""
    if a.shape[0] < a.shape[1]:
        raise ValueError("qr's rules take a matrix with at least as many rows as columns")
    q, r = np.linalg.qr(a)
    d = np.abs(np.diag(r))
    if d.min() <= d.max() * max(a.shape) * np.finfo(r.dtype).eps:  # (matrix_rank's tolerance)
        raise ValueError("qr's rules take a matrix of full column rank")
    return q, r, np.linalg.inv(r)


@forward_rule(qr)
def _qr_fwd(a, da):
    q, r, ri = _qr_tall(a)
    x = q.T @ da @ ri
    dr = _onto_lower(x.T).T @ r  # (x - L + Lᵀ, L the part of x below the diagonal)
    return (q, r), ((da - q @ dr) @ ri, dr)


@augmented_rule(qr)
def _qr_aug(a):
    q, r, ri = _qr_tall(a)
    return (q, r), (q.copy(), r.copy(), ri)


@reverse_rule(qr)
def _qr_rev(saved, dy, a, da):
    q, r, ri = saved
    dq, dr = dy
    c = dr @ r.T - q.T @ dq
    da += (dq + q @ _lower_symmetric(c.T)) @ ri.T  # (c's upper triangle, mirrored)
    return ()


# ---- pinv: full rank ---------------------------------------------------------------------


@enzyme_jit
def pinv(a):
    return np.linalg.pinv(a)


@enzyme_jit
def pinv_cut(a, rcond):
    """`np.linalg.pinv(a, rcond)`."""
    return np.linalg.pinv(a, rcond)


@numba.njit
def _pinv_full_rank(a, rcond):
    """The pseudo-inverse of a matrix of full rank (where it has a derivative: the rank is
    locally constant), none of its singular values cut off by `rcond`."""
    s = np.linalg.svd(a, False)[1]
    if s[-1] <= s[0] * max(rcond, max(a.shape) * np.finfo(s.dtype).eps):
        raise ValueError("pinv's rules take a matrix of full rank")
    return np.linalg.pinv(a, rcond)


@numba.njit
def _pinv_tangent(a, da, p):
    """Ṗ = -P ȧ P + P Pᵀ ȧᵀ (I - a P) + (I - P a) ȧᵀ Pᵀ P."""
    dat = np.ascontiguousarray(da.T)
    return -p @ da @ p + (p @ p.T) @ (dat - (dat @ a) @ p) + (dat - p @ (a @ dat)) @ (p.T @ p)


@numba.njit
def _pinv_adjoint(a, p, dp):
    """ā = -Pᵀ P̄ Pᵀ + (I - a P) P̄ᵀ P Pᵀ + Pᵀ P P̄ᵀ (I - P a)."""
    dpt = np.ascontiguousarray(dp.T)
    return -p.T @ dp @ p.T + (dpt - a @ (p @ dpt)) @ (p @ p.T) + (p.T @ p) @ (dpt - (dpt @ p) @ a)


@forward_rule(pinv)
def _pinv_fwd(a, da):
    p = _pinv_full_rank(a, 1e-15)  # (NumPy's and Numba's default)
    return p, _pinv_tangent(a, da, p)


@augmented_rule(pinv)
def _pinv_aug(a):
    p = _pinv_full_rank(a, 1e-15)
    return p, (a.copy(), p.copy())


@reverse_rule(pinv)
def _pinv_rev(saved, dp, a, da):
    da += _pinv_adjoint(saved[0], saved[1], dp)
    return ()


@forward_rule(pinv_cut)
def _pinv_cut_fwd(a, da, rcond, drcond):
    p = _pinv_full_rank(a, rcond)
    return p, _pinv_tangent(a, da, p)


@augmented_rule(pinv_cut)
def _pinv_cut_aug(a, rcond):
    p = _pinv_full_rank(a, rcond)
    return p, (a.copy(), p.copy())


@reverse_rule(pinv_cut)
def _pinv_cut_rev(saved, dp, a, da, rcond):
    da += _pinv_adjoint(saved[0], saved[1], dp)
    return (0.0 * rcond,)  # (the cut-off changes nothing at full rank)


# ---- norm ---------------------------------------------------------------------------------


@enzyme_jit
def norm(x):
    return np.linalg.norm(x)


@forward_rule(norm)
def _norm_fwd(x, dx):
    n = np.linalg.norm(x)
    return n, (np.sum(x * dx) / n if n != 0.0 else 0.0 * n)


@augmented_rule(norm)
def _norm_aug(x):
    n = np.linalg.norm(x)
    return n, (x.copy(), n)


@reverse_rule(norm)
def _norm_rev(saved, dn, x, dx):
    x0, n = saved
    if n != 0.0:
        dx += (dn / n) * x0
    return ()


@enzyme_jit
def norm_of_order(x, ord):
    """`np.linalg.norm(x, ord)` with a given order (a number)."""
    return np.linalg.norm(x, ord)


def _norm_derivatives(x, ord, n):
    """(∂n/∂x, ∂n/∂ord) of n = `np.linalg.norm(x, ord)`: where n is a largest or smallest
    entry, row or column, that of the one Numba's code picks (the first); along the order
    for a vector's p-norm, p finite and not 0 (zero for the orders a matrix takes, which
    are points)."""


@overload(_norm_derivatives)
def _norm_derivatives_impl(x, ord, n):
    if x.ndim == 1:
        return lambda x, ord, n: (_vector_norm_gradient(x, ord, n), _along_p(x, ord, n))
    return lambda x, ord, n: (_matrix_norm_gradient(x, ord, n), 0.0 * n)


@numba.njit
def _vector_norm_gradient(x, ord, n):
    g = np.zeros_like(x)
    if x.shape[0] == 0 or ord == 0:
        return g
    if ord == np.inf or ord == -np.inf:
        k = 0
        for i in range(1, x.shape[0]):
            if abs(x[i]) > abs(x[k]) if ord > 0 else abs(x[i]) < abs(x[k]):
                k = i
        g[k] = np.sign(x[k])
    elif ord == 1:
        g[:] = np.sign(x)
    elif n != 0.0:  # (Σ|x|^p)^(1/p), 2 among them: sign(x) (|x| / n)^(p-1)
        for i in range(x.shape[0]):
            g[i] = np.sign(x[i]) * (abs(x[i]) / n) ** (ord - 1)
    return g


@numba.njit
def _along_p(x, p, n):
    """∂n/∂p of n = (Σ|x|^p)^(1/p) = S^(1/p): n (T/S - ln S / p) / p, T = Σ|x|^p ln|x|."""
    if p == 0 or p == np.inf or p == -np.inf or n == 0.0:
        return 0.0 * n
    s = t = 0.0
    for v in x:
        if v != 0.0:
            a = abs(v) ** p
            s += a
            t += a * np.log(abs(v))
    return n * (t / s - np.log(s) / p) / p


@numba.njit
def _matrix_norm_gradient(x, ord, n):
    g = np.zeros_like(x)
    if x.size == 0:
        return g
    if ord == 2 or ord == -2:  # the largest (smallest) singular value: u vᵀ
        u, s, vh = np.linalg.svd(x, full_matrices=False)
        k = 0 if ord == 2 else s.shape[0] - 1
        if s.shape[0] > 1 and s[k] == s[1 if k == 0 else k - 1]:
            raise ValueError("the 2-norm of a matrix needs a distinct singular value")
        _subtract_product(g, -u[:, k], vh[k])
        return g
    rows = ord == np.inf or ord == -np.inf
    if not (rows or ord == 1 or ord == -1):
        raise ValueError("Invalid norm order for matrices.")
    lines, signs = (x, g) if rows else (x.T, g.T)  # (views: g.T's entries are g's)
    for k in range(lines.shape[0]):
        t = 0.0
        for j in range(lines.shape[1]):  # |x| summed along a row (column) as Numba's code does
            t += abs(lines[k, j])
        if t == n:  # the first row (column) whose sum is the norm
            signs[k] = np.sign(lines[k])
            break
    return g


def _along_order(dn_dord, dord):
    """The tangent along the order: none for an integer order (`dord` None)."""


@overload(_along_order)
def _along_order_impl(dn_dord, dord):
    if isinstance(dord, types.NoneType):
        return lambda dn_dord, dord: 0.0 * dn_dord
    return lambda dn_dord, dord: dn_dord * dord


def _adjoint_of_float(value, adjoint):
    """What a reverse rule returns for an order: its adjoint for a float, none for an
    integer."""


@overload(_adjoint_of_float)
def _adjoint_of_float_impl(value, adjoint):
    if isinstance(value, types.Float):
        return lambda value, adjoint: (adjoint,)
    return lambda value, adjoint: ()


@forward_rule(norm_of_order)
def _norm_of_order_fwd(x, dx, ord, dord):
    n = np.linalg.norm(x, ord)
    g, dn_dord = _norm_derivatives(x, ord, n)
    return n, np.sum(g * dx) + _along_order(dn_dord, dord)


@augmented_rule(norm_of_order)
def _norm_of_order_aug(x, ord):
    n = np.linalg.norm(x, ord)
    return n, _norm_derivatives(x, ord, n)


@reverse_rule(norm_of_order)
def _norm_of_order_rev(saved, dn, x, dx, ord):
    g, dn_dord = saved
    dx += dn * g
    return _adjoint_of_float(ord, dn * dn_dord)


# ---- lstsq (full column rank) -------------------------------------------------------------


@enzyme_jit
def lstsq(a, b):
    return np.linalg.lstsq(a, b)


def _columns(v):
    """v as a matrix: a vector as one column (a view)."""


@overload(_columns)
def _columns_impl(v):
    if v.ndim == 1:
        return lambda v: v[:, np.newaxis]
    return lambda v: v


@numba.njit
def _full_rank(a, rank):
    if a.shape[0] < a.shape[1] or rank < a.shape[1]:
        raise ValueError("enzpy differentiates np.linalg.lstsq for full column rank only")


@forward_rule(lstsq)
def _lstsq_fwd(a, da, b, db):
    x, res, rank, sv = np.linalg.lstsq(a, b)
    _full_rank(a, rank)
    r = b - a @ x
    e = db - da @ x  # the residual's change at fixed x
    dx = np.linalg.solve(a.T @ a, da.T @ r + a.T @ e)
    dres = np.zeros_like(res)
    if res.shape[0] > 0:
        dres[:] = 2.0 * np.sum(_columns(r) * _columns(e), axis=0)
    u, _, vt = np.linalg.svd(a, full_matrices=False)
    dsv = np.sum(u * (da @ vt.T), axis=0)  # u_i . da v_i
    return (x, res, rank, sv), (dx, dres, rank, dsv)


@augmented_rule(lstsq)
def _lstsq_aug(a, b):
    x, res, rank, sv = np.linalg.lstsq(a, b)
    _full_rank(a, rank)
    u, _, vt = np.linalg.svd(a, full_matrices=False)
    return (x, res, rank, sv), (a.copy(), x.copy(), b - a @ x, u, vt)


@reverse_rule(lstsq)
def _lstsq_rev(saved, dy, a, da, b, db):
    a0, x, r, u, vt = saved
    dx, dres, _, dsv = dy
    g = _columns(np.linalg.solve(a0.T @ a0, dx))
    rc, xc = _columns(r), _columns(x)
    ag = a0 @ g
    _columns(db)[:, :] += ag
    da += rc @ g.T - ag @ xc.T + (u * dsv) @ vt
    if dres.shape[0] > 0:
        _columns(db)[:, :] += 2.0 * rc * dres
        da -= 2.0 * (rc * dres) @ xc.T
    return ()


# ---- sort and median: gathers by the sorting permutation -----------------------------------


@enzyme_jit
def sort(x):
    return np.sort(x)


@forward_rule(sort)
def _sort_fwd(x, dx):
    p = np.argsort(x)
    return x[p], dx[p]


@augmented_rule(sort)
def _sort_aug(x):
    p = np.argsort(x)
    return x[p], p


@reverse_rule(sort)
def _sort_rev(p, dy, x, dx):
    for k in range(p.shape[0]):
        dx[p[k]] += dy[k]
    return ()


@enzyme_jit
def sort_in_place(x):
    x.sort()


@forward_rule(sort_in_place)
def _sort_in_place_fwd(x, dx):
    p = np.argsort(x)
    x[:] = x[p]
    dx[:] = dx[p]
    return None, None


@augmented_rule(sort_in_place)
def _sort_in_place_aug(x):
    p = np.argsort(x)
    x[:] = x[p]
    return None, p


@reverse_rule(sort_in_place)
def _sort_in_place_rev(p, dy, x, dx):
    after = dx.copy()  # the cotangent of the sorted array; x's own, before, is scattered back
    for k in range(p.shape[0]):
        dx[p[k]] = after[k]
    return ()


@enzyme_jit
def median(x):
    return np.median(x)


@numba.njit
def _middle(x):
    """The indices of the one or two middle elements of x in sorted order."""
    p = np.argsort(x)
    n = x.shape[0]
    return p[(n - 1) // 2], p[n // 2]


@forward_rule(median)
def _median_fwd(x, dx):
    i, j = _middle(x)
    return np.median(x), 0.5 * (dx[i] + dx[j])


@augmented_rule(median)
def _median_aug(x):
    return np.median(x), _middle(x)


@reverse_rule(median)
def _median_rev(middle, dm, x, dx):
    i, j = middle
    dx[i] += 0.5 * dm
    dx[j] += 0.5 * dm
    return ()


# ---- convolve: bilinear, its adjoints correlations ------------------------------------------


@enzyme_jit
def convolve(a, v):
    return np.convolve(a, v)


@numba.njit
def _convolve_adjoints(dy, a, da, v, dv):
    """da[i] += sum_j dy[i + j] v[j] and dv[j] += sum_i dy[i + j] a[i] (a full convolution's
    adjoints), one vector operation per element of v (Numba's np.convolve: one dot product
    per element of the result)."""
    n = a.shape[0]
    for j in range(v.shape[0]):
        window = dy[j : j + n]
        da += v[j] * window
        dv[j] += np.dot(window, a)


@forward_rule(convolve)
def _convolve_fwd(a, da, v, dv):
    return np.convolve(a, v), np.convolve(da, v) + np.convolve(a, dv)


@augmented_rule(convolve)
def _convolve_aug(a, v):
    return np.convolve(a, v), (a.copy(), v.copy())


@reverse_rule(convolve)
def _convolve_rev(saved, dy, a, da, v, dv):
    a0, v0 = saved
    _convolve_adjoints(dy, a0, da, v0, dv)
    return ()


# ---- matrix_rank: an integer, piecewise constant: no derivative ----------------------------


@rules.inactive
@enzyme_jit
def matrix_rank(a):
    return np.linalg.matrix_rank(a)


@rules.inactive
@enzyme_jit
def matrix_rank_below(a, tol):
    """`matrix_rank` with a tolerance."""
    return np.linalg.matrix_rank(a, tol)


# ---- interp: a gather of two neighbours with weights -------------------------------------


@numba.njit
def _brackets(x, xp, fp):
    """For each point of x (flat order): `k`, `t`, `s` such that np.interp's value is
    (1 - t) fp[k] + t fp[k + 1] with slope s along x, following np.interp's branches: t and
    s are 0 where it takes a value of fp (outside the knots, on a knot); k is -1 where x is
    NaN (the value is x)."""
    xs = np.ravel(np.asarray(x))
    n, m = xs.shape[0], xp.shape[0]
    k = np.zeros(n, dtype=np.int64)
    t = np.zeros(n)
    s = np.zeros(n)
    for i in range(n):
        v = xs[i]
        if np.isnan(v):
            k[i] = -1
            continue
        j = np.searchsorted(xp, v, side="right") - 1
        if j < 0:
            j = 0
        elif v > xp[m - 1]:
            j = m - 1
        elif j < m - 1 and xp[j] != v:
            h = xp[j + 1] - xp[j]
            t[i] = (v - xp[j]) / h
            s[i] = (fp[j + 1] - fp[j]) / h
        k[i] = j
    return k, t, s


@numba.njit
def _interp_tangent(brackets, dx, dxp, dfp):
    """The tangent of np.interp's values (flat order) from those of x (flat), xp and fp."""
    k, t, s = brackets
    dy = np.empty(k.shape[0])
    for i in range(k.shape[0]):
        j = k[i]
        if j < 0:
            dy[i] = dx[i]
        elif t[i] == 0.0:
            dy[i] = dfp[j]
        else:
            a, b = 1.0 - t[i], t[i]
            dy[i] = s[i] * (dx[i] - a * dxp[j] - b * dxp[j + 1]) + a * dfp[j] + b * dfp[j + 1]
    return dy


@numba.njit
def _interp_adjoint(brackets, dy, dxp, dfp):
    """Adds the adjoints of xp and fp into their shadows; the adjoint of x (flat order)."""
    k, t, s = brackets
    dx = np.zeros(k.shape[0])
    for i in range(k.shape[0]):
        j, g = k[i], dy[i]
        if j < 0:
            dx[i] = g
        elif t[i] == 0.0:
            dfp[j] += g
        else:
            a, b = 1.0 - t[i], t[i]
            dx[i] = s[i] * g
            dxp[j] -= a * dx[i]
            dxp[j + 1] -= b * dx[i]
            dfp[j] += a * g
            dfp[j + 1] += b * g
    return dx


@enzyme_jit
def interp(x, xp, fp):
    return np.interp(x, xp, fp)


@enzyme_jit
def interp_at(x, xp, fp):
    """`interp` at a float point (its rules return the point's adjoint)."""
    return np.interp(x, xp, fp)


@forward_rule(interp)
def _interp_fwd(x, dx, xp, dxp, fp, dfp):
    y = np.interp(x, xp, fp)
    dy = _interp_tangent(_brackets(x, xp, fp), np.ravel(dx), dxp, dfp)
    return y, dy.reshape(y.shape)


@augmented_rule(interp_at)
@augmented_rule(interp)
def _interp_aug(x, xp, fp):
    return np.interp(x, xp, fp), _brackets(x, xp, fp)


@reverse_rule(interp)
def _interp_rev(brackets, dy, x, dx, xp, dxp, fp, dfp):
    adjoint = _interp_adjoint(brackets, np.ravel(dy), dxp, dfp)
    for i in range(adjoint.shape[0]):
        dx.flat[i] += adjoint[i]
    return ()


@forward_rule(interp_at)
def _interp_at_fwd(x, dx, xp, dxp, fp, dfp):
    dy = _interp_tangent(_brackets(x, xp, fp), np.full(1, dx), dxp, dfp)
    return np.interp(x, xp, fp), dy[0]


@reverse_rule(interp_at)
def _interp_at_rev(brackets, dy, x, xp, dxp, fp, dfp):
    return (_interp_adjoint(brackets, np.full(1, dy), dxp, dfp)[0],)


def _interp_types(scalar: bool):
    """np.interp's argument types the rules support: x a float (`scalar`) or a float array,
    xp and fp 1-D float arrays."""

    def accepts(argtypes: tuple) -> bool:
        x, *knots = argtypes
        ok_x = isinstance(x, types.Float) if scalar else _floats()((x,))
        return ok_x and _floats(1)(tuple(knots))

    return accepts


def _floats(ndim: int | None = None):
    """Argument types the rules support: float32 or float64 arrays (of `ndim` dimensions)."""

    def accepts(argtypes: tuple) -> bool:
        return all(
            isinstance(t, types.Array)
            and isinstance(t.dtype, types.Float)
            and t.dtype.bitwidth in (32, 64)
            and (ndim is None or t.ndim == ndim)
            for t in argtypes
        )

    return accepts


def _same_floats(ndim: int):
    """`_floats(ndim)` of one dtype."""

    def accepts(argtypes: tuple) -> bool:
        return _floats(ndim)(argtypes) and len({t.dtype for t in argtypes}) == 1

    return accepts


def _array_and(second: Any, ndim: int = 2):
    """Argument types the rules support: a float array of `ndim` dimensions and an argument
    of the Numba type `second` (an order, a flag)."""

    def accepts(argtypes: tuple) -> bool:
        return (
            len(argtypes) == 2
            and _floats(ndim)(argtypes[:1])
            and isinstance(types.unliteral(argtypes[1]), second)
        )

    return accepts


for _name, _f in (("solve", solve), ("inv", inv), ("det", det), ("slogdet", slogdet)):
    implements(_impl(_name), _f, when=_floats())
implements(_impl("cho"), cholesky, when=_floats(2))
implements(_impl("eigh"), eigh, when=_floats(2))
implements(_impl("eigvalsh"), eigvalsh, when=_floats(2))
implements("numba.np.linalg.eig_impl.<locals>.real_eig_impl", eig, when=_floats(2))
implements(_impl("svd"), svd, when=_floats(2))
implements(_impl("svd"), svd_of, when=_array_and(types.Integer | types.Boolean))
implements(_impl("qr"), qr, when=_floats(2))
implements(_impl("pinv"), pinv, when=_floats(2))
implements(_impl("pinv"), pinv_cut, when=_array_and(types.Float))
implements("numba.np.linalg.eigvals_impl.<locals>.real_eigvals_impl", eigvals, when=_floats(2))
for _ndim, _name in ((1, "oneD_impl"), (2, "twoD_impl")):
    implements(f"numba.np.linalg._get_norm_impl.<locals>.{_name}", norm, when=_floats(_ndim))
    implements(
        f"numba.np.linalg._get_norm_impl.<locals>.{_name}",
        norm_of_order,
        when=_array_and(types.Integer | types.Float, _ndim),
    )
implements(_impl("lstsq"), lstsq, when=_floats())
implements("numba.np.arrayobj.impl_np_sort.<locals>.np_sort_impl", sort, when=_floats(1))
implements(
    "numba.np.arrayobj.array_sort.<locals>.array_sort_impl",
    sort_in_place,
    when=_floats(1),
    writes=frozenset({0}),
)
implements("numba.np.arraymath.np_median.<locals>.median_impl", median, when=_floats(1))
implements("numba.np.arraymath.np_convolve.<locals>.impl", convolve, when=_same_floats(1))
_RANK = "numba.np.linalg.matrix_rank_impl.<locals>._2d_matrix_rank_impl.<locals>."
implements(_RANK + "_2d_tol_none_impl", matrix_rank, when=_floats(2))
implements(_RANK + "_2d_tol_not_none_impl", matrix_rank_below, when=_array_and(types.Float))
_INTERP = "numba.np.arraymath.np_interp.<locals>."
implements(_INTERP + "np_interp_impl", interp, when=_interp_types(scalar=False))
implements(_INTERP + "np_interp_scalar_impl", interp_at, when=_interp_types(scalar=True))
