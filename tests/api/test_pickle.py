"""`@ez.enzyme_jit` functions pickle as functions do: by reference when their module holds
them, by value otherwise (then with their jitted helpers and the rules of both); a fresh
process compiles them again and builds their derivatives again, or loads them from the
derivative disk cache (`cache=True`)."""

from __future__ import annotations

import copy
import json
import pathlib
import pickle
import pickletools
import sys
import textwrap

import numpy as np
import pytest
from numba import cloudpickle as numba_cloudpickle
from processes import run_python

import enzpy as ez


@ez.enzyme_jit
def square_sum(x):
    return (x * x).sum()


def _by_value(payload: bytes) -> bool:
    """Whether the pickle rebuilds its object by a call (rather than naming a global)."""
    return any(op.name == "REDUCE" for op, _, _ in pickletools.genops(payload))


def test_importable_functions_pickle_by_reference_the_others_by_value():
    payload = pickle.dumps(square_sum)
    assert not _by_value(payload)
    assert pickle.loads(payload) is square_sum

    @ez.enzyme_jit
    def local(x):
        return square_sum(x) * 2.0

    payload = pickle.dumps(local)
    assert _by_value(payload)
    assert pickle.loads(payload) is local  # one object per original in a process
    assert numba_cloudpickle.loads(numba_cloudpickle.dumps(local)) is local
    assert copy.deepcopy(local) is local

    module = sys.modules[__name__]
    numba_cloudpickle.register_pickle_by_value(module)
    try:
        payload = pickle.dumps(square_sum)
    finally:
        numba_cloudpickle.unregister_pickle_by_value(module)
    assert _by_value(payload)
    assert pickle.loads(payload) is square_sum


def test_modes_unpickle_as_the_singletons_they_are():
    modes = [ez.Forward, ez.ForwardWithPrimal, ez.Reverse, ez.ReverseWithPrimal]
    modes += [ez.ReverseSplitWithPrimal, ez.ReverseSplitNoPrimal]
    for mode in modes:
        assert pickle.loads(pickle.dumps(mode)) is mode


def test_split_passes_and_tapes_refuse_pickling_by_name():
    x, dx = np.array([1.0, 2.0]), np.zeros(2)
    fwd, rev = ez.autodiff_thunk(
        ez.ReverseSplitWithPrimal, square_sum, ez.Active, ez.Duplicated(x, dx)
    )
    tape, y, _ = fwd(ez.Duplicated(x, dx))
    for what, message in ((fwd, "pickle the @ez.enzyme_jit"), (rev, "pickle the"), (tape, "Tape")):
        with pytest.raises(ez.EnzpyError, match=message):
            pickle.dumps(what)
    rev(ez.Duplicated(x, dx), 1.0, tape)  # the tape still serves its reverse pass
    np.testing.assert_array_equal(dx, 2 * x)
    assert y == 5.0


SCRIPT = """
    import numba, numpy as np, enzpy as ez

    @numba.njit
    def wave(a, b):
        return np.sin(a) * b

    @ez.enzyme_jit
    def snap(a):
        return np.floor(a)

    @ez.augmented_rule(snap)
    def snap_aug(a):
        return np.floor(a), None

    @ez.reverse_rule(snap)
    def snap_rev(saved, dy, a):  # straight through: the engine would give 0
        return (dy,)

    @ez.inactive
    @numba.njit
    def penalty(a):  # no derivative: the engine would give 0.2 a
        return 0.1 * a * a

    SCALE = 3.0

    @ez.enzyme_jit(cache=True)
    def loss(x):
        s = 0.0
        for i in range(x.shape[0] - 1):
            s += wave(x[i], x[i + 1]) + snap(SCALE * x[i]) + penalty(x[i])
        return s
"""

LOAD = """
    import json, multiprocessing, pickle, sys
    import numpy as np

    def gradients(path, x):
        with open(path, "rb") as fh:
            loss, moved = pickle.load(fh)
        import enzpy as ez
        from enzpy import disk_cache

        (g,) = ez.gradient(ez.Reverse, loss, np.array(x))
        (h,) = ez.gradient(ez.Reverse, moved, np.array(x))
        return {"g": g.tolist(), "h": h.tolist(), **disk_cache.stats}

    if __name__ == "__main__":
        args = sys.argv[1], json.loads(sys.argv[2])
        if sys.argv[3] == "spawn":  # as in a Dask worker process, whose __main__ is another
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                print(json.dumps(pool.apply(gradients, args)))
        else:
            print(json.dumps(gradients(*args)))
"""


def _script(path: pathlib.Path) -> dict:
    """The functions of SCRIPT, defined in `path` run as `__main__`."""
    path.write_text(textwrap.dedent(SCRIPT))
    namespace = {"__name__": "__main__"}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return namespace


def test_functions_pickled_by_value_are_rebuilt_with_their_rules_in_fresh_processes(tmp_path):
    loss = _script(tmp_path / "fit.py")["loss"]
    moved = _script(tmp_path / "moved.py")["loss"]  # its source file is gone when unpickled
    payload = pickle.dumps((loss, moved))
    assert pickle.loads(payload) == (loss, moved)
    (tmp_path / "moved.py").unlink()
    (tmp_path / "loss.pkl").write_bytes(payload)
    (tmp_path / "load.py").write_text(textwrap.dedent(LOAD))
    x = np.array([0.3, -0.7, 1.1, 0.45, -0.2])
    runs = []
    # a process whose __main__ is another module compiles loss first and builds its
    # derivative; then a second process, and this one, find what it left on disk
    for how in ("spawn", "main"):
        out = run_python(["load.py", "loss.pkl", json.dumps(x.tolist()), how], tmp_path)
        runs.append(json.loads(out))
    assert runs[0]["written"] == 1
    assert runs[1]["loaded"] == 1 and runs[1]["written"] == 0

    (g,) = ez.gradient(ez.Reverse, loss, x)
    h = 1e-6
    fd = [(loss(x + h * e) - loss(x - h * e)) / (2 * h) for e in np.eye(x.size)]
    ruled = (np.arange(x.size) < x.size - 1) * (3.0 - 0.2 * x)  # snap(3 x[i]), penalty(x[i])
    np.testing.assert_allclose(g, np.array(fd) + ruled, rtol=1e-7)
    for got in runs:
        np.testing.assert_allclose(got["g"], g, rtol=1e-14)
        np.testing.assert_allclose(got["h"], g, rtol=1e-14)
