"""Sweeps and class profiles against direct computations."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from audioconcepts import ConceptDecomposer, Vocabulary
from audioconcepts.evaluate.profiles import class_profiles, top_concepts
from audioconcepts.evaluate.sweeps import lambda_sweep, vocabulary_subsets, vocabulary_sweep


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    k, d = 120, 24
    C = rng.normal(size=(k, d))
    C /= np.linalg.norm(C, axis=1, keepdims=True)
    vocab = Vocabulary([f"c{i}" for i in range(k)], C.astype(np.float32), "toy")
    Z = np.abs(rng.normal(size=(60, 6))) @ C[rng.choice(k, 6)] + 0.2 * rng.normal(size=(60, d))
    return vocab, Z


def test_lambda_sweep_matches_independent_decompositions(problem):
    vocab, Z = problem
    dec = ConceptDecomposer(vocab, l1_penalty=0.1).fit(Z)
    lambdas = [0.5, 0.02, 0.1]
    df = lambda_sweep(dec, Z, lambdas, evaluate=lambda R: float(np.mean(R[:, 0])))
    assert df["lambda"].tolist() == sorted(lambdas)
    for row in df.to_dict(orient="records"):
        one = ConceptDecomposer(vocab, l1_penalty=row["lambda"]).fit(Z).decompose(Z)
        assert row["mean_nnz"] == pytest.approx(one.nnz.mean())
        assert row["mean_cosine"] == pytest.approx(one.cosine.mean(), abs=1e-6)
        R = dec.inverse_transform(one.codes)
        assert row["metric"] == pytest.approx(R[:, 0].mean(), abs=1e-6)
        # cosine(recomposed, original) from its definition
        cos = np.sum(R * (Z / np.linalg.norm(Z, axis=1, keepdims=True)), axis=1)
        assert row["mean_cosine"] == pytest.approx(cos.mean(), abs=1e-5)
    assert df["mean_nnz"].is_monotonic_decreasing


def test_vocabulary_sweep_and_subsets(problem):
    vocab, Z = problem
    subsets = vocabulary_subsets(vocab, [30, 60, 500])
    assert list(subsets) == ["first 30", "first 60"] and subsets["first 30"].concepts == vocab.concepts[:30]
    df = vocabulary_sweep({"all": vocab, **subsets}, Z, 0.05)
    assert df["size"].tolist() == [120, 30, 60]
    full = ConceptDecomposer(vocab, l1_penalty=0.05).fit(Z).decompose(Z)
    assert df.loc[0, "mean_nnz"] == pytest.approx(full.nnz.mean())
    assert df.loc[1, "mean_cosine"] < df.loc[0, "mean_cosine"]  # fewer concepts, lower fidelity


def test_class_profiles_are_class_means():
    W = sp.csr_matrix(np.array([[1.0, 0, 0], [3.0, 0, 2.0], [0, 4.0, 0], [0, 0, 0]]))
    prof = class_profiles(W, np.array([0, 0, 1, 2]), ["a", "b", "c"], ["x", "y", "z"])
    np.testing.assert_allclose(prof.loc["a"].to_numpy(), [2.0, 0, 1.0])
    np.testing.assert_allclose(prof.loc["b"].to_numpy(), [0, 4.0, 0])
    assert top_concepts(prof, 2) == {"a": [("x", 2.0), ("z", 1.0)], "b": [("y", 4.0)], "c": []}
    multi = class_profiles(W, np.array([[1, 1], [1, 0], [0, 1], [0, 0]], bool), ["a", "b"], ["x", "y", "z"])
    np.testing.assert_allclose(multi.loc["b"].to_numpy(), [0.5, 2.0, 0])
    empty = class_profiles(W, np.array([0, 0, 0, 0]), ["a", "b"], ["x", "y", "z"])
    assert np.isnan(empty.loc["b"].to_numpy()).all() and top_concepts(empty)["b"] == []
    with pytest.raises(ValueError, match="clip-class"):
        class_profiles(W, np.array([0, 1]), ["a", "b"], ["x", "y", "z"])
