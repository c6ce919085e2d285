"""The Vocabulary: named concepts and their text embeddings in one model's space."""

from __future__ import annotations

import collections
from collections.abc import Sequence

import numpy as np


class Vocabulary:
    """k concept strings, their (k, d) embeddings, and the fingerprint of the model that made them.

    Construction validates everything a decomposition relies on, so that a bad vocabulary fails
    here with a message that names the problem, not later inside a solver.
    """

    def __init__(self, concepts: Sequence[str], embeddings: np.ndarray, fingerprint: str) -> None:
        concepts = [c for c in concepts] if not isinstance(concepts, str) else None
        if concepts is None:
            raise TypeError("concepts must be a list of strings, not a single string")
        if len(concepts) == 0:
            raise ValueError("the vocabulary is empty: give at least two concepts")
        bad = [c for c in concepts if not isinstance(c, str) or not c.strip()]
        if bad:
            raise ValueError(f"concepts must be non-empty strings; got {bad[:5]!r}")
        dupes = [c for c, n in collections.Counter(concepts).items() if n > 1]
        if dupes:
            raise ValueError(
                f"{len(dupes)} concept(s) appear more than once, e.g. {dupes[:5]!r}; "
                "remove the duplicates (each concept must name one column of the codes)"
            )
        if len(concepts) < 2:
            raise ValueError(
                f"a vocabulary of one concept ({concepts[0]!r}) cannot explain anything: after "
                "centering its embedding is zero; give at least two concepts"
            )
        E = np.asarray(embeddings)
        if E.ndim != 2 or E.shape[0] != len(concepts):
            raise ValueError(
                f"embeddings must have shape (k, d) with k = {len(concepts)} concepts; got {E.shape}"
            )
        if not np.issubdtype(E.dtype, np.number):
            raise TypeError(f"embeddings must be numeric; got dtype {E.dtype}")
        E = E.astype(np.float32)
        finite = np.isfinite(E).all(axis=1)
        if not finite.all():
            raise ValueError(f"embeddings of {_names(concepts, ~finite)} contain NaN or inf")
        zero = ~np.any(E != 0, axis=1)
        if zero.any():
            raise ValueError(f"embeddings of {_names(concepts, zero)} are all zero")
        if not isinstance(fingerprint, str) or not fingerprint:
            raise ValueError("fingerprint must name the model that embedded the concepts, e.g. 'laion/clap-htsat-unfused'")
        self.concepts: list[str] = [str(c) for c in concepts]
        self.embeddings: np.ndarray = E
        self.fingerprint: str = fingerprint

    @property
    def dim(self) -> int:
        return self.embeddings.shape[1]

    def __len__(self) -> int:
        return len(self.concepts)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} concepts, d={self.dim}, fingerprint={self.fingerprint!r})"


def _names(concepts: list[str], mask: np.ndarray) -> str:
    picked = [concepts[i] for i in np.flatnonzero(mask)]
    more = f" and {len(picked) - 5} more" if len(picked) > 5 else ""
    return ", ".join(repr(c) for c in picked[:5]) + more
