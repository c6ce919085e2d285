"""sentence-transformers backend: text-only embedding spaces (no audio tower).

Useful for vocabularies and caption spaces (e.g. all-MiniLM-L6-v2, which the bundled caption space
uses); `embed_audio` refuses with EncoderCapabilityError.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from audioconcepts.decompose.preprocess import l2_normalize
from audioconcepts.embeddings import Embeddings
from audioconcepts.encoders import EncoderCapabilityError, check_local_source, model_fingerprint, model_unavailable

BACKEND = "sentence-transformers"
#: Files that define the model's behaviour (module configs, tokenizer, weights): hashed for local models.
FINGERPRINT_FILES = ("*.json", "vocab.txt", "*.model", "*.safetensors", "*.bin")
#: The first level-1 heading of a model card: its title.
_CARD_TITLE = re.compile(r"^#[ \t]+(.*?)[ \t]*$", re.MULTILINE)


class TextOnlyEncoder:
    """A SentenceTransformer model; text rows are L2-normalised float32."""

    sample_rate = None

    def __init__(self, model: Any, fingerprint: str, dim: int) -> None:
        self.model, self.fingerprint, self.dim = model, fingerprint, dim

    def embed_text(self, texts: list[str], *, batch_size: int = 64) -> Embeddings:
        """Embed a list of strings."""
        if isinstance(texts, str):
            raise TypeError("embed_text takes a list of strings, not a single string")
        if not texts:
            return Embeddings(np.zeros((0, self.dim), np.float32), self.fingerprint)
        vectors = self.model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
        return Embeddings(l2_normalize(vectors).astype(np.float32), self.fingerprint)

    def embed_audio(self, audio: Any, *, batch_size: int = 8) -> Embeddings:
        """Always raises: a text embedding model has no audio tower."""
        raise EncoderCapabilityError(
            f"model {self.fingerprint!r} is a text-only sentence-transformers model: it has no audio tower and "
            "cannot embed audio. Use a CLAP model (e.g. 'laion/clap-htsat-unfused') for audio."
        )


def model_card_name(directory: str) -> str | None:
    """The model's name from the title of its model card (README.md), if it is one word.

    A model copied out of the Hub (or shipped in a package) keeps its card, so this names it as on
    the Hub ("all-MiniLM-L6-v2") rather than after whatever folder it sits in. Generated cards
    titled in prose ("# SentenceTransformer based on ...") give None."""
    card = Path(directory) / "README.md"
    if not card.is_file():
        return None
    text = card.read_text(encoding="utf-8", errors="replace")
    body = re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.DOTALL)  # YAML front matter
    title = _CARD_TITLE.search(body)
    name = title.group(1) if title else ""
    return name if name and not any(c.isspace() for c in name) else None


def load(source: str, *, device: str | None = None) -> TextOnlyEncoder:
    """Load a sentence-transformers model from a Hub id (HF cache, honours HF_HUB_OFFLINE) or a directory."""
    from sentence_transformers import SentenceTransformer

    check_local_source(BACKEND, source)
    try:
        model = SentenceTransformer(source, device=device)
    except OSError as e:
        raise model_unavailable(BACKEND, source, str(e)) from None
    # sentence-transformers 6 renamed get_sentence_embedding_dimension
    get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dim = int(get_dim())
    name = model_card_name(source) if os.path.isdir(source) else None
    return TextOnlyEncoder(model, model_fingerprint(BACKEND, source, dim, FINGERPRINT_FILES, name), dim)
