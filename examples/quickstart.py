"""enzpy quickstart: forward-mode derivatives and the reverse-mode gradient of a mutating
Numba loop, checked against central finite differences.

    python examples/quickstart.py
"""

from __future__ import annotations

import numpy as np

import enzpy as ez


@ez.enzyme_jit
def f(x, y):
    s = 0.0
    for i in range(x.shape[0]):
        x[i] = x[i] * y[i]
        s += np.sin(x[i]) * y[i]
    return s


def central_fd(
    x: np.ndarray, y: np.ndarray, dx: np.ndarray, dy: np.ndarray, h: float = 1e-6
) -> tuple[float, np.ndarray]:
    """Central differences of (x, y) -> (z, x after f) along (dx, dy), on copies."""
    xp, yp = x + h * dx, y + h * dy
    xm, ym = x - h * dx, y - h * dy
    zp, zm = f(xp, yp), f(xm, ym)  # f mutates xp and xm: they become x after execution
    return (zp - zm) / (2 * h), (xp - xm) / (2 * h)


def main() -> None:
    """Directional derivatives along unit vectors and a random direction, vs finite differences."""
    rng = np.random.default_rng(0)
    n = 5
    x = rng.uniform(-1.0, 1.0, n)
    y = rng.uniform(0.5, 1.5, n)

    directions: list[tuple[str, np.ndarray, np.ndarray]] = []
    for k in range(3):
        e = np.zeros(n)
        e[k] = 1.0
        directions.append((f"x: e_{k}", e, np.zeros(n)))
    for k in range(2):
        e = np.zeros(n)
        e[k] = 1.0
        directions.append((f"y: e_{k}", np.zeros(n), e))
    directions.append(("random", rng.standard_normal(n), rng.standard_normal(n)))

    print(f"f(x, y) = {f(x.copy(), y.copy()):.12g}   (n = {n})")
    print()
    header = (
        f"{'direction':<10} {'ż enzpy':>18} {'ż finite diff':>18} {'|Δż|':>9} {'max|Δẋ_a|':>10}"
    )
    print(header)
    print("-" * len(header))
    worst = 0.0
    for name, vx, vy in directions:
        xc, yc = x.copy(), y.copy()
        dx, dy = vx.copy(), vy.copy()
        # dx, dy hold the direction on entry; on exit dx holds the tangent of x after f ran
        dz, z = ez.autodiff(ez.ForwardWithPrimal, f, ez.Duplicated(xc, dx), ez.Duplicated(yc, dy))
        dz_fd, dxa_fd = central_fd(x, y, vx, vy)
        assert np.isclose(z, f(x.copy(), y.copy()), rtol=1e-14, atol=0.0)
        err_z = abs(dz - dz_fd)
        err_x = float(np.max(np.abs(dx - dxa_fd)))
        worst = max(worst, err_z, err_x)
        print(f"{name:<10} {dz:>18.12f} {dz_fd:>18.12f} {err_z:>9.1e} {err_x:>10.1e}")
    print()
    # reverse mode: the whole gradient of z = f(x, y) in one pass (on copies of x and y)
    gx, gy = ez.gradient(ez.Reverse, f, x, y)
    header = f"{'input':<10} {'∂z enzpy':>18} {'∂z finite diff':>18} {'|Δ|':>9}"
    print(header)
    print("-" * len(header))
    for arg, grad in (("x", gx), ("y", gy)):
        for k in range(n):
            e, zero = np.eye(n)[k], np.zeros(n)
            g_fd, _ = central_fd(x, y, *((e, zero) if arg == "x" else (zero, e)))
            worst = max(worst, abs(grad[k] - g_fd))
            print(
                f"{arg}[{k}]".ljust(10),
                f"{grad[k]:>18.12f} {g_fd:>18.12f}",
                f"{abs(grad[k] - g_fd):>9.1e}",
            )
    print()
    print(f"max abs difference enzpy vs finite differences: {worst:.1e}")


if __name__ == "__main__":
    main()
