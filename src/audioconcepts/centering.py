"""The audio modality mean a decomposition centres on: from the user's files, or a bundled reference set.

A decomposition subtracts the model's audio modality mean before solving. A handful of files
estimate it badly (one file's mean is the file itself, which centres it to nothing), so below
`min_files` usable embeddings we use 20 bundled ESC-10 clips instead (2 per class, CC BY 3.0, see
data/reference_clips/ATTRIBUTION.txt). They are embedded once per model: their embeddings go into
the EmbeddingCache under the model's fingerprint, so later calls embed nothing.

This sits beside, not inside, `encoders/`: it needs an encoder, the cache and the bundled audio,
and its output is a parameter of the decomposer (`fit(modality_mean=...)`).
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from audioconcepts.decompose.preprocess import l2_normalize
from audioconcepts.embeddings import Embeddings, check_fingerprint
from audioconcepts.encoders.cache import EmbeddingCache
from audioconcepts.encoders.cached import Progress, embed_files, start_task

#: Fewer usable embeddings than this and the bundled reference set is used instead.
MIN_OWN_FILES = 20


@dataclass(frozen=True)
class Centering:
    """The audio modality mean of a model and where it came from, in words."""

    mean: np.ndarray  #: (d,) mean of unit-norm audio embeddings
    source: str  #: "your 57 files" or "the bundled reference set of 20 ESC-10 clips"


def audio_modality_mean(
    encoder: Any,
    own: Embeddings,
    cache: EmbeddingCache | None,
    *,
    min_files: int = MIN_OWN_FILES,
    progress: Progress | None = None,
) -> Centering:
    """The mean of `own` (the user's embeddings from `encoder`: finite unit rows, one per file) if it
    has at least `min_files` rows, else the mean of the bundled reference clips embedded with `encoder`
    (reported as an "embedding reference clips" task of `progress`)."""
    vectors = check_fingerprint(own, encoder.fingerprint, "the encoder")
    if len(vectors) >= min_files:
        return Centering(l2_normalize(vectors).mean(axis=0), f"your {len(vectors)} files")
    reference = reference_clip_embeddings(encoder, cache, progress=progress)
    n = len(reference)
    return Centering(l2_normalize(reference.vectors).mean(axis=0), f"the bundled reference set of {n} ESC-10 clips")


def reference_clip_embeddings(
    encoder: Any, cache: EmbeddingCache | None, *, progress: Progress | None = None
) -> Embeddings:
    """The bundled reference clips embedded with `encoder` (cached), reported as an "embedding
    reference clips" task of `progress`."""
    with ExitStack() as stack:
        folder = resources.files("audioconcepts.data").joinpath("reference_clips")
        clips = sorted((f for f in folder.iterdir() if f.name.endswith(".flac")), key=lambda f: f.name)
        files = [stack.enter_context(resources.as_file(f)) for f in clips]
        advance = start_task(progress, "embedding reference clips", len(files))
        reference = embed_files(encoder, files, cache, progress=advance)
    if reference.failures or not reference.paths:
        raise RuntimeError(f"the bundled reference clips could not be embedded: {reference.failures[:3]}")
    return reference.embeddings
