"""Audio handling without a model: decoding, errors, mono, resampling, windows, pooling, batching."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import soundfile as sf

from audioconcepts.embeddings import Embeddings
from audioconcepts.encoders import EncoderCapabilityError
from audioconcepts.encoders.audio import (
    AudioBatchError,
    AudioError,
    CorruptAudioError,
    EmptyAudioError,
    UnreadablePathError,
    UnsupportedFormatError,
    WindowedAudioEncoder,
    decode_audio,
    embed_audio_files,
    load_audio,
    pool_windows,
    resample,
    split_windows,
)


def tone(freq: float, rate: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[spectrum.argmax()])


class LinearEncoder(WindowedAudioEncoder):
    """A fake model: a fixed random linear map of each window. Linear, so pooling is easy to check."""

    fingerprint, dim, sample_rate, window = "fake:linear@1;d=8;prep=1", 8, 8000, 1000

    def __init__(self) -> None:
        self.weights = np.random.default_rng(0).standard_normal((self.window, self.dim)).astype(np.float32)
        self.calls: list[int] = []

    def _embed_windows(self, windows: np.ndarray) -> np.ndarray:
        assert windows.shape[1] == self.window and windows.dtype == np.float32
        self.calls.append(len(windows))
        return windows @ self.weights

    def embed_text(self, texts, *, batch_size=64):
        raise NotImplementedError


@pytest.fixture()
def enc() -> LinearEncoder:
    return LinearEncoder()


# --- decoding, mono, resampling ---


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3"])
def test_formats_decode_to_the_right_tone(tmp_path, ext):
    path = tmp_path / f"tone.{ext}"
    sf.write(path, tone(440, 44100, 1.0), 44100)
    x = load_audio(path, 44100)
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - 44100) < 0.05 * 44100  # lossy codecs may add encoder delay/padding
    assert abs(peak_hz(x, 44100) - 440) < 3


def test_stereo_is_mixed_to_mono_by_mean(tmp_path):
    left, right = tone(440, 16000, 0.5), tone(1000, 16000, 0.5, amp=0.25)
    sf.write(tmp_path / "st.wav", np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(tmp_path / "st.wav", 16000), (left + right) / 2, atol=1e-7)


def test_resampling_keeps_pitch_and_duration(tmp_path):
    x = tone(1000, 44100, 1.0)
    y = resample(x, 44100, 48000)
    assert len(y) == 48000 and y.dtype == np.float32
    assert abs(peak_hz(y, 48000) - 1000) <= 1
    # and through a file, the way paths are embedded
    sf.write(tmp_path / "t.wav", x, 44100, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(tmp_path / "t.wav", 48000), y)


def test_silent_audio_is_valid(tmp_path):
    sf.write(tmp_path / "silence.wav", np.zeros(800, np.float32), 8000)
    assert not load_audio(tmp_path / "silence.wav", 8000).any()


# --- errors: one AudioError subclass each, with path and reason ---


def make_bad_file(kind: str, d) -> str:
    """A path that fails in the way `kind` names."""
    path = d / {"directory": "", "missing": "missing.wav", "unsupported": "song.m4a"}.get(kind, f"{kind}.wav")
    if kind == "empty-file":
        path.write_bytes(b"")
    elif kind == "zero-samples":
        sf.write(path, np.zeros(0), 8000)
    elif kind in ("garbage", "unsupported"):
        path.write_text("not audio " * 20)
    elif kind == "nan":
        sf.write(path, np.array([0.1, np.nan, 0.2], np.float32), 8000, subtype="FLOAT")
    elif kind.startswith("truncated-"):
        path = d / f"cut.{kind.split('-')[1]}"
        sf.write(path, tone(440, 8000, 2.0), 8000)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    return str(path)


@pytest.mark.parametrize(
    "kind, error, reason",
    [
        ("missing", UnreadablePathError, "No such file"),
        ("directory", UnreadablePathError, "directory"),
        ("empty-file", EmptyAudioError, "0 bytes"),
        ("zero-samples", EmptyAudioError, "zero samples"),
        ("garbage", CorruptAudioError, "cannot decode as wav"),
        ("truncated-wav", CorruptAudioError, "truncated"),
        ("truncated-flac", CorruptAudioError, "cannot decode as flac"),
        ("unsupported", UnsupportedFormatError, "pip install librosa"),
        ("nan", CorruptAudioError, "NaN"),
    ],
)
def test_bad_files_raise_specific_errors(tmp_path, monkeypatch, kind, error, reason):
    monkeypatch.setitem(sys.modules, "librosa", None)  # as if librosa were not installed
    path = make_bad_file(kind, tmp_path)
    with pytest.raises(error) as info:
        load_audio(path, 8000)
    assert isinstance(info.value, AudioError)
    assert info.value.path == path and reason in info.value.reason and path in str(info.value)


def test_unknown_formats_fall_back_to_librosa(tmp_path, monkeypatch):
    calls = []

    def fake_load(path, sr, mono, dtype):
        calls.append((path, sr, mono))
        return np.ones((2, 500), dtype), 22050  # librosa's (channels, samples) layout

    monkeypatch.setitem(sys.modules, "librosa", types.SimpleNamespace(load=fake_load))
    (tmp_path / "a.m4a").write_bytes(b"\0" * 64)
    samples, rate = decode_audio(tmp_path / "a.m4a")
    assert samples.shape == (500, 2) and rate == 22050 and calls == [(str(tmp_path / "a.m4a"), None, False)]


# --- windows and pooling ---


def test_split_windows_long_clip_last_window_aligned_to_end():
    x = np.arange(2500, dtype=np.float32)
    w = np.stack(split_windows(x, 1000))
    assert w.shape == (3, 1000)
    np.testing.assert_array_equal(w[:, 0], [0, 1000, 1500])
    np.testing.assert_array_equal(w[-1], x[-1000:])
    np.testing.assert_array_equal(np.stack(split_windows(x[:2000], 1000))[:, 0], [0, 1000])  # exact multiple


def test_split_windows_short_clip_is_repeat_padded_like_laion():
    """LAION/transformers "repeatpad": whole copies, then zeros; "tile" (msclap): copies, truncated."""
    x = np.arange(1, 301, dtype=np.float32)
    (w,) = split_windows(x, 1000)
    np.testing.assert_array_equal(w, np.concatenate([x, x, x, np.zeros(100)]))
    (w,) = split_windows(x, 1000, "tile")
    np.testing.assert_array_equal(w, np.concatenate([x, x, x, x[:100]]))
    np.testing.assert_array_equal(split_windows(np.ones(1), 5), [[1] * 5])
    np.testing.assert_array_equal(split_windows(np.arange(1000.0), 1000), [np.arange(1000.0)])
    with pytest.raises(ValueError, match="padding"):
        split_windows(x, 1000, "zeros")


def test_pool_windows_is_normalised_mean_of_normalised_rows():
    e = np.array([[3.0, 0], [0, 1], [0, 2], [1, 1]])
    pooled = pool_windows(e, [2, 1, 1])
    np.testing.assert_allclose(pooled, [[np.sqrt(0.5), np.sqrt(0.5)], [0, 1], [np.sqrt(0.5), np.sqrt(0.5)]])
    assert pooled.dtype == np.float32


# --- the windowed encoder base: arrays, files, batching, failures ---


def test_long_clip_embedding_is_pooled_window_embeddings(enc):
    x = np.random.default_rng(1).standard_normal(2500).astype(np.float32)
    clip = enc.embed_audio(([x], 8000)).vectors
    windows = enc.embed_audio(([x[:1000], x[1000:2000], x[1500:]], 8000)).vectors
    np.testing.assert_allclose(clip[0], pool_windows(windows, [3])[0], atol=1e-6)


def test_short_clip_and_its_repetition_embed_identically(enc):
    """With repeatpad, a clip whose length divides the window and its 2x repetition fill it alike."""
    x = np.random.default_rng(2).standard_normal(250).astype(np.float32)
    a, b = enc.embed_audio(([x, np.tile(x, 2)], 8000)).vectors
    np.testing.assert_array_equal(a, b)
    c = enc.embed_audio(([x[:200]], 8000)).vectors[0]  # 5 copies exactly: no zeros either
    assert not np.allclose(a, c)


def test_batch_size_only_changes_how_windows_are_grouped(enc):
    xs = [np.random.default_rng(i).standard_normal(n).astype(np.float32) for i, n in enumerate([300, 2500, 1000])]
    small = enc.embed_audio((xs, 8000), batch_size=2).vectors
    assert enc.calls == [2, 2, 1]  # 1 + 3 + 1 windows
    np.testing.assert_allclose(small, enc.embed_audio((xs, 8000), batch_size=64).vectors, atol=1e-6)


def test_arrays_are_resampled_to_the_model_rate(enc):
    x = np.random.default_rng(3).uniform(-0.5, 0.5, 4800).astype(np.float32)
    np.testing.assert_allclose(
        enc.embed_audio(([x], 16000)).vectors, enc.embed_audio(([resample(x, 16000, 8000)], 8000)).vectors, atol=1e-6
    )


def test_bad_arrays_raise(enc):
    with pytest.raises(EmptyAudioError, match="<array 1>"):
        enc.embed_audio(([np.ones(10), np.zeros(0)], 8000))
    with pytest.raises(ValueError, match="mono"):
        enc.embed_audio(([np.ones((10, 2))], 8000))
    with pytest.raises(TypeError, match="list of paths"):
        enc.embed_audio("one.wav")


def test_files_batch_reports_failures_and_embeds_the_rest(tmp_path, enc):
    good = []
    for i in range(3):
        good.append(str(tmp_path / f"g{i}.wav"))
        sf.write(good[-1], np.random.default_rng(i).uniform(-0.5, 0.5, 4000 + 700 * i), 8000)
    (tmp_path / "empty.wav").write_bytes(b"")
    paths = [good[0], str(tmp_path / "missing.wav"), good[1], str(tmp_path / "empty.wav"), good[2]]
    result = embed_audio_files(enc, paths, batch_size=2)
    assert result.ok_paths == good
    assert [(type(e), e.path) for e in result.failures] == [
        (UnreadablePathError, paths[1]),
        (EmptyAudioError, paths[3]),
    ]
    assert result.embeddings.fingerprint == enc.fingerprint
    np.testing.assert_allclose(result.embeddings.vectors, enc.embed_audio(good).vectors, atol=1e-6)

    with pytest.raises(AudioBatchError, match="2 of 5 audio files failed") as info:
        enc.embed_audio(paths)
    assert info.value.result.ok_paths == good

    nothing = embed_audio_files(enc, paths[1:2])
    assert nothing.embeddings.vectors.shape == (0, enc.dim) and len(nothing.failures) == 1


def test_files_batch_needs_an_audio_model():
    text_only = types.SimpleNamespace(sample_rate=None, fingerprint="st:x", dim=4)
    with pytest.raises(EncoderCapabilityError, match="no audio tower"):
        embed_audio_files(text_only, ["a.wav"])


def test_embeddings_type(enc):
    out = enc.embed_audio(([tone(440, 8000, 0.2)], 8000))
    assert isinstance(out, Embeddings) and out.vectors.shape == (1, 8)
    np.testing.assert_allclose(np.linalg.norm(out.vectors, axis=1), 1, atol=1e-6)
