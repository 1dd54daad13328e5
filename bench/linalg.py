"""Costs of the linear-algebra rules (`enzpy.linalg`): `python -m bench.linalg [--n 200]`.

Each kernel calls one NumPy function on an n x n matrix and reduces the result to a float;
the primal, one forward derivative (a random direction) and the reverse gradient are timed
in the same run (median of repetitions), and the ratios derivative / primal printed as a
Markdown table.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import enzpy as ez


@ez.enzyme_jit
def solve(a, b):
    return np.linalg.solve(a, b).sum()


@ez.enzyme_jit
def inv(a, b):
    return (np.linalg.inv(a) @ b).sum()


@ez.enzyme_jit
def det(a, b):
    return np.linalg.slogdet(a)[1] + b[0]


@ez.enzyme_jit
def cholesky(a, b):
    return (np.linalg.cholesky(a) @ b).sum()


@ez.enzyme_jit
def eigh(a, b):
    w, v = np.linalg.eigh(a)
    return w.sum() + (v @ b).sum()


@ez.enzyme_jit
def eig(a, b):
    w, v = np.linalg.eig(a)  # the general (nonsymmetric) solver, on the same matrix
    return w.sum() + (v @ b).sum()


@ez.enzyme_jit
def svd(a, b):
    u, s, vh = np.linalg.svd(a)
    return s.sum() + (u @ b).sum() + (vh @ b).sum()


@ez.enzyme_jit
def norm(a, b):
    return np.linalg.norm(a) * np.linalg.norm(b)


@ez.enzyme_jit
def sort(a, b):
    return (np.sort(b) * b).sum() + np.median(a[0])


KERNELS = {
    "solve": solve,
    "inv": inv,
    "slogdet": det,
    "cholesky": cholesky,
    "eigh": eigh,
    "eig": eig,
    "svd": svd,
    "norm": norm,
    "sort+median": sort,
}


def _median_time(fn, reps: int) -> float:
    fn()  # warm-up (compiles)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--reps", type=int, default=15)
    opts = p.parse_args()
    rng = np.random.default_rng(0)
    m = rng.standard_normal((opts.n, opts.n))
    a = m @ m.T / opts.n + np.eye(opts.n)  # symmetric positive definite, well conditioned
    b = rng.standard_normal(opts.n)
    da, db = np.zeros_like(a), np.zeros_like(b)
    ta, tb = rng.standard_normal(a.shape), rng.standard_normal(b.shape)
    print(f"| kernel (n = {opts.n}) | primal (ms) | forward / primal | reverse / primal |")
    print("|---|---:|---:|---:|")
    for name, f in KERNELS.items():
        primal = _median_time(lambda f=f: f(a, b), opts.reps)
        fwd = _median_time(
            lambda f=f: ez.autodiff(ez.Forward, f, ez.Duplicated(a, ta), ez.Duplicated(b, tb)),
            opts.reps,
        )

        def rev(f=f):
            da[...] = 0.0
            db[...] = 0.0
            ez.autodiff(ez.Reverse, f, ez.Duplicated(a, da), ez.Duplicated(b, db))

        reverse = _median_time(rev, opts.reps)
        print(f"| {name} | {primal * 1e3:.3f} | {fwd / primal:.2f} | {reverse / primal:.2f} |")


if __name__ == "__main__":
    main()
