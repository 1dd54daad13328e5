"""Second derivatives of random programs (``programs.py``) by the four nestings: forward over
reverse and reverse over reverse of ``<w, ∇f>`` (reverse mode inside), reverse over forward
and forward over forward of ``∇f·u`` (forward mode inside). All four give ``wᵀ H u`` or
``uᵀ H w``, which must agree: four code paths (the inner derivative linked as IR, or its
nestable reverse twin) checked against each other and against the symmetry of the Hessian,
at one point, so that no finite difference crosses a branch.

Each example compiles four nested derivatives: the ``ci`` profile runs two.
"""

import os

import numpy as np
import pytest
from hypothesis import Phase, assume, event, given, settings

import enzpy as ez
from property.checks import compile_program
from property.programs import programs

WRAPPERS = """

@ez.enzyme_jit
def grad_dot(x, y, a, n, wx, wy, wa):
    dx = np.zeros_like(x)
    dy = np.zeros_like(y)
    r = ez.autodiff(ez.Reverse, f, ez.Active, ez.Duplicated(x, dx), ez.Duplicated(y, dy),
                    ez.Active(a), n)
    return (dx * wx).sum() + (dy * wy).sum() + r[2] * wa


@ez.enzyme_jit
def directional(x, y, a, n, ux, uy, ua):
    return ez.autodiff(ez.Forward, f, ez.Duplicated(x, ux.copy()), ez.Duplicated(y, uy.copy()),
                       ez.Duplicated(a, ua), n)
"""

# the ci profile: two examples, a failure reported unshrunk (each step compiles four
# nested derivatives); other profiles as they are
_CI = os.environ.get("HYPOTHESIS_PROFILE", "ci") == "ci"
_EXAMPLES = 2 if _CI else settings().max_examples
_PHASES = [p for p in Phase if p is not Phase.shrink] if _CI else settings().phases


def _namespace(source: str) -> dict:
    ns: dict = {}
    exec(compile(source + WRAPPERS, "<program>", "exec"), ns)
    return ns


@pytest.mark.slow
@settings(max_examples=_EXAMPLES, phases=_PHASES)
@given(prog=programs(exclude=frozenset({"float32", "alias_xy", "strided"})))
def test_second_derivatives_agree(prog):
    for name in sorted(prog.constructs):
        event(name)
    x, y, a, n = prog.args()
    assume(x.dtype == np.float64 and y is not x)
    compile_program(prog.source)  # the program itself compiles
    ns = _namespace(prog.source)
    try:
        value = ns["f"](x.copy(), y.copy(), a, n)
    except Exception:  # noqa: BLE001 (a program Numba cannot run: not this test's business)
        assume(False)
    assume(np.isfinite(value) and abs(value) < 1e6)
    rng = np.random.default_rng(prog.seed)
    u = (rng.standard_normal(x.shape), rng.standard_normal(y.shape), float(rng.standard_normal()))
    w = (rng.standard_normal(x.shape), rng.standard_normal(y.shape), float(rng.standard_normal()))
    grad_dot, directional = ns["grad_dot"], ns["directional"]

    def inputs(t):  # x, y, a with tangents t (forward mode)
        return (
            ez.Duplicated(x.copy(), t[0].copy()),
            ez.Duplicated(y.copy(), t[1].copy()),
            ez.Duplicated(a, t[2]),
        )

    def adjoints():  # x, y, a with zeroed shadows (reverse mode)
        sx, sy = np.zeros_like(x), np.zeros_like(y)
        return (sx, sy), (ez.Duplicated(x.copy(), sx), ez.Duplicated(y.copy(), sy), ez.Active(a))

    def pair(p, q):
        return float(p[0] @ q[0] + p[1] @ q[1] + p[2] * q[2])

    consts = lambda v: tuple(ez.Const(c) for c in v)  # noqa: E731
    wHu = {
        "forward over reverse": ez.autodiff(ez.Forward, grad_dot, *inputs(u), n, *consts(w)),
        "forward over forward": ez.autodiff(ez.Forward, directional, *inputs(w), n, *consts(u)),
    }
    (sx, sy), ann = adjoints()
    r = ez.autodiff(ez.Reverse, directional, ez.Active, *ann, n, *consts(u))
    wHu["reverse over forward"] = pair(w, (sx, sy, r[2]))  # w · (H u)
    (sx, sy), ann = adjoints()
    r = ez.autodiff(ez.Reverse, grad_dot, ez.Active, *ann, n, *consts(w))
    wHu["reverse over reverse"] = pair(u, (sx, sy, r[2]))  # u · (H w)
    values = np.array(list(wHu.values()))
    scale = 1.0 + float(np.max(np.abs(values)))
    assert np.max(np.abs(values - values[0])) <= 1e-8 * scale, f"{wHu}\n{prog!r}"
