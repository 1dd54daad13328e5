"""Memory running out is a `MemoryError`, not a crash (DESIGN.md: nothing a user passes may
crash the interpreter): when the tape of a reverse pass cannot grow, or the shadow of a local
array cannot be allocated, the derivative releases what it allocated and raises
`MemoryError`, as Numba's `np.empty` does, and the process goes on (a smaller call works).

Each case runs in a child process whose address space is limited (`RLIMIT_AS`) a little
above what it uses once the inputs exist."""

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHILD = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from numba.core.runtime import _nrt_python, rtsys
    import enzpy as ez

    case, mode, n, headroom = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

    @ez.enzyme_jit
    def overwrite(x):          # the tape keeps every x[i] it overwrites
        s = 0.0
        for i in range(x.shape[0]):
            x[i] = np.sin(x[i])
            s += x[i] * x[i]
        return s

    @ez.enzyme_jit
    def local(x):              # a local array, whose shadow is allocated too
        t = np.exp(x)
        s = 0.0
        for i in range(x.shape[0]):
            s += t[i] * x[i]
        return s

    @ez.enzyme_jit
    def scaled(x):             # the shadow of a temporary, then a tape that cannot grow
        c = np.exp(x[:64]).sum() / 64
        s = 0.0
        for i in range(x.shape[0]):
            x[i] = np.sin(x[i]) * c
            s += x[i] * x[i]
        return s

    def scaled_gradient(x):    # of mean(exp(x[:64]))^2 sum(sin(x)^2)
        c = np.exp(x[:64]).mean()
        g = c * c * np.sin(2 * x)
        g[:64] += 2 * c * (np.sin(x) ** 2).sum() * np.exp(x[:64]) / 64
        return g

    f = {"overwrite": overwrite, "local": local, "scaled": scaled}[case]
    gradient = {"overwrite": lambda x: np.sin(2 * x),          # of sum(sin(x)^2)
                "local": lambda x: np.exp(x) * (1 + x),        # of sum(exp(x) x)
                "scaled": scaled_gradient}[case]

    def inputs(n):
        x = np.linspace(0.0, 1.0, n)
        return x, np.ones_like(x) if mode == "Forward" else np.zeros_like(x)

    def run(x, dx):
        if mode == "Split":
            fwd, rev = ez.autodiff_thunk(ez.ReverseSplitNoPrimal, f, ez.Active,
                                         ez.Duplicated(x, dx))
            tape, _, _ = fwd(ez.Duplicated(x, dx))
            rev(ez.Duplicated(x, dx), 1.0, tape)
            return dx
        out = ez.autodiff(getattr(ez, mode), f, ez.Duplicated(x, dx))
        return dx if mode != "Forward" else out

    def check(n):
        x, dx = inputs(n)
        expected = gradient(x) if mode != "Forward" else gradient(x).sum()
        d = run(x, dx)
        assert np.allclose(d, expected, rtol=1e-12), (d, expected)

    check(100)  # compiles (which needs memory) before the limit
    big = inputs(n)
    with open("/proc/self/status") as fh:
        used = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize"))
    resource.setrlimit(resource.RLIMIT_AS, (used + headroom, used + headroom))
    _nrt_python.memsys_enable_stats()
    before = rtsys.get_allocation_stats()
    try:
        run(*big)
    except MemoryError as e:
        print("MemoryError:", e)
    after = rtsys.get_allocation_stats()
    # meminfos: Numba counts a failed attempt as an allocation of raw memory
    print("unreleased", after.mi_alloc - after.mi_free - (before.mi_alloc - before.mi_free))
    check(1000)
    print("usable")
""")

MB = 2**20


@pytest.mark.parametrize(
    ("case", "mode", "n", "headroom"),
    [
        ("overwrite", "Reverse", 4 * 10**6, 24 * MB),  # the tape cannot grow
        ("overwrite", "Split", 4 * 10**6, 24 * MB),  # the same, in split mode
        ("local", "Reverse", 4 * 10**6, 48 * MB),  # exp(x) fits, its shadow does not
        ("local", "Forward", 4 * 10**6, 48 * MB),
        ("scaled", "Reverse", 4 * 10**6, 24 * MB),  # the tape, once a shadow exists
    ],
)
def test_no_memory_raises_memory_error_and_the_process_goes_on(case, mode, n, headroom):
    env = {**os.environ, "PYTHONPATH": ROOT, "NUMBA_DISABLE_PERFORMANCE_WARNINGS": "1"}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, case, mode, str(n), str(headroom)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    lines = child.stdout.splitlines()
    assert lines[0].startswith("MemoryError: Allocation failed"), child.stdout
    assert lines[1] == "unreleased 0", child.stdout  # the derivative released what it took
    assert lines[2] == "usable"
