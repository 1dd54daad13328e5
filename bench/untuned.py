"""Programs written as a user would, tuned for nothing: `python -m bench.untuned`.

An ODE parameter fit (RK4, an `@njit` right-hand side writing into scratch arrays), a
Lennard-Jones energy with an `@njit` pair helper and a shifted cutoff, an L2 logistic
regression in NumPy array expressions, and fifteen loop kernels (`user_loops.py`). Each is
checked by the dot test between forward and reverse mode, and the gradient timed against the
primal in the same run.
(tests/ checks such programs against finite differences; this measures them.)"""

import math
import time

import numba
import numpy as np

import enzpy as ez

from . import user_loops


# ---- 1. fitting a damped oscillator's parameters to noisy observations (RK4, helper rhs)
@numba.njit
def rhs(y, p, out):
    # y = (position, velocity); p = (stiffness, damping, forcing amplitude, forcing freq)
    out[0] = y[1]
    out[1] = -p[0] * y[0] - p[1] * y[1] + p[2] * math.sin(p[3] * y[2])
    out[2] = 1.0  # time


@ez.enzyme_jit
def fit_loss(p, y0, obs, dt, steps_per_obs):
    y = y0.copy()
    k1 = np.empty(3)
    k2 = np.empty(3)
    k3 = np.empty(3)
    k4 = np.empty(3)
    tmp = np.empty(3)
    loss = 0.0
    for j in range(obs.shape[0]):
        for _ in range(steps_per_obs):
            rhs(y, p, k1)
            tmp[:] = y + 0.5 * dt * k1
            rhs(tmp, p, k2)
            tmp[:] = y + 0.5 * dt * k2
            rhs(tmp, p, k3)
            tmp[:] = y + dt * k3
            rhs(tmp, p, k4)
            y += dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        r = y[0] - obs[j]
        loss += r * r
    return 0.5 * loss


# ---- 2. Lennard-Jones energy with a cutoff, pair term in a helper
@numba.njit
def lj(r2, sigma, eps):
    s6 = (sigma * sigma / r2) ** 3
    return 4.0 * eps * (s6 * s6 - s6)


@ez.enzyme_jit
def lj_energy(pos, sigma, eps, cutoff):
    n = pos.shape[0]
    e = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            d = pos[i] - pos[j]
            r2 = (d * d).sum()
            if r2 < cutoff * cutoff:
                e += lj(r2, sigma, eps) - lj(cutoff * cutoff, sigma, eps)  # shifted: continuous
    return e


# ---- 3. L2-regularised logistic regression, vectorised NumPy
@ez.enzyme_jit
def logistic_loss(w, X, y, lam):
    z = X @ w
    loss = np.sum(np.log1p(np.exp(-np.abs(z))) + np.maximum(z, 0.0) - y * z)
    return loss / y.shape[0] + 0.5 * lam * np.dot(w, w)


def tmin(f, reps=7):
    f()
    best = 1e9
    for _ in range(reps):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


rng = np.random.default_rng(1)
p = np.array([4.0, 0.3, 0.5, 1.3])
y0 = np.array([1.0, 0.0, 0.0])
obs = np.sin(np.arange(40) * 0.25) * np.exp(-0.05 * np.arange(40))
grid = np.stack(np.meshgrid(np.arange(5.0), np.arange(5.0), np.arange(4.0)), -1).reshape(-1, 3)
pos = grid * 1.12 + 0.05 * rng.standard_normal(grid.shape)
X = rng.standard_normal((2000, 20))
wt = rng.standard_normal(20)
yl = (X @ wt + 0.5 * rng.standard_normal(2000) > 0).astype(np.float64)
w = 0.1 * rng.standard_normal(20)

cases = [
    ("ode fit", fit_loss, (p, y0, obs, 0.01, 25), (0, 1)),
    ("lennard-jones", lj_energy, (pos, 1.0, 1.0, 2.65), (0,)),
    ("logistic", logistic_loss, (w, X, yl, 0.01), (0,)),
    *user_loops.cases(rng),
]


def dot_test(f, args, active) -> float:
    """|<v, J u> - <Jᵀ v, u>| / scale for the float return (v = 1), u random."""
    u = {k: rng.standard_normal(np.shape(args[k])) for k in active}
    fwd = [
        ez.Const(a)
        if k not in u
        else ez.Duplicated(a.copy(), u[k].copy())
        if isinstance(a, np.ndarray)
        else ez.Duplicated(a, float(u[k]))
        for k, a in enumerate(args)
    ]
    jvp = ez.autodiff(ez.Forward, f, *fwd)
    grads = ez.gradient(ez.Reverse, f, *[a if k in u else ez.Const(a) for k, a in enumerate(args)])
    vjp = sum(float(np.sum(grads[k] * u[k])) for k in u)
    return abs(jvp - vjp) / max(1.0, abs(jvp))


def main() -> None:
    print("| program | primal | gradient / primal | dot test |")
    print("|---|---:|---:|---:|")
    for name, f, args, active in cases:
        err = dot_test(f, args, active)
        tp = tmin(lambda f=f, args=args: f(*args))  # (none writes its arguments)
        consts = [a if k in active else ez.Const(a) for k, a in enumerate(args)]
        tr = tmin(lambda f=f, consts=consts: ez.gradient(ez.Reverse, f, *consts))
        print(f"| {name} | {tp * 1e3:.3f} ms | {tr / tp:.2f} | {err:.1e} |")


if __name__ == "__main__":
    main()
