"""audioconcepts: read CLAP audio embeddings as sparse mixes of named text concepts."""

from audioconcepts.decompose import ConceptDecomposer, Decomposition
from audioconcepts.embeddings import Embeddings
from audioconcepts.vocab import Vocabulary

__version__ = "0.1.0"
__all__ = ["ConceptDecomposer", "Decomposition", "Embeddings", "Vocabulary", "__version__"]
