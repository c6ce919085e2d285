"""Batched accelerated proximal-gradient solver for the non-negative lasso, in torch.

For every row z of Z it solves   min_{w >= 0} ||C^T w - z||^2 + lam * sum(w)
with FISTA (gradient-based adaptive restart) on a batch of rows at a time, so the same code runs
on a GPU and on the CPU. Each row stops on its own duality-gap certificate and converged rows are
dropped from the batch. A row whose support has settled is "polished": the KKT system on its
support is solved exactly in float64, which usually ends the iterations long before plain FISTA
would and makes float32 runs as accurate as float64 ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

CHECK_EVERY = 10  # iterations between two convergence checks of a row
POLISH_BUDGET = 1 << 24  # elements of the largest float64 temporary built while polishing
POLISH_ROUNDS = 8  # support updates per polish: add dual violators, drop non-positive weights
DROP_ROUNDS = 5  # solves per support update: each drops the concepts that came out non-positive
GRAM_MAX_K = 8000  # largest concept count for which the k x k Gram matrix is precomputed


@dataclass
class SolveResult:
    """Codes of n targets at one lambda, with a per-row status (0 converged, 2 budget exhausted)."""

    codes: sp.csr_matrix
    status: np.ndarray


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
    """FISTA with adaptive restart, per-row duality-gap stopping and float64 support polishing."""

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
        d = C.shape[1]
        step = 2.0 / self._lipschitz
        out = torch.zeros((m, k), dtype=torch.float64, device=self.device)
        status = np.zeros(m, dtype=np.int8)
        rows = torch.arange(m, device=self.device)  # batch positions of the rows still iterating
        z = z64.to(dtype)
        w = w0.clone()
        diff = torch.zeros_like(w)  # last step w - w_prev
        t = torch.ones(m, dtype=dtype, device=self.device)
        supp_prev = w > 0
        supp_polished = torch.zeros_like(supp_prev)
        it = 0
        while rows.numel():
            shift = torch.full((rows.numel(), 1), lam / 2, dtype=dtype, device=self.device)
            for _ in range(min(CHECK_EVERY, self.max_iter - it)):
                t_next = (1 + torch.sqrt(1 + 4 * t * t)) / 2
                beta = (t - 1) / t_next
                y = torch.addcmul(w, beta[:, None], diff)
                # half gradient at y, plus lam / 2, is [C^T y - z | lam / 2] @ [C | 1]^T
                half = torch.cat([torch.addmm(z, y, C, beta=-1), shift], 1)
                w_new = torch.addmm(y, half, C1.T, alpha=-step).clamp_(min=0)
                diff_new = w_new - w
                # restart when the step goes against the momentum: (y - w_new) . (w_new - w) > 0
                restart = beta * torch.linalg.vecdot(diff, diff_new) > torch.linalg.vecdot(diff_new, diff_new)
                t = torch.where(restart, torch.ones_like(t_next), t_next)
                w, diff = w_new, diff_new
            it = min(it + CHECK_EVERY, self.max_iter)

            r = torch.addmm(z, w, C, alpha=-1)
            gap = _duality_gap(w, z, r, r @ C.T, lam)
            if dtype == torch.float64:
                cert = gap
            else:  # a low-precision gap only triggers a float64 certificate
                cert = torch.full_like(gap, torch.inf, dtype=torch.float64)
                low = torch.nonzero(gap <= tol).squeeze(1)
                if low.numel():
                    cert[low] = self._gap64(w[low].double(), z64[low], lam)[0]
            supp = w > 0
            size = supp.sum(1)
            fresh = (supp != supp_polished).any(1)
            todo = torch.nonzero(((gap <= tol) | fresh) & (size <= d)).squeeze(1)
            supp_prev = supp
            polished = None
            if todo.numel():
                supp_polished[todo] = supp[todo]
                wp, gp = self._polish(z64[todo], supp[todo], lam)
                better = gp < cert[todo]
                todo, wp = todo[better], wp[better]
                cert[todo] = gp[better]
                # a polished point minimises the objective on its support's face: restart from it
                w[todo] = wp.to(dtype)
                diff[todo] = 0
                t[todo] = 1
                polished = (todo, wp)

            done = cert <= tol
            if it >= self.max_iter:
                status[rows[~done].cpu().numpy()] = 2
                done = torch.ones_like(done)
            if not done.any():
                continue
            out[rows[done]] = w[done].double()
            if polished is not None:
                todo, wp = polished
                keep = done[todo]
                out[rows[todo[keep]]] = wp[keep]
            live = ~done
            rows, z, z64, w, diff, t = rows[live], z[live], z64[live], w[live], diff[live], t[live]
            supp_prev, supp_polished = supp_prev[live], supp_polished[live]
        return out, status

    def _gap64(self, w: torch.Tensor, z: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Duality gap of float64 codes w, and the correlations C r of their residuals, in float64."""
        r = torch.addmm(z, w, self._C64, alpha=-1)
        rho = r @ self._C64.T
        return _duality_gap(w, z, r, rho, lam), rho

    def _polish(self, z: torch.Tensor, supp: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Batched active-set refinement of FISTA's supports, in float64.

        Solves the KKT system exactly on each row's support, then adds the concepts that violate dual
        feasibility and re-solves, for a few rounds. Returns each row's best point (m, k) and its gap
        (inf if no round produced a valid point)."""
        lam2 = lam / 2
        d = self._C64.shape[1]
        best = torch.zeros(supp.shape, dtype=torch.float64, device=self.device)
        best_gap = torch.full((supp.shape[0],), torch.inf, dtype=torch.float64, device=self.device)
        cz = z @ self._C64.T
        act = torch.arange(supp.shape[0], device=self.device)
        for _ in range(POLISH_ROUNDS):
            ws, ok = self._face_solve(cz[act], supp, lam)
            gap, rho = self._gap64(ws, z[act], lam)
            gap = torch.where(ok, gap, torch.inf)
            better = gap < best_gap[act]
            best[act[better]] = ws[better]
            best_gap[act[better]] = gap[better]
            supp = (ws > 0) | (rho > lam2)
            grow = ok & (best_gap[act] > self.tol) & (rho > lam2).any(1) & (supp.sum(1) <= d)
            if not grow.any():
                break
            act, supp = act[grow], supp[grow]
        return best, best_gap

    def _face_solve(self, cz: torch.Tensor, supp: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact minimiser on each row's support: w_S = (C_S C_S^T)^{-1} (C_S z - lam/2), given cz = C z.

        Concepts that come out non-positive are dropped from S and the system re-solved, a few times,
        since FISTA's supports typically still hold a few slowly vanishing concepts. Returns the (m, k)
        codes and whether each is valid (positive definite Gram, w_S > 0)."""
        m, k = supp.shape
        d = self._C64.shape[1]
        size = supp.sum(1)
        smax = int(size.max()) if m else 0
        out = torch.zeros((m, k), dtype=torch.float64, device=self.device)
        valid = size <= d
        if smax == 0:
            return out, valid
        idx = torch.argsort(supp.to(torch.int8), dim=1, descending=True, stable=True)[:, :smax]
        mask = torch.arange(smax, device=self.device)[None, :] < size[:, None]
        chunk = max(1, POLISH_BUDGET // (smax * (smax if self._G64 is not None else max(smax, d))))
        for a in range(0, m, chunk):
            sel, msk = idx[a : a + chunk], mask[a : a + chunk]
            if self._G64 is not None:
                gram = self._G64[sel[:, :, None], sel[:, None, :]]
            else:
                cs = self._C64[sel]
                gram = cs @ cs.transpose(1, 2)
            corr = cz[a : a + chunk].gather(1, sel) - lam / 2
            for _ in range(DROP_ROUNDS):
                pair = msk[:, :, None] & msk[:, None, :]
                # rows and columns outside the support are zeroed and get a unit pivot
                factor, info = torch.linalg.cholesky_ex(gram * pair + torch.diag_embed((~msk).double()))
                ws = torch.cholesky_solve((corr * msk)[..., None], factor).squeeze(-1) * msk
                ok = (info == 0) & torch.isfinite(ws).all(1)
                neg = msk & (ws <= 0) & ok[:, None]
                if not neg.any():
                    break
                msk = msk & ~neg
            valid[a : a + chunk] &= ok & ~neg.any(1)
            out[a : a + chunk].scatter_(1, sel, torch.where(msk, ws, 0.0))
        return out, valid
