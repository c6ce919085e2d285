"""Concept lists by name or file, embedded with a model's text encoder through the embedding cache.

Shipped names: "captions-2k", the 2,000 most frequent words of real audio captions (Clotho,
AudioCaps, MusicCaps; see data/LICENSES.md): words people use to describe sounds. The paper's
FSD50K-tag vocabularies will be added as shipped names by the vocabulary builders.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from audioconcepts.caption_space import load_caption_concepts
from audioconcepts.encoders.cache import EmbeddingCache
from audioconcepts.encoders.cached import Progress, embed_texts, start_task
from audioconcepts.vocab.vocabulary import Vocabulary

#: Shipped concept lists by name.
SHIPPED: dict[str, Callable[[], list[str]]] = {"captions-2k": load_caption_concepts}
DEFAULT_VOCABULARY = "captions-2k"


def read_concept_file(path: str | os.PathLike) -> list[str]:
    """One concept per line; surrounding whitespace, blank lines and lines starting with '#' are ignored."""
    with open(path, encoding="utf-8") as f:
        lines = (line.strip() for line in f)
        return [line for line in lines if line and not line.startswith("#")]


def concept_list(spec: str | os.PathLike) -> list[str]:
    """The concepts of a shipped vocabulary name or of a text file."""
    if isinstance(spec, str) and spec in SHIPPED:
        return SHIPPED[spec]()
    if not os.path.isfile(spec):
        raise FileNotFoundError(
            f"vocabulary {os.fspath(spec)!r} is neither a shipped name ({', '.join(SHIPPED)}) nor a text file"
        )
    return read_concept_file(spec)


def embed_vocabulary(
    spec: str | os.PathLike, encoder: Any, cache: EmbeddingCache | None = None, *, progress: Progress | None = None
) -> Vocabulary:
    """A Vocabulary of `spec`'s concepts embedded with `encoder`'s text tower (cached per fingerprint);
    reported as an "embedding concepts" task of `progress`."""
    concepts = concept_list(spec)
    advance = start_task(progress, "embedding concepts", len(concepts))
    vectors = embed_texts(encoder, concepts, cache, progress=advance).vectors
    return Vocabulary(concepts, vectors, fingerprint=encoder.fingerprint)
