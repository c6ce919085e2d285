"""Explain audio files: embed them (through the cache), centre, decompose over a vocabulary, report.

This is what `audioconcepts explain` runs; the command line only parses options and prints.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from audioconcepts.centering import MIN_OWN_FILES, audio_modality_mean
from audioconcepts.decompose import ConceptDecomposer
from audioconcepts.encoders import load_encoder
from audioconcepts.encoders.audio import PathLike, find_audio_files
from audioconcepts.encoders.cache import EmbeddingCache
from audioconcepts.encoders.cached import Progress, embed_files, start_task
from audioconcepts.vocab import Vocabulary
from audioconcepts.vocab.sources import DEFAULT_VOCABULARY, embed_vocabulary


@dataclass(frozen=True)
class FileExplanation:
    """One file's top concepts (largest first), how many concepts it uses, and cosine(recomposed, original)."""

    path: str
    concepts: list[tuple[str, float]]
    nnz: int
    cosine: float


@dataclass(frozen=True)
class ExplainResult:
    """Per-file explanations (input order), files that failed with the reason, and the centering used."""

    rows: list[FileExplanation]
    failures: list[tuple[str, str]]
    centering: str  #: e.g. "your 57 files" or "the bundled reference set of 20 ESC-10 clips"
    computed: int  #: audio files embedded by this run (the others came from the cache)

    def _repr_html_(self) -> str:
        """Notebook view: one table row per file with its top concepts as bars."""
        from audioconcepts.display import concept_bars, esc

        rows = "".join(
            f"<tr><td>{esc(os.path.basename(r.path))}</td><td>{concept_bars(r.concepts)}</td>"
            f"<td>{r.nnz}</td><td>{r.cosine:.3f}</td></tr>"
            for r in self.rows
        )
        failed = "".join(f"<li>{esc(p)}: {esc(reason)}</li>" for p, reason in self.failures)
        return (
            f"<table><tr><th>file</th><th>concepts</th><th>nnz</th><th>cosine</th></tr>{rows}</table>"
            f"<p>centering: {esc(self.centering)}</p>" + (f"<ul>{failed}</ul>" if failed else "")
        )


def explain_audio(
    paths: Sequence[PathLike],
    model: str | Any,
    vocab: str | os.PathLike | Vocabulary = DEFAULT_VOCABULARY,
    *,
    l1_penalty: float = 0.15,
    top: int = 5,
    cache: EmbeddingCache | None = None,
    min_own_files: int = MIN_OWN_FILES,
    progress: Progress | None = None,
) -> ExplainResult:
    """Explain every audio file in `paths` (files, or folders searched recursively) as concepts.

    model: an encoder spec for `load_encoder` or a loaded encoder. vocab: a shipped name, a text
    file (one concept per line) or a Vocabulary of the same model. Embeddings go through `cache`
    (None: no cache). Files that fail are reported in `failures`; the others are explained.
    `progress` gets one task per embedding step: the concepts, the audio files and, when used for
    centering, the reference clips."""
    encoder = load_encoder(model) if isinstance(model, str) else model
    vocabulary = vocab if isinstance(vocab, Vocabulary) else embed_vocabulary(vocab, encoder, cache, progress=progress)
    found = find_audio_files(paths)
    files = embed_files(encoder, found, cache, progress=start_task(progress, "embedding audio", len(found)))
    failures = [(e.path, e.reason) for e in files.failures]
    if not files.paths:
        return ExplainResult([], failures, "none (no file could be embedded)", files.computed)
    centering = audio_modality_mean(encoder, files.embeddings, cache, min_files=min_own_files, progress=progress)
    decomposer = ConceptDecomposer(vocabulary, l1_penalty=l1_penalty).fit(modality_mean=centering.mean)
    result = decomposer.decompose(files.embeddings)
    rows = [
        FileExplanation(path, result.explain(i, top), int(result.nnz[i]), float(result.cosine[i]))
        for i, path in enumerate(files.paths)
    ]
    return ExplainResult(rows, failures, centering.source, files.computed)
