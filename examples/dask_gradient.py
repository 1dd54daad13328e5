"""The gradient of a loss summed over data shards, computed with Dask, next to the
single-process gradient, then an L-BFGS-B fit driven by it.

The loss is the least-squares misfit of a predator-prey (Lotka-Volterra) model, integrated
by Runge-Kutta 4, to many noisy trajectories measured from different initial populations.
The trajectories are split into shards that stay on the workers; each worker runs the
reverse-mode derivative of its shards' misfit and the client adds the pieces.

    python examples/dask_gradient.py                  # a LocalCluster of 2 worker processes
    python examples/dask_gradient.py tcp://host:8786  # the workers of a running scheduler

The functions below live in `__main__`, so they travel to the workers by value: each worker
compiles them and builds the derivative of `misfit` once, or loads it from the derivative
disk cache (`cache=True`) that an earlier run on this machine wrote.
"""

from __future__ import annotations

import argparse
import sys
import time

import numba
import numpy as np
import scipy.optimize
from dask.distributed import Client, LocalCluster, progress

import enzpy as ez

TRUE_THETA = np.array([1.1, 0.4, 0.1, 0.4])  # prey growth, predation, predator growth, death
START_THETA = np.array([0.8, 0.3, 0.15, 0.6])  # where the fit starts
DT = 0.05  # the Runge-Kutta step
SUBSTEPS = 4  # steps between two measurements


@numba.njit(cache=True)
def rates(theta, x, y):
    """d(prey)/dt and d(predators)/dt."""
    return theta[0] * x - theta[1] * x * y, theta[2] * x * y - theta[3] * y


@numba.njit(cache=True)
def rk4_step(theta, x, y):
    """The populations one Runge-Kutta 4 step later."""
    h = DT
    ax, ay = rates(theta, x, y)
    bx, by = rates(theta, x + 0.5 * h * ax, y + 0.5 * h * ay)
    cx, cy = rates(theta, x + 0.5 * h * bx, y + 0.5 * h * by)
    dx, dy = rates(theta, x + h * cx, y + h * cy)
    x_next = x + h / 6.0 * (ax + 2.0 * bx + 2.0 * cx + dx)
    y_next = y + h / 6.0 * (ay + 2.0 * by + 2.0 * cy + dy)
    return x_next, y_next


@ez.enzyme_jit(cache=True)
def misfit(theta, start, measured):
    """Half the squared distance between the trajectories from `start` (k x 2 populations)
    and `measured` (k x steps x 2)."""
    total = 0.0
    for k in range(start.shape[0]):
        x, y = start[k, 0], start[k, 1]
        for t in range(measured.shape[1]):
            for _ in range(SUBSTEPS):
                x, y = rk4_step(theta, x, y)
            total += 0.5 * ((x - measured[k, t, 0]) ** 2 + (y - measured[k, t, 1]) ** 2)
    return total


@numba.njit(cache=True)
def simulate(theta, start, steps):
    """The trajectories from `start`, measured every SUBSTEPS steps (k x steps x 2)."""
    out = np.empty((start.shape[0], steps, 2))
    for k in range(start.shape[0]):
        x, y = start[k, 0], start[k, 1]
        for t in range(steps):
            for _ in range(SUBSTEPS):
                x, y = rk4_step(theta, x, y)
            out[k, t, 0], out[k, t, 1] = x, y
    return out


def make_shards(n_shards, per_shard, steps, seed=0):
    """Trajectories of the model at TRUE_THETA with 5% noise, from random initial
    populations: n_shards pairs (start, measured)."""
    rng = np.random.default_rng(seed)
    shards = []
    for _ in range(n_shards):
        start = np.column_stack([rng.uniform(5, 15, per_shard), rng.uniform(2, 8, per_shard)])
        clean = simulate(TRUE_THETA, start, steps)
        shards.append((start, clean * (1.0 + 0.05 * rng.standard_normal(clean.shape))))
    return shards


def shard_value_and_gradient(theta, shard):
    """The misfit of one shard and its gradient in `theta` (one reverse pass)."""
    start, measured = shard
    g = np.zeros_like(theta)
    _, value = ez.autodiff(
        ez.ReverseWithPrimal, misfit, ez.Active, ez.Duplicated(theta.copy(), g), start, measured
    )
    return value, g


def add(parts):
    """The sum of (value, gradient) pairs."""
    return sum(v for v, _ in parts), np.sum([g for _, g in parts], axis=0)


def distributed_value_and_gradient(client, theta, shards, show_progress=False):
    """The misfit of every shard and its gradient, each shard's on the worker holding it."""
    futures = client.map(shard_value_and_gradient, [theta] * len(shards), shards, pure=False)
    if show_progress:
        progress(futures)
        print()
    return add(client.gather(futures))


def first_gradient(client, shards):
    """The first distributed gradient, with a progress bar: each worker builds the
    derivative, or loads it from the disk cache."""
    print("first distributed gradient (each worker builds the derivative or loads it):")
    start = time.perf_counter()
    value, g = distributed_value_and_gradient(client, START_THETA, shards, show_progress=True)
    print(f"  {time.perf_counter() - start:.2f} s")

    def cache_stats():
        from enzpy import disk_cache

        return dict(disk_cache.stats)

    for address, stats in sorted(client.run(cache_stats).items()):
        print(
            f"  {address}: {stats['loaded']} derivative(s) loaded from the disk cache, "
            f"{stats['written']} written to it"
        )
    return value, g


def compare(value, g, data):
    """Print the distributed gradient next to the one computed in this process."""
    local_value, local_g = add([shard_value_and_gradient(START_THETA, s) for s in data])
    print(f"\ngradient of the misfit at theta = {START_THETA}:")
    print(f"  {'':>8} {'distributed':>22} {'single process':>22} {'relative difference':>20}")
    for i in range(g.size):
        difference = abs(g[i] - local_g[i]) / abs(local_g[i])
        print(f"  theta[{i}] {g[i]:>22.15g} {local_g[i]:>22.15g} {difference:>20.1e}")
    worst = np.max(np.abs(g - local_g) / np.abs(local_g))
    print(f"  max relative difference {worst:.1e}; misfits {value:.15g}, {local_value:.15g}")


def time_gradients(client, shards, data):
    """Print the median time of a distributed gradient and of one in this process."""
    times, local = [], []
    for _ in range(8):
        start = time.perf_counter()
        distributed_value_and_gradient(client, START_THETA, shards)
        times.append(time.perf_counter() - start)
    for _ in range(3):
        start = time.perf_counter()
        add([shard_value_and_gradient(START_THETA, s) for s in data])
        local.append(time.perf_counter() - start)
    print(
        f"time per gradient: {1e3 * np.median(times):.1f} ms distributed "
        f"({len(client.nthreads())} workers), {1e3 * np.median(local):.1f} ms in this process"
    )


def fit(client, shards, n_measured):
    """L-BFGS-B on the mean misfit from START_THETA, with a progress line."""
    evaluations, iterations = [0], [0]

    def objective(theta):
        evaluations[0] += 1
        value, g = distributed_value_and_gradient(client, theta, shards)
        return value / n_measured, g / n_measured

    def report(intermediate_result):
        iterations[0] += 1
        sys.stdout.write(
            f"\r  L-BFGS-B  iteration {iterations[0]:3d}"
            f"  gradients {evaluations[0]:3d}  mean misfit {intermediate_result.fun:.6e}"
        )
        sys.stdout.flush()

    print(f"\nfit from theta = {START_THETA}:")
    start = time.perf_counter()
    result = scipy.optimize.minimize(
        objective,
        START_THETA,
        jac=True,
        method="L-BFGS-B",
        bounds=[(0.05, 3.0)] * 4,
        callback=report,
    )
    print(f"\n  {result.message}")
    print(
        f"  {result.nit} iterations, {result.nfev} distributed gradients, "
        f"{time.perf_counter() - start:.1f} s"
    )
    print(f"  fitted theta {np.array2string(result.x, precision=6, floatmode='fixed')}")
    print(f"  true theta   {TRUE_THETA}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scheduler", nargs="?", help="a scheduler's address (else a LocalCluster)")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--per-shard", type=int, default=2048, help="trajectories per shard")
    parser.add_argument("--steps", type=int, default=100, help="measurements per trajectory")
    args = parser.parse_args()

    data = make_shards(args.shards, args.per_shard, args.steps)
    n_measured = sum(m.size for _, m in data)
    if args.scheduler:
        client = Client(args.scheduler)
    else:
        cluster = LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
    with client:
        print(
            f"{len(client.nthreads())} workers; {args.shards} shards of {args.per_shard} "
            f"trajectories x {args.steps} measurements ({n_measured} numbers)"
        )
        shards = client.scatter(data)
        value, g = first_gradient(client, shards)
        compare(value, g, data)
        time_gradients(client, shards, data)
        fit(client, shards, n_measured)


if __name__ == "__main__":
    main()
