"""Vocabularies by name or file, embedded with a model's text encoder through the embedding cache.

Shipped names (see data/LICENSES.md for sources and licences; `shipped_vocabularies()` lists them):

- "captions-2k" (default for `explain`): the 2,000 most frequent words of real audio captions
  (Clotho, AudioCaps, MusicCaps): the words people use to describe sounds, so explanations read
  like descriptions. The FSD50K tag vocabularies are closer to the paper but carry uploader jargon
  (field-recording, sample, loop) that says more about Freesound than about a sound.
- "captions-baseline-2k", "captions-pruned-2k": the paper's baseline and pruned recipes on the
  caption word counts.
- "fsd50k-eval-{baseline,pruned}-{2k,3k,5k}": the paper's recipes on the Freesound tags of the
  FSD50K evaluation set (the development-set half is not bundled; `audioconcepts vocab build fsd50k`
  builds the full versions from a user's FSD50K metadata).
- "fsd50k-eval-clustered-{2k,3k,5k}": the paper's clustered recipe: model-dependent, built on first
  use per model from "fsd50k-eval-tags-10k" (the 10,000 most frequent tags) and cached as a
  vocabulary file beside the embedding cache.
- "audioset-ontology": the AudioSet ontology's class names (blacklisted classes dropped); each
  class's "name: description" text is kept in provenance["texts"].

All but captions-2k (which lives in the bundled caption space) and the clustered ones are
concept-only vocabulary files in data/vocabularies/ (built by scripts/build_shipped_vocabularies.py).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from audioconcepts.caption_space import load_caption_concepts
from audioconcepts.encoders.cache import EmbeddingCache, default_cache_path
from audioconcepts.encoders.cached import Progress, embed_texts, start_task
from audioconcepts.vocab import builders, fileformat, make
from audioconcepts.vocab.vocabulary import Vocabulary

DEFAULT_VOCABULARY = "captions-2k"
_SIZES = {2000: "2,000", 3000: "3,000", 5000: "5,000"}

#: One-line descriptions of the shipped vocabularies, in listing order.
DESCRIPTIONS: dict[str, str] = {
    "captions-2k": "2,000 most frequent words of sound captions (Clotho, AudioCaps, MusicCaps); the default",
    "captions-baseline-2k": "2,000 most frequent caption words, expletives removed (paper's baseline recipe)",
    "captions-pruned-2k": "2,000 caption words, misspellings dropped and shared roots merged (paper's pruned recipe)",
    **{
        f"fsd50k-eval-baseline-{make.size_label(s)}": f"{n} most frequent FSD50K eval-set tags, expletives removed (baseline)"
        for s, n in _SIZES.items()
    },
    **{
        f"fsd50k-eval-pruned-{make.size_label(s)}": f"{n} FSD50K eval-set tags, misspellings dropped, roots merged (pruned)"
        for s, n in _SIZES.items()
    },
    **{
        f"fsd50k-eval-clustered-{make.size_label(s)}": f"{n} FSD50K eval-set tags nearest k-means centroids (clustered; "
        "built per model on first use)"
        for s, n in _SIZES.items()
    },
    "fsd50k-eval-tags-10k": "10,000 most frequent FSD50K eval-set tags (the pool of the clustered recipe)",
    "audioset-ontology": "AudioSet ontology class names (blacklisted classes dropped); descriptions in provenance",
}
#: Model-dependent shipped vocabularies: name -> (pool vocabulary, size); built per model on first use.
CLUSTERED: dict[str, tuple[str, int]] = {
    f"fsd50k-eval-clustered-{make.size_label(s)}": ("fsd50k-eval-tags-10k", s) for s in _SIZES
}
#: Shipped vocabularies stored as concept-only files in data/vocabularies/<name>.npz.
SHIPPED_FILES: tuple[str, ...] = tuple(n for n in DESCRIPTIONS if n != DEFAULT_VOCABULARY and n not in CLUSTERED)


def _file_concepts(name: str) -> Callable[[], list[str]]:
    return lambda: shipped_concepts(name)[0]


#: Model-independent shipped concept lists by name.
SHIPPED: dict[str, Callable[[], list[str]]] = {
    "captions-2k": load_caption_concepts,
    **{name: _file_concepts(name) for name in SHIPPED_FILES},
}


@dataclass(frozen=True)
class ShippedVocabulary:
    name: str
    size: int
    description: str


def is_shipped(name: object) -> bool:
    """Whether `name` names a shipped vocabulary (model-independent or clustered)."""
    return isinstance(name, str) and (name in SHIPPED or name in CLUSTERED)


def shipped_names() -> list[str]:
    return list(DESCRIPTIONS)


def shipped_concepts(name: str) -> tuple[list[str], dict[str, Any]]:
    """The concepts and provenance of a model-independent shipped vocabulary (no embeddings)."""
    if name == DEFAULT_VOCABULARY:
        provenance = {"name": name, "description": DESCRIPTIONS[name], "recipe": "caption_mined",
                      "sources": ["clotho_v1", "audiocaps/v1", "musiccaps"], "parameters": {"size": 2000}}
        return load_caption_concepts(), provenance
    if name in CLUSTERED:
        raise ValueError(
            f"{name!r} depends on the model (the clustered recipe embeds tags): use it with a model, "
            f"e.g. `--model M` or embed_vocabulary({name!r}, encoder)"
        )
    if name not in SHIPPED_FILES:
        raise KeyError(f"{name!r} is not a shipped vocabulary; shipped: {', '.join(shipped_names())}")
    resource = resources.files("audioconcepts.data").joinpath("vocabularies", f"{name}.npz")
    with resources.as_file(resource) as path:
        file = fileformat.read(path, with_embeddings=False)
    return file.concepts, file.provenance


def shipped_vocabularies() -> list[ShippedVocabulary]:
    """Every shipped vocabulary: name, number of concepts and a one-line description."""
    def size(name: str) -> int:
        return CLUSTERED[name][1] if name in CLUSTERED else len(SHIPPED[name]())

    return [ShippedVocabulary(name, size(name), DESCRIPTIONS[name]) for name in shipped_names()]


def read_concept_file(path: str | os.PathLike) -> list[str]:
    """One concept per line; surrounding whitespace, blank lines and lines starting with '#' are ignored."""
    with open(path, encoding="utf-8") as f:
        lines = (line.strip() for line in f)
        return [line for line in lines if line and not line.startswith("#")]


def concept_list(spec: str | os.PathLike) -> list[str]:
    """The concepts of a model-independent shipped name, a vocabulary file or a text file."""
    if isinstance(spec, str) and is_shipped(spec):
        return shipped_concepts(spec)[0]
    return _concepts_and_provenance(spec)[0]


def _concepts_and_provenance(spec: str | os.PathLike) -> tuple[list[str], dict[str, Any]]:
    """A vocabulary file's concepts and provenance, or a text file's lines."""
    if not os.path.isfile(spec):
        raise FileNotFoundError(
            f"vocabulary {os.fspath(spec)!r} is neither a shipped name (see `audioconcepts vocab list`) nor a file"
        )
    if fileformat.is_vocabulary_file(spec):
        file = fileformat.read(spec, with_embeddings=False)
        return file.concepts, file.provenance
    return read_concept_file(spec), {"sources": [os.fspath(spec)], "recipe": "text_list"}


def embed_vocabulary(
    spec: str | os.PathLike,
    encoder: Any,
    cache: EmbeddingCache | None = None,
    *,
    progress: Progress | None = None,
    descriptions: bool = False,
) -> Vocabulary:
    """A Vocabulary of `spec`'s concepts in `encoder`'s space: a shipped name, a vocabulary file or a
    text file (one concept per line). Embeddings a vocabulary file already holds for this model are
    used as they are; the rest are embedded with the text tower through `cache` and reported as an
    "embedding concepts" task of `progress`. Clustered names are built on first use (see
    `clustered_vocabulary`).

    Concepts are embedded by their names; with `descriptions`, a vocabulary that keeps a text per
    concept (provenance["texts"], e.g. audioset-ontology's "name: description") embeds those texts
    instead, still naming each concept by its name."""
    if isinstance(spec, str) and spec in CLUSTERED:
        return clustered_vocabulary(spec, encoder, cache, progress=progress)
    if isinstance(spec, str) and spec in SHIPPED:
        concepts, provenance = shipped_concepts(spec)
    else:
        if not descriptions and os.path.isfile(spec) and fileformat.is_vocabulary_file(spec):
            try:
                return Vocabulary.load(spec, fingerprint=encoder.fingerprint)
            except fileformat.MissingFingerprintError:
                pass  # embed its concepts below
        concepts, provenance = _concepts_and_provenance(spec)
    texts = concepts
    if descriptions:
        by_name = provenance.get("texts")
        if not by_name:
            raise ValueError(f"vocabulary {os.fspath(spec)!r} has no concept descriptions to embed")
        texts = [by_name.get(c, c) for c in concepts]
    advance = start_task(progress, "embedding concepts", len(concepts))
    vectors = embed_texts(encoder, texts, cache, progress=advance).vectors
    provenance = {**provenance, "embedded_texts": "descriptions" if descriptions else "names"}
    return Vocabulary(concepts, vectors, fingerprint=encoder.fingerprint, provenance=provenance)


def clustered_vocabulary(
    name: str, encoder: Any, cache: EmbeddingCache | None = None, *, progress: Progress | None = None
) -> Vocabulary:
    """A clustered shipped vocabulary for `encoder`'s model: read from the vocabulary cache
    (`<cache folder>/vocabularies/`) if built before, else built (embed the pool of tags, seeded
    k-means, keep the tag nearest each centroid) and stored there, with its embeddings."""
    pool_name, size = CLUSTERED[name]
    fingerprint = encoder.fingerprint
    root = vocabulary_cache_dir(cache)
    digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
    path = root / f"{name}--{digest}.npz"
    if path.is_file():
        try:
            return Vocabulary.load(path, fingerprint=fingerprint)
        except (OSError, fileformat.VocabularyFileError):
            pass  # a damaged cache entry: rebuild it
    pool, pool_provenance = shipped_concepts(pool_name)
    counts = builders.TagCounts({t: int(pool_provenance["counts"][t]) for t in pool})
    counts.sources = (pool_name,)
    advance = start_task(progress, f"embedding {len(pool):,} tags", len(pool))
    vectors = embed_texts(encoder, pool, cache, progress=advance).vectors
    row = {t: i for i, t in enumerate(pool)}

    def embed(texts: list[str]) -> np.ndarray:
        return vectors[[row[t] for t in texts]]

    built = builders.clustered(counts, embed, size=size, pool=len(pool))
    provenance = make.vocabulary_provenance(name, built, DESCRIPTIONS[name])
    vocabulary = Vocabulary(built.concepts, embed(built.concepts), fingerprint, provenance=provenance)
    if cache is not None:
        root.mkdir(parents=True, exist_ok=True)
        vocabulary.save(path)
    return vocabulary


def vocabulary_cache_dir(cache: EmbeddingCache | None) -> Path:
    """Where built model-dependent vocabularies are kept: beside the embedding cache."""
    return (cache.path.parent if cache is not None else default_cache_path().parent) / "vocabularies"
