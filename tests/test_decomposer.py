"""ConceptDecomposer: the public API, scikit-learn conventions, bad input, and real geometry."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from audioconcepts import ConceptDecomposer, Embeddings, Vocabulary
from audioconcepts.decompose.preprocess import l2_normalize
from conftest import reference_lasso


@pytest.fixture(scope="module")
def vocab(caption_space):
    return caption_space.vocabulary


@pytest.fixture(scope="module")
def Z(caption_space):
    return caption_space.embeddings.vectors


@pytest.fixture(scope="module")
def fitted(vocab, Z):
    return ConceptDecomposer(vocab, l1_penalty=0.15).fit(Z)


def test_transform_matches_independent_preprocessing_and_reference(fitted, caption_problem, Z):
    """Codes equal sklearn's Lasso on SpLiCE-preprocessed data computed separately in conftest."""
    C, Zt = caption_problem
    codes = fitted.transform(Z[[0, 10, 20]])
    assert sp.issparse(codes) and codes.format == "csr" and codes.shape == (3, 2000)
    for i, row in enumerate([0, 10, 20]):
        ref = reference_lasso(C, Zt[row], 0.15)
        assert np.abs(codes[i].toarray().ravel() - ref).max() < 1e-6


def test_caption_space_sparsity_and_fidelity_match_design_numbers(fitted, Z):
    """DESIGN.md: lambda 0.15 gives about 37 concepts at cosine about 0.88 in the caption space."""
    r = fitted.decompose(Z[:1000])
    assert 30 <= r.nnz.mean() <= 45
    assert 0.86 <= np.nanmean(r.cosine) <= 0.90
    assert (r.status == 0).all()
    assert np.nanmax(r.duality_gap) < 1e-9 and np.nanmax(r.kkt_violation) < 1e-9


def test_explanations_name_what_the_caption_says(fitted, caption_space, Z):
    """The method says true things: captions about dogs have a dog concept among their top five."""
    rows = [i for i, c in enumerate(caption_space.captions) if " dog " in f" {c.lower()} "][:40]
    assert len(rows) >= 20
    r = fitted.decompose(Z[rows])
    hits = sum(any(w in ("dog", "dogs", "barking", "barks", "bark") for w, _ in r.explain(i, 5)) for i in range(len(rows)))
    assert hits / len(rows) >= 0.8


def test_inverse_transform_is_the_recomposition_formula(fitted, Z):
    W = fitted.transform(Z[:4])
    Zhat = fitted.inverse_transform(W)
    assert Zhat.dtype == np.float32
    expected = l2_normalize(l2_normalize(W.toarray() @ fitted.components_) + fitted.modality_mean_)
    np.testing.assert_allclose(Zhat, expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(Zhat, axis=1), 1, atol=1e-6)
    cos = (Zhat * l2_normalize(Z[:4])).sum(1)
    np.testing.assert_allclose(cos, fitted.decompose(Z[:4]).cosine, atol=1e-5)


def test_explain_returns_largest_first(fitted, Z):
    top = fitted.explain(Z[0], top=5)
    assert len(top) == 5 and all(isinstance(c, str) for c, _ in top)
    weights = [w for _, w in top]
    assert weights == sorted(weights, reverse=True)
    row = fitted.transform(Z[:1]).toarray().ravel()
    assert top[0] == (fitted.get_feature_names_out()[row.argmax()], pytest.approx(row.max()))


def test_sklearn_conventions(vocab, Z):
    dec = ConceptDecomposer(vocab, l1_penalty=0.2, solver="active-set")
    assert dec.get_params()["l1_penalty"] == 0.2
    twin = clone(dec)
    assert twin.get_params()["solver"] == "active-set" and not hasattr(twin, "components_")
    with pytest.raises(NotFittedError):
        dec.transform(Z[:2])
    dec.fit(Z)
    assert dec.n_features_in_ == 384 and dec.components_.shape == (2000, 384)
    assert list(dec.get_feature_names_out()[:3]) == vocab.concepts[:3]
    frame = dec.set_output(transform="pandas").transform(Z[:3])
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == vocab.concepts
    np.testing.assert_allclose(frame.sparse.to_dense().to_numpy(), ConceptDecomposer(vocab, 0.2).fit(Z).transform(Z[:3]).toarray())


def test_known_modality_mean_equals_estimated_one(vocab, Z):
    a = ConceptDecomposer(vocab).fit(Z)
    b = ConceptDecomposer(vocab).fit(modality_mean=a.modality_mean_)
    assert (a.transform(Z[:5]) != b.transform(Z[:5])).nnz == 0


def test_each_preprocessing_step_can_be_switched_off(vocab, Z):
    plain = ConceptDecomposer(vocab, 0.15, center_concepts=False, center_embeddings=False).fit()
    assert plain.modality_mean_ is None and plain.concept_mean_ is None
    C = l2_normalize(vocab.embeddings)
    ref = reference_lasso(C, l2_normalize(Z[7]), 0.15)
    assert np.abs(plain.transform(Z[7:8]).toarray().ravel() - ref).max() < 1e-6


def test_path_and_target_l0(fitted, Z):
    lams = [0.05, 0.25, 0.15]
    path = fitted.decompose_path(Z[:50], lams)
    assert [p.l1_penalty[0] for p in path] == lams
    assert path[0].nnz.mean() > path[2].nnz.mean() > path[1].nnz.mean()
    single = fitted.decompose(Z[:50]).codes
    assert abs(path[2].codes - single).max() < 1e-10
    dec = ConceptDecomposer(fitted.vocabulary, target_l0=8).fit(modality_mean=fitted.modality_mean_)
    r = dec.decompose(Z[:50])
    assert (r.nnz <= 8).all() and (r.nnz == 8).mean() > 0.9
    assert np.nanmax(r.duality_gap) < 1e-9


# ----------------------------------------------------------------- bad input
def test_bad_rows_are_flagged_not_fatal(fitted, Z):
    X = Z[:6].copy()
    X[1, 3] = np.nan
    X[3] = 0
    X[4, 0] = np.inf
    with pytest.warns(RuntimeWarning, match=r"3 of 6 rows .* rows \[1, 3, 4\]"):
        r = fitted.decompose(X)
    assert list(r.status) == [0, 3, 0, 3, 3, 0]
    assert r.codes[[1, 3, 4]].nnz == 0
    good = fitted.decompose(Z[[0, 2, 5]]).codes
    assert abs(r.codes[[0, 2, 5]] - good).max() < 1e-12


@pytest.mark.parametrize(
    "kwargs, match",
    [({"l1_penalty": -0.1}, "positive"), ({"l1_penalty": 0}, "positive"), ({"target_l0": 0}, "target_l0"),
     ({"solver": "admm"}, "choose one of"), ({"batch_size": 0}, "batch_size")],
)
def test_bad_parameters(vocab, Z, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConceptDecomposer(vocab, **kwargs).fit(Z)


def test_wrong_dimension_and_fingerprint(fitted, vocab, Z):
    with pytest.raises(ValueError, match=r"shape \(2, 512\).*384-dimensional"):
        fitted.transform(np.ones((2, 512)))
    with pytest.raises(ValueError, match="laion/clap-htsat-unfused.*embed both with the same model"):
        fitted.transform(Embeddings(Z[:2], "laion/clap-htsat-unfused"))
    assert fitted.transform(Embeddings(Z[:2], vocab.fingerprint)).shape == (2, 2000)
    with pytest.raises(ValueError, match="needs audio embeddings"):
        ConceptDecomposer(vocab).fit()


@pytest.mark.parametrize(
    "concepts, emb, match",
    [([], np.zeros((0, 4)), "empty"), (["rain", "rain", "dog"], np.eye(3), "more than once"),
     (["rain"], np.ones((1, 3)), "one concept"), (["rain", "dog"], np.eye(3), r"shape \(k, d\)"),
     (["rain", "dog"], np.array([[1.0, np.nan], [0, 1]]), "'rain'.*NaN"), (["rain", ""], np.eye(2), "non-empty"),
     (["rain", "dog"], np.array([[0.0, 0], [0, 1]]), "all zero")],
)
def test_bad_vocabularies(concepts, emb, match):
    with pytest.raises(ValueError, match=match):
        Vocabulary(concepts, emb, "model")


def test_notebook_html_shows_top_concepts_escaped():
    rng = np.random.default_rng(3)
    vocab = Vocabulary(["<script>alert(1)</script>", "rain", "dog", "wind"], rng.standard_normal((4, 8)), "m")
    X = rng.standard_normal((3, 8))
    result = ConceptDecomposer(vocab, l1_penalty=0.01).fit(X).decompose(X)
    page = result._repr_html_()
    assert "<script>" not in page and "&lt;script&gt;" in page
    top = result.explain(0, 1)[0][0]
    assert (top if top != "<script>alert(1)</script>" else "&lt;script&gt;") in page
    assert page.count("<tr") == 1 + len(result)  # header + one row per embedding
