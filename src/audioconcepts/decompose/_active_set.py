"""Compiled primal active-set method for the non-negative lasso, one target at a time.

For mu = lambda / 2 it solves   min_{w >= 0}  w^T G w - 2 c^T w + 2 mu * sum(w)
(G = C C^T of the preprocessed concepts, c = C z), i.e. ||C^T w - z||^2 + lambda ||w||_1 up to
a constant. It starts from a given support (warm start), adds the most violating concepts in
blocks that double the support (one at a time, Lawson-Hanson style, whenever a block fails to
lower the objective), steps back to feasibility and drops concepts that reach zero. A Cholesky
factor of the support's Gram block is updated in place, so a change costs O(|S|^2), and the
residual correlations of all concepts are updated once per block, O(k |S|).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from audioconcepts.decompose._cholesky import BUDGET, DEGENERATE, FAST, OK, chol_append, chol_delete, chol_solve




@nb.njit(cache=True, fastmath=FAST, nogil=True)
def residual_correlations(G, c, S, w, t, rho):
    """rho = c - G[:, S] w, from scratch (G symmetric, so its rows serve as columns)."""
    k = c.shape[0]
    for j in range(k):
        rho[j] = c[j]
    for p in range(t):
        row = G[S[p]]
        wp = w[p]
        for j in range(k):
            rho[j] -= row[j] * wp


@nb.njit(cache=True, nogil=True)
def make_workspace(k, cap):
    """(L, b, z, tmp, col, state, order, skipped): scratch for active_set_solve, support capacity cap."""
    return (
        np.empty((cap, cap)),
        np.empty(cap),
        np.empty(cap),
        np.empty(cap),
        np.empty(cap),
        np.zeros(k, np.int8),
        np.empty(k, np.int64),
        np.empty(k, np.int64),
    )


@nb.njit(cache=True, fastmath=FAST, nogil=True)
def active_set_solve(G, c, mu, S, w, n_init, tol, max_changes, rho, ws):
    """Solve one row from the warm start (S[:n_init], w[:n_init] >= 0), updating S, w in place.

    G: (k, k) Gram, c: (k,) correlations, rho: (k,) output, the final residual correlations
    c - G[:, S] w (recomputed from scratch); ws: a make_workspace() tuple.
    Returns (support size, status).
    """
    k = c.shape[0]
    cap = S.shape[0]
    L, b, z, tmp, col, state, order, skipped = ws
    n_skip = 0
    status = OK

    t = 0  # factor the warm-start support, skipping degenerate members
    for q in range(n_init):
        j = S[q]
        if state[j] != 0:
            continue
        for p in range(t):
            col[p] = G[S[p], j]
        if chol_append(L, t, col, G[j, j]):
            S[t] = j
            w[t] = max(w[q], 0.0)
            state[j] = 1
            t += 1
    residual_correlations(G, c, S, w, t, rho)

    changes = 0
    single = False
    refreshed = False
    f_old = np.inf
    while True:
        # Candidates: concepts off the support whose correlation exceeds mu.
        n_viol = 0
        for j in range(k):
            if state[j] == 0 and rho[j] > mu + tol:
                order[n_viol] = j
                n_viol += 1
        if n_viol == 0:
            if refreshed:
                break
            # Confirm on correlations recomputed from scratch (incremental updates drift).
            residual_correlations(G, c, S, w, t, rho)
            refreshed = True
            continue
        refreshed = False
        room = cap - t
        if room <= 0:
            status = BUDGET
            break
        q = 1 if single else max(8, t)
        q = min(q, n_viol, room)
        # Partial selection of the q largest violations (q is small next to n_viol).
        for a in range(q):
            best = a
            for i in range(a + 1, n_viol):
                if rho[order[i]] > rho[order[best]]:
                    best = i
            order[a], order[best] = order[best], order[a]
        t0 = t
        for a in range(q):
            j = order[a]
            for p in range(t):
                col[p] = G[S[p], j]
            if chol_append(L, t, col, G[j, j]):
                S[t] = j
                w[t] = 0.0
                state[j] = 1
                t += 1
            else:
                status = DEGENERATE
                state[j] = 2  # never a candidate again in this solve
                skipped[n_skip] = j
                n_skip += 1
        if t == t0:
            continue
        # Solve on the support, step back to feasibility, drop members that reach zero.
        # rho is left alone here and brought up to date once afterwards.
        while True:
            changes += 1
            if changes > max_changes:
                residual_correlations(G, c, S, w, t, rho)
                _clear(state, S, t, skipped, n_skip)
                return t, BUDGET
            for p in range(t):
                b[p] = c[S[p]] - mu
            chol_solve(L, t, b, z, tmp)
            # New members that would go negative leave at once (they have not moved yet).
            n_drop = 0
            for p in range(t):
                if w[p] == 0.0 and z[p] <= 0.0:
                    n_drop += 1
            if n_drop == 0:
                alpha = 1.0
                block = -1
                for p in range(t):
                    if z[p] <= 0.0:
                        ap = w[p] / (w[p] - z[p])
                        if ap < alpha:
                            alpha = ap
                            block = p
                for p in range(t):
                    w[p] += alpha * (z[p] - w[p])
                if block < 0:
                    break
                w[block] = 0.0  # it lands exactly on zero; rounding must not keep it alive
            p = 0
            while p < t:
                if w[p] <= 0.0 and (n_drop == 0 or z[p] <= 0.0):
                    state[S[p]] = 0
                    chol_delete(L, t, p)
                    for r in range(p, t - 1):
                        S[r] = S[r + 1]
                        w[r] = w[r + 1]
                        z[r] = z[r + 1]
                    t -= 1
                else:
                    p += 1
            if t == 0:
                break
        residual_correlations(G, c, S, w, t, rho)
        # Objective (up to a constant): sum_S w (2 mu - c - rho).
        f_new = 0.0
        for p in range(t):
            f_new += w[p] * (2.0 * mu - c[S[p]] - rho[S[p]])
        single = not (f_new < f_old - 1e-15 * abs(f_old)) if f_old < np.inf else False
        f_old = f_new
    _clear(state, S, t, skipped, n_skip)
    return t, status


@nb.njit(cache=True, nogil=True)
def _clear(state, S, t, skipped, n_skip):
    """Leave the workspace's state array all zero for the next row."""
    for p in range(t):
        state[S[p]] = 0
    for q in range(n_skip):
        state[skipped[q]] = 0
