"""Vocabularies of named concepts and their embeddings."""

from audioconcepts.vocab.fileformat import MissingFingerprintError, VocabularyFileError
from audioconcepts.vocab.vocabulary import Vocabulary

__all__ = ["MissingFingerprintError", "Vocabulary", "VocabularyFileError"]
