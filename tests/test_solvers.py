"""The CPU solvers against independent references: scikit-learn Lasso and lars_path."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import lars_path

from audioconcepts.decompose import certify, make_solver
from conftest import objective, random_problem, reference_lasso

LAMBDAS = [1.0, 0.25, 0.15, 0.05, 0.01]


@pytest.mark.parametrize("lam", LAMBDAS)
def test_active_set_matches_reference_on_caption_space(caption_problem, lam):
    C, Z = caption_problem
    rows = Z[[0, 777, 2024, 4321]]
    result = make_solver("active-set", C).solve(rows, [lam])[0]
    assert (result.status == 0).all()
    for i, z in enumerate(rows):
        ref = reference_lasso(C, z, lam)
        w = result.codes[i].toarray().ravel()
        assert np.abs(w - ref).max() < 1e-7
        assert objective(C, z, w, lam) <= objective(C, z, ref, lam) + 1e-12


@pytest.mark.parametrize("seed", range(6))
def test_active_set_matches_reference_on_random_problems(seed):
    C, Z = random_problem(seed)
    solver = make_solver("active-set", C)
    for lam, result in zip(LAMBDAS, solver.solve(Z, LAMBDAS)):
        for i, z in enumerate(Z):
            ref = reference_lasso(C, z, lam)
            assert np.abs(result.codes[i].toarray().ravel() - ref).max() < 1e-7


def test_paper_solver_is_selectable_and_close(caption_problem):
    """solver='sklearn' is the paper's setting (tol 1e-4): approximate, but near the exact answer."""
    C, Z = caption_problem
    exact = make_solver("active-set", C).solve(Z[:3], [0.15])[0].codes
    paper = make_solver("sklearn", C).solve(Z[:3], [0.15])[0].codes
    assert abs(exact - paper).max() < 5e-3
    gap, _ = certify(Z[:3], C, paper, 0.15)
    assert (gap > 0).all() and (gap < 1e-3).all()


def test_certificate_bounds_the_true_suboptimality(caption_problem):
    """The duality gap is zero at the optimum and an upper bound on P(w) - P(w*) elsewhere."""
    C, Z = caption_problem
    lam = 0.1
    z = Z[5]
    ref = reference_lasso(C, z, lam)
    rng = np.random.default_rng(0)
    for scale in (0.0, 1e-4, 1e-2, 0.3):
        w = np.maximum(ref + scale * np.abs(rng.normal(size=ref.shape)) * (rng.random(ref.shape) < 0.05), 0)
        gap, kkt = certify(z[None], C, sp.csr_matrix(w), lam)
        true = objective(C, z, w, lam) - objective(C, z, ref, lam)
        assert gap[0] >= true - 1e-12
        if scale == 0.0:
            assert gap[0] < 1e-10 and kkt[0] < 1e-8
        else:
            assert kkt[0] > 0


def _lars_target(C: np.ndarray, z: np.ndarray, target: int) -> tuple[np.ndarray, float]:
    """Reference for target_l0: sklearn's exact LARS-lasso path, first point before nnz > target."""
    d = C.shape[1]
    alphas, _, coefs = lars_path(C.T, z, method="lasso", positive=True, alpha_min=0.0, eps=1e-16)
    nnz = (coefs > 0).sum(axis=0)
    over = np.flatnonzero(nnz > target)
    last = (over[0] - 1) if over.size else coefs.shape[1] - 1
    return coefs[:, last], 2 * d * alphas[last]


@pytest.mark.parametrize("target", [1, 3, 10, 25])
def test_target_l0_follows_the_exact_path(caption_problem, target):
    C, Z = caption_problem
    rows = Z[[3, 1500, 4000]]
    codes, lam, status = make_solver("active-set", C).solve_path(rows, target)
    assert (status == 0).all()
    for i, z in enumerate(rows):
        ref_w, ref_lam = _lars_target(C, z, target)
        assert codes[i].nnz == (ref_w > 0).sum() <= target
        assert np.abs(codes[i].toarray().ravel() - ref_w).max() < 1e-8
        assert lam[i] == pytest.approx(ref_lam, rel=1e-8)


def test_target_l0_solution_is_the_lasso_solution_at_the_reached_lambda(caption_problem):
    C, Z = caption_problem
    codes, lam, _ = make_solver("active-set", C).solve_path(Z[:4], 12)
    for i in range(4):
        ref = reference_lasso(C, Z[i], lam[i])
        assert np.abs(codes[i].toarray().ravel() - ref).max() < 1e-7


def test_without_gram_matrix_gives_the_same_codes(caption_problem):
    """Vocabularies too large for a k x k Gram matrix use the concepts directly: same answers."""
    C, Z = caption_problem
    with_gram = make_solver("active-set", C)
    without = make_solver("active-set", C, gram_bytes=0)
    assert without.G.size == 0
    for a, b in zip(with_gram.solve(Z[:6], [0.25, 0.05]), without.solve(Z[:6], [0.25, 0.05])):
        assert abs(a.codes - b.codes).max() < 1e-10
    pa, la, _ = with_gram.solve_path(Z[:6], 10)
    pb, lb, _ = without.solve_path(Z[:6], 10)
    assert abs(pa - pb).max() < 1e-10 and np.allclose(la, lb, rtol=1e-10)


def test_fifty_thousand_concepts(caption_problem):
    """k = 50,000 works with memory linear in k (no 20 GB Gram matrix)."""
    C, Z = caption_problem
    rng = np.random.default_rng(0)
    big = np.vstack([C, C[rng.integers(0, len(C), 48_000)] + 0.05 * rng.normal(size=(48_000, C.shape[1]))])
    big /= np.linalg.norm(big, axis=1, keepdims=True)
    solver = make_solver("active-set", big)
    assert solver.G.size == 0
    result = solver.solve(Z[:2], [0.25])[0]
    gap, kkt = certify(Z[:2], big, result.codes, 0.25)
    assert result.codes.shape == (2, 50_000) and (result.status == 0).all()
    assert (gap < 1e-9).all() and (kkt < 1e-8).all()


def test_unknown_solver_name():
    with pytest.raises(ValueError, match="choose one of"):
        make_solver("admm", np.eye(3))
