"""sentence-transformers backend: text-only embedding spaces (no audio tower).

Useful for vocabularies and caption spaces (e.g. all-MiniLM-L6-v2, which the bundled caption space
uses); `embed_audio` refuses with EncoderCapabilityError.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from audioconcepts.decompose.preprocess import l2_normalize
from audioconcepts.embeddings import Embeddings
from audioconcepts.encoders import EncoderCapabilityError, check_local_source, model_fingerprint, model_unavailable

BACKEND = "sentence-transformers"
#: Files that define the model's behaviour (all module configs, weights): hashed for local models.
FINGERPRINT_FILES = ("config.json", "modules.json", "*.safetensors", "*.bin")


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
    return TextOnlyEncoder(model, model_fingerprint(BACKEND, source, dim, FINGERPRINT_FILES), dim)
