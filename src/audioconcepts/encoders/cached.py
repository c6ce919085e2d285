"""Embedding through the EmbeddingCache: only inputs the cache has not seen for this model are embedded.

Audio files are keyed by their content (`file_key`), texts by `text_key`, both under the encoder's
fingerprint. New embeddings are written one batch at a time, so a killed run keeps what it finished.

Progress: the embedding functions take `advance(n)`, called as n more inputs are done (cache hits
included). Callers that run several steps take a `Progress`, which starts one task per step.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from audioconcepts.embeddings import Embeddings
from audioconcepts.encoders.audio import AudioError, PathLike, UnreadablePathError, embed_audio_files
from audioconcepts.encoders.cache import EmbeddingCache, file_key, text_key

#: ``advance(n)``: n more inputs are done.
Advance = Callable[[int], None]
#: ``progress(description, total)`` starts a task of `total` inputs and returns its `Advance`.
Progress = Callable[[str, int], Advance]


def start_task(progress: Progress | None, description: str, total: int) -> Advance | None:
    """The `Advance` of a new task of `progress`, or None when there is no progress to report."""
    return progress(description, total) if progress is not None else None


@dataclass(frozen=True)
class CachedFiles:
    """Embeddings of the files that worked (input order), their content hashes, and the failures."""

    embeddings: Embeddings
    paths: list[str]
    content_hashes: list[str]
    failures: list[AudioError]
    computed: int  #: distinct files embedded by this call (the others came from the cache or failed)


def embed_files(
    encoder: Any,
    paths: Sequence[PathLike],
    cache: EmbeddingCache | None,
    *,
    batch_size: int = 8,
    progress: Advance | None = None,
) -> CachedFiles:
    """Embed audio files, taking what the cache holds and storing what it lacks.

    Files with identical bytes are embedded once. `progress(n)` is called as n more files are done.
    With `cache=None` every file is embedded and nothing is stored."""
    paths = [os.fspath(p) for p in paths]
    keys: dict[str, str] = {}
    failed: dict[str, AudioError] = {}  # by path
    for path in paths:
        try:
            keys[path] = file_key(path)
        except OSError as e:
            failed[path] = UnreadablePathError(path, e.strerror or str(e))
    vectors = cache.get_many(keys.values(), encoder.fingerprint) if cache is not None else {}
    todo = {key: path for path, key in keys.items() if key not in vectors}  # one path per new content
    if progress:
        progress(len(paths) - len(todo))
    bad_keys: dict[str, AudioError] = {}
    computed = 0
    pending = list(todo.items())
    for start in range(0, len(pending), batch_size):
        chunk = dict(pending[start : start + batch_size])
        result = embed_audio_files(encoder, list(chunk.values()), batch_size=batch_size)
        new = dict(zip((keys[p] for p in result.ok_paths), result.embeddings.vectors))
        if cache is not None and new:
            cache.put_many(new, encoder.fingerprint)
        vectors.update(new)
        computed += len(new)
        bad_keys.update((keys[e.path], e) for e in result.failures)
        if progress:
            progress(len(chunk))
    for path, key in keys.items():
        if key in bad_keys:  # also duplicates of a bad file, under their own path
            failed[path] = type(bad_keys[key])(path, bad_keys[key].reason)
    ok = [p for p in paths if p in keys and p not in failed]
    matrix = np.stack([vectors[keys[p]] for p in ok]) if ok else np.zeros((0, encoder.dim), np.float32)
    return CachedFiles(
        Embeddings(matrix.astype(np.float32, copy=False), encoder.fingerprint),
        ok,
        [keys[p] for p in ok],
        [failed[p] for p in paths if p in failed],
        computed,
    )


def embed_texts(
    encoder: Any,
    texts: Sequence[str],
    cache: EmbeddingCache | None,
    *,
    batch_size: int = 128,
    progress: Advance | None = None,
) -> Embeddings:
    """Embed strings with the encoder's text tower, taking what the cache holds and storing the rest
    one batch at a time. `progress(n)` is called as n more texts are done."""
    keys = [text_key(t) for t in texts]
    vectors = cache.get_many(keys, encoder.fingerprint) if cache is not None else {}
    missing = list(dict.fromkeys(t for t, k in zip(texts, keys) if k not in vectors))
    if progress:
        progress(len(texts) - len(missing))
    for start in range(0, len(missing), batch_size):
        chunk = missing[start : start + batch_size]
        new = dict(zip(map(text_key, chunk), encoder.embed_text(chunk).vectors))
        if cache is not None:
            cache.put_many(new, encoder.fingerprint)
        vectors.update(new)
        if progress:
            progress(len(chunk))
    matrix = np.stack([vectors[k] for k in keys]) if keys else np.zeros((0, encoder.dim), np.float32)
    return Embeddings(matrix.astype(np.float32, copy=False), encoder.fingerprint)
