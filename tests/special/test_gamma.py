"""The gamma family: the digamma helper the rules add to a module, and derivatives of
`math.lgamma` / `math.gamma` end to end (d lgamma = ψ dx, d Γ = Γ ψ dx)."""

from __future__ import annotations

import ctypes
import math

import numpy as np
import pytest
import scipy.special as sc
from harness import check_forward, check_reverse, dot_test
from rules.rule_driver import Jit

import enzpy as ez
from llvm_passes.ir import Module, parse_module
from llvm_passes.rules import RULES
from llvm_passes.rules.special import DIGAMMA, add_digamma

# ---- the digamma helper ------------------------------------------------------------------
CALLERS = """
define double @psi(double %x) {
  %r = call double @enzpy.digamma.f64(double %x)
  ret double %r
}

define float @psif(float %x) {
  %r = call float @enzpy.digamma.f32(float %x)
  ret float %r
}
"""

NEGATIVE = [-0.5, -1.3, -1.7, -2.5, -3.999, -7.25, -15.73, -20.01, -123.4]
SMALL = [1e-300, 1e-12, 1e-6, 0.01, 0.3, 0.5, 1.0, 1.4616321449683622, 2.0]
AROUND_SHIFT = [5.0, 5.999, 6.0, 6.001, 7.3]
LARGE = [10.0, 123.4, 1e4, 1e8, 1e15, 1e300]
POINTS = NEGATIVE + SMALL + AROUND_SHIFT + LARGE


@pytest.fixture(scope="module")
def psi():
    module = Module()
    add_digamma(module, "float")  # the float version brings the double one with it
    jit = Jit(module.text() + CALLERS)
    return (
        jit.fn("psi", [ctypes.c_double], ctypes.c_double),
        jit.fn("psif", [ctypes.c_float], ctypes.c_float),
        jit,  # keeps the engine alive
    )


def test_digamma_matches_scipy(psi):
    f64, _, _ = psi
    ours = np.array([f64(x) for x in POINTS])
    # scipy's own reflection loses ~1e-12 near the roots of ψ on the negative axis
    np.testing.assert_allclose(ours, sc.digamma(POINTS), rtol=1e-12, atol=1e-14)


def test_digamma_dense_grid(psi):
    f64, _, _ = psi
    xs = np.concatenate([np.linspace(-30.05, -0.05, 301), np.geomspace(1e-8, 1e8, 401)])
    ours = np.array([f64(x) for x in xs])
    np.testing.assert_allclose(ours, sc.digamma(xs), rtol=1e-12, atol=1e-13)


def test_digamma_to_full_double_precision():
    mpmath = pytest.importorskip("mpmath")
    module = Module()
    add_digamma(module, "double")
    jit = Jit(module.text() + CALLERS.split("define float")[0])
    f64 = jit.fn("psi", [ctypes.c_double], ctypes.c_double)
    with mpmath.workdps(40):
        for x in SMALL + AROUND_SHIFT + LARGE + [-0.5, -2.5, -7.25]:
            exact = float(mpmath.digamma(mpmath.mpf(x)))
            # relative accuracy, absolute below |ψ| = 1 (ψ has a root at 1.4616...)
            assert abs(f64(x) - exact) <= 1e-15 * max(1.0, abs(exact)), x


def test_digamma_float32(psi):
    _, f32, _ = psi
    for x in [-2.5, -0.3, 0.3, 1.0, 2.5, 6.5, 40.0]:
        x32 = float(np.float32(x))
        assert f32(x32) == float(np.float32(sc.digamma(x32)))


def test_digamma_special_values(psi):
    f64, _, _ = psi
    assert f64(math.inf) == math.inf
    assert math.isnan(f64(math.nan))
    assert math.isnan(f64(-math.inf))  # no endless loop, no infinite result
    assert f64(0.0) == -math.inf


def test_digamma_added_once_internal_and_pure():
    module = parse_module("declare double @llvm.log.f64(double)\n")
    assert add_digamma(module, "double") == DIGAMMA["double"]
    fn = module.get(DIGAMMA["double"])
    assert "internal" in fn.prefix
    for attr in ("nounwind", "willreturn", "memory(none)"):
        assert attr in fn.fn_attrs
    assert add_digamma(module, "double") == DIGAMMA["double"]
    assert module.get(DIGAMMA["double"]) is fn, "a second request must not redefine it"
    assert module.get(DIGAMMA["float"]) is None, "only what is asked for (and its callees)"
    text = module.text()
    assert text.count(f"define internal double @{DIGAMMA['double']}") == 1
    assert text.count("declare double @llvm.log.f64") == 1
    parse_module(text)  # round-trips
    with pytest.raises(ValueError):
        add_digamma(module, "x86_fp80")


def test_rules_registered_for_every_spelling():
    for key in (
        "lgamma",
        "lgammaf",
        "numba_lgamma",
        "numba_lgammaf",
        "tgamma",
        "tgammaf",
        "numba_gamma",
        "numba_gammaf",
    ):
        assert RULES[key].kind == "smooth"
        assert "ψ" in RULES[key].formula


# ---- end to end --------------------------------------------------------------------------
@ez.enzyme_jit
def lgamma_scalar(x):
    return math.lgamma(x)


@ez.enzyme_jit
def gamma_scalar(x):
    return math.gamma(x)


@ez.enzyme_jit
def gamma_sum(x):
    s = x[0] * 0
    for i in range(x.size):
        s += math.lgamma(x[i]) * x[i] + math.gamma(0.5 * x[i])
    return s


@ez.enzyme_jit
def gamma_inplace(x):
    for i in range(x.size):
        x[i] = math.lgamma(x[i]) + math.gamma(x[i])


@pytest.mark.parametrize("x", [0.3, 2.4, 9.6, 37.5, -1.7, -4.4])
def test_lgamma_tangent_is_digamma(x):
    got = ez.autodiff(ez.Forward, lgamma_scalar, ez.Duplicated(x, 1.0))
    assert got == pytest.approx(sc.digamma(x), rel=1e-13, abs=1e-14)


@pytest.mark.parametrize("x", [0.3, 2.4, 9.6, -1.7, -4.4])
def test_gamma_tangent(x):
    got = ez.autodiff(ez.Forward, gamma_scalar, ez.Duplicated(x, 0.5))
    assert got == pytest.approx(0.5 * sc.gamma(x) * sc.digamma(x), rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_scalar_float32_and_64(dtype):
    x = dtype(2.75)
    got = ez.autodiff(ez.Forward, lgamma_scalar, ez.Duplicated(x, dtype(1.0)))
    tol = 1e-13 if dtype is np.float64 else 1e-6
    assert float(got) == pytest.approx(sc.digamma(2.75), rel=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_against_finite_differences(dtype):
    x = np.array([0.4, 1.3, 2.6, 5.2, 8.9, -0.6, -2.3], dtype=dtype)
    check_forward(gamma_sum, (x,), (0,))
    check_forward(gamma_inplace, (x[x > 0].copy(),), (0,))


def test_scalar_against_finite_differences():
    for f in (lgamma_scalar, gamma_scalar):
        for x in (0.7, 3.1, -2.6):
            check_forward(f, (x,), (0,))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_reverse_against_finite_differences(dtype):
    x = np.array([0.4, 1.3, 2.6, 5.2, 8.9, -0.6, -2.3], dtype=dtype)
    check_reverse(gamma_sum, (x,), (0,))
    check_reverse(gamma_inplace, (x[x > 0].copy(),), (0,))


def test_reverse_gradient_and_dot_product():
    x = np.array([0.4, 1.3, 2.6, 9.6, -2.3])
    (gx,) = ez.gradient(ez.Reverse, gamma_sum, x)
    expected = sc.digamma(x) * x + sc.gammaln(x) + 0.5 * sc.gamma(0.5 * x) * sc.digamma(0.5 * x)
    np.testing.assert_allclose(gx, expected, rtol=1e-13, atol=1e-13)
    dot_test(gamma_sum, (x,), (0,))
    dot_test(gamma_inplace, (np.abs(x),), (0,))
