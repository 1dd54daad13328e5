"""Kernels written as a Numba user would write them, tuned for nothing: plain loops and NumPy
array expressions under ``@ez.enzyme_jit``, each with a short hand-written gradient in Numba
(the ``hand rev`` column and the reference the other columns are checked against) and the same
function as array code for JAX and PyTorch.

- ``jacobi``: Jacobi sweeps of the 5-point average of ``u`` into a second array ``v``, copied
  back into ``u``; returns ``Σ u²``. ``u`` and ``v`` active (the gradient in ``v`` is zero:
  every value of ``v`` that is read was written first).
- ``lj_inline`` / ``lj_helper``: Lennard-Jones energy of atoms on a jittered cubic lattice,
  the pair term written inline in the double loop or in an ``@numba.njit`` helper taking two
  rows of the positions; positions, σ and ε active.
- ``mixture``: log-likelihood of points under a 1-D mixture of unit-variance Gaussians with
  log-weights ``logw`` (unnormalized), a running max per point; μ and ``logw`` active.
- ``heat``: explicit 1-D heat equation in NumPy slice expressions; returns ``½ Σ u²``; ``u``
  and κ active.
- ``springs``: a chain of masses fixed at both ends, semi-implicit Euler steps, spring forces
  and a nonlinear drag in ``@numba.njit`` helpers, the ends by conditional expressions; the
  squared misfit to positions observed every 10 steps plus a log-prior on the stiffnesses;
  stiffnesses, damping and initial positions active.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from .evals._common import random_direction
from .evals._jit import jit, njit
from .kernels import _num
from .timing import Inputs, Kernel
from .tools import add_columns

# ------------------------------------------------------------------------------------ jacobi


@jit
def jacobi(u, v, sweeps):
    n, m = u.shape
    for _ in range(sweeps):
        for i in range(1, n - 1):
            for j in range(1, m - 1):
                v[i, j] = 0.25 * (u[i - 1, j] + u[i + 1, j] + u[i, j - 1] + u[i, j + 1])
        for i in range(1, n - 1):
            for j in range(1, m - 1):
                u[i, j] = v[i, j]
    t = 0.0
    for i in range(n):
        for j in range(m):
            t += u[i, j] * u[i, j]
    return t


@njit
def jacobi_gradient(u, v, sweeps):
    """Hand-written gradient: the sweeps are linear, so the gradient is the transposed sweeps
    applied to 2·u after the sweeps (recomputed); zero in ``v``."""
    n, m = u.shape
    w = u.copy()
    tmp = np.empty_like(u)
    for _ in range(sweeps):
        for i in range(1, n - 1):
            for j in range(1, m - 1):
                tmp[i, j] = 0.25 * (w[i - 1, j] + w[i + 1, j] + w[i, j - 1] + w[i, j + 1])
        w[1:-1, 1:-1] = tmp[1:-1, 1:-1]
    g = 2.0 * w
    for _ in range(sweeps):
        tmp[1:-1, 1:-1] = 0.25 * g[1:-1, 1:-1]
        g[1:-1, 1:-1] = 0.0
        for i in range(1, n - 1):
            for j in range(1, m - 1):
                c = tmp[i, j]
                g[i - 1, j] += c
                g[i + 1, j] += c
                g[i, j - 1] += c
                g[i, j + 1] += c
    return g, np.zeros_like(v), None


def jacobi_objective(xp: Any, u: Any, v: Any, sweeps: int) -> Any:
    """The same sweeps as array code (``v`` only holds each sweep's result)."""
    for _ in range(sweeps):
        inner = 0.25 * (u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:])
        u = xp.index_set(u, (slice(1, -1), slice(1, -1)), inner)
    return xp.sum(u * u)


JACOBI_ACTIVE = (True, True, False)


def jacobi_inputs(size: tuple[int, int]) -> Inputs:
    """u uniform in [0, 1) on an n x n grid, v zero; random directions in both."""
    n, sweeps = size
    args = (np.random.default_rng(11).uniform(0.0, 1.0, (n, n)), np.zeros((n, n)), sweeps)
    return Inputs(args, random_direction(args, JACOBI_ACTIVE), {"n": n, "sweeps": sweeps})


# -------------------------------------------------------------------------------- lennard-jones


@jit
def lj_inline(pos, sigma, eps):
    n = pos.shape[0]
    e = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            r2 = 0.0
            for k in range(pos.shape[1]):
                d = pos[i, k] - pos[j, k]
                r2 += d * d
            s6 = (sigma * sigma / r2) ** 3
            e += 4.0 * eps * (s6 * s6 - s6)
    return e


@numba.njit
def pair(a, b, sigma, eps):
    r2 = 0.0
    for k in range(a.shape[0]):
        d = a[k] - b[k]
        r2 += d * d
    s6 = (sigma * sigma / r2) ** 3
    return 4.0 * eps * (s6 * s6 - s6)


@jit
def lj_helper(pos, sigma, eps):
    n = pos.shape[0]
    e = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            e += pair(pos[i], pos[j], sigma, eps)
    return e


@njit
def lj_gradient(pos, sigma, eps):
    """Hand-written gradient, pair by pair: with ``t = 2 s⁶² − s⁶``, ∂E/∂r² = −12 ε t / r²,
    ∂E/∂σ = 24 ε t / σ, ∂E/∂ε = 4 (s⁶² − s⁶)."""
    n, dim = pos.shape
    g = np.zeros_like(pos)
    gs = 0.0
    ge = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            r2 = 0.0
            for k in range(dim):
                r2 += (pos[i, k] - pos[j, k]) ** 2
            s6 = (sigma * sigma / r2) ** 3
            t = 2.0 * s6 * s6 - s6
            gs += 24.0 * eps * t / sigma
            ge += 4.0 * (s6 * s6 - s6)
            c = -24.0 * eps * t / r2
            for k in range(dim):
                d = c * (pos[i, k] - pos[j, k])
                g[i, k] += d
                g[j, k] -= d
    return g, gs, ge


def lj_objective(xp: Any, pos: Any, sigma: Any, eps: Any) -> Any:
    """The same energy as array code, over the index pairs i < j."""
    i, j = np.triu_indices(pos.shape[0], 1)
    d = pos[i] - pos[j]
    s6 = (sigma * sigma / xp.sum(d * d, axis=1)) ** 3
    return xp.sum(4.0 * eps * (s6 * s6 - s6))


LJ_ACTIVE = (True, True, True)


def lj_inputs(side: int) -> Inputs:
    """side³ atoms on a cubic lattice of spacing 1.1, jittered by 0.05·N(0, 1); σ = ε = 1;
    random directions in the positions, σ and ε."""
    r = np.random.default_rng(12)
    axes = np.meshgrid(*[np.arange(side) * 1.1] * 3, indexing="ij")
    pos = np.stack(axes, axis=-1).reshape(-1, 3)
    args = (pos + 0.05 * r.standard_normal(pos.shape), 1.0, 1.0)
    return Inputs(args, random_direction(args, LJ_ACTIVE), {"atoms": side**3})


# --------------------------------------------------------------------------------- mixture


@jit
def mixture(x, mu, logw):
    tot = 0.0
    for i in range(x.shape[0]):
        m = -1e300
        for k in range(mu.shape[0]):
            v = logw[k] - 0.5 * (x[i] - mu[k]) ** 2
            if v > m:
                m = v
        s = 0.0
        for k in range(mu.shape[0]):
            v = logw[k] - 0.5 * (x[i] - mu[k]) ** 2
            s += np.exp(v - m)
        tot += m + np.log(s)
    return tot


@njit
def mixture_gradient(x, mu, logw):
    """Hand-written gradient: with the responsibilities p_ik (softmax over k),
    ∂/∂μ_k = Σ_i p_ik (x_i − μ_k) and ∂/∂logw_k = Σ_i p_ik."""
    gmu = np.zeros_like(mu)
    gw = np.zeros_like(logw)
    p = np.empty_like(mu)
    for i in range(x.shape[0]):
        m = -1e300
        for k in range(mu.shape[0]):
            p[k] = logw[k] - 0.5 * (x[i] - mu[k]) ** 2
            m = max(m, p[k])
        s = 0.0
        for k in range(mu.shape[0]):
            p[k] = np.exp(p[k] - m)
            s += p[k]
        for k in range(mu.shape[0]):
            gw[k] += p[k] / s
            gmu[k] += p[k] / s * (x[i] - mu[k])
    return None, gmu, gw


def mixture_objective(xp: Any, x: Any, mu: Any, logw: Any) -> Any:
    """The same log-likelihood as array code: a logsumexp over components per point."""
    v = logw[None, :] - 0.5 * (x[:, None] - mu[None, :]) ** 2
    return xp.sum(xp.logsumexp(v, axis=1))


MIXTURE_ACTIVE = (False, True, True)


def mixture_inputs(size: tuple[int, int]) -> Inputs:
    """n points drawn from K unit Gaussians centred uniformly in [−5, 5]; μ those centres
    plus 0.5·N(0, 1), logw = log(1/K) + 0.1·N(0, 1); random directions in μ and logw."""
    n, k = size
    r = np.random.default_rng(13)
    centres = r.uniform(-5.0, 5.0, k)
    x = centres[r.integers(0, k, n)] + r.standard_normal(n)
    args = (x, centres + 0.5 * r.standard_normal(k), np.log(1.0 / k) + 0.1 * r.standard_normal(k))
    return Inputs(args, random_direction(args, MIXTURE_ACTIVE), {"n": n, "K": k})


# ------------------------------------------------------------------------------------ heat


@jit
def heat(u, kappa, nsteps):
    for _ in range(nsteps):
        u[1:-1] = u[1:-1] + kappa * (u[2:] - 2 * u[1:-1] + u[:-2])
    return 0.5 * np.sum(u * u)


@njit
def heat_gradient(u, kappa, nsteps):
    """Hand-written gradient: the state before every step kept, then the transposed steps,
    each adding its Laplacian's share to ∂/∂κ."""
    n = u.shape[0]
    states = np.empty((nsteps + 1, n))
    states[0] = u
    for t in range(nsteps):
        w = states[t]
        states[t + 1] = w
        for i in range(1, n - 1):
            states[t + 1, i] = w[i] + kappa * (w[i + 1] - 2 * w[i] + w[i - 1])
    g = states[nsteps].copy()
    gk = 0.0
    for t in range(nsteps - 1, -1, -1):
        w = states[t]
        h = g.copy()
        for i in range(1, n - 1):
            gk += h[i] * (w[i + 1] - 2 * w[i] + w[i - 1])
            g[i] -= 2 * kappa * h[i]
            g[i + 1] += kappa * h[i]
            g[i - 1] += kappa * h[i]
    return g, gk, None


def heat_objective(xp: Any, u: Any, kappa: Any, nsteps: int) -> Any:
    """The same steps as array code."""
    for _ in range(nsteps):
        u = xp.index_set(u, slice(1, -1), u[1:-1] + kappa * (u[2:] - 2 * u[1:-1] + u[:-2]))
    return 0.5 * xp.sum(u * u)


HEAT_ACTIVE = (True, True, False)


def heat_inputs(size: tuple[int, int]) -> Inputs:
    """u uniform in [0, 1) on n points, κ = 0.2; random directions in u and κ."""
    n, nsteps = size
    args = (np.random.default_rng(14).uniform(0.0, 1.0, n), 0.2, nsteps)
    return Inputs(args, random_direction(args, HEAT_ACTIVE), {"n": n, "nsteps": nsteps})


# ------------------------------------------------------------------------------------ springs


@njit
def spring_force(xl, x, xr, kl, kr):
    return kl * (xl - x) + kr * (xr - x)


@njit
def drag(v, c):
    return -c * v * (1.0 + 0.1 * v * v)


@jit
def springs(k, c, x0, obs, dt, steps):
    n = x0.shape[0]
    x = x0.copy()
    v = np.zeros(n)
    a = np.empty(n)
    loss = 0.0
    for t in range(steps):
        for i in range(n):
            xl = x[i - 1] if i > 0 else 0.0
            xr = x[i + 1] if i < n - 1 else 0.0
            kr = k[i + 1] if i < n - 1 else 0.0
            a[i] = spring_force(xl, x[i], xr, k[i], kr) + drag(v[i], c)
        for i in range(n):
            v[i] += dt * a[i]
            x[i] += dt * v[i]
        if t % 10 == 9:
            d = x - obs[t // 10]
            loss += np.dot(d, d)
    return loss + 1e-3 * np.sum(np.log(k) ** 2)


@njit
def springs_gradient(k, c, x0, obs, dt, steps):
    """Hand-written gradient: every step's state kept, then the steps transposed."""
    n = x0.shape[0]
    xs = np.empty((steps + 1, n))
    vs = np.zeros((steps + 1, n))
    xs[0] = x0
    for t in range(steps):
        x, v = xs[t], vs[t]
        for i in range(n):
            xl = x[i - 1] if i > 0 else 0.0
            xr = x[i + 1] if i < n - 1 else 0.0
            kr = k[i + 1] if i < n - 1 else 0.0
            a = k[i] * (xl - x[i]) + kr * (xr - x[i]) - c * v[i] * (1.0 + 0.1 * v[i] * v[i])
            vs[t + 1, i] = v[i] + dt * a
            xs[t + 1, i] = x[i] + dt * vs[t + 1, i]
    gk = 2e-3 * np.log(k) / k
    gc = 0.0
    gx = np.zeros(n)
    gv = np.zeros(n)
    for t in range(steps - 1, -1, -1):
        if t % 10 == 9:
            gx += 2.0 * (xs[t + 1] - obs[t // 10])
        x, v = xs[t], vs[t]
        for i in range(n):  # x' = x + dt v', v' = v + dt a
            gv[i] += dt * gx[i]
        for i in range(n):
            ga = dt * gv[i]
            xl = x[i - 1] if i > 0 else 0.0
            xr = x[i + 1] if i < n - 1 else 0.0
            gk[i] += ga * (xl - x[i])
            gx[i] -= ga * k[i]
            if i > 0:
                gx[i - 1] += ga * k[i]
            if i < n - 1:
                gk[i + 1] += ga * (xr - x[i])
                gx[i + 1] += ga * k[i + 1]
                gx[i] -= ga * k[i + 1]
            gv[i] -= ga * c * (1.0 + 0.3 * v[i] * v[i])
            gc -= ga * v[i] * (1.0 + 0.1 * v[i] * v[i])
    return gk, gc, gx, None, None, None


def springs_objective(xp: Any, k: Any, c: Any, x0: Any, obs: Any, dt: float, steps: int) -> Any:
    """The same simulation as array code, ten steps to a `fold` between observations."""
    kr = xp.concatenate([k[1:], 0.0 * k[:1]])

    def step(_: Any, state: Any) -> Any:
        x, v = state
        xl = xp.concatenate([0.0 * x[:1], x[:-1]])
        xr = xp.concatenate([x[1:], 0.0 * x[:1]])
        v = v + dt * (k * (xl - x) + kr * (xr - x) - c * v * (1.0 + 0.1 * v * v))
        return x + dt * v, v

    state, loss = (x0, 0.0 * x0), 0.0
    for j in range(steps // 10):
        state = xp.fold(10, step, state)
        d = state[0] - obs[j]
        loss = loss + xp.sum(d * d)
    return loss + 1e-3 * xp.sum(xp.log(k) ** 2)


SPRINGS_ACTIVE = (True, True, True, False, False, False)


def springs_inputs(size: tuple[int, int]) -> Inputs:
    """n masses, stiffnesses uniform in [0.5, 2), damping 0.2, positions 0.3·N(0, 1),
    observations every 10 steps 0.1·N(0, 1), dt = 0.01; random directions in k, c, x0."""
    n, steps = size
    r = np.random.default_rng(15)
    args = (
        r.uniform(0.5, 2.0, n),
        0.2,
        0.3 * r.standard_normal(n),
        0.1 * r.standard_normal((steps // 10, n)),
        0.01,
        steps,
    )
    return Inputs(args, random_direction(args, SPRINGS_ACTIVE), {"n": n, "steps": steps})


# ---------------------------------------------------------------------------------- registry


def _lj(name: str, primal: Any, where: str) -> Kernel:
    """A Lennard-Jones kernel (the two differ in where the pair term is written)."""
    return Kernel(
        name,
        f"Lennard-Jones energy, pair term {where}",
        primal,
        lj_inputs,
        sizes={"full": 8, "quick": 4},
        size_label=lambda side: f"{side**3} atoms",
        tape_units=lambda q: [("pair", q["atoms"] * (q["atoms"] - 1) // 2)],
    )


def build_kernels(wanted: set[str]) -> dict[str, Kernel]:
    """The kernels with the suite's columns of the ``wanted`` families."""
    jacobi_k = Kernel(
        "jacobi",
        "Jacobi sweeps into a second array",
        jacobi,
        jacobi_inputs,
        sizes={"full": (256, 20), "sweep": [(96, 20), (128, 20)], "quick": (64, 5)},
        size_label=lambda s: f"{s[0]}²×{s[1]} sweeps",
        tape_units=lambda q: [
            ("sweep", q["sweeps"]),
            ("point update", (q["n"] - 2) ** 2 * q["sweeps"]),
        ],
    )
    mixture_k = Kernel(
        "mixture",
        "1-D Gaussian-mixture log-likelihood, running max",
        mixture,
        mixture_inputs,
        sizes={"full": (20_000, 8), "quick": (1000, 8)},
        size_label=lambda s: f"n={s[0]} K={s[1]}",
        tape_units=lambda q: [("point", q["n"]), ("point·component", q["n"] * q["K"])],
    )
    heat_k = Kernel(
        "heat",
        "1-D heat equation in slice expressions",
        heat,
        heat_inputs,
        sizes={"full": (10**4, 50), "quick": (1000, 10)},
        size_label=lambda s: f"n={_num(s[0])}, {s[1]} steps",
        tape_units=lambda q: [("step", q["nsteps"]), ("point update", q["n"] * q["nsteps"])],
    )
    springs_k = Kernel(
        "springs",
        "chain of masses, spring forces in @njit helpers",
        springs,
        springs_inputs,
        sizes={"full": (256, 400), "quick": (32, 50)},
        size_label=lambda s: f"{s[0]} masses, {s[1]} steps",
        tape_units=lambda q: [("step", q["steps"]), ("mass update", q["n"] * q["steps"])],
    )
    lj = (LJ_ACTIVE, lj_gradient, lj_objective)
    kernels = [
        # v carries u from sweep to sweep: ez.hvp, which passes it Const, would drop that
        add_columns(jacobi_k, wanted, JACOBI_ACTIVE, jacobi_gradient, jacobi_objective, hvp=False),
        add_columns(_lj("lj_inline", lj_inline, "inline"), wanted, *lj),
        add_columns(_lj("lj_helper", lj_helper, "in an @njit helper"), wanted, *lj),
        add_columns(mixture_k, wanted, MIXTURE_ACTIVE, mixture_gradient, mixture_objective),
        add_columns(heat_k, wanted, HEAT_ACTIVE, heat_gradient, heat_objective),
        add_columns(springs_k, wanted, SPRINGS_ACTIVE, springs_gradient, springs_objective),
    ]
    return {k.name: k for k in kernels}
