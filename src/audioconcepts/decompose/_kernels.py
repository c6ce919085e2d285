"""Compiled (numba) kernels of the CPU solvers, all in one module.

Numba's on-disk cache is keyed on the file of the function it compiles, so kernels that call one
another live together: editing any of them invalidates all of them.

- Cholesky factor updates (append a row, delete a row/column by Givens rotations) and solves.
- active_set_solve: primal active-set method for one target at a fixed lambda, warm-startable.
  It adds the most violating concepts in blocks that double the support (one at a time,
  Lawson-Hanson style, whenever a block fails to lower the objective), steps back to feasibility
  and drops concepts that reach zero. A change costs O(|S|^2); residual correlations of all
  concepts are refreshed once per block, O(k |S|).
- homotopy_path: the exact regularisation path (positive LARS-lasso) of one target, for target_l0.
- solve_rows / path_rows: the parallel batch drivers (one target per thread at a time).

Problem, with mu = lambda / 2, G = C C^T of the preprocessed concepts and c = C z:
    min_{w >= 0}  w^T G w - 2 c^T w + 2 mu * sum(w)  ==  ||C^T w - z||^2 + lambda ||w||_1 + const.
"""

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


@nb.njit(cache=True, fastmath=FAST, nogil=True)
def gram_column(G, C, S, t, j, col):
    """col[p] = <C_{S_p}, C_j> for p < t; returns <C_j, C_j>. An empty G means: compute from C."""
    if G.shape[0] > 0:
        for p in range(t):
            col[p] = G[S[p], j]
        return G[j, j]
    cj = C[j]
    for p in range(t):
        cp = C[S[p]]
        v = 0.0
        for q in range(cj.shape[0]):
            v += cp[q] * cj[q]
        col[p] = v
    v = 0.0
    for q in range(cj.shape[0]):
        v += cj[q] * cj[q]
    return v


@nb.njit(cache=True, fastmath=FAST, nogil=True)
def gram_combination(G, C, S, coef, t, out, scratch):
    """out = G[:, S] coef, i.e. <C_j, sum_p coef_p C_{S_p}> for every concept j.

    With the Gram matrix this reads t of its rows (O(k t)); without it, one pass over C (O(k d)).
    scratch: a length-d buffer.
    """
    k = out.shape[0]
    for j in range(k):
        out[j] = 0.0
    if G.shape[0] > 0:
        for p in range(t):
            row = G[S[p]]
            cp = coef[p]
            for j in range(k):
                out[j] += row[j] * cp
        return
    d = C.shape[1]
    for q in range(d):
        scratch[q] = 0.0
    for p in range(t):
        row = C[S[p]]
        cp = coef[p]
        for q in range(d):
            scratch[q] += row[q] * cp
    for j in range(k):
        row = C[j]
        v = 0.0
        for q in range(d):
            v += row[q] * scratch[q]
        out[j] = v


@nb.njit(cache=True, fastmath=FAST, nogil=True)
def residual_correlations(G, C, c, S, w, t, rho, scratch):
    """rho = c - G[:, S] w: the correlation of every concept with the residual, from scratch."""
    gram_combination(G, C, S, w, t, rho, scratch)
    for j in range(c.shape[0]):
        rho[j] = c[j] - rho[j]


@nb.njit(cache=True, nogil=True)
def make_workspace(k, d, cap):
    """(L, b, z, tmp, col, state, order, skipped, vec): scratch for active_set_solve, support capacity cap."""
    return (
        np.empty((cap, cap)),
        np.empty(cap),
        np.empty(cap),
        np.empty(cap),
        np.empty(cap),
        np.zeros(k, np.int8),
        np.empty(k, np.int64),
        np.empty(k, np.int64),
        np.empty(d),
    )


@nb.njit(cache=True, fastmath=FAST, nogil=True)
def active_set_solve(G, C, c, mu, S, w, n_init, tol, max_changes, rho, ws):
    """Solve one row from the warm start (S[:n_init], w[:n_init] >= 0), updating S, w in place.

    G: (k, k) Gram, or (0, 0) to work from C (k, d) alone; c: (k,) correlations; rho: (k,) output, the final residual correlations
    c - G[:, S] w (recomputed from scratch); ws: a make_workspace() tuple.
    Returns (support size, status).
    """
    k = c.shape[0]
    cap = S.shape[0]
    L, b, z, tmp, col, state, order, skipped, vec = ws
    n_skip = 0

    t = 0  # factor the warm-start support, skipping degenerate members
    for q in range(n_init):
        j = S[q]
        if state[j] != 0:
            continue
        if chol_append(L, t, col, gram_column(G, C, S, t, j, col)):
            S[t] = j
            w[t] = max(w[q], 0.0)
            state[j] = 1
            t += 1
    residual_correlations(G, C, c, S, w, t, rho, vec)

    changes = 0
    need_solve = t > 0
    single = False
    refreshed = False
    f_old = np.inf
    while True:
        if need_solve:  # a warm start's weights belong to another lambda: solve first
            need_solve = False
        else:
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
                residual_correlations(G, C, c, S, w, t, rho, vec)
                refreshed = True
                continue
            refreshed = False
            room = cap - t  # >= 1: the support never exceeds min(k, rank) < cap
            q = 1 if single else max(8, t)
            q = min(q, n_viol, room)
            # Partial selection of the q largest violations (q is small next to n_viol).
            for a in range(q):
                best = a
                for i in range(a + 1, n_viol):
                    if rho[order[i]] > rho[order[best]]:
                        best = i
                order[a], order[best] = order[best], order[a]
            changed = False
            for a in range(q):
                j = order[a]
                if chol_append(L, t, col, gram_column(G, C, S, t, j, col)):
                    S[t] = j
                    w[t] = 0.0
                    state[j] = 1
                    t += 1
                    changed = True
                    continue
                # j lies in the span of the support: C_j = sum_p a_p C_{S_p}, with L^T a = L[t, :t].
                # Shifting weight onto j along that combination keeps the residual and lowers the
                # l1 term when sum(a) > 1 (which is what j's violation means); it moves until a
                # member reaches zero, and that member gives j its place.
                sa = 0.0
                for i in range(t - 1, -1, -1):
                    v = L[t, i]
                    for p in range(i + 1, t):
                        v -= L[p, i] * z[p]
                    z[i] = v / L[i, i]
                    sa += z[i]
                out = -1
                delta = np.inf
                if sa > 1.0 + 1e-12:
                    for p in range(t):
                        if z[p] > 0.0 and w[p] / z[p] < delta:
                            delta = w[p] / z[p]
                            out = p
                if out < 0:
                    state[j] = 2  # never a candidate again until the support shrinks
                    skipped[n_skip] = j
                    n_skip += 1
                    continue
                for p in range(t):
                    w[p] -= delta * z[p]
                state[S[out]] = 0
                chol_delete(L, t, out)
                for r in range(out, t - 1):
                    S[r] = S[r + 1]
                    w[r] = w[r + 1]
                t -= 1
                if chol_append(L, t, col, gram_column(G, C, S, t, j, col)):
                    S[t] = j
                    w[t] = delta
                    state[j] = 1
                    t += 1
                changed = True
            if not changed:
                continue
        # Solve on the support, step back to feasibility, drop members that reach zero.
        # rho is left alone here and brought up to date once afterwards.
        while True:
            changes += 1
            if changes > max_changes:
                residual_correlations(G, C, c, S, w, t, rho, vec)
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
        # Skips were judged against a support that was not yet solved (or has since shrunk):
        # let every skipped concept be tried again against this solution.
        for q in range(n_skip):
            state[skipped[q]] = 0
        n_skip = 0
        residual_correlations(G, C, c, S, w, t, rho, vec)
        # Objective (up to a constant): sum_S w (2 mu - c - rho).
        f_new = 0.0
        for p in range(t):
            f_new += w[p] * (2.0 * mu - c[S[p]] - rho[S[p]])
        single = not (f_new < f_old - 1e-15 * abs(f_old)) if f_old < np.inf else False
        f_old = f_new
    status = DEGENERATE if n_skip > 0 else OK
    _clear(state, S, t, skipped, n_skip)
    return t, status


@nb.njit(cache=True, nogil=True)
def _clear(state, S, t, skipped, n_skip):
    """Leave the workspace's state array all zero for the next row."""
    for p in range(t):
        state[S[p]] = 0
    for q in range(n_skip):
        state[skipped[q]] = 0


@nb.njit(cache=True, fastmath=FAST, nogil=True)
def homotopy_path(G, C, c, max_nnz, max_steps, out_idx, out_w):
    """Follow one target's exact path from lambda_max down, stopping where it would first exceed max_nnz.

    G: (k, k) Gram (or (0, 0) to work from C (k, d) alone); c: (k,) correlations with the target.
    Each step moves mu = lambda / 2 down to the next event (a concept joins or an active weight
    reaches zero) with a Cholesky factor of the active Gram block kept up to date. Writes the
    support and weights at the stopping point to out_idx / out_w and returns (nnz, mu, status).
    """
    k = c.shape[0]
    cap = min(k, max_nnz) + 1
    L = np.zeros((cap, cap))
    act = np.empty(cap, np.int64)
    in_act = np.zeros(k, np.bool_)
    w = np.zeros(cap)
    u = np.zeros(cap)
    tmp = np.zeros(cap)
    ones = np.ones(cap)
    vec = np.empty(C.shape[1])
    a = np.empty(k)
    rho = c.copy()
    status = OK
    t = 0
    mu = 0.0
    steps = 0
    while steps <= max_steps:
        steps += 1
        if t == 0:  # (re)start from the largest correlation
            jmax = 0
            for j in range(1, k):
                if rho[j] > rho[jmax]:
                    jmax = j
            mu = rho[jmax]
            if mu <= 0.0 or max_nnz < 1:
                break
            L[0, 0] = np.sqrt(gram_column(G, C, act, 0, jmax, tmp))
            act[0] = jmax
            in_act[jmax] = True
            t = 1
        chol_solve(L, t, ones, u, tmp)
        gram_combination(G, C, act, u, t, a, vec)  # how fast each correlation falls with mu
        # The next event: mu reaches 0, a concept joins, or an active weight hits zero.
        delta = mu
        kind = 0
        who = -1
        for j in range(k):
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
        delta = max(delta, 0.0)
        for p in range(t):
            w[p] += delta * u[p]
        mu -= delta
        if kind == 0 or (kind == 1 and t >= max_nnz):
            break  # the end of the path, or the breakpoint before it exceeds max_nnz
        for j in range(k):
            rho[j] -= delta * a[j]
        if kind == 1:
            if chol_append(L, t, tmp, gram_column(G, C, act, t, who, tmp)):
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
    else:
        status = BUDGET
    for p in range(t):
        out_idx[p] = act[p]
        out_w[p] = w[p]
    return t, mu, status


@nb.njit(parallel=True, cache=True)
def solve_rows(G, C, corr, mus, tol, max_changes, n_threads, S, w, status, out_S, out_w, out_nnz):
    """Active-set solves for a batch along descending mus, each warm-started from the last."""
    n, k = corr.shape
    for tid in nb.prange(n_threads):
        ws = make_workspace(k, C.shape[1], S.shape[1])
        rho = np.empty(k)
        for i in range(tid, n, n_threads):
            t = 0
            for s in range(mus.shape[0]):
                t, st = active_set_solve(G, C, corr[i], mus[s], S[i], w[i], t, tol, max_changes, rho, ws)
                status[s, i] = max(status[s, i], st)
                out_nnz[s, i] = t
                for p in range(t):
                    out_S[s, i, p] = S[i, p]
                    out_w[s, i, p] = w[i, p]


@nb.njit(parallel=True, cache=True)
def path_rows(G, C, corr, max_nnz, max_steps, out_idx, out_w, out_nnz, out_mu, status):
    """homotopy_path for every row of a batch, in parallel."""
    for i in nb.prange(corr.shape[0]):
        out_nnz[i], out_mu[i], status[i] = homotopy_path(G, C, corr[i], max_nnz, max_steps, out_idx[i], out_w[i])
