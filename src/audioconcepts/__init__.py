"""audioconcepts: read CLAP audio embeddings as sparse mixes of named text concepts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from audioconcepts._lazy import lazy_exports

if TYPE_CHECKING:
    from audioconcepts.decompose import ConceptDecomposer, Decomposition
    from audioconcepts.embeddings import Embeddings
    from audioconcepts.vocab import Vocabulary

__version__ = "0.1.0"
__all__ = ["ConceptDecomposer", "Decomposition", "Embeddings", "Vocabulary", "__version__"]

# Imported on first use, so that the command line (and `--help`) starts without numpy and scikit-learn.
_EXPORTS = {
    "ConceptDecomposer": "audioconcepts.decompose",
    "Decomposition": "audioconcepts.decompose",
    "Embeddings": "audioconcepts.embeddings",
    "Vocabulary": "audioconcepts.vocab",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)
