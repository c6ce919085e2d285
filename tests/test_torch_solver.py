"""TorchSolver against scikit-learn's coordinate-descent lasso and an independent duality-gap check."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso

from audioconcepts.decompose import torch_solver
from audioconcepts.decompose.solvers import SolveResult
from audioconcepts.decompose.torch_solver import TorchSolver

LAMBDAS = [1.0, 0.25, 0.05, 0.01]
CAPTION_SPACE = Path(__file__).resolve().parents[1] / "src" / "audioconcepts" / "data" / "caption_space.npz"


def normalise(x: np.ndarray) -> np.ndarray:
    """L2-normalise rows."""
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def duality_gaps(C: np.ndarray, Z: np.ndarray, W: np.ndarray, lam: float) -> np.ndarray:
    """Per-row duality gap of min_{w >= 0} ||C^T w - z||^2 + lam * sum(w), written out independently."""
    gaps = []
    for z, w in zip(Z, W):
        r = z - C.T @ w
        primal = r @ r + lam * w.sum()
        top = (C @ r).max()
        s = min(1.0, (lam / 2) / top) if top > 0 else 1.0
        gaps.append(primal - (2 * s * (r @ z) - s * s * (r @ r)))
    return np.array(gaps)


def sklearn_codes(C: np.ndarray, Z: np.ndarray, lam: float) -> np.ndarray:
    """Reference solutions: sklearn's objective is (1/2d)||z - C^T w||^2 + alpha |w|_1, so alpha = lam / 2d."""
    d = C.shape[1]
    model = Lasso(alpha=lam / (2 * d), positive=True, fit_intercept=False, tol=1e-12, max_iter=200000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return np.array([model.fit(C.T, z).coef_.copy() for z in Z])


def gaussian_problem() -> tuple[np.ndarray, np.ndarray]:
    """300 unit-norm Gaussian concepts and 8 unit-norm targets in 64 dimensions."""
    rng = np.random.default_rng(0)
    return normalise(rng.standard_normal((300, 64))), normalise(rng.standard_normal((8, 64)))


def caption_rows() -> tuple[np.ndarray, np.ndarray]:
    """The bundled caption space, preprocessed SpLiCE-style, and 8 of its captions."""
    data = np.load(CAPTION_SPACE)
    C = normalise(data["concept_embeddings"].astype(np.float64))
    C = normalise(C - C.mean(0))
    Z = normalise(data["caption_embeddings"].astype(np.float64))
    Z = normalise(Z - Z.mean(0))
    return C, Z[np.linspace(0, len(Z) - 1, 8).astype(int)]


@pytest.fixture(scope="module", params=["random", "captions"])
def problem(request) -> dict:
    """A problem, its float64 torch solutions along LAMBDAS and the sklearn references."""
    C, Z = gaussian_problem() if request.param == "random" else caption_rows()
    results = TorchSolver(C, device="cpu", dtype=torch.float64).solve(Z, LAMBDAS)
    return {"C": C, "Z": Z, "results": results, "reference": [sklearn_codes(C, Z, lam) for lam in LAMBDAS]}


def test_result_format(problem):
    n, k = len(problem["Z"]), len(problem["C"])
    assert len(problem["results"]) == len(LAMBDAS)
    for res in problem["results"]:
        assert isinstance(res, SolveResult)
        assert sp.isspmatrix_csr(res.codes) and res.codes.shape == (n, k) and res.codes.dtype == np.float64
        assert res.codes.has_canonical_format and (res.codes.data > 0).all()
        assert res.status.shape == (n,) and res.status.dtype == np.int8


def test_matches_sklearn(problem):
    for lam, res, ref in zip(LAMBDAS, problem["results"], problem["reference"]):
        W = res.codes.toarray()
        assert (res.status == 0).all()
        assert np.abs(W - ref).max() <= 1e-5, lam
        np.testing.assert_array_equal(W > 1e-6, ref > 1e-6)
        assert duality_gaps(problem["C"], problem["Z"], W, lam).max() <= 1e-7, lam


def test_float32_certified(problem):
    results = TorchSolver(problem["C"], device="cpu", dtype=torch.float32).solve(problem["Z"], LAMBDAS)
    for lam, res in zip(LAMBDAS, results):
        assert (res.status == 0).all()
        assert duality_gaps(problem["C"], problem["Z"], res.codes.toarray(), lam).max() <= 1e-6, lam


def test_batch_size_does_not_matter(problem):
    small = TorchSolver(problem["C"], device="cpu", dtype=torch.float64, batch_size=3).solve(problem["Z"], LAMBDAS)
    for a, b in zip(small, problem["results"]):
        assert np.abs(a.codes.toarray() - b.codes.toarray()).max() <= 1e-9
        np.testing.assert_array_equal(a.status, b.status)


def test_warm_start_path_equals_single_solves(problem):
    solver = TorchSolver(problem["C"], device="cpu", dtype=torch.float64)
    for lam, path_res in zip(LAMBDAS, problem["results"]):
        (single,) = solver.solve(problem["Z"], [lam])
        assert np.abs(single.codes.toarray() - path_res.codes.toarray()).max() <= 1e-9, lam


def test_fista_finds_the_supports(problem, monkeypatch):
    """With single-solve polishing (it only drops concepts, never adds), FISTA must find the supports."""
    monkeypatch.setattr(torch_solver, "POLISH_ROUNDS", 1)
    results = TorchSolver(problem["C"], device="cpu", dtype=torch.float64).solve(problem["Z"], LAMBDAS)
    for lam, res, ref in zip(LAMBDAS, results, problem["reference"]):
        assert (res.status == 0).all()
        assert np.abs(res.codes.toarray() - ref).max() <= 1e-5, lam


def test_without_gram_matrix_in_small_chunks(problem, monkeypatch):
    """Large vocabularies polish from C directly instead of a precomputed k x k Gram matrix, and a
    small memory budget splits polishing into chunks of very few rows."""
    monkeypatch.setattr(torch_solver, "GRAM_MAX_K", 0)
    monkeypatch.setattr(torch_solver, "POLISH_BUDGET", 5000)
    solver = TorchSolver(problem["C"], device="cpu", dtype=torch.float64)
    assert solver._G64 is None
    for lam, res, ref in zip(LAMBDAS, solver.solve(problem["Z"], LAMBDAS), problem["reference"]):
        assert (res.status == 0).all()
        assert np.abs(res.codes.toarray() - ref).max() <= 1e-5, lam


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_duplicate_concepts(dtype):
    """Exact duplicates make support Gram blocks singular; the optimum's objective must not change."""
    C, Z = gaussian_problem()
    lams = [0.25, 0.05]
    plain = TorchSolver(C, device="cpu", dtype=torch.float64).solve(Z, lams)
    doubled = np.vstack([C, C[:100]])
    for lam, a, b in zip(lams, plain, TorchSolver(doubled, device="cpu", dtype=dtype).solve(Z, lams)):
        W = b.codes.toarray()
        assert (b.status == 0).all()
        assert duality_gaps(doubled, Z, W, lam).max() <= 1e-7
        folded = W[:, : len(C)] + np.pad(W[:, len(C) :], ((0, 0), (0, len(C) - 100)))
        assert np.abs(folded - a.codes.toarray()).max() <= 1e-5


def test_budget_exhausted(monkeypatch):
    """Rows that neither FISTA nor polishing finish within max_iter are returned, feasible, with status 2."""
    monkeypatch.setattr(torch_solver, "POLISH_ROUNDS", 1)
    C, Z = caption_rows()
    (res,) = TorchSolver(C, device="cpu", max_iter=10).solve(Z, [0.01])
    assert (res.status == 2).all()
    assert res.codes.has_canonical_format and (res.codes.data > 0).all()


def test_empty_input_and_bad_lambdas():
    C, _ = gaussian_problem()
    solver = TorchSolver(C, device="cpu")
    (res,) = solver.solve(np.zeros((0, C.shape[1])), [0.1])
    assert res.codes.shape == (0, len(C)) and res.status.shape == (0,)
    with pytest.raises(ValueError):
        solver.solve(np.zeros((1, C.shape[1])), [0.1, 0.2])
