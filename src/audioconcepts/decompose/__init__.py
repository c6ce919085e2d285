"""Decomposition of dense embeddings into sparse concept codes."""

from audioconcepts.decompose.certificate import certify
from audioconcepts.decompose.decomposer import ConceptDecomposer, Decomposition
from audioconcepts.decompose.solvers import SOLVERS, make_solver

__all__ = ["ConceptDecomposer", "Decomposition", "SOLVERS", "certify", "make_solver"]
