"""An array name rebound in a loop (`x = x + dt * v`) that starts as a constant array: the
loop's phi chooses between a local array without derivatives and arrays with them, so the
first gets a (zero) shadow too. Both modes against finite differences and the dot test."""

import sys

import numpy as np
from harness import check_all

import enzpy as ez


@ez.enzyme_jit
def trajectory(v, dt, n):
    x = np.array([0.0, 8.0])
    for _ in range(n):
        x = x + dt * v
        v = v - dt * x
    return x[0] * x[0] + np.sin(x[1])


@ez.enzyme_jit
def until_crossing(v, dt):
    x = np.array([0.0, 1.0])
    while True:
        x = x + dt * v
        if x[1] <= 0.0:
            return x[0] - x[1] / v[1] * v[0]
        v = v + dt * np.array([0.1, -1.0])


def test_rebound_in_a_counted_loop():
    check_all(trajectory, (np.array([0.75, 0.1]), 0.1, 20), (0, 1))


def test_rebound_in_a_while_loop():
    check_all(until_crossing, (np.array([0.5, 0.3]), 0.05), (0, 1))


@ez.enzyme_jit
def from_a_const(c, v, n):
    x = c
    for _ in range(n):
        x = x + v * x
    return x.sum()


def test_rebound_from_a_const_argument():
    """`x = c` (Const) then rebound: c's shadow is c itself, counted once (a second release
    of c's memory would corrupt the heap)."""
    c, v = np.array([1.0, 2.0]), np.array([0.5, 0.25])
    before = sys.getrefcount(c)
    for _ in range(20):
        ez.autodiff(ez.Forward, from_a_const, ez.Const(c), ez.Duplicated(v.copy(), np.ones(2)), 5)
        ez.autodiff(ez.Reverse, from_a_const, ez.Active, c, ez.Duplicated(v.copy(), np.zeros(2)), 5)
    assert sys.getrefcount(c) == before
    np.testing.assert_array_equal(c, [1.0, 2.0])
    check_all(from_a_const, (c, v, 5), (1,))
