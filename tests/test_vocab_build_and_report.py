"""`vocab build` (recipes from raw sources into files) and `vocab report` (quality measures)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from audioconcepts.cli import app
from audioconcepts.vocab import Vocabulary, fileformat, make
from audioconcepts.vocab.report import coverage, effective_rank, near_duplicates, vocabulary_report

FIXTURES = Path(__file__).parent / "fixtures" / "vocab"
CLIPS_INFO = [FIXTURES / "clips_a_clips_info_FSD50K.json", FIXTURES / "clips_b_clips_info_FSD50K.json"]
ESC10 = Path(__file__).parent / "fixtures" / "esc10"
runner = CliRunner()


def _random_vocabulary(k: int, d: int = 16, seed: int = 0, planted: int = 0) -> Vocabulary:
    """Random concepts; the last `planted` are tiny perturbations of the first ones (near duplicates)."""
    rng = np.random.default_rng(seed)
    E = rng.standard_normal((k, d))
    E[k - planted :] = E[:planted] + 0.01 * rng.standard_normal((planted, d))
    return Vocabulary([f"c{i}" for i in range(k)], E, "test-model")


# ------------------------------------------------------------------ report measures


def test_near_duplicates_equal_the_brute_force_matrix():
    vocab = _random_vocabulary(2500, d=6, planted=7)  # more rows than one block; d=6 gives many close pairs
    threshold = 0.97
    pairs, nearest = near_duplicates(vocab, threshold)
    E = vocab.embeddings / np.linalg.norm(vocab.embeddings, axis=1, keepdims=True)
    S = E.astype(np.float64) @ E.T.astype(np.float64)
    np.fill_diagonal(S, -np.inf)
    i, j = np.nonzero(np.triu(S > threshold, 1))
    assert {(f"c{a}", f"c{b}") for a, b in zip(i, j)} == {(a, b) for a, b, _ in pairs}
    np.testing.assert_allclose(nearest, S.max(axis=1), atol=1e-5)
    cosines = [c for _, _, c in pairs]
    assert cosines == sorted(cosines, reverse=True)
    assert {(f"c{n}", f"c{2500 - 7 + n}") for n in range(7)} <= {(a, b) for a, b, _ in pairs}


def test_effective_rank_of_opposite_axis_pairs_is_their_count():
    # e_1..e_m and -e_1..-e_m: mean zero, every direction carries the same energy -> exactly m.
    m, d = 7, 12
    E = np.vstack([np.eye(d)[:m], -np.eye(d)[:m]])
    vocab = Vocabulary([f"c{i}" for i in range(2 * m)], E, "test-model")
    assert effective_rank(vocab) == pytest.approx(m, rel=1e-12)
    # concepts spread around +e_1 and -e_1: one dominant direction, effective rank near 1
    axes = np.eye(d)
    E = np.vstack([axes[0] + 0.05 * axes[1 + i] for i in range(5)] + [-axes[0] + 0.05 * axes[6 + i] for i in range(5)])
    assert 1 < effective_rank(Vocabulary([f"c{i}" for i in range(10)], E, "test-model")) < 1.1


def test_coverage_counts_words_once_per_caption_exact_and_by_lemma():
    vocab = Vocabulary(["dog", "rain", "car passing", "bird"], np.eye(4), "m")
    captions = ["A dog barks and a dog growls", "Rain falls on dogs", "Birds sing while rain falls", "Thunder"]
    result = coverage(vocab, captions)
    # words (stop words out, once per caption): dog barks growls | rain falls dogs | birds sing rain falls | thunder
    assert result.n_captions == 4 and result.n_words == 11
    assert result.exact == pytest.approx(3 / 11)  # dog, rain, rain
    assert result.by_lemma == pytest.approx(5 / 11)  # + dogs, birds
    assert result.missing[0] == ("falls", 2)
    with pytest.raises(ValueError, match="no words"):
        coverage(vocab, ["the and of"])


def test_report_fidelity_and_threshold_validation():
    from audioconcepts.caption_space import load_caption_space

    space = load_caption_space()
    reference = type(space.embeddings)(space.embeddings.vectors[:300], space.embeddings.fingerprint)
    report = vocabulary_report(space.vocabulary, "captions-2k", threshold=0.95, reference=reference, reference_source="captions")
    # DESIGN.md: lambda 0.15 over the caption vocabulary gives about 37 concepts at cosine 0.88
    assert 25 < report.fidelity.mean_nnz < 50 and 0.83 < report.fidelity.mean_cosine < 0.93
    assert report.size == 2000 and report.dim == 384 and report.n_near_duplicate_pairs >= len(report.near_duplicates)
    with pytest.raises(ValueError, match="between -1 and 1"):
        vocabulary_report(space.vocabulary, "x", threshold=1.5)


# ------------------------------------------------------------------ build


def test_build_concepts_names_sizes_and_sources(tmp_path):
    tsv = tmp_path / "counts.tsv"
    tsv.write_text("tag\tcount\nrain\t10\nDog\t4\n", encoding="utf-8")
    built = make.build_concepts("fsd50k", [FIXTURES], sizes=[2, 3])  # a folder of clips-info files
    assert list(built) == ["fsd50k-baseline-2", "fsd50k-baseline-3", "fsd50k-pruned-2", "fsd50k-pruned-3"]
    assert built["fsd50k-baseline-3"].concepts == ["rain", "dog", "cough"]  # 'fuck' (7) dropped
    assert built["fsd50k-pruned-2"].concepts == ["cough", "rain"]  # cough+coughing+coughs = 9
    combined = make.read_tag_counts([*CLIPS_INFO, tsv])
    assert combined["rain"] == 16 and combined["dog"] == 9
    with pytest.raises(FileNotFoundError, match="no \\*_clips_info_FSD50K.json"):
        make.read_tag_counts([tmp_path])
    bad = tmp_path / "bad.tsv"
    bad.write_text("rain\tmany\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.tsv:1"):
        make.read_tag_counts([bad])
    with pytest.raises(ValueError, match="needs a model|give a model"):
        make.build_concepts("clustered", CLIPS_INFO)
    assert make.size_label(2000) == "2k" and make.size_label(2500) == "2500"


def test_vocab_build_cli_writes_concept_only_files(tmp_path):
    result = runner.invoke(app, ["vocab", "build", "fsd50k", *map(str, CLIPS_INFO), "--out", str(tmp_path), "-s", "3"])
    assert result.exit_code == 0, result.output
    assert "clustered vocabularies skipped" in result.stderr
    file = fileformat.read(tmp_path / "fsd50k-pruned-3.npz")
    assert file.embeddings == {} and file.provenance["recipe"] == "pruned" and file.provenance["name"] == "fsd50k-pruned-3"
    assert file.provenance["counts"]["cough"] == 9
    result = runner.invoke(app, ["vocab", "build", "fsd50k", str(FIXTURES), "--out", str(tmp_path / "one.npz")])
    assert result.exit_code == 2 and "give a folder" in result.stderr
    result = runner.invoke(app, ["vocab", "build", "nonsense", str(FIXTURES), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "choose one of" in result.output


def test_vocab_build_with_a_model_stores_embeddings_and_explain_uses_them(clap_dir, tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    monkeypatch.setenv("AUDIOCONCEPTS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "vocabs"
    result = runner.invoke(
        app, ["vocab", "build", "fsd50k", str(FIXTURES), "--out", str(out), "-s", "3", "--model", str(clap_dir)]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "fsd50k-baseline-3.npz", "fsd50k-clustered-3.npz", "fsd50k-pruned-3.npz"
    ]
    from audioconcepts.encoders import load_encoder

    encoder = load_encoder(str(clap_dir))
    vocab = Vocabulary.load(out / "fsd50k-clustered-3.npz")
    assert vocab.fingerprint == encoder.fingerprint and len(vocab) == 3
    np.testing.assert_allclose(vocab.embeddings, encoder.embed_text(vocab.concepts).vectors, atol=1e-5)

    from audioconcepts.vocab.sources import embed_vocabulary

    monkeypatch.setattr(encoder, "embed_text", lambda *a, **k: pytest.fail("embeddings in the file must be used"))
    assert embed_vocabulary(str(out / "fsd50k-pruned-3.npz"), encoder).concepts == ["cough", "rain", "dog"]
    clips = sorted(ESC10.glob("*.flac"))[:2]
    result = runner.invoke(
        app, ["explain", *map(str, clips), "-m", str(clap_dir), "--vocab", str(out / "fsd50k-pruned-3.npz"), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert {c["concept"] for r in json.loads(result.stdout) for c in r["concepts"]} <= {"cough", "rain", "dog"}


def test_vocab_report_cli_json(clap_dir, tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    monkeypatch.setenv("AUDIOCONCEPTS_CACHE", str(tmp_path / "cache"))
    concepts = tmp_path / "concepts.txt"
    concepts.write_text("dog\nrain\nthunder\ncar engine\nbird song\n", encoding="utf-8")
    result = runner.invoke(app, ["vocab", "report", str(concepts), "-m", str(clap_dir), "--json", "-t", "0.5"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["size"] == 5 and report["threshold"] == 0.5
    from audioconcepts.encoders import load_encoder

    E = load_encoder(str(clap_dir)).embed_text(["dog", "rain", "thunder", "car engine", "bird song"]).vectors
    S = np.triu(E @ E.T, 1)
    assert report["n_near_duplicate_pairs"] == int((S > 0.5).sum())
    assert report["coverage"]["n_captions"] == 4875 and 0 < report["coverage"]["exact"] < 0.2
    assert report["fidelity"]["n"] == 20 and "ESC-10" in report["fidelity"]["source"]
    result = runner.invoke(app, ["vocab", "report", str(concepts)])  # a text list has no embeddings
    assert result.exit_code == 2 and "cannot report" in result.stderr
