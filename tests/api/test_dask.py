"""The gradient of a loss summed over data shards, computed by two Dask worker processes,
equals the one computed in this process (which equals central differences)."""

from __future__ import annotations

import numba
import numpy as np
import pytest

import enzpy as ez

distributed = pytest.importorskip("distributed")


@numba.njit
def model(theta, t):
    return theta[0] * np.exp(-theta[1] * t) * np.cos(theta[2] * t)


@ez.enzyme_jit
def misfit(theta, t, y):  # pickled by reference: the workers import this module
    s = 0.0
    for i in range(t.shape[0]):
        s += 0.5 * (model(theta, t[i]) - y[i]) ** 2
    return s


def shard_gradient(f, theta, shard):
    """The gradient in `theta` of `f` on one shard (t, y)."""
    t, y = shard
    (g, _, _) = ez.gradient(ez.Reverse, f, theta, ez.Const(t), ez.Const(y))
    return g


def test_distributed_gradient_equals_the_local_one():
    rng = np.random.default_rng(0)
    theta = np.array([1.3, 0.4, 2.1])
    shards = []
    for _ in range(4):
        t = np.sort(rng.uniform(0.0, 5.0, 50))
        shards.append((t, model(np.array([1.0, 0.5, 2.0]), t) + 0.01 * rng.standard_normal(50)))
    weight = 0.25

    @ez.enzyme_jit
    def weighted(theta, t, y):  # pickled by value, with `weight` and `misfit`
        return weight * misfit(theta, t, y) + (theta * theta).sum()

    def total(f, theta):
        return sum(f(theta, t, y) for t, y in shards)

    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with cluster, distributed.Client(cluster) as client:
        scattered = client.scatter(shards)
        assert len({w for ws in client.who_has(scattered).values() for w in ws}) == 2
        for f in (misfit, weighted):
            tasks = client.map(shard_gradient, [f] * 4, [theta] * 4, scattered, pure=False)
            spread = np.sum(client.gather(tasks), axis=0)
            local = np.sum([shard_gradient(f, theta, s) for s in shards], axis=0)
            np.testing.assert_allclose(spread, local, rtol=1e-13)
            h = 1e-6
            fd = [(total(f, theta + h * e) - total(f, theta - h * e)) / (2 * h) for e in np.eye(3)]
            np.testing.assert_allclose(local, fd, rtol=1e-7)
