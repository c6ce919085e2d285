"""The vocabulary file format: round trips, several models per file, and refusal of bad files."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from audioconcepts.vocab import Vocabulary
from audioconcepts.vocab.fileformat import MissingFingerprintError, VocabularyFileError, write

CLAP = "laion/clap-htsat-unfused"
OTHER = "microsoft/msclap-2023"
PROVENANCE = {
    "source": "FSD50K eval metadata",
    "recipe": "pruned",
    "parameters": {"size": 3, "drop": ["numbers", "single letters"]},
    "counts": {"dog bark": 12, "rain": 7, "café ambience": 3},
}


def _vocab(concepts=("dog bark", "rain", "café ambience"), d=8, fp=CLAP, seed=0) -> Vocabulary:
    E = np.random.default_rng(seed).normal(size=(len(concepts), d)).astype(np.float32)
    return Vocabulary(list(concepts), E, fp, provenance=PROVENANCE)


def test_round_trip_keeps_everything_bitwise(tmp_path):
    v = _vocab()
    path = tmp_path / "v.vocab"
    v.save(path)
    assert path.exists() and not (tmp_path / "v.vocab.npz").exists()  # written at exactly `path`
    w = Vocabulary.load(path)
    assert w.concepts == v.concepts
    assert w.fingerprint == CLAP and w.fingerprints == [CLAP]
    assert w.embeddings.dtype == np.float32
    assert w.embeddings.tobytes() == v.embeddings.tobytes()
    assert w.provenance == PROVENANCE
    assert Vocabulary.load(str(path)).concepts == v.concepts


def test_unicode_concepts_round_trip(tmp_path):
    concepts = ["chant grégorien", "太鼓", "мотоцикл", "🐕 barking", "naïve\ttab"]
    _vocab(concepts).save(tmp_path / "u.vocab")
    assert Vocabulary.load(tmp_path / "u.vocab").concepts == concepts


def test_default_provenance_is_empty_and_constructor_unchanged(tmp_path):
    v = Vocabulary(concepts=["a b", "c d"], embeddings=np.eye(2), fingerprint=CLAP)
    assert v.provenance == {}
    v.save(tmp_path / "p.vocab")
    assert Vocabulary.load(tmp_path / "p.vocab").provenance == {}


def test_two_fingerprints_in_one_file(tmp_path):
    v = _vocab()
    E2 = np.random.default_rng(1).normal(size=(3, 5)).astype(np.float32)
    both = v.with_embeddings(E2, OTHER)
    assert both.concepts == v.concepts and both.provenance == PROVENANCE
    assert both.fingerprint == OTHER and both.fingerprints == [OTHER, CLAP]
    path = tmp_path / "both.vocab"
    both.save(path)

    clap = Vocabulary.load(path, fingerprint=CLAP)
    assert clap.fingerprint == CLAP and clap.embeddings.tobytes() == v.embeddings.tobytes()
    other = Vocabulary.load(path, fingerprint=OTHER)
    assert other.fingerprint == OTHER and other.dim == 5 and other.embeddings.tobytes() == E2.tobytes()

    # saving a vocabulary loaded for one model keeps the other model's embeddings
    clap.save(tmp_path / "again.vocab")
    again = Vocabulary.load(tmp_path / "again.vocab", fingerprint=OTHER)
    assert again.embeddings.tobytes() == E2.tobytes()


def test_missing_or_ambiguous_fingerprint_names_the_models(tmp_path):
    path = tmp_path / "both.vocab"
    _vocab().with_embeddings(np.ones((3, 4), np.float32), OTHER).save(path)
    with pytest.raises(MissingFingerprintError) as e:
        Vocabulary.load(path, fingerprint="openai/whisper-tiny")
    assert "openai/whisper-tiny" in str(e.value) and CLAP in str(e.value) and OTHER in str(e.value)
    with pytest.raises(MissingFingerprintError, match="several models") as e:
        Vocabulary.load(path)
    assert CLAP in str(e.value) and OTHER in str(e.value)

    single = tmp_path / "one.vocab"
    _vocab().save(single)
    with pytest.raises(MissingFingerprintError, match=f"'{OTHER}'.*'{CLAP}'"):
        Vocabulary.load(single, fingerprint=OTHER)


def test_with_embeddings_replaces_same_model():
    v = _vocab()
    w = v.with_embeddings(np.ones((3, 2), np.float32), CLAP)
    assert w.fingerprints == [CLAP] and w.dim == 2


def test_concept_only_file(tmp_path):
    path = tmp_path / "concepts.vocab"
    write(path, ["dog bark", "rain"], {"recipe": "baseline"})
    assert Vocabulary.load_concepts(path) == (["dog bark", "rain"], {"recipe": "baseline"})
    with pytest.raises(MissingFingerprintError, match="load_concepts"):
        Vocabulary.load(path)
    with pytest.raises(MissingFingerprintError, match="none"):
        Vocabulary.load(path, fingerprint=CLAP)
    # load_concepts also reads a file with embeddings, without its embeddings
    _vocab().save(tmp_path / "full.vocab")
    assert Vocabulary.load_concepts(tmp_path / "full.vocab")[1] == PROVENANCE


def test_provenance_must_be_json(tmp_path):
    v = _vocab()
    v.provenance["when"] = object()
    with pytest.raises(ValueError, match="JSON"):
        v.save(tmp_path / "bad.vocab")
    assert not list(tmp_path.iterdir())  # no partial file left behind


@pytest.mark.parametrize("cut", [0, 10, 200, -100])
def test_truncated_file_is_a_clear_error(tmp_path, cut):
    path = tmp_path / "v.vocab"
    _vocab(d=64).save(path)
    data = path.read_bytes()
    path.write_bytes(data[:cut])
    with pytest.raises(VocabularyFileError, match="v.vocab"):
        Vocabulary.load(path)


def test_corrupted_embeddings_are_detected(tmp_path):
    path = tmp_path / "v.vocab"
    v = _vocab(d=64)
    v.save(path)
    data = bytearray(path.read_bytes())
    at = data.find(v.embeddings.tobytes()[:16])
    assert at > 0
    data[at + 8] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(VocabularyFileError, match="corrupt"):
        Vocabulary.load(path)


@pytest.mark.parametrize("content", [b"dog bark\nrain\n", b"\x93NUMPY garbage", b"PK\x03\x04 nonsense"])
def test_other_files_are_a_clear_error(tmp_path, content):
    path = tmp_path / "x.vocab"
    path.write_bytes(content)
    with pytest.raises(VocabularyFileError):
        Vocabulary.load(path)


def test_npz_without_header_is_refused(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, concepts=np.array(["a", "b"]))
    with pytest.raises(VocabularyFileError, match="no header"):
        Vocabulary.load(path)


def _rewrite_header(path, **changes):
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(arrays["header"].tobytes())
    header.update(changes)
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_other_format_version_is_refused(tmp_path):
    path = tmp_path / "v.vocab"
    _vocab().save(path)
    _rewrite_header(path, version=2)
    with pytest.raises(VocabularyFileError, match="version 2.*reads version 1"):
        Vocabulary.load(path)


def test_other_format_name_is_refused(tmp_path):
    path = tmp_path / "v.vocab"
    _vocab().save(path)
    _rewrite_header(path, format="something-else")
    with pytest.raises(VocabularyFileError, match="not an audioconcepts-vocabulary file"):
        Vocabulary.load(path)


def test_file_holds_no_pickles(tmp_path):
    path = tmp_path / "both.vocab"
    _vocab().with_embeddings(np.ones((3, 4), np.float32), OTHER).save(path)
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == ["embeddings_0.npy", "embeddings_1.npy", "header.npy"]
    with np.load(path, allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)


def test_unknown_name_lists_shipped_names(tmp_path):
    with pytest.raises(FileNotFoundError, match="captions-2k"):
        Vocabulary.load("no-such-vocabulary")
    with pytest.raises(FileNotFoundError, match="embed_vocabulary"):
        Vocabulary.load("captions-2k")
