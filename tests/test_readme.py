"""The README's Python examples run as written."""

from __future__ import annotations

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.slow
def test_readme_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no Python examples"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # later blocks reuse names
    gx, gy = namespace["gx"], namespace["gy"]
    assert gx.shape == gy.shape == (5,)
    # the three ways to seed an output, checked against the closed forms
    np = namespace["np"]
    x = np.array([1.0, 2.0])
    np.testing.assert_allclose(namespace["split_dx"], 2 * x * np.array([1.0, 10.0]))
    np.testing.assert_allclose(namespace["dy"], 0.0)
    # the Hessian-vector products of "Derivatives of derivatives", against the closed form
    p = namespace["p"]
    exact = 3.0 * (2 * np.sin(p) + 4 * p * np.cos(p) - p * p * np.sin(p)) * p
    np.testing.assert_allclose(namespace["hv"], exact, rtol=1e-12)
    np.testing.assert_allclose(namespace["hv_again"], exact, rtol=1e-12)
    np.testing.assert_allclose(namespace["hessian"] @ p, exact, rtol=1e-12)
    # batch mode's partials and Jacobian rows, against the closed forms
    x = namespace["x"]
    np.testing.assert_allclose(namespace["partials"], 6.0 * x, rtol=1e-15)
    jac = np.zeros((3, 3))
    for i in range(3):
        jac[i, i] = np.cos(x[i]) * x[(i + 1) % 3]
        jac[i, (i + 1) % 3] += np.sin(x[i])
    np.testing.assert_allclose(np.stack(namespace["rows"]), jac, rtol=1e-14)
