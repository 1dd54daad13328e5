"""Loop kernels written as users write Numba code, tuned for nothing (part of
`python -m bench.untuned`): a 1-D convolution, a dense tanh layer, Gaussian pair sums, an IIR
filter, softmax cross-entropy with a running max, Horner's rule, a three-buffer wave
equation, explicit diffusion into a second buffer, a smoothing spline, bilinear
interpolation, logistic regression, a bouncing ball (a branch), a kernel density on a grid
(`+=` into an output), a triple-loop matmul and row maxima (`max`)."""

import math

import numpy as np

import enzpy as ez


@ez.enzyme_jit
def conv1d(x, w):
    n, m = x.shape[0], w.shape[0]
    s = 0.0
    for i in range(n - m + 1):
        y = 0.0
        for k in range(m):
            y += w[k] * x[i + k]
        s += y * y
    return s


@ez.enzyme_jit
def dense(W, x, b):
    s = 0.0
    for i in range(W.shape[0]):
        z = b[i]
        for j in range(W.shape[1]):
            z += W[i, j] * x[j]
        s += math.tanh(z)
    return s


@ez.enzyme_jit
def gauss_pairs(x, h):
    n = x.shape[0]
    s = 0.0
    for i in range(n):
        for j in range(n):
            d = 0.0
            for k in range(x.shape[1]):
                t = x[i, k] - x[j, k]
                d += t * t
            s += math.exp(-d / h)
    return s


@ez.enzyme_jit
def iir(x, a):
    s = 0.0
    y = 0.0
    for i in range(x.shape[0]):
        y = a * y + x[i]
        s += y * y
    return s


@ez.enzyme_jit
def xent(logits, labels):
    s = 0.0
    for i in range(logits.shape[0]):
        m = logits[i, 0]
        for j in range(1, logits.shape[1]):
            if logits[i, j] > m:
                m = logits[i, j]
        z = 0.0
        for j in range(logits.shape[1]):
            z += math.exp(logits[i, j] - m)
        s += m + math.log(z) - logits[i, labels[i]]
    return s


@ez.enzyme_jit
def horner(x, c):
    s = 0.0
    for i in range(x.shape[0]):
        p = c[c.shape[0] - 1]
        for k in range(c.shape[0] - 2, -1, -1):
            p = p * x[i] + c[k]
        s += p
    return s


@ez.enzyme_jit
def wave(u0, c, steps):
    n = u0.shape[0]
    prev = u0.copy()
    cur = u0.copy()
    nxt = np.zeros(n)
    for _ in range(steps):
        for i in range(1, n - 1):
            nxt[i] = 2 * cur[i] - prev[i] + c * (cur[i + 1] - 2 * cur[i] + cur[i - 1])
        prev, cur, nxt = cur, nxt, prev
    return (cur * cur).sum()


@ez.enzyme_jit
def diffusion(u0, kappa, steps):
    n = u0.shape[0]
    u = u0.copy()
    w = u0.copy()
    for _ in range(steps):
        for i in range(1, n - 1):
            w[i] = u[i] + kappa * (u[i - 1] - 2.0 * u[i] + u[i + 1])
        for i in range(1, n - 1):
            u[i] = w[i]
    e = 0.0
    for i in range(n):
        e += u[i] * u[i]
    return e


@ez.enzyme_jit
def spline(x, y, lam):
    s = 0.0
    for i in range(1, x.shape[0] - 1):
        t = x[i + 1] - 2.0 * x[i] + x[i - 1]
        s += t * t
    for i in range(x.shape[0]):
        r = x[i] - y[i]
        s += lam * r * r
    return s


@ez.enzyme_jit
def bilinear(img, px, py):
    s = 0.0
    for k in range(px.shape[0]):
        i = int(math.floor(px[k]))
        j = int(math.floor(py[k]))
        fx = px[k] - i
        fy = py[k] - j
        v = (
            img[i, j] * (1 - fx) * (1 - fy)
            + img[i + 1, j] * fx * (1 - fy)
            + img[i, j + 1] * (1 - fx) * fy
            + img[i + 1, j + 1] * fx * fy
        )
        s += v * v
    return s


@ez.enzyme_jit
def logreg(X, y, w):
    s = 0.0
    for i in range(X.shape[0]):
        z = 0.0
        for j in range(X.shape[1]):
            z += X[i, j] * w[j]
        s += math.log1p(math.exp(-y[i] * z))
    return s


@ez.enzyme_jit
def bounce(v0, g, dt, steps):
    x = 1.0
    v = v0
    e = 0.0
    for _ in range(steps):
        v -= g * dt
        x += v * dt
        if x < 0.0:
            x = -x
            v = -0.9 * v
        e += x * x
    return e


@ez.enzyme_jit
def kde_grid(pts, w, grid, h):
    out = np.zeros(grid.shape[0])
    for i in range(pts.shape[0]):
        for g in range(grid.shape[0]):
            d = (grid[g] - pts[i]) / h
            out[g] += w[i] * math.exp(-0.5 * d * d)
    return (out * out).sum()


@ez.enzyme_jit
def matmul(A, B):
    n, m, p = A.shape[0], A.shape[1], B.shape[1]
    C = np.zeros((n, p))
    for i in range(n):
        for k in range(m):
            a = A[i, k]
            for j in range(p):
                C[i, j] += a * B[k, j]
    return (C * C).sum()


@ez.enzyme_jit
def rowmax_sum(X):
    s = 0.0
    for i in range(X.shape[0]):
        m = X[i, 0]
        for j in range(1, X.shape[1]):
            m = max(m, X[i, j])
        s += m
    return s


def cases(rng: np.random.Generator) -> list[tuple]:
    """(name, function, arguments, active argument positions) at sizes of ~0.1-1 ms."""
    n, m = 200_000, 300
    img = rng.standard_normal((64, 64))
    return [
        ("conv1d", conv1d, (rng.standard_normal(n), rng.standard_normal(9)), (0, 1)),
        (
            "dense tanh layer",
            dense,
            (
                rng.standard_normal((2 * m, 2 * m)) * 0.05,
                rng.standard_normal(2 * m),
                rng.standard_normal(2 * m),
            ),
            (0, 1, 2),
        ),
        ("gaussian pairs", gauss_pairs, (rng.standard_normal((m, 3)), 1.3), (0, 1)),
        ("iir filter", iir, (rng.standard_normal(n), 0.9), (0, 1)),
        (
            "cross-entropy",
            xent,
            (rng.standard_normal((n // 10, 10)), rng.integers(0, 10, n // 10)),
            (0,),
        ),
        ("horner", horner, (rng.uniform(-1, 1, n), rng.standard_normal(6)), (0, 1)),
        ("wave, 3 buffers", wave, (np.sin(np.linspace(0, 3, n // 20)), 0.2, 50), (0, 1)),
        ("diffusion, 2 buffers", diffusion, (rng.uniform(0, 1, n // 50), 0.2, 50), (0, 1)),
        ("spline", spline, (rng.standard_normal(n), rng.standard_normal(n), 0.3), (0, 1, 2)),
        (
            "bilinear",
            bilinear,
            (img, rng.uniform(0, 62.9, n // 4), rng.uniform(0, 62.9, n // 4)),
            (0, 1, 2),
        ),
        (
            "logistic loops",
            logreg,
            (
                rng.standard_normal((n // 20, 20)),
                np.sign(rng.standard_normal(n // 20)),
                rng.standard_normal(20) * 0.1,
            ),
            (0, 2),
        ),
        ("bouncing ball", bounce, (0.3, 9.81, 0.001, n // 4), (0, 1)),
        (
            "kde on a grid",
            kde_grid,
            (
                rng.standard_normal(4 * m),
                rng.uniform(0.5, 1, 4 * m),
                np.linspace(-3, 3, m // 2 + 1),
                0.4,
            ),
            (0, 1, 3),
        ),
        (
            "matmul loops",
            matmul,
            (
                rng.standard_normal((m // 3 + 1, m // 3 + 1)),
                rng.standard_normal((m // 3 + 1, m // 3 + 1)),
            ),
            (0, 1),
        ),
        ("row maxima", rowmax_sum, (rng.standard_normal((n // 50, 50)),), (0,)),
    ]
