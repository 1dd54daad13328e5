"""Points where a partial derivative is infinite but the derivative of the program is zero:
the zero must come out exactly (strong zero), in both modes, never NaN.

Each function below is constant (or identically zero) in a neighbourhood of the point on
the branch it takes, so its derivative there is 0 by inspection; finite differences would
straddle the branch (or leave the domain) and are not used.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import enzpy as ez


@ez.enzyme_jit
def guarded_sqrt(x):
    ln = math.sqrt(x)
    if ln <= 1e-12:
        return 1.0
    return x


@ez.enzyme_jit
def zero_times_sqrt(x):
    return 0.0 * math.sqrt(x)


@ez.enzyme_jit
def scaled_sqrt(a, x):
    return a * math.sqrt(x)


@ez.enzyme_jit
def normalized_first(v):
    n = math.sqrt((v * v).sum())
    if n == 0.0:
        return 0.0
    return v[0] / n


@ez.enzyme_jit
def unused_log(x):
    y = math.log(x)  # -inf at 0, computed and dropped
    if x > 0.0:
        return y
    return 2.0


@pytest.mark.parametrize("f", [guarded_sqrt, zero_times_sqrt, unused_log])
def test_scalar_zero_derivative(f):
    assert ez.autodiff(ez.Reverse, f, ez.Active, ez.Active(0.0)) == (0.0,)
    assert ez.autodiff(ez.Forward, f, ez.Duplicated(0.0, 1.0)) == 0.0


def test_zero_adjoint_through_infinite_partial():
    """d(a sqrt(x))/dx = a / (2 sqrt(x)) is 0/0 at a = x = 0; the function vanishes on the
    line a = 0, so the reverse adjoint of x (seeded through a's factor 0) is 0."""
    da, dx = ez.autodiff(ez.Reverse, scaled_sqrt, ez.Active, ez.Active(0.0), ez.Active(0.0))
    assert (da, dx) == (0.0, 0.0)


def test_guarded_normalisation_at_the_origin():
    v = np.zeros(3)
    (g,) = ez.gradient(ez.Reverse, normalized_first, v)
    assert np.array_equal(g, np.zeros(3))
    (g,) = ez.gradient(ez.Forward, normalized_first, v)
    assert np.array_equal(g, np.zeros(3))


@ez.enzyme_jit
def powers(a, b):
    return a**b + math.pow(a, 0.0) + np.power(b, 2.0)


def test_power_at_zero():
    """∂/∂a (a^b) = b a^(b-1) is 0 · ∞ at a = b = 0; a^0 = 1 for every a, and 0^b = 0 for
    b > 0: both partials of a^b are 0 there (as JAX's), and the other terms add 0 and 2b."""
    got = ez.autodiff(ez.Reverse, powers, ez.Active, ez.Active(0.0), ez.Active(0.0))
    assert got == (0.0, 0.0)
    t = ez.autodiff(ez.Forward, powers, ez.Duplicated(0.0, 1.0), ez.Duplicated(0.0, 1.0))
    assert t == 0.0
