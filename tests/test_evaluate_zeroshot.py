"""Zero-shot classification and retrieval helpers on small cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from audioconcepts import ConceptDecomposer, Vocabulary
from audioconcepts.evaluate.retrieval import dense_and_concept_retrieval, evaluate_retrieval
from audioconcepts.evaluate.zeroshot import class_prompts, class_scores, score, zero_shot, zero_shot_variants


def test_prompts():
    assert class_prompts(["dog_bark", "rain"]) == ["This is a sound of dog bark.", "This is a sound of rain."]
    with pytest.raises(ValueError, match="template"):
        class_prompts(["x"], "no slot")


def test_scores_are_cosines_and_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    A, T = rng.normal(size=(50, 8)), rng.normal(size=(4, 8))
    S = class_scores(A * 3.0, T)
    ref = skm.pairwise.cosine_similarity(A, T)
    np.testing.assert_allclose(S, ref)
    y = rng.integers(0, 4, 50)
    assert score(y, S, "accuracy") == pytest.approx(skm.accuracy_score(y, ref.argmax(1)))
    Y = rng.random((50, 4)) < 0.3
    Y[0] = True
    assert score(Y, S, "map") == pytest.approx(np.mean([skm.average_precision_score(Y[:, j], ref[:, j]) for j in range(4)]))
    top = np.eye(4, dtype=bool)[ref.argmax(1)]
    assert score(Y, S, "f1") == pytest.approx(skm.f1_score(Y, top, average="micro"))
    with pytest.raises(ValueError, match="multi-label"):
        score(Y, S, "accuracy")


def test_zero_shot_recovers_classes_near_their_prompts():
    rng = np.random.default_rng(1)
    T = rng.normal(size=(5, 32))
    y = rng.integers(0, 5, 200)
    Z = T[y] + 0.3 * rng.normal(size=(200, 32))
    r = zero_shot(Z, y, T, n_resamples=100)
    assert r.result.value == 1.0 and r.result.low == 1.0
    noisy = zero_shot(T[y] + 3 * rng.normal(size=(200, 32)), y, T, n_resamples=200, seed=3)
    assert noisy.result.low < noisy.result.value < noisy.result.high


def test_variants_use_the_decomposition_and_the_projector():
    rng = np.random.default_rng(2)
    k, d = 60, 24
    C = rng.normal(size=(k, d))
    vocab = Vocabulary([f"c{i}" for i in range(k)], (C / np.linalg.norm(C, axis=1, keepdims=True)).astype(np.float32), "toy")
    y = rng.integers(0, 3, 90)
    T = C[:3]
    Z = C[:3][y] + 0.2 * rng.normal(size=(90, d))
    dec = ConceptDecomposer(vocab, l1_penalty=0.05).fit(Z)

    class Identity:
        def transform(self, X):
            return X / np.linalg.norm(X, axis=1, keepdims=True)

    out = zero_shot_variants(dec, Z, y, T, projector=Identity(), n_resamples=0)
    assert set(out) == {"dense", "concepts", "finetuned", "finetuned+concepts"}
    assert out["dense"].result.value == out["finetuned"].result.value
    recomposed = dec.inverse_transform(dec.transform(Z))
    np.testing.assert_allclose(out["concepts"].scores, class_scores(recomposed, T))
    assert out["concepts"].result.value > 0.9


def test_retrieval_result_intervals_and_concepts():
    rng = np.random.default_rng(4)
    audio = rng.normal(size=(40, 16))
    owner = np.repeat(np.arange(40), 3)
    text = audio[owner] + rng.normal(size=(120, 16))
    r = evaluate_retrieval(audio, text, owner, n_resamples=200)
    iv = r.metrics["text_to_audio R@1"]
    assert iv.low <= iv.value <= iv.high and iv.value == pytest.approx(r.per_query["text_to_audio R@1"].mean())
    assert len(r.per_query["audio_to_text mAP@10"]) == 40

    class Exact:  # a decomposer whose recomposition is the identity: concept rows must equal dense rows
        def transform(self, X):
            return X

        def inverse_transform(self, W):
            return W

    both = dense_and_concept_retrieval(Exact(), audio, text, owner, n_resamples=0)
    assert both["dense"].metrics.keys() == both["concepts"].metrics.keys()
    assert all(both["dense"].value(k) == both["concepts"].value(k) for k in both["dense"].metrics)
