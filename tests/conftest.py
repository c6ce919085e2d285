"""Shared fixtures: the bundled caption space (real embedding geometry) and random problems."""

from __future__ import annotations

import os

import numpy as np
import pytest
from sklearn.linear_model import Lasso

from audioconcepts.caption_space import load_caption_space
from audioconcepts.decompose.preprocess import center, l2_normalize

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download anything


@pytest.fixture(scope="session")
def caption_space():
    return load_caption_space()


@pytest.fixture(scope="session")
def caption_problem(caption_space):
    """Preprocessed (C, Z) of the caption space, SpLiCE-style, computed with plain numpy."""
    E = caption_space.vocabulary.embeddings.astype(np.float64)
    X = caption_space.embeddings.vectors.astype(np.float64)
    C = center(E, l2_normalize(E).mean(0))
    Z = center(X, l2_normalize(X).mean(0))
    return C, Z


def random_problem(seed: int, k: int = 200, d: int = 40, n: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm random concepts and targets with a shared offset, like real embeddings."""
    rng = np.random.default_rng(seed)
    offset = rng.normal(size=d)
    C = l2_normalize(rng.normal(size=(k, d)) + 0.5 * offset)
    Z = l2_normalize(np.abs(rng.normal(size=(n, 8))) @ C[rng.choice(k, 8)] + 0.3 * rng.normal(size=(n, d)))
    return C, Z


def reference_lasso(C: np.ndarray, z: np.ndarray, lam: float) -> np.ndarray:
    """Independent reference: scikit-learn coordinate descent at a very tight tolerance."""
    d = C.shape[1]
    model = Lasso(alpha=lam / (2 * d), positive=True, fit_intercept=False, tol=1e-14, max_iter=1_000_000)
    return model.fit(C.T, z).coef_


def objective(C: np.ndarray, z: np.ndarray, w: np.ndarray, lam: float) -> float:
    r = z - w @ C
    return float(r @ r + lam * w.sum())
