"""The loop kernels of `bench/user_loops.py` (programs written as users write Numba code):
reverse mode against central differences along a random direction, and forward mode
against reverse mode (the dot test), at the sizes the bench times."""

import numpy as np
import pytest

import enzpy as ez
from bench import user_loops

CASES = {
    name: (f, args, active) for name, f, args, active in user_loops.cases(np.random.default_rng(5))
}


def _along(args, u, h):
    return [a + h * u[k] if k in u else a for k, a in enumerate(args)]


@pytest.mark.parametrize("name", list(CASES))
def test_against_central_differences_and_forward_mode(name):
    f, args, active = CASES[name]
    if name == "bouncing ball":  # (later the ball bounces at every step: kinks for FD)
        args = (*args[:3], 300)
    rng = np.random.default_rng(11)
    u = {k: rng.standard_normal(np.shape(args[k])) for k in active}
    u = {k: (d if isinstance(args[k], np.ndarray) else float(d)) for k, d in u.items()}
    grads = ez.gradient(ez.Reverse, f, *[a if k in u else ez.Const(a) for k, a in enumerate(args)])
    reverse = sum(float(np.sum(grads[k] * u[k])) for k in u)
    h = 1e-6
    fd = (f(*_along(args, u, h)) - f(*_along(args, u, -h))) / (2 * h)
    assert reverse == pytest.approx(fd, rel=1e-5, abs=1e-6)
    forward = ez.autodiff(
        ez.Forward,
        f,
        *[ez.Duplicated(a, u[k]) if k in u else ez.Const(a) for k, a in enumerate(args)],
    )
    assert forward == pytest.approx(reverse, rel=1e-10, abs=1e-12)
