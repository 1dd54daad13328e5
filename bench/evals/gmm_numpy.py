"""``gmm`` as NumPy users write it: the log-likelihood of ``gmm.py`` (ADBench's), all points
at once: per component its precision factor as a matrix, the centred data times it by
``np.dot``, then a row-wise logsumexp; where ``gmm.py`` keeps ADBench's loops over points.
Same inputs, differentiated arguments and JAX / PyTorch versions as ``gmm.py``.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit
from .gmm import ACTIVE, SIZES, array_objective, log_gamma_distrib, make_inputs, size_label

__all__ = ["ACTIVE", "PRIMAL", "SIZES", "array_objective", "make_inputs", "size_label"]


@jit
def gmm_numpy(alpha, mu, q, l, x, gamma, m):
    k, d = mu.shape
    n = x.shape[0]
    qdiag = np.exp(q)
    sum_qs = q.sum(axis=1)
    main = np.empty((n, k))
    for ik in range(k):
        Q = np.diag(qdiag[ik])
        idx = 0
        for i in range(d):
            for j in range(i + 1, d):
                Q[j, i] = l[ik, idx]
                idx += 1
        qx = np.dot(x - mu[ik], Q.T)
        main[:, ik] = alpha[ik] + sum_qs[ik] - 0.5 * (qx * qx).sum(axis=1)
    top = np.empty(n)
    for i in range(n):
        top[i] = main[i].max()
    slse = np.sum(np.log(np.exp(main - top.reshape(n, 1)).sum(axis=1)) + top)
    lse_alpha = np.log(np.exp(alpha - alpha.max()).sum()) + alpha.max()
    nw = d + m + 1
    c = nw * d * (np.log(gamma) - 0.5 * np.log(2.0)) - log_gamma_distrib(0.5 * nw, d)
    frob = (qdiag * qdiag).sum(axis=1) + (l * l).sum(axis=1)
    prior = np.sum(0.5 * gamma * gamma * frob - m * sum_qs)
    const = -n * d * 0.5 * np.log(2.0 * np.pi)
    return const + slse - n * lse_alpha - prior + k * c


PRIMAL = gmm_numpy
