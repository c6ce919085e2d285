"""audioconcepts: read CLAP audio embeddings as sparse mixes of named text concepts."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from audioconcepts.decompose import ConceptDecomposer, Decomposition
    from audioconcepts.embeddings import Embeddings
    from audioconcepts.vocab import Vocabulary

__version__ = "0.1.0"
__all__ = ["ConceptDecomposer", "Decomposition", "Embeddings", "Vocabulary", "__version__"]

# Imported on first use, so that the command line (and `--help`) starts without numpy and scikit-learn.
_HOMES = {
    "ConceptDecomposer": "audioconcepts.decompose",
    "Decomposition": "audioconcepts.decompose",
    "Embeddings": "audioconcepts.embeddings",
    "Vocabulary": "audioconcepts.vocab",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'audioconcepts' has no attribute {name!r}")
