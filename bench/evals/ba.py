"""GradBench ``ba`` (ADBench's bundle adjustment): reprojection residuals of p observations of
m points by n cameras (11 parameters each: Rodrigues rotation, centre, focal length, principal
point, two radial distortion coefficients) weighted by w, plus the weight residuals 1 − w²;
differentiated: the sparse Jacobian (2p + p) × (11n + 3m + p).

The residuals of observation i depend only on its camera, its point and w_i, so the Jacobian is
computed by the usual compression: the reprojection kernel runs on per-observation copies of the
cameras and points (gathered, observation i reading row i), and two reverse passes seeded on all
x-residuals and all y-residuals give every 2 × 15 block; one reverse pass of the weight residuals
gives their diagonal (ADBench's two objective functions, reprojection and weight error, are
differentiated separately the same way). Inputs as in GradBench: one camera, point, weight and
feature replicated, observation i = (camera i mod n, point i mod m); the values here are random
(ADBench's come from a file)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..timing import Gradient, Inputs
from ._common import floats, require_enzpy, unknown
from ._jit import jit, njit

GRADBENCH_FUNCTIONS: tuple[str, ...] = ("objective", "jacobian")
NCAM = 11
#: ba_residuals(cams, X, w, obs, feats, reproj_err, w_err)
ACTIVE = (True, True, True, False, False, False, False)
SIZES: dict[str, Any] = {"quick": (5, 50, 200), "full": (49, 7776, 31843), "sweep": []}


@jit
def project(cam, pt, w, feat, err):
    # Xo = X - C, rotated by the Rodrigues vector cam[0:3]
    x0 = pt[0] - cam[3]
    x1 = pt[1] - cam[4]
    x2 = pt[2] - cam[5]
    sqtheta = cam[0] * cam[0] + cam[1] * cam[1] + cam[2] * cam[2]
    if sqtheta != 0.0:
        theta = np.sqrt(sqtheta)
        costheta = np.cos(theta)
        sintheta = np.sin(theta)
        w0 = cam[0] / theta
        w1 = cam[1] / theta
        w2 = cam[2] / theta
        tmp = (w0 * x0 + w1 * x1 + w2 * x2) * (1.0 - costheta)
        r0 = x0 * costheta + (w1 * x2 - w2 * x1) * sintheta + w0 * tmp
        r1 = x1 * costheta + (w2 * x0 - w0 * x2) * sintheta + w1 * tmp
        r2 = x2 * costheta + (w0 * x1 - w1 * x0) * sintheta + w2 * tmp
    else:
        r0 = x0 + (cam[1] * x2 - cam[2] * x1)
        r1 = x1 + (cam[2] * x0 - cam[0] * x2)
        r2 = x2 + (cam[0] * x1 - cam[1] * x0)
    p0 = r0 / r2
    p1 = r1 / r2
    rsq = p0 * p0 + p1 * p1
    scale = 1.0 + cam[9] * rsq + cam[10] * rsq * rsq
    err[0] = w * (p0 * scale * cam[6] + cam[7] - feat[0])
    err[1] = w * (p1 * scale * cam[6] + cam[8] - feat[1])


@jit
def reproj_residuals(cams, X, w, obs, feats, reproj_err):
    for i in range(w.shape[0]):
        project(cams[obs[i, 0]], X[obs[i, 1]], w[i], feats[i], reproj_err[i])


@jit
def weight_residuals(w, w_err):
    for i in range(w.shape[0]):
        w_err[i] = 1.0 - w[i] * w[i]


@jit
def ba_residuals(cams, X, w, obs, feats, reproj_err, w_err):
    reproj_residuals(cams, X, w, obs, feats, reproj_err)
    weight_residuals(w, w_err)


@njit
def _gather(cams, X, obs, cams_at, X_at):
    """Row i of `cams_at` / `X_at`: the camera / point of observation i."""
    for i in range(obs.shape[0]):
        c, m = obs[i, 0], obs[i, 1]
        for j in range(cams.shape[1]):
            cams_at[i, j] = cams[c, j]
        for j in range(3):
            X_at[i, j] = X[m, j]


@njit
def _scatter(dc, dx, dw, row, blocks):
    """Move one reverse pass's shadows into row `row` of every block, zeroing them."""
    ncam = dc.shape[1]
    for i in range(dc.shape[0]):
        for j in range(ncam):
            blocks[i, row, j] = dc[i, j]
            dc[i, j] = 0.0
        for j in range(3):
            blocks[i, row, ncam + j] = dx[i, j]
            dx[i, j] = 0.0
        blocks[i, row, ncam + 3] = dw[i]
        dw[i] = 0.0


def generate(size: tuple[int, int, int], seed: int = 31337) -> dict[str, Any]:
    """A GradBench ba input for (n cameras, m points, p observations): one random camera,
    point, weight and feature."""
    n, m, p = size
    r = np.random.RandomState(seed)
    cam = np.concatenate(
        [
            r.uniform(-0.3, 0.3, 3),
            r.uniform(-1, 1, 3),
            [r.uniform(400, 600)],
            r.uniform(-1, 1, 2),
            r.uniform(-0.1, 0.1, 2),
        ]
    )
    x = r.uniform(-1, 1, 3) + np.array([0.0, 0.0, 5.0])
    return {
        "n": n,
        "m": m,
        "p": p,
        "cam": cam.tolist(),
        "x": x.tolist(),
        "w": float(r.uniform(0.5, 1.5)),
        "feat": r.uniform(-1, 1, 2).tolist(),
    }


def arguments(inp: dict[str, Any]) -> tuple[Any, ...]:
    """GradBench input -> (cams, X, w, obs, feats, reproj_err, w_err), replicated as ADBench
    does."""
    n, m, p = int(inp["n"]), int(inp["m"]), int(inp["p"])
    cams = np.tile(floats(inp["cam"]), (n, 1))
    X = np.tile(floats(inp["x"]), (m, 1))
    w = np.full(p, float(inp["w"]))
    idx = np.arange(p)
    obs = np.ascontiguousarray(np.stack([idx % n, idx % m], axis=1).astype(np.int64))
    feats = np.tile(floats(inp["feat"]), (p, 1))
    return cams, X, w, obs, feats, np.zeros((p, 2)), np.zeros(p)


def gathered(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The kernel's arguments with each observation's camera and point copied to row i and
    the identity observation map (the compressed form the Jacobian is computed on)."""
    cams, X, w, obs, feats, reproj_err, w_err = args
    p = w.shape[0]
    ident = np.ascontiguousarray(np.stack([np.arange(p), np.arange(p)], axis=1))
    return (
        cams[obs[:, 0]],
        X[obs[:, 1]],
        w,
        ident,
        feats,
        np.empty_like(reproj_err),
        np.empty_like(w_err),
    )


class _Workspace:
    """The temporaries of `jacobian_enzpy` for p observations, allocated once per size (as a
    program computing Jacobians repeatedly would): between calls the shadows and seeds are
    zero, as each reverse pass and `_scatter` leave them."""

    def __init__(self, p: int) -> None:
        self.cams_at, self.X_at = np.empty((p, NCAM)), np.empty((p, 3))
        self.ident = np.empty((p, 2), dtype=np.int64)
        self.ident[:, 0] = self.ident[:, 1] = np.arange(p)
        self.err, self.werr = np.empty((p, 2)), np.empty(p)
        # per residual row (one lane of the batched reverse pass each): the shadows
        self.dc = tuple(np.zeros((p, NCAM)) for _ in range(2))
        self.dx = tuple(np.zeros((p, 3)) for _ in range(2))
        self.dw = tuple(np.zeros(p) for _ in range(2))
        self.derr = tuple(np.zeros((p, 2)) for _ in range(2))
        self.dwerr = np.zeros(p)


_workspaces: dict[int, _Workspace] = {}


def jacobian_enzpy(args: tuple[Any, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(blocks p × 2 × 15, weight diagonal p) by one batched enzpy reverse pass over the
    gathered reprojection residuals (two lanes: one per residual row) and one over the
    weight residuals."""
    ez = require_enzpy()
    cams, X, w, obs, feats, _, _ = args
    p = w.shape[0]
    ws = _workspaces.pop(p, None) or _Workspace(p)  # not shared by concurrent calls
    _gather(cams, X, obs, ws.cams_at, ws.X_at)
    blocks = np.empty((p, 2, NCAM + 4))
    for row in (0, 1):
        ws.derr[row][:, row] = 1.0  # the reverse pass consumes (zeroes) the seeds
    ez.autodiff(
        ez.Reverse,
        reproj_residuals,
        ez.Const,
        ez.BatchDuplicated(ws.cams_at, ws.dc),
        ez.BatchDuplicated(ws.X_at, ws.dx),
        ez.BatchDuplicated(w, ws.dw),
        ez.Const(ws.ident),
        ez.Const(feats),
        ez.BatchDuplicated(ws.err, ws.derr),
    )
    for row in (0, 1):
        _scatter(ws.dc[row], ws.dx[row], ws.dw[row], row, blocks)
    wdiag = np.zeros(p)
    ws.dwerr[:] = 1.0
    ez.autodiff(
        ez.Reverse,
        weight_residuals,
        ez.Const,
        ez.Duplicated(w, wdiag),
        ez.Duplicated(ws.werr, ws.dwerr),
    )
    _workspaces[p] = ws  # only after a call that completed: its temporaries are clean again
    return blocks, wdiag


def jacobian_forward(args: tuple[Any, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(blocks, weight diagonal) by 15 enzpy forward passes (one per block column)."""
    ez = require_enzpy()
    cams, X, w, ident, feats, err, werr = gathered(args)
    p = w.shape[0]
    blocks = np.empty((p, 2, NCAM + 4))
    wdiag = np.empty(p)
    for col in range(NCAM + 4):
        dc, dx, dw = np.zeros_like(cams), np.zeros_like(X), np.zeros_like(w)
        (dc[:, col] if col < NCAM else dx[:, col - NCAM] if col < NCAM + 3 else dw)[:] = 1.0
        derr, dwerr = np.zeros_like(err), np.zeros_like(werr)
        ez.autodiff(
            ez.Forward,
            ba_residuals,
            ez.Const,
            ez.Duplicated(cams, dc),
            ez.Duplicated(X, dx),
            ez.Duplicated(w, dw),
            ez.Const(ident),
            ez.Const(feats),
            ez.Duplicated(err, derr),
            ez.Duplicated(werr, dwerr),
        )
        blocks[:, :, col] = derr
        if col == NCAM + 3:
            wdiag[:] = dwerr
    return blocks, wdiag


def jacobian_fd(args: tuple[Any, ...], h: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """(blocks, weight diagonal) by central differences: 15 directions, 2 primal calls each."""
    cams, X, w, ident, feats, err, werr = gathered(args)
    p = w.shape[0]
    blocks = np.empty((p, 2, NCAM + 4))
    wdiag = np.empty(p)
    for col in range(NCAM + 4):
        outs = []
        for sign in (1.0, -1.0):
            c, x, ww = cams.copy(), X.copy(), w.copy()
            (c[:, col] if col < NCAM else x[:, col - NCAM] if col < NCAM + 3 else ww)[:] += sign * h
            e, we = np.empty_like(err), np.empty_like(werr)
            ba_residuals(c, x, ww, ident, feats, e, we)
            outs.append((e, we))
        blocks[:, :, col] = (outs[0][0] - outs[1][0]) / (2 * h)
        if col == NCAM + 3:
            wdiag[:] = (outs[0][1] - outs[1][1]) / (2 * h)
    return blocks, wdiag


def make_inputs(size: tuple[int, int, int]) -> Inputs:
    """Kernel inputs for (n, m, p); the 'direction' is a random weighting of the Jacobian's
    entries (every tool returns all of them; they are compared entry by entry)."""
    args = arguments(generate(size))
    p = size[2]
    r = np.random.default_rng(5)
    direction = (r.standard_normal((p, 2, NCAM + 4)), r.standard_normal(p))
    return Inputs(args, direction, dict(zip("nmp", size, strict=True)))


def size_label(size: tuple[int, int, int]) -> str:
    """``n=49 m=7776 p=31843``."""
    return "n={} m={} p={}".format(*size)


def as_gradient(jac: tuple[Any, Any], inp: Inputs) -> Gradient:
    """A Jacobian (blocks, weight diagonal) in the harness's gradient form."""
    return Gradient(tuple(jac), inp.direction)


def array_residual(xp: Any, cam: Any, pt: Any, w: Any, feat: Any) -> Any:
    """One observation's two residuals as array code (rotation branch for θ ≠ 0 only)."""
    xo = pt - cam[3:6]
    theta = xp.sqrt(xp.sum(cam[0:3] * cam[0:3], axis=0))
    axis = cam[0:3] / theta
    cross = xp.stack(
        [
            axis[1] * xo[2] - axis[2] * xo[1],
            axis[2] * xo[0] - axis[0] * xo[2],
            axis[0] * xo[1] - axis[1] * xo[0],
        ]
    )
    tmp = xp.sum(axis * xo, axis=0) * (1.0 - xp.cos(theta))
    rot = xo * xp.cos(theta) + cross * xp.sin(theta) + axis * tmp
    proj = rot[0:2] / rot[2]
    rsq = xp.sum(proj * proj, axis=0)
    proj = proj * (1.0 + cam[9] * rsq + cam[10] * rsq * rsq)
    return w * (proj * cam[6] + cam[7:9] - feat)


def compressed_output(blocks: np.ndarray, wdiag: np.ndarray, n: int, m: int) -> dict[str, Any]:
    """GradBench's repeated-sparse form of the Jacobian: the CSR rows, columns and values of
    the first observation's two rows, then the last entry (all observations are alike)."""
    p = wdiag.shape[0]
    cols0 = list(range(NCAM)) + [NCAM * n + i for i in range(3)] + [NCAM * n + 3 * m]
    nnz = 2 * (NCAM + 4)
    rows = [i * (NCAM + 4) for i in range(nnz)] + [nnz * p + p]
    cols = cols0 + cols0 + [NCAM * n + 3 * m + p - 1]
    vals = blocks[0, 0].tolist() + blocks[0, 1].tolist() + [float(wdiag[-1])]
    return {"rows": rows, "cols": cols, "vals": vals}


def gradbench_prepare(function: str, input: dict[str, Any]) -> Callable[[], Any]:
    """Decode once; ``objective`` -> the residuals (GradBench's repeated form), ``jacobian``
    -> the sparse Jacobian (enzpy reverse passes, GradBench's repeated CSR form)."""
    args = arguments(input)
    if function == "objective":

        def objective() -> dict[str, Any]:
            ba_residuals(*args)
            err, werr = args[5], args[6]
            p = werr.shape[0]
            return {
                "reproj_error": {"elements": err[0].tolist(), "repeated": p},
                "w_err": {"element": float(werr[0]), "repeated": p},
            }

        return objective
    if function == "jacobian":
        n, m = int(input["n"]), int(input["m"])
        return lambda: compressed_output(*jacobian_enzpy(args), n, m)
    raise unknown("ba", function, GRADBENCH_FUNCTIONS)


def gradbench(function: str, input: dict[str, Any]) -> Any:
    """One GradBench evaluation of ``function`` (see :func:`gradbench_prepare`)."""
    return gradbench_prepare(function, input)()


#: the kernel the benchmark times and differentiates
PRIMAL = ba_residuals


def _peer_blocks(jacobian: Callable[..., Any], to_numpy: Callable[[Any], Any]) -> Any:
    """Wrap a peer's per-observation Jacobian ``jacobian(cams, X, w, feats) -> (blocks, wdiag)``
    as a timed tool (gathering and conversion outside the timed call)."""
    from ..timing import Prepared

    def prepare(inp: Inputs) -> tuple[Any, ...]:
        cams, X, w, _, feats, _, _ = gathered(inp.args)
        return tuple(to_numpy(a) for a in (cams, X, w, feats)), inp

    def run(state: tuple[Any, ...]) -> Gradient:
        arrays, inp = state
        return as_gradient(jacobian(*arrays), inp)

    return Prepared(prepare, run)


def bench_tools(wanted: set[str]) -> dict[str, Any]:
    """BA's columns: the Jacobian by enzpy reverse (2 + 1 passes) and forward (15 passes) mode, by
    central differences (15 directions), and by JAX / PyTorch (vmapped per-observation
    Jacobians) when installed."""
    from .. import peers

    tools: dict[str, Any] = {}
    if "enzpy" in wanted:
        tools["enzpy fwd"] = lambda inp: as_gradient(jacobian_forward(inp.args), inp)
        tools["enzpy rev"] = lambda inp: as_gradient(jacobian_enzpy(inp.args), inp)
    if "fd" in wanted:
        tools["FD central"] = lambda inp: as_gradient(jacobian_fd(inp.args), inp)
    if "jax" in wanted and peers.available("jax"):
        jax, ops = peers._jax()

        def one(cam: Any, pt: Any, w: Any, feat: Any) -> Any:
            return array_residual(ops, cam, pt, w, feat)

        jac = jax.jit(jax.vmap(jax.jacrev(one, argnums=(0, 1, 2))))
        wgrad = jax.jit(jax.vmap(jax.grad(lambda w: 1.0 - w * w)))

        def jax_jacobian(cams: Any, X: Any, w: Any, feats: Any) -> Any:
            dc, dx, dw = jac(cams, X, w, feats)
            blocks = ops.concatenate([dc, dx, dw[:, :, None]], axis=2)
            return jax.block_until_ready((blocks, wgrad(w)))

        tools["jax rev"] = _peer_blocks(jax_jacobian, jax.device_put)
    if "torch" in wanted and peers.available("torch"):
        torch, tops = peers._torch()

        def tone(cam: Any, pt: Any, w: Any, feat: Any) -> Any:
            return array_residual(tops, cam, pt, w, feat)

        tjac = torch.func.vmap(torch.func.jacrev(tone, argnums=(0, 1, 2)))
        twgrad = torch.func.vmap(torch.func.grad(lambda w: 1.0 - w * w))

        def torch_jacobian(cams: Any, X: Any, w: Any, feats: Any) -> Any:
            dc, dx, dw = tjac(cams, X, w, feats)
            return torch.cat([dc, dx, dw[:, :, None]], dim=2), twgrad(w)

        tools["torch rev"] = _peer_blocks(torch_jacobian, torch.as_tensor)
    return tools
