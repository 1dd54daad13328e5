"""The benchmark kernels, written as ``@ez.enzyme_jit`` loop code, and their tools.

(a) ``reduction``: ``s = sum(sin(x[i]) * x[i])`` over 10^6 elements;
(b) ``lotka_volterra``: classical RK4, 10^5 steps, parameters ``p`` active, state ``u`` (a
    2-element array, updated in place every step) active; returns ``u[0]`` at the end;
(c) ``stencil``: nonlinear 5-point stencil swept in place (Gauss-Seidel order) a few times on a
    256 x 256 grid; returns ``0.5 * sum(u**2)``.

Every forward tool returns the directional derivative ``ż`` of the return value for the
kernel's direction u; every reverse tool returns the gradient (return seeded 1.0, shadows zeroed
before the call), whose dot product gᵀu with the direction is the same number, so the columns
can be checked against each other. The reverse gradient is also checked against the native
hand-written adjoint (full vectors) and against forward mode by the dot-product test.
"""

from __future__ import annotations

import ctypes
import math

import numpy as np

from . import native_lib
from .evals._jit import jit
from .timing import Gradient, Inputs, Kernel, Tool
from .tools import default_tools, dot_test, gradient_error, hvp_error

# ------------------------------------------------------------------------------- primals


@jit
def reduction(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += np.sin(x[i]) * x[i]
    return s


@jit
def lotka_volterra(p, u, dt, nsteps):
    a = p[0]
    b = p[1]
    c = p[2]
    d = p[3]
    h2 = 0.5 * dt
    h6 = dt / 6.0
    for _ in range(nsteps):
        x = u[0]
        y = u[1]
        k1x = a * x - b * x * y
        k1y = c * x * y - d * y
        sx = x + h2 * k1x
        sy = y + h2 * k1y
        k2x = a * sx - b * sx * sy
        k2y = c * sx * sy - d * sy
        sx = x + h2 * k2x
        sy = y + h2 * k2y
        k3x = a * sx - b * sx * sy
        k3y = c * sx * sy - d * sy
        sx = x + dt * k3x
        sy = y + dt * k3y
        k4x = a * sx - b * sx * sy
        k4y = c * sx * sy - d * sy
        u[0] = x + h6 * (k1x + 2.0 * k2x + 2.0 * k3x + k4x)
        u[1] = y + h6 * (k1y + 2.0 * k2y + 2.0 * k3y + k4y)
    return u[0]


@jit
def stencil(u, kappa, g, nsteps):
    nx = u.shape[0]
    ny = u.shape[1]
    for _ in range(nsteps):
        for i in range(1, nx - 1):
            for j in range(1, ny - 1):
                v = u[i, j]
                lap = u[i - 1, j] + u[i + 1, j] + u[i, j - 1] + u[i, j + 1] - 4.0 * v
                u[i, j] = v + kappa * lap - g * v * v * v
    s = 0.0
    for i in range(nx):
        for j in range(ny):
            s += u[i, j] * u[i, j]
    return 0.5 * s


@jit
def tiny(a, b):
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i] * b[i]
    return s


# -------------------------------------------------------------------------------- inputs


def _rng(seed: int) -> np.random.Generator:
    """Deterministic generator so every run and every tool sees the same data."""
    return np.random.default_rng(seed)


def reduction_inputs(n: int) -> Inputs:
    """x uniform in [-2, 2], direction random normal."""
    r = _rng(1)
    x = r.uniform(-2.0, 2.0, n)
    return Inputs((x,), (r.standard_normal(n),), {"n": n})


def ode_inputs(nsteps: int) -> Inputs:
    """Classic Lotka-Volterra parameters, u0 = (1, 1), dt = 1e-3; random direction in (p, u)."""
    r = _rng(2)
    p = np.array([1.5, 1.0, 1.0, 3.0])
    u = np.array([1.0, 1.0])
    dt = 1e-3
    dp = r.standard_normal(4)
    du = r.standard_normal(2)
    return Inputs(
        (p, u, dt, nsteps), (dp, du, None, None), {"nsteps": nsteps, "dt": dt, "T": dt * nsteps}
    )


def stencil_inputs(size: tuple[int, int]) -> Inputs:
    """u uniform in [0, 1] on an n x n grid, kappa = 0.2, g = 0.1, random direction in u."""
    n, nsteps = size
    r = _rng(3)
    u = r.uniform(0.0, 1.0, (n, n))
    du = r.standard_normal((n, n))
    return Inputs(
        (u, 0.2, 0.1, nsteps),
        (du, None, None, None),
        {"n": n, "nsteps": nsteps, "kappa": 0.2, "g": 0.1},
    )


# ---------------------------------------------------------------------------- native tools


def native_tools(name: str, lib: ctypes.CDLL) -> dict[str, Tool]:
    """The native C columns for kernel ``name``: primal, forward tangent, reverse adjoint."""
    P = native_lib.ptr
    if name == "reduction":

        def primal(inp: Inputs) -> float:
            (x,) = inp.args
            return lib.reduction_primal(P(x), x.size)

        def fwd(inp: Inputs) -> float:
            (x,), (dx,) = inp.args, inp.direction
            return lib.reduction_fwd(P(x), P(dx), x.size)

        def rev(inp: Inputs) -> Gradient:
            (x,), (xbar,) = inp.args, inp.shadow
            lib.reduction_rev(P(x), P(xbar), x.size, 1.0)
            return Gradient((xbar,), inp.direction, 0)

        return {"native primal": primal, "native fwd": fwd, "native rev": rev}
    if name == "lotka_volterra":

        def primal(inp: Inputs) -> float:
            p, u, dt, n = inp.args
            return lib.lv_primal(P(p), P(u), dt, n)

        def fwd(inp: Inputs) -> float:
            (p, u, dt, n), (dp, du, _, _) = inp.args, inp.direction
            return lib.lv_fwd(P(p), P(dp), P(u), P(du), dt, n)

        def rev(inp: Inputs) -> Gradient:
            (p, u, dt, n), (pbar, ubar, _, _) = inp.args, inp.shadow
            if math.isnan(lib.lv_rev(P(p), P(pbar), P(u), P(ubar), dt, n, 1.0)):
                raise MemoryError("lv_rev: tape allocation failed")
            return Gradient((pbar, ubar, None, None), inp.direction, 16 * max(n, 1))

        return {"native primal": primal, "native fwd": fwd, "native rev": rev}
    if name == "stencil":

        def primal(inp: Inputs) -> float:
            u, kappa, g, n = inp.args
            return lib.stencil_primal(P(u), u.shape[0], u.shape[1], kappa, g, n)

        def fwd(inp: Inputs) -> float:
            (u, kappa, g, n), du = inp.args, inp.direction[0]
            return lib.stencil_fwd(P(u), P(du), u.shape[0], u.shape[1], kappa, g, n)

        return {"native primal": primal, "native fwd": fwd}
    return {}


# ---------------------------------------------------------------------------------- registry


def _num(n: int) -> str:
    """``10^6`` for powers of ten, else the plain number."""
    e = round(math.log10(n)) if n > 0 else 0
    return f"10^{e}" if 10**e == n and e >= 3 else str(n)


def build_kernels(lib: ctypes.CDLL | None = None) -> dict[str, Kernel]:
    """All kernels with their tools; native columns only when ``lib`` is given."""
    kernels = {
        "reduction": Kernel(
            "reduction",
            "s = Σ sin(x[i])·x[i]",
            reduction,
            reduction_inputs,
            sizes={"full": 10**6, "quick": 10**5},
            size_label=lambda n: f"n={_num(n)}",
            tape_units=lambda q: [("element", q["n"])],
        ),
        "lotka_volterra": Kernel(
            "lotka_volterra",
            "Lotka–Volterra, RK4, p and state active",
            lotka_volterra,
            ode_inputs,
            sizes={"full": 10**5, "quick": 10**4},
            size_label=lambda n: f"{_num(n)} steps",
            tape_units=lambda q: [("step", q["nsteps"])],
        ),
        "stencil": Kernel(
            "stencil",
            "nonlinear 5-point stencil, in place",
            stencil,
            stencil_inputs,
            sizes={"full": (256, 10), "quick": (64, 5)},
            size_label=lambda s: f"{s[0]}²×{s[1]} sweeps",
            tape_units=lambda q: [
                ("sweep", q["nsteps"]),
                ("point update", (q["n"] - 2) ** 2 * q["nsteps"]),
            ],
        ),
    }
    for k in kernels.values():
        k.tools.update(default_tools(k.primal))
        if lib is not None:
            k.tools.update(native_tools(k.name, lib))
        if "native rev" in k.tools:
            k.checks["enzpy rev vs native rev"] = gradient_error("enzpy rev", "native rev")
        k.checks["enzpy rev dot test"] = lambda inp, res, f=k.primal: dot_test(f, inp)
        k.checks["enzpy hvp vs FD"] = hvp_error(k.primal)
    return kernels
