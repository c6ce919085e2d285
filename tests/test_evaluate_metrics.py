"""Metrics against scikit-learn and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from audioconcepts.evaluate.metrics import (
    accuracy,
    average_precision,
    bootstrap_ci,
    f1,
    mean_average_precision,
    relevant_ranks,
    retrieval_metrics,
    retrieval_ranks,
)


@pytest.mark.parametrize("seed", range(5))
def test_accuracy_and_f1_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y, p = rng.integers(0, 7, 300), rng.integers(0, 7, 300)
    assert accuracy(y, p) == pytest.approx(skm.accuracy_score(y, p))
    T, P = rng.random((200, 17)) < 0.1, rng.random((200, 17)) < 0.15
    T[:, 3] = False  # a class with no positives and (maybe) predictions
    for avg in ("micro", "macro"):
        assert f1(T, P, avg) == pytest.approx(skm.f1_score(T, P, average=avg, zero_division=0))


def test_f1_hand_computed():
    T = np.array([[1, 0], [1, 1], [0, 0]])
    P = np.array([[1, 1], [0, 1], [0, 0]])
    # pooled: tp = 2, fp = 1, fn = 1 -> 2*2 / (4 + 1 + 1)
    assert f1(T, P) == pytest.approx(4 / 6)
    # class 0: tp 1 fn 1 -> 2/3; class 1: tp 1 fp 1 -> 2/3
    assert f1(T, P, "macro") == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="micro"):
        f1(T, P, "weighted")


@pytest.mark.parametrize("seed", range(5))
def test_map_matches_sklearn_including_ties(seed):
    rng = np.random.default_rng(seed)
    T = rng.random((150, 12)) < 0.2
    T[:, 5] = False  # no positive: skipped, as AudioSet evaluation does
    S = rng.integers(0, 6, (150, 12)).astype(float)  # many tied scores
    expected = np.mean([skm.average_precision_score(T[:, j], S[:, j]) for j in range(12) if T[:, j].any()])
    assert mean_average_precision(T, S) == pytest.approx(expected)
    S2 = rng.random((150, 12))
    assert average_precision(T[:, 0], S2[:, 0]) == pytest.approx(skm.average_precision_score(T[:, 0], S2[:, 0]))


def test_map_hand_computed():
    # positives at ranks 1 and 3 -> (1/1 + 2/3) / 2
    assert average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx((1 + 2 / 3) / 2)
    with pytest.raises(ValueError, match="no class"):
        mean_average_precision(np.zeros((3, 2)), np.ones((3, 2)))


def test_retrieval_hand_computed():
    # 2 clips, 4 captions (2 each): similarities chosen by hand
    audio = np.eye(3)[:2]
    text = np.array([[1, 0, 0], [0.2, 1, 0], [0, 1, 0], [1, 0.5, 0]], float)
    owner = [0, 0, 1, 1]
    m = retrieval_metrics(audio, text, owner, ks=(1, 2))
    # t2a: caption0 -> clip0 rank1; caption1 -> clip0 rank2; caption2 -> clip1 rank1; caption3 -> clip1 rank2
    assert m["text_to_audio R@1"] == pytest.approx(0.5)
    assert m["text_to_audio R@2"] == pytest.approx(1.0)
    assert m["text_to_audio mAP@10"] == pytest.approx((1 + 0.5 + 1 + 0.5) / 4)
    # a2t: clip0 scores captions [1, .196, 0, .894] -> its captions 0, 1 at ranks 1, 3: AP = (1 + 2/3)/2
    # clip1 scores [0, .981, 1, .447] -> captions 2, 3 at ranks 1, 3: AP = (1 + 2/3)/2
    assert m["audio_to_text R@1"] == pytest.approx(1.0)
    assert m["audio_to_text mAP@10"] == pytest.approx((1 + 2 / 3) / 2)


def test_retrieval_matches_independent_references():
    rng = np.random.default_rng(3)
    n_audio, per = 60, 5
    audio = rng.normal(size=(n_audio, 16))
    owner = np.repeat(np.arange(n_audio), per)
    text = audio[owner] + 1.5 * rng.normal(size=(n_audio * per, 16))
    m = retrieval_metrics(audio, text, owner)
    S = (text / np.linalg.norm(text, axis=1, keepdims=True)) @ (audio / np.linalg.norm(audio, axis=1, keepdims=True)).T
    for k in (1, 5, 10):
        assert m[f"text_to_audio R@{k}"] == pytest.approx(skm.top_k_accuracy_score(owner, S, k=k, labels=range(n_audio)))
    # AP@10 with one relevant item is the reciprocal rank, cut at 10
    rank = 1 + (S > S[np.arange(len(owner)), owner][:, None]).sum(1)
    assert m["text_to_audio mAP@10"] == pytest.approx(np.mean(np.where(rank <= 10, 1 / rank, 0)))
    # audio->text AP@10 with 5 relevant: brute force from a full sort
    aps, hits1 = [], []
    for a in range(n_audio):
        order = np.argsort(-S[:, a])[:10]
        rel = owner[order] == a
        prec = np.cumsum(rel) / np.arange(1, 11)
        aps.append(np.sum(prec * rel) / per)
        hits1.append(rel[0])
    assert m["audio_to_text mAP@10"] == pytest.approx(np.mean(aps))
    assert m["audio_to_text R@1"] == pytest.approx(np.mean(hits1))
    # with all 5 relevant captions retrievable, AP without cut-off equals sklearn's AP
    _, a2t = retrieval_ranks(audio, text, owner)
    full = [np.mean(np.arange(1, r.size + 1) / r) for r in a2t.ranks]
    ref = [skm.average_precision_score(owner == a, S[:, a]) for a in range(n_audio)]
    np.testing.assert_allclose(full, ref)


def test_ranks_break_ties_by_index_and_validate():
    r = relevant_ranks(np.array([[1.0, 1.0, 1.0]]), [[2]])
    assert r.ranks[0].tolist() == [3]
    with pytest.raises(ValueError, match="clip index"):
        retrieval_metrics(np.eye(2), np.eye(2), [0, 2])


def test_bootstrap_matches_the_normal_interval_of_a_mean():
    rng = np.random.default_rng(0)
    x = rng.normal(size=2000)
    ci = bootstrap_ci(np.mean, x, n_resamples=2000, confidence=0.95, seed=1)
    half = 1.959964 * x.std(ddof=1) / np.sqrt(len(x))
    assert ci.value == pytest.approx(x.mean())
    assert ci.low < x.mean() < ci.high
    assert ci.half_width == pytest.approx(half, rel=0.1)
    assert bootstrap_ci(np.mean, x, n_resamples=200, seed=5) == bootstrap_ci(np.mean, x, n_resamples=200, seed=5)
    narrow = bootstrap_ci(np.mean, x, n_resamples=2000, confidence=0.5, seed=1)
    assert narrow.half_width < ci.half_width


def test_bootstrap_resamples_paired_rows_and_skips_undefined():
    rng = np.random.default_rng(2)
    T = rng.random((40, 3)) < 0.05
    S = rng.random((40, 3))
    ci = bootstrap_ci(mean_average_precision, T, S, n_resamples=300, seed=0)
    assert ci.n_resamples <= 300 and ci.low <= ci.high
    y = rng.integers(0, 3, 100)
    ci = bootstrap_ci(accuracy, y, y, n_resamples=50)
    assert (ci.value, ci.low, ci.high) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="same number of rows"):
        bootstrap_ci(accuracy, y, y[:5])


@pytest.mark.parametrize("seed", [0, 1])
def test_fast_map_bootstrap_equals_the_generic_one(seed):
    from audioconcepts.evaluate.metrics import bootstrap_map

    rng = np.random.default_rng(seed)
    T = rng.random((120, 9)) < 0.1
    S = rng.integers(0, 6, (120, 9)).astype(float)  # ties, and classes that vanish from some resamples
    slow = bootstrap_ci(mean_average_precision, T, S, n_resamples=150, seed=seed + 7, confidence=0.9)
    fast = bootstrap_map(T, S, n_resamples=150, seed=seed + 7, confidence=0.9)
    assert fast.value == pytest.approx(slow.value)
    assert (fast.low, fast.high) == pytest.approx((slow.low, slow.high), abs=1e-12)
