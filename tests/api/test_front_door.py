"""One front door: the same mistake gives the same error, with the same message, through every
entrance that can be asked it: `ez.autodiff` from Python (first calls), its compiled entry
(the hot path, after calls of the same shape), `ez.autodiff` inside jitted code (at compile
time or before the derivative runs), and split mode's forward pass."""

from typing import NamedTuple

import numba
import numpy as np
import pytest

import enzpy as ez
from enzpy import api


@ez.enzyme_jit
def weigh(x, y, a):
    s = 0.0
    for i in range(x.shape[0]):
        y[i] = a * x[i] * x[i]
        s += y[i]
    return s


def _values():
    """Fresh arguments: x, y (float arrays of 3), an integer array, a read-only array."""
    ro = np.ones(3)
    ro.flags.writeable = False
    return {
        "x": np.array([0.5, -1.5, 2.0]),
        "y": np.zeros(3),
        "i": np.arange(3),
        "ro": ro,
        "np": np,
        "ez": ez,
        "weigh": weigh,
        "d": np.zeros(3),
    }


class Case(NamedTuple):
    mode: str
    src: str  # the call's arguments after f
    error: type
    message: str
    entrances: tuple[str, ...]
    good: str = ""  # a good call of the same shape, for the hot path


ALL = ("python", "hot", "inside", "split")
GOOD_REVERSE = "ez.Duplicated(x, np.ones(3)), ez.Duplicated(y, np.zeros(3)), ez.Active(2.0)"
GOOD_FORWARD = "ez.Duplicated(x, np.ones(3)), y, 2.0"
CASES = {
    "shape": Case(
        "Reverse",
        "ez.Duplicated(x, np.ones(4)), ez.Duplicated(y, np.zeros(3)), ez.Active(2.0)",
        ez.ShadowError,
        "argument 0: the shadow's shape differs from the primal's",
        ALL,
        GOOD_REVERSE,
    ),
    "dtype": Case(
        "Forward",
        "ez.Duplicated(x, np.ones(3, np.float32)), y, 2.0",
        ez.ShadowError,
        "argument 0: shadow has 1 dimensions and dtype float32; the primal has 1 and float64",
        ("python", "hot", "inside"),
        GOOD_FORWARD,
    ),
    "own-primal": Case(
        "Reverse",
        "ez.Duplicated(x, x), ez.Duplicated(y, np.zeros(3)), ez.Active(2.0)",
        ez.ShadowError,
        "argument 0: the shadow shares memory with its primal",
        ALL,
        GOOD_REVERSE,
    ),
    "other-primal": Case(
        "Forward",
        "ez.Duplicated(x, y), y, 2.0",
        ez.ShadowError,
        "argument 0: the shadow shares memory with the primal of argument 1",
        ("python", "hot", "inside"),
        GOOD_FORWARD,
    ),
    "shared-shadow": Case(
        "Reverse",
        "ez.Duplicated(x, d), ez.Duplicated(y, d), ez.Active(2.0)",
        ez.ShadowError,
        "arguments 0 and 1 have overlapping shadows but distinct primals",
        ALL,
        GOOD_REVERSE,
    ),
    "read-only": Case(
        "Forward",
        "ez.Duplicated(x, ro), y, 2.0",
        ez.ShadowError,
        "argument 0: the shadow array is read-only",
        ("python", "hot", "inside"),
        GOOD_FORWARD,
    ),
    "integer-array": Case(
        "Forward",
        "ez.Duplicated(i, np.zeros(3, np.int64)), y, 2.0",
        ez.ShadowError,
        "argument 0: a int64 array carries no derivative",
        ("python", "inside"),
    ),
    "active-in-forward": Case(
        "Forward",
        "x, y, ez.Active(2.0)",
        ez.AnnotationError,
        "argument 2: Active is for reverse mode",
        ("python", "inside"),
    ),
    "duplicated-float-in-reverse": Case(
        "Reverse",
        "ez.Duplicated(x, np.zeros(3)), y, ez.Duplicated(2.0, 1.0)",
        ez.AnnotationError,
        "argument 2: a float scalar is Active(a) in reverse mode, not Duplicated",
        ("python", "inside", "split"),
    ),
    "batch-widths": Case(
        "Forward",
        "ez.BatchDuplicated(x, (np.ones(3), np.ones(3))), "
        "ez.BatchDuplicated(y, (np.ones(3), np.ones(3), np.ones(3))), 2.0",
        ez.AnnotationError,
        "BatchDuplicated arguments with 2 and 3 shadows",
        ("python", "inside"),
    ),
    "batch-lanes-share": Case(
        "Reverse",
        "ez.BatchDuplicated(x, (y, y)), np.ones(3), ez.Active(2.0)",
        ez.ShadowError,
        "argument 0: two of its shadows share memory",
        ("python", "hot", "inside"),
        "ez.BatchDuplicated(x, (np.ones(3), np.ones(3))), np.ones(3), ez.Active(2.0)",
    ),
    "arity": Case(
        "Forward",
        "x, y",
        ez.AnnotationError,
        "weigh takes 3 arguments, got 2",
        ("python", "inside"),
    ),
}


def _call(mode, src):
    return eval(f"ez.autodiff(ez.{mode}, weigh, {src})", _values())  # noqa: S307


def _python(case, monkeypatch):
    monkeypatch.setattr(api, "_ENTRIES", False)
    monkeypatch.setattr(api, "_entries", {})
    return _call(case.mode, case.src)


def _hot(case, monkeypatch):
    """Through the compiled entry of the call's shape, made by a good call first."""
    monkeypatch.setattr(api, "_shapes", {})
    monkeypatch.setattr(api, "_entries", {})
    _call(case.mode, case.good)
    assert (getattr(ez, case.mode), weigh) in api._entries
    return _call(case.mode, case.src)


def _inside(case, monkeypatch):
    names = _values()
    params = ("x", "y", "i", "ro", "d")
    ns = {k: v for k, v in names.items() if k not in params}
    body = f"return ez.autodiff(ez.{case.mode}, weigh, {case.src})"
    exec(f"def call({', '.join(params)}):\n    {body}\n", ns)
    return numba.njit(ns["call"])(*(names[p] for p in params))


def _split(case, monkeypatch):
    annotated = eval(f"({case.src},)", _values())  # noqa: S307
    fwd, _ = ez.autodiff_thunk(ez.ReverseSplitWithPrimal, weigh, ez.Active, *annotated)
    return fwd(*annotated)


ENTRANCES = {"python": _python, "hot": _hot, "inside": _inside, "split": _split}


@pytest.mark.parametrize(
    ("name", "entrance"), [(name, e) for name, case in CASES.items() for e in case.entrances]
)
def test_same_mistake_same_message(name, entrance, monkeypatch):
    case = CASES[name]
    with pytest.raises(case.error) as info:
        ENTRANCES[entrance](case, monkeypatch)
    assert case.message in str(info.value)
