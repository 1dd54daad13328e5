"""Random programs (``programs.py``): forward mode against finite differences of the whole
map, reverse mode by the dot-product test against forward mode (``checks.py``).

The Hypothesis profiles are registered in ``tests/conftest.py``:

- ``ci`` (the default): a few derandomized examples;
- ``long``: 3000 examples (``ENZPY_PROP_LONG_EXAMPLES`` to change)::

    HYPOTHESIS_PROFILE=long python -m pytest tests/property --hypothesis-show-statistics

``ENZPY_PROP_EXCLUDE=a,b,...`` (construct names of ``programs.CONSTRUCTS``) leaves
constructs out, in any profile.  A failure prints a script that reproduces it (see
``checks.py``).
"""

import os

import numpy as np
import pytest
from hypothesis import assume, event, given

import enzpy as ez
from property.checks import DotTestFailure, ForwardMismatch, InvalidExample, check_program
from property.programs import programs


def excluded() -> frozenset:
    """The constructs the generator leaves out: those `ENZPY_PROP_EXCLUDE` names."""
    env = os.environ.get("ENZPY_PROP_EXCLUDE", "")
    return frozenset(name.strip() for name in env.split(",") if name.strip())


@pytest.mark.slow
@given(prog=programs(exclude=excluded()))
def test_random_program(prog):
    """Forward mode matches finite differences and reverse mode passes the dot test."""
    for name in sorted(prog.constructs):
        event(name)
    try:
        check_program(prog.source, prog.args(), prog.active, seed=prog.seed)
    except InvalidExample as e:
        event(f"invalid example: {e.reason}")
        assume(False)


# ----------------------------------------------------------------- the checks themselves

SMALL = """
import numpy as np

import enzpy as ez


@ez.enzyme_jit
def f(x, y, a, n):
    s = 0.0
    for i in range(n):
        x[i] = np.sin(x[i]) * y[i]
        s += abs(x[i] - a)
    return s
"""


def _small_args(a=0.25):
    return np.array([0.5, -0.75, 1.0]), np.array([0.5, 1.5, -0.5]), a, 3


def test_check_passes_a_correct_derivative():
    check_program(SMALL, _small_args(), (0, 1, 2))


def test_check_rejects_a_kink():
    """abs(x[0] - a) with x[0] - a at 1e-9: finite differences would cross the kink."""
    args = _small_args(a=float(np.sin(0.5) * 0.5) + 1e-9)
    with pytest.raises(InvalidExample, match="kink"):
        check_program(SMALL, args, (0, 1, 2))


def _scaled(monkeypatch, modes, factor):
    """Make ez.autodiff scale the derivatives it returns in ``modes`` by ``factor``."""
    real = ez.autodiff

    def autodiff(mode, f, *args):
        out = real(mode, f, *args)
        if mode not in modes:
            return out
        for a in args:
            if isinstance(a, ez.Duplicated) and isinstance(a.dval, np.ndarray):
                a.dval[...] *= factor
        if mode is ez.ForwardWithPrimal:
            return out[0] * factor, out[1]
        if mode is ez.Forward:
            return out * factor
        return tuple(None if v is None else v * factor for v in out)

    monkeypatch.setattr(ez, "autodiff", autodiff)


def test_check_catches_a_wrong_forward_derivative(monkeypatch):
    _scaled(monkeypatch, (ez.Forward, ez.ForwardWithPrimal), 1.001)
    with pytest.raises(ForwardMismatch):
        check_program(SMALL, _small_args(), (0, 1, 2))


def test_check_catches_a_wrong_reverse_derivative(monkeypatch):
    _scaled(monkeypatch, (ez.Reverse,), 1.001)
    with pytest.raises(DotTestFailure):
        check_program(SMALL, _small_args(), (0, 1, 2))
