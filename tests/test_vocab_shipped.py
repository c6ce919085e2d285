"""The shipped concept-only vocabularies: sizes, recipes' promises, `vocab list/show`, and explain with one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from audioconcepts.cli import app
from audioconcepts.vocab import Vocabulary, fileformat
from audioconcepts.vocab.builders import EXPLETIVES, _lemma
from audioconcepts.vocab import sources
from audioconcepts.vocab.sources import concept_list, shipped_concepts, shipped_names, shipped_vocabularies

DATA = Path(__file__).resolve().parents[1] / "src/audioconcepts/data/vocabularies"
SIZES = {
    "captions-baseline-2k": 2000,
    "captions-pruned-2k": 2000,
    **{f"fsd50k-eval-{recipe}-{n}k": n * 1000 for recipe in ("baseline", "pruned") for n in (2, 3, 5)},
    "fsd50k-eval-tags-10k": 10000,
    "audioset-ontology": 565,
}
CLUSTERED_SIZES = {f"fsd50k-eval-clustered-{n}k": n * 1000 for n in (2, 3, 5)}
ESC10 = Path(__file__).parent / "fixtures" / "esc10"

runner = CliRunner()


@pytest.mark.parametrize("name", SIZES)
def test_shipped_files_load_with_the_promised_sizes(name):
    file = fileformat.read(DATA / f"{name}.npz")
    assert len(file.concepts) == SIZES[name] == len(set(file.concepts))
    assert file.embeddings == {}  # concept-only
    assert file.provenance["name"] == name and file.provenance["sources"]
    assert concept_list(name) == file.concepts
    concepts, provenance = Vocabulary.load_concepts(name)
    assert concepts == file.concepts and provenance == file.provenance
    assert not any(s.startswith("/") for s in file.provenance["sources"])  # no local paths shipped


def test_baseline_has_no_expletives_and_is_frequency_ranked():
    concepts, provenance = shipped_concepts("captions-baseline-2k")
    assert not set(concepts) & EXPLETIVES
    counts = [provenance["counts"][c] for c in concepts]
    assert counts == sorted(counts, reverse=True)
    assert {"dog", "dogs", "water", "engine"} <= set(concepts)  # raw words: plurals kept apart


def test_pruned_merges_roots():
    concepts, provenance = shipped_concepts("captions-pruned-2k")
    assert "dog" in concepts and "dogs" not in concepts
    assert "dogs" in provenance["merged"]["dog"]
    assert not set(concepts) & EXPLETIVES
    lemmas = [_lemma(c) for c in concepts]
    assert len(set(lemmas)) == len(lemmas)  # one concept per root
    assert all(c.isalpha() and len(c) > 1 for c in concepts)


def test_ontology_keeps_descriptions_and_ids():
    concepts, provenance = shipped_concepts("audioset-ontology")
    assert concepts[:3] == ["Human sounds", "Human voice", "Speech"]
    assert set(provenance["texts"]) == set(concepts) == set(provenance["ids"])
    assert provenance["texts"]["Speech"].startswith("Speech: ")
    assert len(provenance["dropped"]["blacklist"]) == 67


def test_shipped_vocabularies_lists_every_name():
    listed = {v.name: v.size for v in shipped_vocabularies()}
    assert listed == {"captions-2k": 2000, **SIZES, **CLUSTERED_SIZES}
    assert list(listed) == shipped_names()
    assert {p.stem for p in DATA.glob("*.npz")} == set(SIZES)  # every file is listed, every listed file ships


def test_fsd50k_eval_vocabularies_follow_the_paper_recipes():
    tags, tag_provenance = shipped_concepts("fsd50k-eval-tags-10k")
    counts = tag_provenance["counts"]
    for n in (2, 3, 5):
        baseline = shipped_concepts(f"fsd50k-eval-baseline-{n}k")[0]
        assert baseline == [t for t in tags if t not in EXPLETIVES][: n * 1000]  # most frequent first
        pruned, provenance = shipped_concepts(f"fsd50k-eval-pruned-{n}k")
        pooled = [provenance["counts"][c] for c in pruned]
        assert pooled == sorted(pooled, reverse=True)
        assert all(provenance["counts"][c] >= counts.get(c, 0) for c in pruned)  # merged counts are pooled
        assert not any(any(ch.isdigit() for ch in c) or len(c) == 1 for c in pruned)
    pruned, provenance = shipped_concepts("fsd50k-eval-pruned-2k")
    assert {"synth", "sfx", "soundscape", "whoosh"} & set(pruned) and "owi" not in pruned  # jargon kept, names dropped
    assert provenance["counts"]["footsteps"] > counts["footsteps"]  # footstep(s) merged


def test_clustered_needs_a_model():
    with pytest.raises(ValueError, match="depends on the model"):
        concept_list("fsd50k-eval-clustered-2k")


def test_clustered_vocabulary_is_built_once_per_model_and_cached(clap_dir, tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    from audioconcepts.encoders import load_encoder
    from audioconcepts.encoders.cache import EmbeddingCache

    monkeypatch.setitem(sources.CLUSTERED, "fsd50k-eval-clustered-2k", ("fsd50k-eval-tags-10k", 40))  # small k: fast
    encoder = load_encoder(str(clap_dir))
    calls = []
    embed_text = encoder.embed_text
    monkeypatch.setattr(encoder, "embed_text", lambda texts, **kw: calls.append(len(texts)) or embed_text(texts, **kw))
    with EmbeddingCache(tmp_path / "embeddings.sqlite") as cache:
        first = sources.embed_vocabulary("fsd50k-eval-clustered-2k", encoder, cache)
        assert sum(calls) == 10000  # the pool was embedded once
        again = sources.embed_vocabulary("fsd50k-eval-clustered-2k", encoder, cache)
        assert sum(calls) == 10000  # second use: read from the vocabulary cache
    assert len(first) == 40 and first.concepts == again.concepts and first.fingerprint == encoder.fingerprint
    np.testing.assert_array_equal(first.embeddings, again.embeddings)
    files = list((tmp_path / "vocabularies").glob("fsd50k-eval-clustered-2k--*.npz"))
    assert len(files) == 1 and Vocabulary.load(files[0]).fingerprint == encoder.fingerprint
    tags = set(shipped_concepts("fsd50k-eval-tags-10k")[0])
    assert set(first.concepts) <= tags and first.provenance["recipe"] == "clustered"


def test_vocab_list_prints_names_and_sizes():
    result = runner.invoke(app, ["vocab", "list"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name in ("captions-2k", *SIZES):
        assert name in result.stdout
    assert "2,000" in result.stdout and "565" in result.stdout


def test_vocab_show_prints_size_provenance_and_first_concepts():
    result = runner.invoke(app, ["vocab", "show", "captions-pruned-2k", "--top", "4"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "captions-pruned-2k: 2,000 concepts" in out and "recipe: pruned" in out and "merged roots" in out
    first = shipped_concepts("captions-pruned-2k")[0]
    assert all(c in out for c in first[:4]) and f"  {first[4]}  (" not in out
    result = runner.invoke(app, ["vocab", "show", "audioset-ontology"])
    assert result.exit_code == 0 and "audioset-ontology: 565 concepts" in result.stdout
    result = runner.invoke(app, ["vocab", "show", "no-such-vocabulary"])
    assert result.exit_code == 2 and "no-such-vocabulary" in result.stderr


def test_explain_with_a_shipped_pruned_vocabulary(clap_dir, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    monkeypatch.setenv("AUDIOCONCEPTS_CACHE", str(tmp_path / "cache"))
    clips = sorted(ESC10.glob("*.flac"))[:2]
    result = runner.invoke(
        app, ["explain", *map(str, clips), "--model", str(clap_dir), "--vocab", "captions-pruned-2k", "--json", "--top", "3"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    vocabulary = set(shipped_concepts("captions-pruned-2k")[0])
    assert [Path(r["path"]).name for r in rows] == [p.name for p in clips]
    assert all(1 <= len(r["concepts"]) <= 3 and {c["concept"] for c in r["concepts"]} <= vocabulary for r in rows)


def test_embed_vocabulary_names_by_default_and_descriptions_on_request(clap_dir):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from audioconcepts.encoders import load_encoder
    from audioconcepts.vocab.sources import embed_vocabulary

    encoder = load_encoder(str(clap_dir))
    names = embed_vocabulary("audioset-ontology", encoder)
    described = embed_vocabulary("audioset-ontology", encoder, descriptions=True)
    assert len(names) == len(described) == 565 and names.concepts == described.concepts
    assert names.provenance["embedded_texts"] == "names" and described.provenance["embedded_texts"] == "descriptions"
    assert (names.embeddings != described.embeddings).any()
    with pytest.raises(ValueError, match="no concept descriptions"):
        embed_vocabulary("captions-pruned-2k", encoder, descriptions=True)
