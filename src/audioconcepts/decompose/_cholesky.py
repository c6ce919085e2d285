"""Cholesky factor updates and solves shared by the compiled solvers (numba, float64)."""

from __future__ import annotations

import numba as nb
import numpy as np

# Reassociation lets reductions vectorise; inf/nan semantics stay strict.
FAST = {"reassoc", "contract", "arcp", "nsz"}

# Per-row exit codes of the compiled solvers.
OK = 0
DEGENERATE = 1  # a concept was skipped: its Gram column lies (numerically) in the support's span
BUDGET = 2  # the change budget ran out: feasible but not certified optimal


@nb.njit(cache=True, fastmath=FAST, nogil=True)
def chol_append(L, t, g_col, g_jj):
    """Append row t to the lower Cholesky factor L[:t, :t] in place; False if not positive."""
    s = g_jj
    for i in range(t):
        v = g_col[i]
        for p in range(i):
            v -= L[i, p] * L[t, p]
        v /= L[i, i]
        L[t, i] = v
        s -= v * v
    if s <= 1e-10 * g_jj:
        return False
    L[t, t] = np.sqrt(s)
    return True


@nb.njit(cache=True, fastmath=FAST, nogil=True)
def chol_delete(L, t, p):
    """Remove row and column p from the t x t factor L in place (Givens re-triangularisation)."""
    for i in range(p, t - 1):
        for j in range(i + 2):
            L[i, j] = L[i + 1, j]
    for i in range(p, t - 1):
        a = L[i, i]
        b = L[i, i + 1]
        r = np.sqrt(a * a + b * b)
        cs = a / r
        sn = b / r
        for q in range(i, t - 1):
            x = L[q, i]
            y = L[q, i + 1]
            L[q, i] = cs * x + sn * y
            L[q, i + 1] = -sn * x + cs * y
        L[i, i + 1] = 0.0
    for j in range(t):
        L[t - 1, j] = 0.0
        L[j, t - 1] = 0.0


@nb.njit(cache=True, fastmath=FAST, nogil=True)
def chol_solve(L, t, b, x, tmp):
    """x[:t] = (L L^T)^{-1} b[:t]  (tmp: scratch of length >= t)."""
    for i in range(t):
        v = b[i]
        for p in range(i):
            v -= L[i, p] * tmp[p]
        tmp[i] = v / L[i, i]
    for i in range(t - 1, -1, -1):
        x[i] = tmp[i] / L[i, i]
        xi = x[i]
        for p in range(i):
            tmp[p] -= L[i, p] * xi
