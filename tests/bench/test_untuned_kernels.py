"""The kernels written as a user would (``bench/untuned_kernels.py``) are differentiated
correctly: enzpy's reverse gradient and the hand-written gradient, as the benchmark's columns
compute them, against central finite differences entry by entry, on small sizes."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("enzpy")

from bench import untuned_kernels  # noqa: E402

SMALL = {
    "jacobi": (6, 3),
    "lj_inline": 2,
    "lj_helper": 2,
    "mixture": (40, 3),
    "heat": (12, 5),
    "springs": (5, 30),
}
KERNELS = untuned_kernels.build_kernels({"enzpy", "hand"})


def fd_gradient(fn, args, direction, h: float = 1e-6) -> list:
    """Central differences of fn's return with respect to every entry of every argument that
    has a direction (None for the others), each on fresh copies of the arguments."""

    def at(k: int, idx: tuple, step: float) -> float:
        a = [x.copy() if isinstance(x, np.ndarray) else x for x in args]
        if isinstance(a[k], np.ndarray):
            a[k][idx] += step
        else:
            a[k] += step
        return fn(*a)

    out: list = []
    for k, (a, d) in enumerate(zip(args, direction, strict=True)):
        if d is None:
            out.append(None)
            continue
        g = np.empty(np.shape(a))
        for idx in np.ndindex(g.shape):
            g[idx] = (at(k, idx, h) - at(k, idx, -h)) / (2 * h)
        out.append(g)
    return out


@pytest.mark.parametrize("tool", ["enzpy rev", "hand rev"])
@pytest.mark.parametrize("name", sorted(SMALL))
def test_gradient_matches_fd(name: str, tool: str) -> None:
    k = KERNELS[name]
    inp = k.make_inputs(SMALL[name])
    fd = fd_gradient(k.primal, inp.args, inp.direction)
    scale = max(float(np.max(np.abs(g))) for g in fd if g is not None)
    grads = k.tools[tool](inp.fresh()).grads
    for g, ref in zip(grads, fd, strict=True):
        if ref is None:
            assert g is None
        else:
            np.testing.assert_allclose(g, ref, rtol=1e-6, atol=1e-7 * scale)


def test_lj_variants_are_one_energy() -> None:
    """The inline and the helper pair term give the same energy."""
    args = untuned_kernels.lj_inputs(3).args
    lj_inline, lj_helper = untuned_kernels.lj_inline, untuned_kernels.lj_helper
    assert lj_helper(*args) == pytest.approx(lj_inline(*args), rel=1e-13)
