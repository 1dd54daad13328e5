"""The benchmark's first calls in new processes: a second process finds the kernel's primal
and derivative in the disk caches (timings are the benchmark's, never asserted)."""

from __future__ import annotations

from bench.latency import in_new_processes


def test_a_second_process_loads_the_derivative_from_the_disk_cache() -> None:
    got = in_new_processes("reduction", 1000)
    assert set(got) == {
        "new process primal",
        "new process rev",
        "cached process primal",
        "cached process rev",
    }
    assert all(isinstance(v, float) and v > 0 for v in got.values()), got
