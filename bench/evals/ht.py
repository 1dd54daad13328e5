"""GradBench ``ht`` (ADBench's hand tracking): a skinned hand model posed by 26 parameters θ
(global rotation, scale, translation, then per finger joint angles) gives vertex positions;
the residuals are the correspondences' points minus their vertices (``simple``), or minus a
point of their triangle placed by two barycentric parameters per point, ``us``
(``complicated``). ``jacobian``: the residuals' Jacobian with respect to θ (and to ``us``,
whose block is diagonal: two columns, one per barycentric coordinate), by one forward-mode
pass per column."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numba
import numpy as np

from ._common import require_enzpy, unknown
from ._jit import ez, jit

GRADBENCH_FUNCTIONS: tuple[str, ...] = ("objective", "jacobian")


@jit
def pose_parameters(theta, nbones):
    """(nbones + 3) × 3: global rotation, scale (ones), translation, then per bone the Euler
    angles its finger joints take from θ."""
    pose = np.zeros((nbones + 3, 3))
    for k in range(3):
        pose[0, k] = theta[k]
        pose[1, k] = 1.0
        pose[2, k] = theta[3 + k]
    at, row = 6, 5
    for _ in range(5):  # fingers
        for joint in range(3):
            pose[row, 0] = theta[at]
            at += 1
            if joint == 0:
                pose[row, 1] = theta[at]
                at += 1
            row += 1
        row += 1
    return pose


@jit
def euler_rotation(ax, az, ay):
    """Rz @ Ry @ Rx as ADBench writes them (angles given as x, z, y; its Ry turns by −ay)."""
    cx, sx = math.cos(ax), math.sin(ax)
    cy, sy = math.cos(ay), math.sin(ay)
    cz, sz = math.cos(az), math.sin(az)
    r = np.empty((3, 3))
    r[0, 0] = cz * cy
    r[0, 1] = -sz * cx - cz * sy * sx
    r[0, 2] = sz * sx - cz * sy * cx
    r[1, 0] = sz * cy
    r[1, 1] = cz * cx - sz * sy * sx
    r[1, 2] = -cz * sx - sz * sy * cx
    r[2, 0] = sy
    r[2, 1] = cy * sx
    r[2, 2] = cy * cx
    return r


@jit
def angle_axis_rotation(v):
    """The rotation by |v| about v (identity below 1e-4)."""
    n = math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
    r = np.zeros((3, 3))
    if n < 0.0001:
        for k in range(3):
            r[k, k] = 1.0
        return r
    x, y, z = v[0] / n, v[1] / n, v[2] / n
    s, c = math.sin(n), math.cos(n)
    r[0, 0] = x * x + (1 - x * x) * c
    r[0, 1] = x * y * (1 - c) - z * s
    r[0, 2] = x * z * (1 - c) + y * s
    r[1, 0] = x * y * (1 - c) + z * s
    r[1, 1] = y * y + (1 - y * y) * c
    r[1, 2] = y * z * (1 - c) - x * s
    r[2, 0] = x * z * (1 - c) - y * s
    r[2, 1] = z * y * (1 - c) + x * s
    r[2, 2] = z * z + (1 - z * z) * c
    return r


@jit
def vertex_positions(theta, model):
    """The posed vertices (nverts × 3) of `model`: (parents, base relatives, inverse base
    absolutes, base positions, skinning weights)."""
    parents, base_relatives, inverse_base_absolutes, base_positions, weights = model
    nbones = parents.shape[0]
    pose = pose_parameters(theta, nbones)
    absolutes = np.empty((nbones, 4, 4))
    transforms = np.empty((nbones, 4, 4))
    rel = np.empty((4, 4))
    for b in range(nbones):
        r = euler_rotation(pose[3 + b, 0], pose[3 + b, 1], pose[3 + b, 2])
        for i in range(4):  # base_relative @ [[R, 0], [0, 1]]
            for j in range(3):
                rel[i, j] = (
                    base_relatives[b, i, 0] * r[0, j]
                    + base_relatives[b, i, 1] * r[1, j]
                    + base_relatives[b, i, 2] * r[2, j]
                )
            rel[i, 3] = base_relatives[b, i, 3]
        p = parents[b]
        for i in range(4):
            for j in range(4):
                if p == -1:
                    absolutes[b, i, j] = rel[i, j]
                else:
                    acc = 0.0
                    for k in range(4):
                        acc += absolutes[p, i, k] * rel[k, j]
                    absolutes[b, i, j] = acc
        for i in range(4):
            for j in range(4):
                acc = 0.0
                for k in range(4):
                    acc += absolutes[b, i, k] * inverse_base_absolutes[b, k, j]
                transforms[b, i, j] = acc
    rot = angle_axis_rotation(pose[0])
    nverts = base_positions.shape[0]
    out = np.empty((nverts, 3))
    skinned = np.empty(3)
    for v in range(nverts):
        skinned[:] = 0.0
        for b in range(nbones):
            w = weights[v, b]
            if w != 0.0:
                for i in range(3):
                    acc = 0.0
                    for k in range(4):
                        acc += transforms[b, i, k] * base_positions[v, k]
                    skinned[i] += w * acc
        for i in range(3):
            acc = 0.0
            for k in range(3):
                acc += rot[i, k] * pose[1, k] * skinned[k]
            out[v, i] = acc + pose[2, i]
    return out


@jit
def hand_residuals(theta, us, model, points, correspondences, triangles, err):
    """err[i] = points[i] − the hand's point i: its vertex (`us` empty) or the point of its
    triangle at barycentric coordinates us[i]."""
    verts = vertex_positions(theta, model)
    for i in range(points.shape[0]):
        c = correspondences[i]
        for k in range(3):
            if us.shape[0] == 0:
                hand = verts[c, k]
            else:
                t = triangles[c]
                u0, u1 = us[i, 0], us[i, 1]
                hand = u0 * verts[t[0], k] + u1 * verts[t[1], k] + (1.0 - u0 - u1) * verts[t[2], k]
            err[i, k] = points[i, k] - hand
    return 0.0


WIDTH = 7  # tangents per forward sweep: 26 or 28 columns in four sweeps


@jit
def hand_jacobian(theta, us, model, points, correspondences, triangles):
    """The residuals' Jacobian (3·npts × [2 +] 26) by batched forward mode: `WIDTH` columns
    per sweep, one per θ entry, and with `us`, one per barycentric coordinate (all points
    at once: each residual depends on its own point's only)."""
    npts = points.shape[0]
    extra = 2 if us.shape[0] > 0 else 0
    ncols = extra + theta.shape[0]
    jac = np.empty((3 * npts, ncols))
    err = np.empty((npts, 3))
    for start in range(0, ncols, WIDTH):
        dtheta = np.zeros((WIDTH, theta.shape[0]))
        dus = np.zeros((WIDTH, us.shape[0], 2))
        derr = np.zeros((WIDTH, npts, 3))
        for lane in range(min(WIDTH, ncols - start)):
            col = start + lane
            if col < extra:
                dus[lane, :, col] = 1.0
            else:
                dtheta[lane, col - extra] = 1.0
        ez.autodiff(
            ez.Forward,
            hand_residuals,
            ez.BatchDuplicated(theta, _lanes(dtheta)),
            ez.BatchDuplicated(us, _lanes(dus)),
            ez.Const(model),
            ez.Const(points),
            ez.Const(correspondences),
            ez.Const(triangles),
            ez.BatchDuplicated(err, _lanes(derr)),
        )
        for lane in range(min(WIDTH, ncols - start)):
            jac[:, start + lane] = derr[lane].ravel()
    return jac


def _rows_as_tuple(width: int) -> Any:
    """A jitted `(a[0], ..., a[width - 1])`: the shadows of one batch from the rows of an
    array (a tuple's length is a compile-time constant in Numba)."""
    ns: dict[str, Any] = {}
    exec(f"def lanes(a):\n    return ({', '.join(f'a[{i}]' for i in range(width))},)\n", ns)
    return numba.njit(ns["lanes"])


_lanes = _rows_as_tuple(WIDTH)


def arguments(input: dict[str, Any]) -> tuple[Any, ...]:
    """GradBench input -> (theta, us, model, points, correspondences, triangles)."""
    data, model = input["data"], input["data"]["model"]
    nbones = int(model["bone_count"])
    model_arrays = (
        np.asarray(model["parents"], dtype=np.int64),
        np.asarray(model["base_relatives"], dtype=np.float64).reshape(nbones, 4, 4),
        np.asarray(model["inverse_base_absolutes"], dtype=np.float64).reshape(nbones, 4, 4),
        np.asarray(model["base_positions"], dtype=np.float64).reshape(-1, 4),
        np.asarray(model["weights"], dtype=np.float64).reshape(-1, nbones),
    )
    points = np.asarray(data["points"], dtype=np.float64).reshape(-1, 3)
    us = np.asarray(input.get("us") or [], dtype=np.float64).reshape(-1, 2)
    triangles = np.asarray(model["triangles"], dtype=np.int64).reshape(-1, 3)
    correspondences = np.asarray(data["correspondences"], dtype=np.int64)
    theta = np.asarray(input["theta"], dtype=np.float64)
    return theta, us, model_arrays, points, correspondences, triangles


def objective(args: tuple[Any, ...]) -> np.ndarray:
    err = np.empty((args[3].shape[0], 3))
    hand_residuals(*args, err)
    return err


def gradbench_prepare(function: str, input: dict[str, Any]) -> Callable[[], Any]:
    """``objective`` -> the residuals, flat; ``jacobian`` -> the Jacobian, row per residual
    (NumPy arrays: the protocol turns them into JSON after the timed runs, as GradBench's
    C++ tools time their computation, not their output)."""
    require_enzpy()
    args = arguments(input)
    if function == "objective":
        return lambda: objective(args).ravel()
    if function == "jacobian":
        return lambda: hand_jacobian(*args)
    raise unknown("ht", function, GRADBENCH_FUNCTIONS)


def gradbench(function: str, input: dict[str, Any]) -> Any:
    """One GradBench evaluation of ``function`` (see :func:`gradbench_prepare`)."""
    return gradbench_prepare(function, input)()
