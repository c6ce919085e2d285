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
POLISH_ROUNDS = 5  # solves per polish: each drops the concepts that came out non-positive


@dataclass
class SolveResult:
    """Codes of n targets at one lambda, with a per-row status (0 converged, 2 budget exhausted)."""

    codes: sp.csr_matrix
    status: np.ndarray


def _duality_gap(w: torch.Tensor, z: torch.Tensor, r: torch.Tensor, rho: torch.Tensor, lam: float) -> torch.Tensor:
    """Per-row duality gap of w, given its residual r = z - C^T w and correlations rho = C r."""
    rr = (r * r).sum(1)
    primal = rr + lam * w.sum(1)
    top = rho.amax(1)
    s = torch.where(top > 0, ((lam / 2) / top).clamp(max=1.0), torch.ones_like(top))
    dual = 2 * s * (r * z).sum(1) - s * s * rr
    return primal - dual


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
        self._C64 = torch.as_tensor(np.ascontiguousarray(concepts, dtype=np.float64), device=self.device)
        self._C = self._C64 if dtype == torch.float64 else self._C64.to(dtype)
        k, d = self._C64.shape
        # L = 2 * lambda_max(C C^T) = 2 * lambda_max(C^T C); the d x d Gram is cheap even for large k.
        top = torch.linalg.eigvalsh(self._C64.T @ self._C64)[-1].item() if k and d else 0.0
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
        C, dtype = self._C, self.dtype
        m, k = w0.shape
        d = C.shape[1]
        step, shift = 2.0 / self._lipschitz, lam / self._lipschitz
        out = torch.zeros((m, k), dtype=torch.float64, device=self.device)
        status = np.zeros(m, dtype=np.int8)
        rows = torch.arange(m, device=self.device)  # batch positions of the rows still iterating
        z64_act = z64
        z = z64.to(dtype)
        w = w0.clone()
        w_prev = w.clone()
        t = torch.ones(m, dtype=dtype, device=self.device)
        supp_prev = w > 0
        supp_polished = torch.zeros_like(supp_prev)
        it = 0
        while rows.numel():
            for _ in range(min(CHECK_EVERY, self.max_iter - it)):
                t_next = (1 + torch.sqrt(1 + 4 * t * t)) / 2
                y = torch.addcmul(w, ((t - 1) / t_next)[:, None], w - w_prev)
                resid = torch.addmm(z, y, C, beta=-1)  # C^T y - z, row-wise
                w_new = torch.addmm(y, resid, C.T, alpha=-step).sub_(shift).clamp_(min=0)
                restart = ((y - w_new) * (w_new - w)).sum(1) > 0
                t = torch.where(restart, torch.ones_like(t_next), t_next)
                w_prev, w = w, w_new
            it = min(it + CHECK_EVERY, self.max_iter)

            r = torch.addmm(z, w, C, alpha=-1)
            gap = _duality_gap(w, z, r, r @ C.T, lam)
            if dtype == torch.float64:
                cert = gap
            else:  # a low-precision gap only triggers a float64 certificate
                cert = torch.full_like(gap, torch.inf, dtype=torch.float64)
                low = torch.nonzero(gap <= self.tol).squeeze(1)
                if low.numel():
                    cert[low] = self._gap64(w[low].double(), z64_act[low], lam)
            supp = w > 0
            size = supp.sum(1)
            fresh = (supp == supp_prev).all(1) & (supp != supp_polished).any(1)
            todo = torch.nonzero(((cert <= self.tol) | (gap <= self.tol) | fresh) & (size > 0) & (size <= d)).squeeze(1)
            supp_prev = supp
            best = None
            if todo.numel():
                supp_polished[todo] = supp[todo]
                wp, valid = self._polish(z64_act[todo], supp[todo], lam)
                todo, wp = todo[valid], wp[valid]
                if todo.numel():
                    gp = self._gap64(wp, z64_act[todo], lam)
                    better = gp < cert[todo]
                    todo, wp = todo[better], wp[better]
                    cert[todo] = gp[better]
                    # the polished point minimises the objective on the face of the support: restart there
                    w[todo] = wp.to(dtype)
                    w_prev[todo] = w[todo]
                    t[todo] = 1
                    best = (todo, wp)

            done = cert <= self.tol
            if it >= self.max_iter:
                status[rows[~done].cpu().numpy()] = 2
                done = torch.ones_like(done)
            out[rows[done]] = w[done].double()
            if best is not None:
                idx, wp = best
                keep = done[idx]
                out[rows[idx[keep]]] = wp[keep]
            live = ~done
            rows, z, z64_act = rows[live], z[live], z64_act[live]
            w, w_prev, t = w[live], w_prev[live], t[live]
            supp_prev, supp_polished = supp_prev[live], supp_polished[live]
        return out, status

    def _gap64(self, w: torch.Tensor, z: torch.Tensor, lam: float) -> torch.Tensor:
        """Duality gap of float64 codes w, computed in float64."""
        r = torch.addmm(z, w, self._C64, alpha=-1)
        return _duality_gap(w, z, r, r @ self._C64.T, lam)

    def _polish(self, z: torch.Tensor, supp: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact minimiser on each row's support: w_S = (C_S C_S^T)^{-1} (C_S z - lam/2), in float64.

        Concepts that come out non-positive are dropped from S and the system re-solved, a few times,
        since FISTA's support typically still holds a few slowly vanishing concepts. Returns the (m, k)
        codes and whether each is valid (positive definite Gram, w_S > 0)."""
        C64 = self._C64
        m, k = supp.shape
        d = C64.shape[1]
        size = supp.sum(1)
        smax = int(size.max())
        idx = torch.argsort(supp.to(torch.int8), dim=1, descending=True, stable=True)[:, :smax]
        mask = torch.arange(smax, device=self.device)[None, :] < size[:, None]
        out = torch.zeros((m, k), dtype=torch.float64, device=self.device)
        valid = torch.zeros(m, dtype=torch.bool, device=self.device)
        chunk = max(1, POLISH_BUDGET // (smax * max(smax, d)))
        for a in range(0, m, chunk):
            sel, msk = idx[a : a + chunk], mask[a : a + chunk]
            cs = C64[sel]
            gram = cs @ cs.transpose(1, 2)
            corr = (cs @ z[a : a + chunk, :, None]).squeeze(-1) - lam / 2
            for _ in range(POLISH_ROUNDS):
                pair = msk[:, :, None] & msk[:, None, :]
                # rows and columns outside the support are zeroed and get a unit pivot
                factor, info = torch.linalg.cholesky_ex(gram * pair + torch.diag_embed((~msk).double()))
                ws = torch.cholesky_solve((corr * msk)[..., None], factor).squeeze(-1) * msk
                ok = (info == 0) & torch.isfinite(ws).all(1)
                neg = msk & (ws <= 0) & ok[:, None]
                if not neg.any():
                    break
                msk = msk & ~neg
            valid[a : a + chunk] = ok & ~neg.any(1)
            out[a : a + chunk].scatter_(1, sel, torch.where(msk, ws, 0.0))
        return out, valid
