"""Concept lists by name or file, embedded with a model's text encoder through the embedding cache.

Shipped names (see data/LICENSES.md for sources and licences; `shipped_vocabularies()` lists them):

- "captions-2k" (default): the 2,000 most frequent words of real audio captions (Clotho, AudioCaps,
  MusicCaps), from the bundled caption space: words people use to describe sounds.
- "captions-baseline-2k": the paper's baseline recipe (`builders.baseline`) on the caption word counts:
  the 2,000 most frequent words, expletives removed.
- "captions-pruned-2k": the paper's pruned recipe (`builders.pruned`) on the same counts: misspellings,
  digits and single letters dropped, words sharing a root merged.
- "audioset-ontology": the AudioSet ontology's class names (`builders.audioset_ontology`, blacklisted
  classes dropped); each class's "name: description" text is kept in provenance["texts"].

The last three are concept-only vocabulary files in data/vocabularies/ (built by
scripts/build_shipped_vocabularies.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from audioconcepts.caption_space import load_caption_concepts
from audioconcepts.encoders.cache import EmbeddingCache
from audioconcepts.encoders.cached import Progress, embed_texts, start_task
from audioconcepts.vocab import fileformat
from audioconcepts.vocab.vocabulary import Vocabulary

DEFAULT_VOCABULARY = "captions-2k"

#: One-line descriptions of the shipped vocabularies, in listing order.
DESCRIPTIONS: dict[str, str] = {
    "captions-2k": "2,000 most frequent words of sound captions (Clotho, AudioCaps, MusicCaps); the default",
    "captions-baseline-2k": "2,000 most frequent caption words, expletives removed (paper's baseline recipe)",
    "captions-pruned-2k": "2,000 caption words, misspellings dropped and shared roots merged (paper's pruned recipe)",
    "audioset-ontology": "AudioSet ontology class names (blacklisted classes dropped); descriptions in provenance",
}
#: Shipped vocabularies stored as concept-only files in data/vocabularies/<name>.npz.
SHIPPED_FILES: tuple[str, ...] = ("captions-baseline-2k", "captions-pruned-2k", "audioset-ontology")


def _file_concepts(name: str) -> Callable[[], list[str]]:
    return lambda: shipped_concepts(name)[0]


#: Shipped concept lists by name.
SHIPPED: dict[str, Callable[[], list[str]]] = {
    "captions-2k": load_caption_concepts,
    **{name: _file_concepts(name) for name in SHIPPED_FILES},
}


@dataclass(frozen=True)
class ShippedVocabulary:
    name: str
    size: int
    description: str


def shipped_concepts(name: str) -> tuple[list[str], dict[str, Any]]:
    """The concepts and provenance of a shipped vocabulary (no embeddings)."""
    if name == "captions-2k":
        provenance = {"name": name, "description": DESCRIPTIONS[name], "recipe": "caption_mined",
                      "sources": ["clotho_v1", "audiocaps/v1", "musiccaps"], "parameters": {"size": 2000}}
        return load_caption_concepts(), provenance
    if name not in SHIPPED_FILES:
        raise KeyError(f"{name!r} is not a shipped vocabulary; shipped: {', '.join(SHIPPED)}")
    resource = resources.files("audioconcepts.data").joinpath("vocabularies", f"{name}.npz")
    with resources.as_file(resource) as path:
        file = fileformat.read(path, with_embeddings=False)
    return file.concepts, file.provenance


def shipped_vocabularies() -> list[ShippedVocabulary]:
    """Every shipped vocabulary: name, number of concepts and a one-line description."""
    return [ShippedVocabulary(name, len(SHIPPED[name]()), DESCRIPTIONS[name]) for name in SHIPPED]


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
    spec: str | os.PathLike,
    encoder: Any,
    cache: EmbeddingCache | None = None,
    *,
    progress: Progress | None = None,
    descriptions: bool = False,
) -> Vocabulary:
    """A Vocabulary of `spec`'s concepts embedded with `encoder`'s text tower (cached per fingerprint);
    reported as an "embedding concepts" task of `progress`.

    Concepts are embedded by their names; with `descriptions`, a shipped vocabulary that keeps a text
    per concept (provenance["texts"], e.g. audioset-ontology's "name: description") embeds those texts
    instead, still naming each concept by its name."""
    provenance: dict[str, Any] = {}
    if isinstance(spec, str) and spec in SHIPPED:
        concepts, provenance = shipped_concepts(spec)
    else:
        concepts = concept_list(spec)
        provenance = {"sources": [os.fspath(spec)], "recipe": "text_list"}
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
