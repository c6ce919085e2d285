"""Solvers for the non-negative lasso  min_{w >= 0} ||C^T w - z||^2 + lambda ||w||_1.

All solvers take the preprocessed concept matrix C (k, d) and preprocessed targets Z (n, d), and
return one SolveResult per lambda. They are selected by name:

- "active-set": compiled (numba) primal active-set method, parallel over targets, exact to
  rounding; the fastest on the CPU for this problem shape (k >> d, very sparse solutions).
- "torch": batched accelerated proximal gradient, for GPUs (also runs on the CPU).
- "sklearn": the paper's solver, scikit-learn Lasso(positive=True, alpha=lambda/(2d),
  fit_intercept=False) one target at a time; the reference.
- "auto": "torch" when a CUDA device is requested or available, else "active-set".
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numba as nb
import numpy as np
import scipy.sparse as sp

from audioconcepts.decompose._kernels import BUDGET, OK, path_rows, solve_rows

#: A (k, k) float64 Gram matrix is precomputed while it fits in this many bytes (k <= ~16,000).
GRAM_BYTES_LIMIT = 2 * 1024**3


@dataclass
class SolveResult:
    """Codes for one lambda: CSR (n, k) float64 non-negative, and a status per row.

    status: 0 solved, 1 a degenerate concept (numerically a combination of the support) was
    skipped, 2 the iteration budget ran out (feasible, not certified).
    """

    codes: sp.csr_matrix
    status: np.ndarray


class Solver(Protocol):
    """What every solver provides."""

    name: str

    def solve(self, Z: np.ndarray, lambdas: Sequence[float]) -> list[SolveResult]: ...


def _to_csr(S: np.ndarray, w: np.ndarray, nnz: np.ndarray, k: int) -> sp.csr_matrix:
    """Canonical CSR from per-row supports (S[i, :nnz[i]], w[i, :nnz[i]])."""
    n = S.shape[0]
    keep = np.arange(S.shape[1])[None, :] < nnz[:, None]
    keep &= w > 0
    indptr = np.concatenate([[0], np.cumsum(keep.sum(1))])
    out = sp.csr_matrix((w[keep], S[keep], indptr), shape=(n, k))
    out.sort_indices()
    return out


class ActiveSetSolver:
    """Compiled active-set solver; exact (to rounding) and deterministic.

    One matrix product gives the correlations of a batch with every concept; each row is then
    solved on its own thread with a Cholesky-updated active set. The (k, k) Gram matrix of the
    concepts is precomputed when it fits in `gram_bytes` (k up to ~16,000 by default); beyond
    that the kernels work from the (k, d) concepts directly, slower per row but with memory
    linear in k. Along a list of lambdas each solve starts from the previous solution.
    """

    name = "active-set"

    def __init__(
        self,
        concepts: np.ndarray,
        *,
        batch_size: int = 4096,
        tol: float = 1e-13,
        max_changes: int = 100_000,
        n_jobs: int | None = None,
        gram_bytes: int = GRAM_BYTES_LIMIT,
    ) -> None:
        self.C = np.ascontiguousarray(concepts, dtype=np.float64)
        k, d = self.C.shape
        self.G = self.C @ self.C.T if k * k * 8 <= gram_bytes else np.empty((0, 0))
        self.batch_size = batch_size
        self.tol = tol
        self.max_changes = max_changes
        self.n_jobs = n_jobs or os.cpu_count() or 1
        self.capacity = min(k, d) + 1

    def solve(self, Z: np.ndarray, lambdas: Sequence[float]) -> list[SolveResult]:
        lambdas = np.asarray(lambdas, dtype=np.float64)
        n, k = Z.shape[0], self.C.shape[0]
        parts: list[list[SolveResult]] = [[] for _ in lambdas]
        nb.set_num_threads(min(self.n_jobs, nb.config.NUMBA_NUM_THREADS))
        for lo in range(0, max(n, 1), self.batch_size):
            Zb = np.ascontiguousarray(Z[lo : lo + self.batch_size], dtype=np.float64)
            m = Zb.shape[0]
            corr = Zb @ self.C.T
            cap = self.capacity
            S = np.zeros((m, cap), np.int64)
            w = np.zeros((m, cap))
            status = np.zeros((len(lambdas), m), np.int8)
            out_S = np.zeros((len(lambdas), m, cap), np.int64)
            out_w = np.zeros((len(lambdas), m, cap))
            out_nnz = np.zeros((len(lambdas), m), np.int64)
            solve_rows(self.G, self.C, corr, lambdas / 2, self.tol, self.max_changes, nb.get_num_threads(), S, w, status, out_S, out_w, out_nnz)
            for s in range(len(lambdas)):
                parts[s].append(SolveResult(_to_csr(out_S[s], out_w[s], out_nnz[s], k), status[s]))
        return [_stack(p, k) for p in parts]

    def solve_path(self, Z: np.ndarray, max_nnz: int) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
        """Per row, the solution at the point where the path would first exceed max_nnz.

        Returns (codes, lambda reached per row, status per row). Exact homotopy over all
        concepts: the cost per row grows with k * max_nnz^2 (k * d * max_nnz without the Gram).
        """
        n, k = Z.shape[0], self.C.shape[0]
        codes, lams, stats = [], [], []
        nb.set_num_threads(min(self.n_jobs, nb.config.NUMBA_NUM_THREADS))
        for lo in range(0, max(n, 1), self.batch_size):
            Zb = np.ascontiguousarray(Z[lo : lo + self.batch_size], dtype=np.float64)
            m = Zb.shape[0]
            corr = Zb @ self.C.T
            cap = min(max_nnz, self.capacity) + 1
            idx = np.zeros((m, cap), np.int64)
            wts = np.zeros((m, cap))
            cnt = np.zeros(m, np.int64)
            mu = np.zeros(m)
            status = np.zeros(m, np.int64)
            path_rows(self.G, self.C, corr, max_nnz, 10 * k, idx, wts, cnt, mu, status)
            codes.append(_to_csr(idx, wts, cnt, k))
            lams.append(2 * mu)
            stats.append(status.astype(np.int8))
        return sp.vstack(codes, format="csr") if codes else sp.csr_matrix((0, k)), np.concatenate(lams), np.concatenate(stats)


class LassoReferenceSolver:
    """The paper's solver: scikit-learn coordinate descent, one embedding at a time.

    With the defaults (tol=1e-4, max_iter=1000) it is exactly what the paper ran; tighten tol
    for a reference that agrees with the exact solvers to many digits.
    """

    name = "sklearn"

    def __init__(self, concepts: np.ndarray, *, tol: float = 1e-4, max_iter: int = 1000) -> None:
        self.C = np.asarray(concepts, dtype=np.float64)
        self.D = np.asfortranarray(self.C.T)
        self.tol = tol
        self.max_iter = max_iter

    def solve(self, Z: np.ndarray, lambdas: Sequence[float]) -> list[SolveResult]:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import Lasso

        n, (k, d) = Z.shape[0], self.C.shape
        out = []
        for lam in lambdas:
            model = Lasso(alpha=lam / (2 * d), positive=True, fit_intercept=False, tol=self.tol, max_iter=self.max_iter)
            rows, status = [], np.zeros(n, np.int8)
            for i in range(n):
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", ConvergenceWarning)
                    model.fit(self.D, Z[i])
                status[i] = BUDGET if any(issubclass(c.category, ConvergenceWarning) for c in caught) else OK
                rows.append(sp.csr_matrix(np.maximum(model.coef_, 0.0)))
            codes = sp.vstack(rows, format="csr") if rows else sp.csr_matrix((0, k))
            out.append(SolveResult(codes, status))
        return out


def _stack(parts: list[SolveResult], k: int) -> SolveResult:
    if not parts:
        return SolveResult(sp.csr_matrix((0, k)), np.zeros(0, np.int8))
    return SolveResult(sp.vstack([p.codes for p in parts], format="csr"), np.concatenate([p.status for p in parts]))


SOLVERS = ("auto", "active-set", "torch", "sklearn")


def make_solver(name: str, concepts: np.ndarray, *, device: str | None = None, **options) -> Solver:
    """The solver called `name` for these preprocessed concepts (see the module docstring)."""
    if name == "auto":
        name = "torch" if _cuda_requested(device) else "active-set"
    if name == "active-set":
        return ActiveSetSolver(concepts, **options)
    if name == "sklearn":
        return LassoReferenceSolver(concepts, **options)
    if name == "torch":
        from audioconcepts.decompose.torch_solver import TorchSolver

        return TorchSolver(concepts, device=device, **options)
    raise ValueError(f"unknown solver {name!r}; choose one of {', '.join(SOLVERS)}")


def _cuda_requested(device: str | None) -> bool:
    if device is not None:
        return str(device).startswith("cuda")
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()
