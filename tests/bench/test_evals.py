"""The benchmark's eval kernels are differentiated correctly: enzpy's reverse gradient and the
hand-written gradients against central finite differences, on small sizes (math, no timing)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

ez = pytest.importorskip("enzpy")

from bench.evals._common import reverse_gradient  # noqa: E402

SMALL = {  # (gmm_numpy: test_gmm_numpy_is_gmm, against gmm's gradient)
    "gmm": (3, 4, 20),
    "lse": 50,
    "ode": (8, 3),
    "lstm": (2, 6),
    "llsq": (20, 5),
    "det": 4,
    "kmeans": (3, 40, 2),
}


def directional_fd(fn, args, direction, h: float = 1e-6) -> float:
    """Central difference of fn's return along direction (fresh copies of the arguments)."""

    def shifted(sign: float) -> list:
        return [
            a.copy() + sign * h * d
            if d is not None
            else (a.copy() if isinstance(a, np.ndarray) else a)
            for a, d in zip(args, direction, strict=True)
        ]

    return (fn(*shifted(1.0)) - fn(*shifted(-1.0))) / (2 * h)


def dot(grads, direction) -> float:
    return sum(
        float(np.vdot(g, d))
        for g, d in zip(grads, direction, strict=True)
        if g is not None and d is not None
    )


@pytest.mark.parametrize("name", sorted(SMALL))
def test_enzpy_gradient_matches_fd(name: str) -> None:
    mod = importlib.import_module(f"bench.evals.{name}")
    inp = mod.make_inputs(SMALL[name])
    args = [a.copy() if isinstance(a, np.ndarray) else a for a in inp.args]
    grads = reverse_gradient(mod.PRIMAL, args, mod.ACTIVE)
    fd = directional_fd(mod.PRIMAL, inp.args, inp.direction)
    assert dot(grads, inp.direction) == pytest.approx(fd, rel=1e-5, abs=1e-9)
    if hasattr(mod, "hand_gradient"):
        hand = mod.hand_gradient(*inp.args)
        for g, hg in zip(grads, hand, strict=True):
            if hg is not None:
                np.testing.assert_allclose(g, hg, rtol=1e-9, atol=1e-12)


def test_ba_jacobian_matches_fd() -> None:
    from bench.evals import ba

    inp = ba.make_inputs((2, 3, 6))
    blocks, wdiag = ba.jacobian_enzpy(inp.args)
    fb, fw = ba.jacobian_fd(inp.args)
    np.testing.assert_allclose(blocks, fb, rtol=1e-6, atol=1e-6 * np.abs(fb).max())
    np.testing.assert_allclose(wdiag, fw, rtol=1e-6)
    fwd_blocks, fwd_w = ba.jacobian_forward(inp.args)
    np.testing.assert_allclose(fwd_blocks, blocks, rtol=1e-12, atol=1e-12 * np.abs(fb).max())


def test_det_kernel_is_the_determinant() -> None:
    from bench.evals import det

    a = np.random.default_rng(0).normal(size=(5, 5))
    assert det.det_by_minor(a.ravel().copy(), 5) == pytest.approx(np.linalg.det(a), rel=1e-12)


def test_gmm_native_adjoint_matches_enzpy() -> None:
    from bench import native_lib
    from bench.suite import gmm_native_tools

    lib = native_lib.load()
    if lib is None:
        pytest.skip("native library not built")
    from bench.evals import gmm

    inp = gmm.make_inputs((3, 4, 20)).fresh()
    tools = gmm_native_tools(lib)
    assert tools["native primal"](inp) == pytest.approx(gmm.PRIMAL(*inp.args), rel=1e-12)
    native = tools["native rev"](inp).grads
    grads = reverse_gradient(gmm.PRIMAL, inp.args, gmm.ACTIVE)
    for g, n in zip(grads[:4], native[:4], strict=True):
        np.testing.assert_allclose(g, n, rtol=1e-10, atol=1e-12)


def test_gmm_numpy_is_gmm() -> None:
    """The array version computes ADBench's log-likelihood and the same gradient."""
    from bench.evals import gmm, gmm_numpy

    inp = gmm.make_inputs((4, 5, 30))
    loops, arrays = (
        reverse_gradient(
            mod.PRIMAL, [a.copy() if isinstance(a, np.ndarray) else a for a in inp.args], gmm.ACTIVE
        )
        for mod in (gmm, gmm_numpy)
    )
    assert gmm_numpy.PRIMAL(*inp.args) == pytest.approx(gmm.PRIMAL(*inp.args), rel=1e-13)
    for g, h in zip(loops, arrays, strict=True):
        if g is not None:
            np.testing.assert_allclose(h, g, rtol=1e-11, atol=1e-13)


@pytest.mark.slow
def test_gmm_numpy_hessian_vector_product_matches_fd() -> None:
    """ez.hvp (reverse over forward) of the array version against central differences of
    its gradient: NumPy's reductions and broadcasts in a derivative differentiated again."""
    from bench.evals import gmm_numpy
    from bench.tools import hvp_error

    assert hvp_error(gmm_numpy.PRIMAL)(gmm_numpy.make_inputs((3, 4, 30)), None) < 1e-7
