"""Optimality certificates for  min_{w >= 0} ||C^T w - z||^2 + lambda ||w||_1, per row.

Both are computed from the residual r = z - C^T w and its correlations rho = C r:
- duality gap: P(w) - D(theta) with the feasible dual point theta = s r,
  s = min(1, (lambda/2) / max(rho)); it bounds P(w) - P(w*) from above;
- KKT violation: max over concepts of |2 rho_j - lambda| on the support and
  max(2 rho_j - lambda, 0) off it (0 at the exact solution).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

#: Rows per chunk are chosen so that a chunk's (rows, k) correlation block stays near 128 MiB.
CHUNK_ENTRIES = 1 << 24


def certify(
    Z: np.ndarray, C: np.ndarray, codes: sp.csr_matrix, lambdas: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    """(duality gap, KKT violation) per row, in float64, with bounded memory."""
    n, k = codes.shape
    lam = np.broadcast_to(np.asarray(lambdas, dtype=np.float64), (n,))
    gap = np.empty(n)
    kkt = np.empty(n)
    step = max(1, CHUNK_ENTRIES // max(k, 1))
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        W = codes[lo:hi]
        z = np.asarray(Z[lo:hi], dtype=np.float64)
        r = z - W @ C
        rho = r @ C.T
        l = lam[lo:hi]
        r2 = np.einsum("ij,ij->i", r, r)
        primal = r2 + l * np.asarray(W.sum(axis=1)).ravel()
        top = rho.max(axis=1)
        s = np.where(top > l / 2, (l / 2) / np.where(top > 0, top, 1.0), 1.0)
        dual = 2 * s * np.einsum("ij,ij->i", r, z) - s * s * r2
        gap[lo:hi] = np.maximum(primal - dual, 0.0)
        viol = np.maximum(2 * rho - l[:, None], 0.0)
        on = W.tocoo()
        viol[on.row, on.col] = np.abs(2 * rho[on.row, on.col] - l[on.row])
        kkt[lo:hi] = viol.max(axis=1) if k else 0.0
    return gap, kkt
