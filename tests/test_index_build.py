"""Building and updating the concept index from real audio (ESC-10 clips) with a tiny random CLAP."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioconcepts import ConceptDecomposer, Embeddings, Vocabulary
from audioconcepts.decompose.preprocess import l2_normalize
from audioconcepts.encoders import load_encoder
from audioconcepts.encoders.cache import EmbeddingCache
from audioconcepts.encoders.cached import embed_files
from audioconcepts.index import (
    ConceptIndex,
    IndexBusyError,
    IndexMismatchError,
    build_index,
    build_index_from_embeddings,
    read_labels_csv,
)
from audioconcepts.index.profile import profile

FIXTURES = Path(__file__).parent / "fixtures" / "esc10"
CONCEPTS = [
    "rain",
    "dog",
    "bird",
    "engine",
    "water",
    "fire",
    "clock",
    "baby crying",
    "wind",
    "sea waves",
    "rooster",
    "saw",
]


class CountingEncoder:
    """Wraps an encoder and counts the audio clips it is asked to embed (optionally under another fingerprint)."""

    def __init__(self, encoder, fingerprint: str | None = None) -> None:
        self.encoder = encoder
        self.fingerprint = fingerprint or encoder.fingerprint
        self.clips = 0

    def __getattr__(self, name):
        return getattr(self.encoder, name)

    def embed_audio(self, audio, **kw):
        waves, _ = audio
        self.clips += len(waves)
        out = self.encoder.embed_audio(audio, **kw)
        return type(out)(out.vectors, self.fingerprint)


@pytest.fixture(scope="module")
def tiny(clap_dir):
    encoder = load_encoder(str(clap_dir))
    vocab = Vocabulary(CONCEPTS, encoder.embed_text(CONCEPTS).vectors, encoder.fingerprint)
    return encoder, vocab


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with EmbeddingCache(tmp_path_factory.mktemp("cache") / "embeddings.sqlite") as c:
        yield c


@pytest.fixture(scope="module")
def reference_mean(tiny, cache):
    """The audio modality mean of the bundled reference clips, computed by hand (and cached)."""
    encoder, _ = tiny
    folder = resources.files("audioconcepts.data").joinpath("reference_clips")
    with resources.as_file(folder) as path:
        clips = sorted(str(p) for p in Path(path).glob("*.flac"))
        return l2_normalize(embed_files(encoder, clips, cache).embeddings.vectors).mean(axis=0)


@pytest.fixture(scope="module")
def esc_vectors(tiny, cache):
    """Embeddings of the ESC-10 fixture clips by file name (and in the cache)."""
    encoder, _ = tiny
    files = sorted(FIXTURES.glob("*.flac"))
    result = embed_files(encoder, files, cache)
    return {Path(p).name: v for p, v in zip(result.paths, result.embeddings.vectors)}


def copy_clips(target: Path, names: list[str] | None = None) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for f in sorted(FIXTURES.glob("*.flac")):
        if names is None or f.name in names:
            shutil.copy(f, target / f.name)
    return target


def expected_codes(vocab, X, mean, l1=0.15):
    """Codes computed without the index: decompose the embeddings with the given modality mean."""
    return ConceptDecomposer(vocab, l1_penalty=l1).fit(modality_mean=mean).transform(X).toarray()


def stored(index: ConceptIndex) -> dict[str, tuple[int, str]]:
    return {p: (i, h) for i, p, h in index.con.execute("SELECT id, path, content_hash FROM files").fetchall()}


def test_build_stores_embeddings_codes_labels_and_metadata(tiny, cache, reference_mean, esc_vectors, tmp_path):
    encoder, vocab = tiny
    sounds = copy_clips(tmp_path / "sounds")
    counting = CountingEncoder(encoder)
    report = build_index(
        [sounds],
        counting,
        vocab,
        tmp_path / "ix.duckdb",
        cache=cache,
        labels=FIXTURES / "meta.csv",
        vocabulary_name="tiny",
    )
    assert (report.added, report.updated, report.removed, report.unchanged) == (10, 0, 0, 0)
    # every clip (and every reference clip) was in the cache: the model embedded nothing
    assert counting.clips == 0 and report.embedded == 0 and report.failures == []
    assert "reference" in report.centering  # 10 files < 20: the bundled reference clips centre the codes
    with ConceptIndex(tmp_path / "ix.duckdb") as index:
        assert len(index) == 10
        assert index.meta["fingerprint"] == encoder.fingerprint
        assert index.meta["vocabulary_name"] == "tiny" and index.meta["n_concepts"] == len(CONCEPTS)
        assert index.l1_penalty == 0.15 and index.concepts == CONCEPTS
        np.testing.assert_allclose(index.modality_mean, reference_mean, atol=1e-6)
        paths = sorted(sounds.glob("*.flac"))
        ids = [index.clip_id(p) for p in paths]
        X = np.stack([esc_vectors[p.name] for p in paths])
        W = expected_codes(vocab, X, index.modality_mean)
        np.testing.assert_allclose(index.embeddings(ids), X, atol=1e-6)
        np.testing.assert_allclose(index.codes(ids).toarray(), W, atol=1e-6)
        labels = read_labels_csv(FIXTURES / "meta.csv")
        for p, i in zip(paths, ids):
            clip = index.clip(i)
            assert clip.label == labels[p.name]
            assert clip.duration == pytest.approx(5.0)
            assert clip.nnz == np.count_nonzero(W[ids.index(i)])
            # the whole code, largest first
            assert [w for _, w in clip.concepts] == sorted((w for w in W[ids.index(i)] if w > 0), reverse=True)
        # a page of clips is ordered by path and knows the total
        page = index.clips(offset=3, limit=4, top=2)
        assert page.total == 10 and [c.path for c in page] == [str(p) for p in paths[3:7]]
        assert all(len(c.concepts) <= 2 for c in page)


def test_update_embeds_only_new_and_changed_files_and_removes_vanished(
    tiny, cache, reference_mean, esc_vectors, tmp_path
):
    encoder, vocab = tiny
    sounds = copy_clips(tmp_path / "sounds")
    db = tmp_path / "ix.duckdb"
    build_index([sounds], encoder, vocab, db, cache=cache)  # all from the cache
    # from here on no cache: whatever is embedded is the index's own incremental work
    with ConceptIndex(db) as index:
        before = stored(index)
        mean = index.modality_mean

    counting = CountingEncoder(encoder)
    again = build_index([sounds], counting, vocab, db)  # nothing changed: nothing embedded or decomposed
    assert counting.clips == 0 and (again.unchanged, again.added, again.decomposed) == (10, 0, 0)

    files = sorted(sounds.glob("*.flac"))
    changed, deleted = files[0], files[1]
    audio, rate = sf.read(changed)
    sf.write(changed, audio[::-1] * 0.5, rate)  # same name, new content
    deleted.unlink()
    added = sounds / "new" / "extra.flac"
    added.parent.mkdir()
    with resources.as_file(
        resources.files("audioconcepts.data").joinpath("reference_clips", "4-160999-A-10.flac")
    ) as src:
        shutil.copy(src, added)

    counting = CountingEncoder(encoder)
    report = build_index([sounds], counting, vocab, db)
    assert counting.clips == 2 and report.embedded == 2  # the changed file and the new one, nothing else
    assert (report.added, report.updated, report.removed, report.unchanged, report.decomposed) == (1, 1, 1, 8, 2)
    with ConceptIndex(db) as index:
        after = stored(index)
        assert set(after) == set(before) - {str(deleted)} | {str(added)}
        for p in set(after) & set(before):  # ids are stable, also for the changed file
            assert after[p][0] == before[p][0]
        assert after[str(changed)][1] != before[str(changed)][1]
        np.testing.assert_array_equal(index.modality_mean, mean)  # the centering is fixed at the first build
        ids = [index.clip_id(p) for p in (changed, added)]
        X = encoder.embed_audio([str(changed), str(added)]).vectors
        W = expected_codes(vocab, X, mean)
        np.testing.assert_allclose(index.embeddings(ids), X, atol=1e-6)
        np.testing.assert_allclose(index.codes(ids).toarray(), W, atol=1e-6)
        # folder scope: the new sub-folder holds exactly the added file
        assert index.ids(folder=added.parent) == [ids[1]]
        assert profile(index, folder=added.parent).n_clips == 1


def test_a_bad_file_is_recorded_and_the_others_are_indexed(tiny, cache, reference_mean, esc_vectors, tmp_path):
    encoder, vocab = tiny
    sounds = copy_clips(tmp_path / "sounds", ["3-132852-A-10.flac", "4-182395-A-0.flac"])
    bad = sounds / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    db = tmp_path / "ix.duckdb"
    report = build_index([sounds], encoder, vocab, db, cache=cache, labels="folder")
    assert [p for p, _ in report.failures] == [str(bad)] and report.added == 2
    with ConceptIndex(db) as index:
        assert len(index) == 2 and [p for p, _ in index.failures()] == [str(bad)]
        assert {c.label for c in index.clips()} == {"sounds"}
    bad.unlink()
    report = build_index([sounds], encoder, vocab, db, cache=cache)
    assert report.failures == [] and report.unchanged == 2
    with ConceptIndex(db) as index:
        assert index.failures() == []


def test_another_model_vocabulary_or_penalty_is_refused_unless_rebuilt(
    tiny, cache, reference_mean, esc_vectors, tmp_path
):
    encoder, vocab = tiny
    sounds = copy_clips(tmp_path / "sounds", ["3-132852-A-10.flac", "4-182395-A-0.flac"])
    db = tmp_path / "ix.duckdb"
    build_index([sounds], encoder, vocab, db, cache=cache, vocabulary_name="tiny")

    other_vocab = Vocabulary(CONCEPTS[:6], vocab.embeddings[:6], vocab.fingerprint)
    with pytest.raises(IndexMismatchError, match=r"vocabulary 'tiny' of 12 concepts.*'other' of 6 concepts"):
        build_index([sounds], encoder, other_vocab, db, vocabulary_name="other")

    impostor = CountingEncoder(encoder, fingerprint="clap:another-model")
    impostor_vocab = Vocabulary(CONCEPTS, vocab.embeddings, "clap:another-model")
    with pytest.raises(IndexMismatchError) as e:
        build_index([sounds], impostor, impostor_vocab, db)
    assert encoder.fingerprint in str(e.value) and "clap:another-model" in str(e.value)

    with pytest.raises(IndexMismatchError, match="l1_penalty 0.15"):
        build_index([sounds], encoder, vocab, db, l1_penalty=0.3, vocabulary_name="tiny")

    with pytest.raises(IndexMismatchError, match="embedded with"):  # vocabulary and encoder disagree
        build_index([sounds], impostor, vocab, db)

    report = build_index([sounds], encoder, other_vocab, db, cache=cache, vocabulary_name="other", rebuild=True)
    assert report.added == 2
    with ConceptIndex(db) as index:
        assert index.concepts == CONCEPTS[:6] and index.meta["vocabulary_name"] == "other"
        assert index.codes(index.ids()).shape == (2, 6)


def test_read_labels_csv_needs_file_and_label_columns(tmp_path):
    assert read_labels_csv(FIXTURES / "meta.csv")["4-182395-A-0.flac"] == "dog"
    bad = tmp_path / "bad.csv"
    bad.write_text("name,kind\na.wav,dog\n")
    with pytest.raises(ValueError, match="file column"):
        read_labels_csv(bad)


def test_opening_a_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="audioconcepts index"):
        ConceptIndex(tmp_path / "nothing.duckdb")


def test_new_labels_reach_unchanged_files_and_a_busy_index_is_a_clear_error(
    tiny, cache, reference_mean, esc_vectors, tmp_path
):
    encoder, vocab = tiny
    sounds = copy_clips(tmp_path / "sounds", ["3-132852-A-10.flac", "4-182395-A-0.flac"])
    db = tmp_path / "ix.duckdb"
    build_index([sounds], encoder, vocab, db, cache=cache)
    counting = CountingEncoder(encoder)
    report = build_index([sounds], counting, vocab, db, labels=FIXTURES / "meta.csv")
    assert report.unchanged == 2 and counting.clips == 0
    with ConceptIndex(db) as index:
        assert sorted(label for label, _ in index.labels()) == ["dog", "rain"]
        with pytest.raises(IndexBusyError, match="open elsewhere"):
            build_index([sounds], encoder, vocab, db, cache=cache)
        # a cursor serves another thread
        import threading

        view, seen = index.cursor(), []
        worker = threading.Thread(target=lambda: seen.append(view.count(label="dog")))
        worker.start()
        worker.join()
        view.close()
        assert seen == [1] and len(index) == 2


def test_an_interrupted_run_is_finished_by_the_next_one(tiny, cache, reference_mean, esc_vectors, tmp_path):
    """Rows stored with their embedding but not yet decomposed (a run killed in between) are
    decomposed by the next run, without embedding anything again."""
    encoder, vocab = tiny
    sounds = copy_clips(tmp_path / "sounds", ["3-132852-A-10.flac", "4-182395-A-0.flac", "4-164021-A-1.flac"])
    db = tmp_path / "ix.duckdb"
    build_index([sounds], encoder, vocab, db, cache=cache)
    with ConceptIndex(db) as index:
        ids = index.ids()
        expected = index.codes(ids).toarray()
    with ConceptIndex(db, read_only=False) as index:  # simulate the kill: two rows lose their codes
        index.con.execute("UPDATE files SET nnz = NULL, cosine = NULL WHERE id IN (?, ?)", ids[:2])
        index.con.execute("DELETE FROM codes WHERE file_id IN (?, ?)", ids[:2])
    counting = CountingEncoder(encoder)
    report = build_index([sounds], counting, vocab, db)
    assert counting.clips == 0 and report.decomposed == 2 and report.unchanged == 3
    with ConceptIndex(db) as index:
        np.testing.assert_allclose(index.codes(ids).toarray(), expected, atol=1e-12)
        assert all(c.nnz is not None for c in index.clips())


def test_precomputed_embeddings_update_by_id_and_vector(caption_space, tmp_path):
    X = caption_space.embeddings.vectors[:60].copy()
    vocab = caption_space.vocabulary
    fp = vocab.fingerprint
    ids = [f"clip-{i}" for i in range(60)]
    db = tmp_path / "p.duckdb"
    first = build_index_from_embeddings(ids, Embeddings(X, fp), vocab, db, labels=["a"] * 60)
    assert (first.added, first.decomposed, first.total) == (60, 60, 60)
    with ConceptIndex(db) as index:
        before = {p: i for i, p in index.con.execute("SELECT id, path FROM files").fetchall()}
        mean = index.modality_mean
    np.testing.assert_allclose(mean, l2_normalize(X).mean(axis=0), atol=1e-6)

    X2 = X.copy()
    X2[3] = caption_space.embeddings.vectors[100]  # a changed vector
    ids2 = ids[:59] + ["clip-new"]  # clip-59 dropped, one added
    X2[59] = caption_space.embeddings.vectors[101]
    report = build_index_from_embeddings(ids2, Embeddings(X2, fp), vocab, db, labels=["b"] * 60)
    assert (report.added, report.updated, report.removed, report.unchanged, report.decomposed) == (1, 1, 1, 58, 2)
    with ConceptIndex(db) as index:
        after = {p: i for i, p in index.con.execute("SELECT id, path FROM files").fetchall()}
        assert set(after) == set(ids2) and all(after[p] == before[p] for p in ids2[:59])
        np.testing.assert_array_equal(index.modality_mean, mean)
        order = [after[p] for p in ids2]
        expected = ConceptDecomposer(vocab, l1_penalty=0.15).fit(modality_mean=mean).transform(X2).toarray()
        np.testing.assert_allclose(index.codes(order).toarray(), expected, atol=1e-9)
        assert index.labels() == [("b", 60)]

    kept = build_index_from_embeddings(ids2[:10], Embeddings(X2[:10], fp), vocab, db, remove_missing=False)
    assert kept.removed == 0 and kept.total == 60
    bad = X2[:2].copy()
    bad[1] = np.nan
    report = build_index_from_embeddings(["x", "y"], Embeddings(bad, fp), vocab, db, remove_missing=False)
    assert report.added == 1 and [p for p, _ in report.failures] == ["y"]
    with pytest.raises(ValueError, match="same model"):
        build_index_from_embeddings(["z"], Embeddings(X[:1], "another"), vocab, db)
