"""Compiled homotopy (positive LARS-lasso) for one shared dictionary and many targets.

Per target, it follows the exact regularisation path of

    min_{w >= 0}  w^T G w - 2 c^T w + 2 mu * sum(w)        (mu = lambda / 2)

from mu_max = max(c) down through a descending list of stops, restricted to a working set of
concepts (G and c are gathered for that set). Each step adds or drops one concept and keeps a
Cholesky factor of the active Gram block, so a step costs O(m |A|) for m working-set concepts.
The caller checks the result against all concepts and enlarges the working set when needed.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from audioconcepts.decompose._cholesky import BUDGET, DEGENERATE, FAST, OK, chol_append, chol_delete, chol_solve



@nb.njit(cache=True, fastmath=FAST, nogil=True)
def homotopy_path(G, c, stops, max_nnz, max_steps, out_idx, out_w, out_nnz, out_mu):
    """Follow the path on one working set and record the solution at each stop.

    G: (m, m) Gram block (float64, rows C-contiguous); c: (m,) correlations with the target;
    stops: descending mu values at which to record; max_nnz: stop before the active set would
    exceed this (the target_l0 rule); out_*: per-stop outputs (support in working-set indices,
    weights, count, and the mu actually reached). Returns an exit code.
    """
    m = c.shape[0]
    n_stops = stops.shape[0]
    cap = min(m, max_nnz) + 1
    L = np.zeros((cap, cap))
    act = np.empty(cap, np.int64)
    in_act = np.zeros(m, np.bool_)
    w = np.zeros(cap)
    u = np.zeros(cap)
    tmp = np.zeros(cap)
    ones = np.ones(cap)
    a = np.empty(m)
    rho = c.copy()
    t = 0
    s = 0
    status = OK

    # Entry point: the largest correlation.
    jmax = 0
    for j in range(1, m):
        if rho[j] > rho[jmax]:
            jmax = j
    mu = rho[jmax]
    while s < n_stops and stops[s] >= mu:
        out_nnz[s] = 0
        out_mu[s] = stops[s]
        s += 1
    if s == n_stops:
        return OK
    if max_nnz < 1:
        for q in range(s, n_stops):
            out_nnz[q] = 0
            out_mu[q] = mu
        return OK
    L[0, 0] = np.sqrt(G[jmax, jmax])
    act[0] = jmax
    in_act[jmax] = True
    t = 1

    steps = 0
    while s < n_stops:
        steps += 1
        if steps > max_steps:
            status = BUDGET
            break
        chol_solve(L, t, ones, u, tmp)
        # a = G[:, A] u  (the rate at which each correlation falls as mu falls)
        for j in range(m):
            a[j] = 0.0
        for p in range(t):
            up = u[p]
            row = G[act[p]]
            for j in range(m):
                a[j] += row[j] * up
        # The next event: reach a stop, a concept joins, or an active weight hits zero.
        delta = mu - stops[s]
        kind = 0
        who = -1
        for j in range(m):
            if not in_act[j] and a[j] < 1.0 - 1e-12:
                dj = (mu - rho[j]) / (1.0 - a[j])
                if dj < delta:
                    delta = dj
                    kind = 1
                    who = j
        for p in range(t):
            if u[p] < 0.0:
                dp = -w[p] / u[p]
                if dp < delta:
                    delta = dp
                    kind = 2
                    who = p
        if delta < 0.0:
            delta = 0.0
        if kind == 1 and t >= max_nnz:
            # The path would exceed max_nnz here: this breakpoint is the answer for every stop left.
            kind = 0
            for p in range(t):
                w[p] += delta * u[p]
            mu -= delta
            for q in range(s, n_stops):
                out_nnz[q] = t
                out_mu[q] = mu
                for p in range(t):
                    out_idx[q, p] = act[p]
                    out_w[q, p] = w[p]
            s = n_stops
            break
        for p in range(t):
            w[p] += delta * u[p]
        for j in range(m):
            rho[j] -= delta * a[j]
        mu -= delta
        if kind == 0:
            out_nnz[s] = t
            out_mu[s] = stops[s]
            for p in range(t):
                out_idx[s, p] = act[p]
                out_w[s, p] = w[p]
            s += 1
        elif kind == 1:
            col = tmp  # reuse as scratch for G[A, who]
            for p in range(t):
                col[p] = G[act[p], who]
            if chol_append(L, t, col, G[who, who]):
                act[t] = who
                w[t] = 0.0
                in_act[who] = True
                t += 1
            else:
                status = DEGENERATE
                rho[who] = -np.inf  # never consider it again on this path
        else:
            in_act[act[who]] = False
            rho[act[who]] = mu  # it sits exactly on the boundary as it leaves
            chol_delete(L, t, who)
            for p in range(who, t - 1):
                act[p] = act[p + 1]
                w[p] = w[p + 1]
            t -= 1
            w[t] = 0.0
            if t == 0:
                # Empty active set again: restart from the largest correlation.
                jmax = 0
                for j in range(1, m):
                    if rho[j] > rho[jmax]:
                        jmax = j
                L[0, 0] = np.sqrt(G[jmax, jmax])
                act[0] = jmax
                in_act[jmax] = True
                t = 1
    if status == BUDGET:
        for q in range(s, n_stops):
            out_nnz[q] = t
            out_mu[q] = mu
            for p in range(t):
                out_idx[q, p] = act[p]
                out_w[q, p] = w[p]
    return status
