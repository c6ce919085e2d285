"""Embedding through the EmbeddingCache: only inputs the cache has not seen for this model are embedded.

Audio files are keyed by their content (`file_key`), texts by `text_key`, both under the encoder's
fingerprint. New embeddings are written one batch at a time, so a killed run keeps what it finished.
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


@dataclass(frozen=True)
class CachedFiles:
    """Embeddings of the files that worked (input order), their content hashes, and the failures."""

    embeddings: Embeddings
    paths: list[str]
    content_hashes: list[str]
    failures: list[AudioError]
    computed: int  #: files embedded by this call (the others came from the cache)


def embed_files(
    encoder: Any,
    paths: Sequence[PathLike],
    cache: EmbeddingCache | None,
    *,
    batch_size: int = 8,
    progress: Callable[[int], None] | None = None,
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
    pending = list(todo.items())
    for start in range(0, len(pending), batch_size):
        chunk = dict(pending[start : start + batch_size])
        result = embed_audio_files(encoder, list(chunk.values()), batch_size=batch_size)
        new = dict(zip((keys[p] for p in result.ok_paths), result.embeddings.vectors))
        if cache is not None and new:
            cache.put_many(new, encoder.fingerprint)
        vectors.update(new)
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
        len(todo),
    )


def embed_texts(encoder: Any, texts: Sequence[str], cache: EmbeddingCache | None) -> Embeddings:
    """Embed strings with the encoder's text tower, taking what the cache holds and storing the rest."""
    keys = [text_key(t) for t in texts]
    vectors = cache.get_many(keys, encoder.fingerprint) if cache is not None else {}
    missing = list(dict.fromkeys(t for t, k in zip(texts, keys) if k not in vectors))
    if missing:
        new = dict(zip(map(text_key, missing), encoder.embed_text(missing).vectors))
        if cache is not None:
            cache.put_many(new, encoder.fingerprint)
        vectors.update(new)
    matrix = np.stack([vectors[k] for k in keys]) if keys else np.zeros((0, encoder.dim), np.float32)
    return Embeddings(matrix.astype(np.float32, copy=False), encoder.fingerprint)
