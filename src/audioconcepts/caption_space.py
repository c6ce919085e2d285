"""The bundled caption space: real sound descriptions and a caption-mined vocabulary.

No CLAP weights ship with the package, so the demo and the tests use a space that behaves like
CLAP audio space: AudioCaps test captions embedded with all-MiniLM-L6-v2 (384-d) as the
"audio" embeddings, and 2,000 words mined from Clotho, AudioCaps and MusicCaps captions,
embedded with the same model, as the vocabulary. See data/LICENSES.md for sources and licences,
and scripts/build_caption_space.py to regenerate it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources

import numpy as np

from audioconcepts.embeddings import Embeddings
from audioconcepts.vocab import Vocabulary


@dataclass(frozen=True)
class CaptionSpace:
    vocabulary: Vocabulary  #: 2,000 caption-mined words
    embeddings: Embeddings  #: (4,875, 384) caption embeddings, float32, unit-norm rows
    captions: list[str]  #: the caption behind each embedding row


@contextmanager
def _open_caption_space() -> Iterator[np.lib.npyio.NpzFile]:
    """The bundled npz, opened lazily: only the arrays read are loaded."""
    with resources.files("audioconcepts.data").joinpath("caption_space.npz").open("rb") as f:
        yield np.load(f, allow_pickle=False)


def load_caption_concepts() -> list[str]:
    """The 2,000 caption-mined words alone (no embeddings), e.g. to embed them with another model."""
    with _open_caption_space() as data:
        return data["concepts"].tolist()


def load_caption_space() -> CaptionSpace:
    """Load the bundled caption space (float16 on disk, float32 in memory)."""
    with _open_caption_space() as data:
        fingerprint = str(data["fingerprint"])
        vocab = Vocabulary(data["concepts"].tolist(), data["concept_embeddings"].astype(np.float32), fingerprint)
        vectors = data["caption_embeddings"].astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return CaptionSpace(vocab, Embeddings(vectors, fingerprint), data["captions"].tolist())
