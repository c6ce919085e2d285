"""Vocabularies of named concepts and their embeddings."""

from audioconcepts.vocab.vocabulary import Vocabulary

__all__ = ["Vocabulary"]
