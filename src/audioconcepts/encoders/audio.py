"""Audio in: decoding, mono mix, resampling, fixed-length windows, and window pooling.

Conventions, shared by every audio backend (they are part of the fingerprint's ``prep`` version):

- Decoding: soundfile (libsndfile: wav, flac, ogg/opus, mp3 with libsndfile >= 1.1, aiff, ...);
  other formats fall back to librosa (audioread/ffmpeg) when it is installed.
- Mono: the mean over channels. Resampling: soxr at "VHQ" quality to the model's rate.
- Windows: a clip longer than the model's window (LAION CLAP: 10 s = 480,000 samples at 48 kHz)
  is cut into consecutive windows of exactly the window length; the last one is aligned to the
  end of the clip (it overlaps the one before), so no window is ever padded. A clip shorter than
  one window is padded the way its model was trained: "repeatpad" (LAION CLAP, the transformers
  feature extractor's default) repeats whole copies and zero-pads the remainder; "tile"
  (Microsoft CLAP) repeats and truncates. Nothing is random.
- Pooling: the clip embedding is the mean of its L2-normalised window embeddings, L2-normalised.
- Errors: each bad file raises one subclass of `AudioError` carrying the path and the reason.
  Missing/unreadable paths, empty files, zero-length audio, corrupt or truncated files and
  unsupported formats are errors; all-silent audio is valid audio and is embedded like any other.
- Batches of files: `embed_audio_files` embeds every good file and returns the failures beside
  the embeddings; `embed_audio(paths)` returns one row per path or, if any file failed, raises
  `AudioBatchError` carrying that partial result, so rows never silently misalign with paths.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from audioconcepts.decompose.preprocess import l2_normalize
from audioconcepts.embeddings import Embeddings
from audioconcepts.encoders import EncoderCapabilityError

PathLike = str | os.PathLike
#: File extensions soundfile is trusted with, so a decoding failure there means a corrupt file.
_SOUNDFILE_EXTENSIONS = {f.lower() for f in sf.available_formats()} | {"aif", "oga", "opus"}
#: libsndfile's log line for a WAV/AIFF whose data chunk is shorter than its header says
_DATA_CHUNK_SHORT = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


class AudioError(Exception):
    """An audio input that cannot be embedded; `path` says which and `reason` says why."""

    def __init__(self, path: str | None, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason}" if path is not None else reason)


class UnreadablePathError(AudioError):
    """The path does not exist, is a directory, or cannot be opened."""


class EmptyAudioError(AudioError):
    """The file has zero bytes or the audio has zero samples."""


class CorruptAudioError(AudioError):
    """The decoder failed, the file is truncated, or the samples are not finite."""


class UnsupportedFormatError(AudioError):
    """No installed decoder reads this format."""


def decode_audio(path: PathLike) -> tuple[np.ndarray, int]:
    """(samples as float32 (n, channels), sample rate) of an audio file, or a specific AudioError."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            if not f.read(1):
                raise EmptyAudioError(name, "file is empty (0 bytes)")
    except OSError as e:
        raise UnreadablePathError(name, e.strerror or str(e)) from None
    ext = Path(name).suffix.lower().lstrip(".")
    try:
        info = sf.info(name)
        samples, rate = sf.read(name, dtype="float32", always_2d=True)
    except sf.LibsndfileError as e:
        if ext in _SOUNDFILE_EXTENSIONS:
            raise CorruptAudioError(name, f"cannot decode as {ext}: {e.error_string}") from None
        return _decode_fallback(name, ext)
    # libsndfile quietly returns what is there; its header log and frame count reveal a cut-off file
    # (1% slack: mp3 frame counts without a Xing header are estimates)
    short = _DATA_CHUNK_SHORT.search(info.extra_info)
    if short:
        raise CorruptAudioError(name, f"truncated file: {short[1]} bytes of audio announced, {short[2]} present")
    if len(samples) < 0.99 * info.frames:
        raise CorruptAudioError(name, f"truncated file: {info.frames} frames announced, {len(samples)} decoded")
    return samples, rate


def _decode_fallback(name: str, ext: str) -> tuple[np.ndarray, int]:
    """Formats libsndfile cannot read (m4a, aac, wma, ...), through librosa when installed."""
    try:
        import librosa
    except ImportError:
        raise UnsupportedFormatError(
            name,
            f"format {ext or '(no extension)'!r} is not readable by soundfile; `pip install librosa` "
            "(plus ffmpeg) to decode it",
        ) from None
    try:
        samples, rate = librosa.load(name, sr=None, mono=False, dtype=np.float32)
    except Exception as e:  # noqa: BLE001 -- librosa/audioread raise many unrelated types for bad input
        raise UnsupportedFormatError(name, f"neither soundfile nor librosa can decode it: {e}") from None
    return np.atleast_2d(samples).T, int(rate)


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Mean over channels of (n, channels) samples."""
    return samples.mean(axis=1, dtype=np.float32)


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """1-D float32 `x` resampled from rate_in to rate_out with soxr at very high quality."""
    if rate_in == rate_out:
        return x
    return soxr.resample(x, rate_in, rate_out, quality="VHQ").astype(np.float32, copy=False)


def prepare_waveform(x: np.ndarray, rate: int, target_rate: int, name: str | None = None) -> np.ndarray:
    """A checked 1-D float32 waveform at `target_rate` from 1-D mono samples at `rate`."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"{name}: expected 1-D mono samples, got shape {x.shape}; mix to mono first")
    if len(x) == 0:
        raise EmptyAudioError(name, "audio has zero samples")
    if not np.isfinite(x).all():
        raise CorruptAudioError(name, "audio contains NaN or infinite samples")
    return resample(x, rate, target_rate)


def load_audio(path: PathLike, target_rate: int) -> np.ndarray:
    """Decode, mix to mono and resample one file: 1-D float32 at `target_rate`."""
    samples, rate = decode_audio(path)
    return prepare_waveform(to_mono(samples), rate, target_rate, os.fspath(path))


PADDINGS = ("repeatpad", "tile")


def split_windows(x: np.ndarray, length: int, padding: str = "repeatpad") -> list[np.ndarray]:
    """Windows of exactly `length` samples of 1-D `x`: one padded window if `x` is shorter (see
    PADDINGS and the module docstring), else consecutive windows (views, no copies) with the last
    one aligned to the end of `x`."""
    n = len(x)
    if n <= length:
        if padding == "tile":
            return [np.tile(x, math.ceil(length / n))[:length]]
        if padding != "repeatpad":
            raise ValueError(f"padding must be one of {PADDINGS}; got {padding!r}")
        window = np.zeros(length, dtype=x.dtype)
        whole = length // n
        window[: whole * n] = np.tile(x, whole)
        return [window]
    return [x[s : s + length] for s in [*range(0, n - length, length), n - length]]


def pool_windows(window_embeddings: np.ndarray, counts: Sequence[int]) -> np.ndarray:
    """One row per clip: normalise(mean of the clip's normalised window rows); clips are consecutive."""
    unit = l2_normalize(window_embeddings)
    bounds = np.cumsum([0, *counts])
    means = np.stack([unit[a:b].mean(axis=0) for a, b in itertools.pairwise(bounds)])
    return l2_normalize(means).astype(np.float32)


@dataclass(frozen=True)
class AudioFilesResult:
    """Embeddings of the files that worked (rows in input order) and the errors of those that did not."""

    embeddings: Embeddings
    ok_paths: list[str]
    failures: list[AudioError]

    def raise_for_failures(self) -> None:
        """Raise an AudioBatchError carrying this result if any file failed."""
        if self.failures:
            raise AudioBatchError(self)


class AudioBatchError(AudioError):
    """Some files of a batch failed; `.result` still holds the embeddings of all the others."""

    def __init__(self, result: AudioFilesResult) -> None:
        self.result = result
        total = len(result.failures) + len(result.ok_paths)
        lines = "\n".join(f"  {e}" for e in result.failures)
        super().__init__(None, f"{len(result.failures)} of {total} audio files failed:\n{lines}")


def embed_audio_files(encoder: Any, paths: Sequence[PathLike], *, batch_size: int = 8) -> AudioFilesResult:
    """Embed every file that can be embedded and report the others, without stopping at a bad one.

    Works with any encoder whose `embed_audio` takes (arrays, sample_rate). Files are decoded
    `batch_size` at a time, so memory stays bounded on long lists."""
    if encoder.sample_rate is None:
        raise EncoderCapabilityError(f"model {encoder.fingerprint!r} has no audio tower")
    rows: list[np.ndarray] = []
    ok: list[str] = []
    failures: list[AudioError] = []
    for start in range(0, len(paths), batch_size):
        waves = []
        for path in paths[start : start + batch_size]:
            try:
                waves.append(load_audio(path, encoder.sample_rate))
                ok.append(os.fspath(path))
            except AudioError as e:
                failures.append(e)
        if waves:
            rows.append(encoder.embed_audio((waves, encoder.sample_rate), batch_size=batch_size).vectors)
    vectors = np.concatenate(rows) if rows else np.zeros((0, encoder.dim), np.float32)
    return AudioFilesResult(Embeddings(vectors, encoder.fingerprint), ok, failures)


class WindowedAudioEncoder(ABC):
    """Base for models with a fixed input window: handles inputs, windows, batching and pooling.

    Subclasses set `fingerprint`, `dim`, `sample_rate`, `window` (samples) and, if their model was
    trained with another short-clip padding, `padding`; they implement `_embed_windows` and
    `embed_text`."""

    fingerprint: str
    dim: int
    sample_rate: int
    window: int
    padding: str = "repeatpad"

    @abstractmethod
    def _embed_windows(self, windows: np.ndarray) -> np.ndarray:
        """(b, dim) float32 embeddings of (b, window) float32 waveforms at `sample_rate`."""

    @abstractmethod
    def embed_text(self, texts: list[str], *, batch_size: int = 64) -> Embeddings:
        """Embed a list of strings."""

    def embed_audio(self, audio: Any, *, batch_size: int = 8) -> Embeddings:
        """Embed a list of file paths (one row each; raises AudioBatchError, with the good rows inside,
        if any file fails: use `embed_audio_files` to get the partial result directly) or a
        (list of 1-D float arrays, sample_rate) pair (raises on the first bad array)."""
        if isinstance(audio, tuple) and len(audio) == 2 and isinstance(audio[1], (int, np.integer)):
            arrays, rate = audio
            waves = [prepare_waveform(x, int(rate), self.sample_rate, f"<array {i}>") for i, x in enumerate(arrays)]
            return Embeddings(self._embed_waveforms(waves, batch_size), self.fingerprint)
        if isinstance(audio, (str, os.PathLike)) or not isinstance(audio, Sequence):
            raise TypeError("embed_audio takes a list of paths or a (list of 1-D arrays, sample_rate) pair")
        result = embed_audio_files(self, audio, batch_size=batch_size)
        result.raise_for_failures()
        return result.embeddings

    def _embed_waveforms(self, waves: Sequence[np.ndarray], batch_size: int) -> np.ndarray:
        """Window every waveform, embed the windows `batch_size` at a time, pool per clip."""
        if not waves:
            return np.zeros((0, self.dim), np.float32)
        per_clip = [split_windows(w, self.window, self.padding) for w in waves]
        windows = [w for clip in per_clip for w in clip]  # views: only one batch is copied at a time
        embedded = np.concatenate(
            [self._embed_windows(np.stack(windows[i : i + batch_size])) for i in range(0, len(windows), batch_size)]
        )
        return pool_windows(embedded, [len(w) for w in per_clip])


#: Extensions picked up when a folder is searched for audio.
AUDIO_EXTENSIONS = frozenset({"wav", "flac", "ogg", "mp3", "aif", "aiff"})


def find_audio_files(paths: Sequence[PathLike]) -> list[str]:
    """Files named in `paths`, plus the audio files (by extension) found recursively under named folders.

    Named files are kept whatever their extension or existence, so a wrong one is reported as a
    failure rather than silently skipped. Order: as given, folder contents sorted; no duplicates."""
    found: list[str] = []
    for path in map(os.fspath, paths):
        if os.path.isdir(path):
            found += sorted(
                str(p) for p in Path(path).rglob("*") if p.is_file() and p.suffix.lower().lstrip(".") in AUDIO_EXTENSIONS
            )
        else:
            found.append(path)
    return list(dict.fromkeys(found))
