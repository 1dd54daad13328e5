/* Native C reference kernels for the enzpy benchmark: primal and hand-written derivatives.
 *
 * Each kernel mirrors the @ez.enzyme_jit loop code in bench/kernels.py operation for operation
 * (same loop order, same in-place updates), so the primal results agree to rounding and the
 * hand-written derivatives are the native baseline enzpy's generated code is compared with.
 *
 * Conventions (Enzyme's semantics, see DESIGN.md):
 *   *_fwd : forward tangent for one direction. Shadows of mutated arrays hold the tangent on
 *           entry and the tangent of the array after execution on exit. Returns the tangent of
 *           the return value.
 *   *_rev : reverse adjoint. Gradients are added (+=) into the shadows; the shadow of a mutated
 *           array holds the cotangent of the array after execution on entry and the gradient
 *           with respect to its initial contents on exit. `dret` seeds the return value.
 * Arrays are C-contiguous doubles.
 */
#define _USE_MATH_DEFINES
#include <math.h>
#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif
#include <stdint.h>
#include <stdlib.h>

#if defined(_WIN32)
#define EXPORT __declspec(dllexport)
#else
#define EXPORT __attribute__((visibility("default")))
#endif

EXPORT int enzpy_bench_native_abi_version(void) { return 2; }

/* ---------------------------------------------------------------- (a) reduction
 * s = sum_i sin(x[i]) * x[i]
 */
EXPORT double reduction_primal(const double *x, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i) s += sin(x[i]) * x[i];
    return s;
}

EXPORT double reduction_fwd(const double *x, const double *dx, int64_t n) {
    double ds = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        double xi = x[i];
        ds += (cos(xi) * xi + sin(xi)) * dx[i];
    }
    return ds;
}

/* xbar[i] += dret * d s / d x[i]; returns the primal. */
EXPORT double reduction_rev(const double *x, double *xbar, int64_t n, double dret) {
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        double xi = x[i], si = sin(xi);
        s += si * xi;
        xbar[i] += dret * (cos(xi) * xi + si);
    }
    return s;
}

/* ---------------------------------------------------------------- (b) ODE
 * Lotka-Volterra  x' = a x - b x y,  y' = c x y - d y,  p = (a, b, c, d), state u = (x, y),
 * classical RK4 with step dt, nsteps steps, state kept in u (updated in place every step).
 * Returns u[0] after the last step.
 */
static inline void lv_rhs(const double p[4], double x, double y, double *fx, double *fy) {
    *fx = p[0] * x - p[1] * x * y;
    *fy = p[2] * x * y - p[3] * y;
}

/* Tangent of the right-hand side. */
static inline void lv_rhs_dot(const double p[4], const double dp[4], double x, double y,
                              double dx, double dy, double *dfx, double *dfy) {
    double dxy = dx * y + x * dy;
    *dfx = dp[0] * x + p[0] * dx - dp[1] * x * y - p[1] * dxy;
    *dfy = dp[2] * x * y + p[2] * dxy - dp[3] * y - p[3] * dy;
}

/* Adjoint of the right-hand side: given (gx, gy) = cotangent of (fx, fy), add into
 * the cotangents of x, y and p. */
static inline void lv_rhs_bar(const double p[4], double x, double y, double gx, double gy,
                              double *xb, double *yb, double pb[4]) {
    *xb += gx * (p[0] - p[1] * y) + gy * (p[2] * y);
    *yb += gx * (-p[1] * x) + gy * (p[2] * x - p[3]);
    pb[0] += gx * x;
    pb[1] -= gx * x * y;
    pb[2] += gy * x * y;
    pb[3] -= gy * y;
}

EXPORT double lv_primal(const double *p, double *u, double dt, int64_t nsteps) {
    const double h2 = 0.5 * dt, h6 = dt / 6.0;
    for (int64_t k = 0; k < nsteps; ++k) {
        double x = u[0], y = u[1];
        double k1x, k1y, k2x, k2y, k3x, k3y, k4x, k4y;
        lv_rhs(p, x, y, &k1x, &k1y);
        lv_rhs(p, x + h2 * k1x, y + h2 * k1y, &k2x, &k2y);
        lv_rhs(p, x + h2 * k2x, y + h2 * k2y, &k3x, &k3y);
        lv_rhs(p, x + dt * k3x, y + dt * k3y, &k4x, &k4y);
        u[0] = x + h6 * (k1x + 2.0 * k2x + 2.0 * k3x + k4x);
        u[1] = y + h6 * (k1y + 2.0 * k2y + 2.0 * k3y + k4y);
    }
    return u[0];
}

EXPORT double lv_fwd(const double *p, const double *dp, double *u, double *du, double dt,
                     int64_t nsteps) {
    const double h2 = 0.5 * dt, h6 = dt / 6.0;
    for (int64_t k = 0; k < nsteps; ++k) {
        double x = u[0], y = u[1], dx = du[0], dy = du[1];
        double k1x, k1y, k2x, k2y, k3x, k3y, k4x, k4y;
        double d1x, d1y, d2x, d2y, d3x, d3y, d4x, d4y;
        double sx, sy, dsx, dsy;
        lv_rhs(p, x, y, &k1x, &k1y);
        lv_rhs_dot(p, dp, x, y, dx, dy, &d1x, &d1y);
        sx = x + h2 * k1x; sy = y + h2 * k1y; dsx = dx + h2 * d1x; dsy = dy + h2 * d1y;
        lv_rhs(p, sx, sy, &k2x, &k2y);
        lv_rhs_dot(p, dp, sx, sy, dsx, dsy, &d2x, &d2y);
        sx = x + h2 * k2x; sy = y + h2 * k2y; dsx = dx + h2 * d2x; dsy = dy + h2 * d2y;
        lv_rhs(p, sx, sy, &k3x, &k3y);
        lv_rhs_dot(p, dp, sx, sy, dsx, dsy, &d3x, &d3y);
        sx = x + dt * k3x; sy = y + dt * k3y; dsx = dx + dt * d3x; dsy = dy + dt * d3y;
        lv_rhs(p, sx, sy, &k4x, &k4y);
        lv_rhs_dot(p, dp, sx, sy, dsx, dsy, &d4x, &d4y);
        u[0] = x + h6 * (k1x + 2.0 * k2x + 2.0 * k3x + k4x);
        u[1] = y + h6 * (k1y + 2.0 * k2y + 2.0 * k3y + k4y);
        du[0] = dx + h6 * (d1x + 2.0 * d2x + 2.0 * d3x + d4x);
        du[1] = dy + h6 * (d1y + 2.0 * d2y + 2.0 * d3y + d4y);
    }
    return du[0];
}

/* Reverse: records the state before every step (2*nsteps doubles), then walks back.
 * On entry ubar = cotangent of u after execution; on exit ubar = gradient w.r.t. the initial
 * u; pbar += gradient w.r.t. p. Returns the primal, or NAN if the tape allocation failed. */
EXPORT double lv_rev(const double *p, double *pbar, double *u, double *ubar, double dt,
                     int64_t nsteps, double dret) {
    const double h2 = 0.5 * dt, h6 = dt / 6.0;
    double *tape = (double *)malloc(sizeof(double) * 2 * (size_t)(nsteps > 0 ? nsteps : 1));
    if (!tape) return NAN;
    /* forward sweep (recording) */
    for (int64_t k = 0; k < nsteps; ++k) {
        double x = u[0], y = u[1];
        double k1x, k1y, k2x, k2y, k3x, k3y, k4x, k4y;
        tape[2 * k] = x;
        tape[2 * k + 1] = y;
        lv_rhs(p, x, y, &k1x, &k1y);
        lv_rhs(p, x + h2 * k1x, y + h2 * k1y, &k2x, &k2y);
        lv_rhs(p, x + h2 * k2x, y + h2 * k2y, &k3x, &k3y);
        lv_rhs(p, x + dt * k3x, y + dt * k3y, &k4x, &k4y);
        u[0] = x + h6 * (k1x + 2.0 * k2x + 2.0 * k3x + k4x);
        u[1] = y + h6 * (k1y + 2.0 * k2y + 2.0 * k3y + k4y);
    }
    const double z = u[0];
    /* return u[0]: its cotangent adds to the shadow of u[0] */
    double xb = ubar[0] + dret, yb = ubar[1];
    double pb[4] = {0.0, 0.0, 0.0, 0.0};
    /* reverse sweep */
    for (int64_t k = nsteps - 1; k >= 0; --k) {
        double x = tape[2 * k], y = tape[2 * k + 1];
        double k1x, k1y, k2x, k2y, k3x, k3y;
        double s2x, s2y, s3x, s3y, s4x, s4y;
        lv_rhs(p, x, y, &k1x, &k1y);
        s2x = x + h2 * k1x; s2y = y + h2 * k1y;
        lv_rhs(p, s2x, s2y, &k2x, &k2y);
        s3x = x + h2 * k2x; s3y = y + h2 * k2y;
        lv_rhs(p, s3x, s3y, &k3x, &k3y);
        s4x = x + dt * k3x; s4y = y + dt * k3y;
        /* u_new = u + h6 (k1 + 2 k2 + 2 k3 + k4) */
        double k1bx = h6 * xb, k1by = h6 * yb;
        double k2bx = 2.0 * h6 * xb, k2by = 2.0 * h6 * yb;
        double k3bx = 2.0 * h6 * xb, k3by = 2.0 * h6 * yb;
        double k4bx = h6 * xb, k4by = h6 * yb;
        double sbx, sby;
        /* k4 = f(s4), s4 = u + dt k3 */
        sbx = 0.0; sby = 0.0;
        lv_rhs_bar(p, s4x, s4y, k4bx, k4by, &sbx, &sby, pb);
        xb += sbx; yb += sby; k3bx += dt * sbx; k3by += dt * sby;
        /* k3 = f(s3), s3 = u + h2 k2 */
        sbx = 0.0; sby = 0.0;
        lv_rhs_bar(p, s3x, s3y, k3bx, k3by, &sbx, &sby, pb);
        xb += sbx; yb += sby; k2bx += h2 * sbx; k2by += h2 * sby;
        /* k2 = f(s2), s2 = u + h2 k1 */
        sbx = 0.0; sby = 0.0;
        lv_rhs_bar(p, s2x, s2y, k2bx, k2by, &sbx, &sby, pb);
        xb += sbx; yb += sby; k1bx += h2 * sbx; k1by += h2 * sby;
        /* k1 = f(u) */
        lv_rhs_bar(p, x, y, k1bx, k1by, &xb, &yb, pb);
    }
    ubar[0] = xb;
    ubar[1] = yb;
    for (int i = 0; i < 4; ++i) pbar[i] += pb[i];
    free(tape);
    return z;
}

/* ---------------------------------------------------------------- (c) stencil
 * Nonlinear 5-point stencil, Gauss-Seidel order, updated in place on an nx x ny grid
 * (boundary fixed), nsteps sweeps:
 *   v = u[i,j];  u[i,j] = v + kappa * (u[i-1,j] + u[i+1,j] + u[i,j-1] + u[i,j+1] - 4 v) - g v^3
 * Returns 0.5 * sum(u^2) after the sweeps.
 */
EXPORT double stencil_primal(double *u, int64_t nx, int64_t ny, double kappa, double g,
                             int64_t nsteps) {
    for (int64_t it = 0; it < nsteps; ++it)
        for (int64_t i = 1; i < nx - 1; ++i)
            for (int64_t j = 1; j < ny - 1; ++j) {
                double *c = u + i * ny + j;
                double v = c[0];
                double lap = c[-ny] + c[ny] + c[-1] + c[1] - 4.0 * v;
                c[0] = v + kappa * lap - g * v * v * v;
            }
    double s = 0.0;
    for (int64_t i = 0; i < nx; ++i)
        for (int64_t j = 0; j < ny; ++j) s += u[i * ny + j] * u[i * ny + j];
    return 0.5 * s;
}

EXPORT double stencil_fwd(double *u, double *du, int64_t nx, int64_t ny, double kappa, double g,
                          int64_t nsteps) {
    for (int64_t it = 0; it < nsteps; ++it)
        for (int64_t i = 1; i < nx - 1; ++i)
            for (int64_t j = 1; j < ny - 1; ++j) {
                double *c = u + i * ny + j, *dc = du + i * ny + j;
                double v = c[0], dv = dc[0];
                double lap = c[-ny] + c[ny] + c[-1] + c[1] - 4.0 * v;
                double dlap = dc[-ny] + dc[ny] + dc[-1] + dc[1] - 4.0 * dv;
                c[0] = v + kappa * lap - g * v * v * v;
                dc[0] = dv + kappa * dlap - 3.0 * g * v * v * dv;
            }
    double ds = 0.0;
    for (int64_t i = 0; i < nx; ++i)
        for (int64_t j = 0; j < ny; ++j) ds += u[i * ny + j] * du[i * ny + j];
    return ds;
}

/* ---------------------------------------------------------------- (d) GMM (GradBench / ADBench)
 * Log-likelihood of a Gaussian mixture with a Wishart prior, as in bench/evals/gmm.py:
 * alpha[k], mu[k*d], q[k*d] (log of the precision factor's diagonal), l[k*ls] (its strictly
 * lower triangle, column by column; ls = d(d-1)/2), x[n*d]; `c` is the prior's constant
 * k * C(d, m, gamma), passed in (it needs the multivariate log-gamma function).
 * gmm_rev adds the gradient (seeded by dret) into alpha_b, mu_b, q_b, l_b and returns the
 * primal; both return NAN if scratch allocation fails.
 */
static double gmm_lse(const double *v, int64_t n) {
    double mx = v[0], s = 0.0;
    for (int64_t i = 1; i < n; ++i) if (v[i] > mx) mx = v[i];
    for (int64_t i = 0; i < n; ++i) s += exp(v[i] - mx);
    return log(s) + mx;
}

/* qx = Q_k (x_i - mu_k) for component k, xc = x_i - mu_k */
static void gmm_qx(int64_t d, const double *qdiag, const double *lk, const double *xi,
                   const double *muk, double *xc, double *qx) {
    for (int64_t j = 0; j < d; ++j) xc[j] = xi[j] - muk[j];
    for (int64_t j = 0; j < d; ++j) qx[j] = qdiag[j] * xc[j];
    int64_t idx = 0;
    for (int64_t i = 0; i < d; ++i)
        for (int64_t j = i + 1; j < d; ++j) qx[j] += lk[idx++] * xc[i];
}

static double gmm_sweep(int64_t d, int64_t k, int64_t n, const double *alpha, const double *mu,
                        const double *q, const double *l, const double *x, double gamma,
                        int64_t m, double c, double *alpha_b, double *mu_b, double *q_b,
                        double *l_b, double dret) {
    const int64_t ls = d * (d - 1) / 2;
    const int grad = alpha_b != NULL;
    double *buf = (double *)malloc(sizeof(double) * (size_t)(k * d + 2 * k + 3 * d + 1));
    if (!buf) return NAN;
    double *qdiag = buf, *sum_qs = qdiag + k * d, *main_t = sum_qs + k, *xc = main_t + k;
    double *qx = xc + d, *qxb = qx + d;
    for (int64_t ik = 0; ik < k; ++ik) {
        double s = 0.0;
        for (int64_t j = 0; j < d; ++j) {
            qdiag[ik * d + j] = exp(q[ik * d + j]);
            s += q[ik * d + j];
        }
        sum_qs[ik] = s;
    }
    double slse = 0.0;
    for (int64_t ix = 0; ix < n; ++ix) {
        const double *xi = x + ix * d;
        for (int64_t ik = 0; ik < k; ++ik) {
            gmm_qx(d, qdiag + ik * d, l + ik * ls, xi, mu + ik * d, xc, qx);
            double sq = 0.0;
            for (int64_t j = 0; j < d; ++j) sq += qx[j] * qx[j];
            main_t[ik] = alpha[ik] + sum_qs[ik] - 0.5 * sq;
        }
        double lse = gmm_lse(main_t, k);
        slse += lse;
        if (!grad) continue;
        /* d lse / d main_k = softmax; main_k = alpha_k + sum_qs_k - |qx|^2 / 2 */
        for (int64_t ik = 0; ik < k; ++ik) {
            double wk = dret * exp(main_t[ik] - lse);
            const double *qd = qdiag + ik * d, *lk = l + ik * ls;
            alpha_b[ik] += wk;
            gmm_qx(d, qd, lk, xi, mu + ik * d, xc, qx);
            for (int64_t j = 0; j < d; ++j) {
                q_b[ik * d + j] += wk;
                qxb[j] = -wk * qx[j];
            }
            /* back through qx = diag(qd) xc + L xc: xc_b (kept in qx) and l_b, q_b */
            for (int64_t j = 0; j < d; ++j) {
                q_b[ik * d + j] += qxb[j] * qd[j] * xc[j];
                qx[j] = qxb[j] * qd[j];
            }
            int64_t idx = 0;
            for (int64_t i = 0; i < d; ++i)
                for (int64_t j = i + 1; j < d; ++j, ++idx) {
                    l_b[ik * ls + idx] += qxb[j] * xc[i];
                    qx[i] += lk[idx] * qxb[j];
                }
            for (int64_t j = 0; j < d; ++j) mu_b[ik * d + j] -= qx[j];
        }
    }
    double prior = 0.0;
    for (int64_t ik = 0; ik < k; ++ik) {
        double frob = 0.0;
        for (int64_t j = 0; j < d; ++j) frob += qdiag[ik * d + j] * qdiag[ik * d + j];
        for (int64_t j = 0; j < ls; ++j) frob += l[ik * ls + j] * l[ik * ls + j];
        prior += 0.5 * gamma * gamma * frob - (double)m * sum_qs[ik];
    }
    double lse_alpha = gmm_lse(alpha, k);
    if (grad) {
        for (int64_t ik = 0; ik < k; ++ik) {
            alpha_b[ik] -= dret * (double)n * exp(alpha[ik] - lse_alpha);
            for (int64_t j = 0; j < d; ++j) {
                double qd = qdiag[ik * d + j];
                q_b[ik * d + j] += dret * ((double)m - gamma * gamma * qd * qd);
            }
            for (int64_t j = 0; j < ls; ++j) l_b[ik * ls + j] -= dret * gamma * gamma * l[ik * ls + j];
        }
    }
    free(buf);
    const double cst = -(double)n * (double)d * 0.5 * log(2.0 * M_PI);
    return cst + slse - (double)n * lse_alpha - prior + c;
}

EXPORT double gmm_primal(int64_t d, int64_t k, int64_t n, const double *alpha, const double *mu,
                         const double *q, const double *l, const double *x, double gamma,
                         int64_t m, double c) {
    return gmm_sweep(d, k, n, alpha, mu, q, l, x, gamma, m, c, NULL, NULL, NULL, NULL, 0.0);
}

EXPORT double gmm_rev(int64_t d, int64_t k, int64_t n, const double *alpha, double *alpha_b,
                      const double *mu, double *mu_b, const double *q, double *q_b,
                      const double *l, double *l_b, const double *x, double gamma, int64_t m,
                      double c, double dret) {
    return gmm_sweep(d, k, n, alpha, mu, q, l, x, gamma, m, c, alpha_b, mu_b, q_b, l_b, dret);
}
