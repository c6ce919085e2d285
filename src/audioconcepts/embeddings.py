"""Embeddings that carry the fingerprint of the model that made them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Embeddings:
    """(n, d) vectors plus the fingerprint of their model; decomposers refuse a mismatch."""

    vectors: np.ndarray
    fingerprint: str

    def __len__(self) -> int:
        return len(self.vectors)


def check_fingerprint(X: object, expected: str, what: str = "the vocabulary") -> np.ndarray:
    """The array inside X; if X carries a fingerprint, it must match `expected`."""
    if isinstance(X, Embeddings):
        if X.fingerprint != expected:
            raise ValueError(
                f"embeddings come from model {X.fingerprint!r} but {what} was embedded with "
                f"{expected!r}; embed both with the same model"
            )
        return X.vectors
    return X
