"""Batched accelerated proximal-gradient solver for the non-negative lasso, in torch.

For every row z of Z it solves   min_{w >= 0} ||C^T w - z||^2 + lam * sum(w)
on a batch of rows at a time, so the same code runs on a GPU and on the CPU. The iterations are
FISTA with gradient-based adaptive restart; every CHECK_EVERY iterations each row's duality gap
is computed and certified rows leave the batch. A row whose support changed since its last
polish is "polished" (with exponential back-off): the KKT system on its support is solved exactly
in float64, concepts that come out non-positive are dropped and the most violating ones added, for
a few rounds (a batched active-set method). A polished point that is certified ends the row; one
that lowers the objective becomes FISTA's new starting point. Polishing usually ends a row long
before FISTA alone would, and makes float32 runs as accurate as float64 ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch

from audioconcepts.decompose.solvers import SolveResult

CHECK_EVERY = 10  # iterations between two convergence checks of a row
POLISH_BUDGET = 1 << 23  # elements of the largest float64 temporary built while polishing
POLISH_ROUNDS = 16  # support updates per polish: add dual violators, drop non-positive weights
DROP_ROUNDS = 5  # solves per support update: each drops the concepts that came out non-positive
ADD_MAX = 32  # most concepts a polishing round adds to a support
POLISH_MARGIN = 1e-3  # polishing goes on until the gap is below this fraction of tol (near-exact codes)
MAX_BACKOFF = 32  # most checks between two polishes of a row (the interval doubles up to this)
RIDGE = 1e-10  # added to the diagonal of a support's Gram block that is numerically singular
GRAM_MAX_K = 8000  # largest concept count for which the k x k Gram matrix is precomputed


def _duality_gap(
    w: torch.Tensor, z: torch.Tensor, r: torch.Tensor, rho: torch.Tensor, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row duality gap and primal objective of w, given its residual r = z - C^T w and rho = C r."""
    rr = (r * r).sum(1)
    primal = rr + lam * w.sum(1)
    top = rho.amax(1)
    s = torch.where(top > 0, ((lam / 2) / top).clamp(max=1.0), torch.ones_like(top))
    dual = 2 * s * (r * z).sum(1) - s * s * rr
    return primal - dual, primal


class TorchSolver:
    """FISTA with adaptive restart, per-row duality-gap stopping and float64 active-set polishing.

    device defaults to CUDA when available, dtype (of the FISTA iterations) to float32 on CUDA and
    float64 on the CPU; polishing and certificates are always float64. tol is the absolute duality
    gap at which a row counts as solved; max_iter bounds the FISTA iterations per row and lambda.
    """

    name = "torch"

    def __init__(
        self,
        concepts: np.ndarray,
        *,
        device: str | None = None,
        dtype: torch.dtype | None = None,
        batch_size: int = 1024,
        tol: float = 1e-7,
        max_iter: int = 20000,
    ) -> None:
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if dtype is None:
            dtype = torch.float32 if self.device.type == "cuda" else torch.float64
        self.dtype = dtype
        self.batch_size = int(batch_size)
        self.tol = float(tol)
        self.max_iter = int(max_iter)
        C64 = torch.as_tensor(np.ascontiguousarray(concepts, dtype=np.float64), device=self.device)
        k, d = C64.shape
        # [C | 1]: the gradient step's matrix product then also subtracts the constant lam / L
        self._C1 = torch.cat([C64.to(dtype), torch.ones((k, 1), dtype=dtype, device=self.device)], 1)
        self._C = self._C1[:, :d]
        self._C64 = self._C if dtype == torch.float64 else C64
        self._G64 = C64 @ C64.T if k <= GRAM_MAX_K else None
        # optimal supports have at most d concepts unless concepts are linearly dependent (duplicates);
        # larger ones (early FISTA iterates) are not worth polishing, and capping bounds its memory
        self._max_support = 2 * d
        # L = 2 * lambda_max(C C^T) = 2 * lambda_max(C^T C); the d x d Gram is cheap even for large k.
        top = torch.linalg.eigvalsh(C64.T @ C64)[-1].item() if k and d else 0.0
        self._lipschitz = 2.0 * top * (1 + 1e-9) if top > 0 else 1.0

    def solve(self, Z: np.ndarray, lambdas: Sequence[float]) -> list[SolveResult]:
        """Z (n, d) float64 preprocessed targets; lambdas: sequence of positive floats, strictly decreasing.
        One SolveResult per lambda, in the given order; each lambda is warm-started from the previous one."""
        lams = [float(lam) for lam in lambdas]
        if any(lam <= 0 for lam in lams) or any(b >= a for a, b in zip(lams, lams[1:])):
            raise ValueError("lambdas must be positive and strictly decreasing")
        Z = np.asarray(Z, dtype=np.float64)
        k, d = self._C64.shape
        if Z.ndim != 2 or Z.shape[1] != d:
            raise ValueError(f"Z must have shape (n, {d}), got {Z.shape}")
        codes: list[list[sp.csr_matrix]] = [[sp.csr_matrix((0, k))] for _ in lams]
        status: list[list[np.ndarray]] = [[np.zeros(0, dtype=np.int8)] for _ in lams]
        for start in range(0, Z.shape[0], self.batch_size):
            z64 = torch.as_tensor(Z[start : start + self.batch_size], device=self.device)
            w = torch.zeros((z64.shape[0], k), dtype=self.dtype, device=self.device)
            for j, lam in enumerate(lams):
                w64, st = self._solve_batch(z64, lam, w)
                w = w64.to(self.dtype)
                codes[j].append(sp.csr_matrix(w64.cpu().numpy()))
                status[j].append(st)
        results = []
        for parts, sts in zip(codes, status):
            m = sp.vstack(parts, format="csr", dtype=np.float64)
            m.eliminate_zeros()
            m.sort_indices()
            results.append(SolveResult(codes=m, status=np.concatenate(sts)))
        return results

    def _solve_batch(self, z64: torch.Tensor, lam: float, w0: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        """Solve one batch at one lambda from the warm start w0; returns float64 codes and status."""
        C, C1, dtype, tol = self._C, self._C1, self.dtype, self.tol
        m, k = w0.shape
        step = 2.0 / self._lipschitz
        out = torch.zeros((m, k), dtype=torch.float64, device=self.device)
        status = np.zeros(m, dtype=np.int8)
        rows = torch.arange(m, device=self.device)  # batch positions of the rows still iterating
        z = z64.to(dtype)
        w = w0.clone()
        diff = torch.zeros_like(w)  # last step w - w_prev
        t = torch.ones(m, dtype=dtype, device=self.device)
        supp_polished = torch.ones_like(w, dtype=torch.bool)  # support of each row's last polish
        wait = torch.zeros(m, dtype=torch.int64, device=self.device)  # checks until a row's next polish
        backoff = torch.ones_like(wait)  # doubles with every polish of a row, up to MAX_BACKOFF
        it = 0
        while True:
            r = torch.addmm(z, w, C, alpha=-1)
            gap, primal = _duality_gap(w, z, r, r @ C.T, lam)
            if dtype == torch.float64:
                cert = gap
            else:  # a low-precision gap only triggers a float64 certificate
                cert = torch.full_like(gap, torch.inf, dtype=torch.float64)
                low = torch.nonzero(gap <= tol).squeeze(1)
                if low.numel():
                    cert[low] = self._gap64(w[low].double(), z64[low], lam)[0]
            supp = w > 0
            wait -= 1
            todo = ((gap <= tol) | (wait <= 0)) & (supp != supp_polished).any(1) & (supp.sum(1) <= self._max_support)
            todo = torch.nonzero(todo).squeeze(1)
            taken, w_taken = todo[:0], out[:0]  # rows whose polished point was taken, and those points
            if todo.numel():
                supp_polished[todo] = supp[todo]
                wp, gp, pp = self._polish(z64[todo], supp[todo], lam)
                wait[todo] = backoff[todo]
                backoff[todo] = (backoff[todo] * 2).clamp(max=MAX_BACKOFF)
                # take a polished point if it is certified, or if it lowers the objective of an
                # uncertified iterate (FISTA then restarts from it)
                take = (gp <= tol) | ((cert[todo] > tol) & (pp < primal[todo]))
                taken, w_taken = todo[take], wp[take]
                cert[taken] = gp[take]
                w[taken] = w_taken.to(dtype)
                diff[taken] = 0
                t[taken] = 1

            done = cert <= tol
            if it >= self.max_iter:
                status[rows[~done].cpu().numpy()] = 2
                done = torch.ones_like(done)
            if done.any():
                out[rows[done]] = w[done].double()
                keep = done[taken]  # polished rows keep their float64 values
                out[rows[taken[keep]]] = w_taken[keep]
                live = ~done
                rows, z, z64, w, diff, t = rows[live], z[live], z64[live], w[live], diff[live], t[live]
                supp_polished, wait, backoff = supp_polished[live], wait[live], backoff[live]
                if not rows.numel():
                    return out, status

            shift = torch.full((rows.numel(), 1), lam / 2, dtype=dtype, device=self.device)
            for _ in range(min(CHECK_EVERY, self.max_iter - it)):
                t_next = (1 + torch.sqrt(1 + 4 * t * t)) / 2
                beta = (t - 1) / t_next
                y = torch.addcmul(w, beta[:, None], diff)
                # half the gradient at y, plus lam / 2, is [C^T y - z | lam / 2] @ [C | 1]^T
                half = torch.cat([torch.addmm(z, y, C, beta=-1), shift], 1)
                w_new = torch.addmm(y, half, C1.T, alpha=-step).clamp_(min=0)
                diff_new = w_new - w
                # restart when the step goes against the momentum: (y - w_new) . (w_new - w) > 0
                restart = beta * torch.linalg.vecdot(diff, diff_new) > torch.linalg.vecdot(diff_new, diff_new)
                t = torch.where(restart, torch.ones_like(t_next), t_next)
                w, diff = w_new, diff_new
            it = min(it + CHECK_EVERY, self.max_iter)

    def _gap64(self, w: torch.Tensor, z: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Duality gap, primal objective and correlations rho = C r of float64 codes w, in float64."""
        r = torch.addmm(z, w, self._C64, alpha=-1)
        rho = r @ self._C64.T
        return *_duality_gap(w, z, r, rho, lam), rho

    def _polish(
        self, z: torch.Tensor, supp: torch.Tensor, lam: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """_polish_rows on chunks of rows, so that its (rows, k) float64 temporaries stay bounded."""
        step = max(1, POLISH_BUDGET // supp.shape[1])
        parts = [self._polish_rows(z[a : a + step], supp[a : a + step], lam) for a in range(0, len(z), step)]
        return tuple(torch.cat(p) for p in zip(*parts))

    def _polish_rows(
        self, z: torch.Tensor, supp: torch.Tensor, lam: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Batched active-set refinement of FISTA's supports, in float64.

        Solves the KKT system exactly on each row's support, then adds the concepts that violate dual
        feasibility most (at most ADD_MAX at a time) and re-solves, for a few rounds. Returns, per row,
        the valid point of lowest objective (or the last one certified to tol), its gap and its
        objective (inf if no round produced a valid point)."""
        m, k = supp.shape
        lam2 = lam / 2
        best = torch.zeros((m, k), dtype=torch.float64, device=self.device)
        best_gap = torch.full((m,), torch.inf, dtype=torch.float64, device=self.device)
        best_primal = best_gap.clone()
        cz = z @ self._C64.T
        act = torch.arange(m, device=self.device)
        for _ in range(POLISH_ROUNDS):
            ws, ok = self._face_solve(cz[act], supp, lam)
            gap, primal, rho = self._gap64(ws, z[act], lam)
            # a certified point beats any uncertified one; among uncertified ones the lowest objective wins
            better = ok & ((gap <= self.tol) | ((best_gap[act] > self.tol) & (primal < best_primal[act])))
            best[act[better]] = ws[better]
            best_gap[act[better]] = gap[better]
            best_primal[act[better]] = primal[better]
            supp = ws > 0
            excess = torch.where(supp, -torch.inf, rho - lam2)
            top = torch.topk(excess, min(ADD_MAX, k), dim=1)
            supp.scatter_(1, top.indices, top.values > 0)
            grow = ok & (gap > POLISH_MARGIN * self.tol) & (top.values[:, 0] > 0) & (supp.sum(1) <= self._max_support)
            if not grow.any():
                break
            act, supp = act[grow], supp[grow]
        return best, best_gap, best_primal

    def _face_solve(self, cz: torch.Tensor, supp: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact minimiser on each row's support: w_S = (C_S C_S^T)^{-1} (C_S z - lam/2), given cz = C z.

        Concepts that come out non-positive are dropped from S and the system re-solved, a few times.
        Rows are processed in chunks of similar support size (little padding, bounded memory).
        Returns the (m, k) codes and whether each is valid (factorisable Gram block, w_S > 0)."""
        m, k = supp.shape
        d = self._C64.shape[1]
        size = supp.sum(1)
        out = torch.zeros((m, k), dtype=torch.float64, device=self.device)
        valid = torch.ones(m, dtype=torch.bool, device=self.device)
        order = torch.argsort(size)
        sizes = size[order].tolist()
        # elements of the largest temporary per row of support size s: the Gram, or C_S without it
        per_row = (lambda s: s * s) if self._G64 is not None else (lambda s: s * max(s, d))
        a = 0
        while a < m:
            b = a + 1  # grow the chunk while its largest (= last) row keeps it within budget
            while b < m and (b + 1 - a) * per_row(sizes[b]) <= POLISH_BUDGET:
                b += 1
            rows, smax = order[a:b], sizes[b - 1]
            a = b
            if smax == 0:
                continue
            sel = torch.argsort(supp[rows].to(torch.int8), dim=1, descending=True, stable=True)[:, :smax]
            msk = torch.arange(smax, device=self.device)[None, :] < size[rows, None]
            if self._G64 is not None:
                gram = torch.take(self._G64, sel[:, :, None] * k + sel[:, None, :])
            else:
                cs = self._C64[sel]
                gram = cs @ cs.transpose(1, 2)
            corr = cz[rows].gather(1, sel) - lam / 2
            ws = torch.zeros_like(corr)
            ok = torch.ones(rows.numel(), dtype=torch.bool, device=self.device)
            redo = torch.arange(rows.numel(), device=self.device)
            for drop in range(DROP_ROUNDS):
                sub = gram if drop == 0 else gram[redo]  # later rounds mask a copy of the rows redone
                ws[redo], ok[redo] = _masked_solve(sub, corr[redo], msk[redo])
                neg = msk & (ws <= 0) & ok[:, None]
                redo = torch.nonzero(neg.any(1)).squeeze(1)
                if not redo.numel() or drop == DROP_ROUNDS - 1:
                    break
                msk = msk & ~neg
            valid[rows] &= ok & ~neg.any(1)
            out[rows] = out[rows].scatter_(1, sel, torch.where(msk, ws, 0.0))
        return out, valid


def _masked_solve(gram: torch.Tensor, rhs: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve gram[S, S] x = rhs[S] for each batch member's subset S = mask (x = 0 off S), by Cholesky.

    gram is overwritten (rows and columns outside S become unit vectors). A singular gram[S, S] is
    retried with a tiny ridge; the duality gap later judges that solution. Returns x and whether the
    factorisation succeeded with a finite solution."""
    fm = mask.to(gram.dtype)
    gram.mul_(fm[:, :, None]).mul_(fm[:, None, :])
    gram.diagonal(dim1=1, dim2=2).add_(1 - fm)
    factor, info = torch.linalg.cholesky_ex(gram)
    bad = torch.nonzero(info).squeeze(1)
    if bad.numel():  # numerically dependent concepts (e.g. duplicates): a tiny ridge picks a solution
        ridged = gram[bad]
        ridged.diagonal(dim1=1, dim2=2).add_(RIDGE)
        factor[bad], info[bad] = torch.linalg.cholesky_ex(ridged)
    half = torch.linalg.solve_triangular(factor, (rhs * fm)[..., None], upper=False)
    x = torch.linalg.solve_triangular(factor.transpose(1, 2), half, upper=True).squeeze(-1) * fm
    return x, (info == 0) & torch.isfinite(x).all(1)
