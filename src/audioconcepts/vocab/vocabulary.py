"""The Vocabulary: named concepts and their text embeddings in one model's space."""

from __future__ import annotations

import collections
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from audioconcepts.vocab import fileformat


class Vocabulary:
    """k concept strings, their (k, d) embeddings, and the fingerprint of the model that made them.

    `provenance` is a JSON-serialisable dict (source, recipe, parameters, counts...). A vocabulary
    loaded from a file also keeps the file's embeddings for other models, so `save` writes them back.
    Construction validates everything a decomposition relies on, so that a bad vocabulary fails
    here with a message that names the problem, not later inside a solver.
    """

    def __init__(
        self,
        concepts: Sequence[str],
        embeddings: np.ndarray,
        fingerprint: str,
        *,
        provenance: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(concepts, str):
            raise TypeError("concepts must be a list of strings, not a single string")
        concepts = list(concepts)
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
        self.provenance: dict[str, Any] = dict(provenance or {})
        self._other_embeddings: dict[str, np.ndarray] = {}

    @classmethod
    def load(cls, path_or_name: str | os.PathLike, fingerprint: str | None = None) -> Vocabulary:
        """Open a vocabulary file; `fingerprint` picks the model when the file has several.

        Raises MissingFingerprintError naming the requested model and the file's models.
        """
        name = os.fspath(path_or_name)
        file = fileformat.read(_existing_file(name))
        chosen = fileformat.select(file, fingerprint, name)
        vocab = cls(file.concepts, file.embeddings.pop(chosen), chosen, provenance=file.provenance)
        vocab._other_embeddings = file.embeddings
        return vocab

    @staticmethod
    def load_concepts(path: str | os.PathLike) -> tuple[list[str], dict[str, Any]]:
        """The concepts and provenance of a vocabulary file, with or without embeddings (none are read),
        or of a shipped vocabulary name (e.g. "captions-pruned-2k") when no such file exists."""
        name = os.fspath(path)
        if not os.path.isfile(name):
            from audioconcepts.vocab.sources import is_shipped, shipped_concepts  # sources imports this module

            if is_shipped(name):
                return shipped_concepts(name)
        file = fileformat.read(_existing_file(name), with_embeddings=False)
        return file.concepts, file.provenance

    def save(self, path: str | os.PathLike) -> None:
        """Write this vocabulary, its provenance and every model's embeddings it holds to `path`."""
        embeddings = {**self._other_embeddings, self.fingerprint: self.embeddings}
        fileformat.write(path, self.concepts, self.provenance, embeddings)

    def with_embeddings(self, embeddings: np.ndarray, fingerprint: str) -> Vocabulary:
        """The same concepts and provenance embedded with another model, keeping this one's embeddings too."""
        vocab = type(self)(self.concepts, embeddings, fingerprint, provenance=self.provenance)
        others = {**self._other_embeddings, self.fingerprint: self.embeddings}
        others.pop(fingerprint, None)
        vocab._other_embeddings = others
        return vocab

    @property
    def fingerprints(self) -> list[str]:
        """Every model this vocabulary holds embeddings for, the selected one first."""
        return [self.fingerprint, *self._other_embeddings]

    @property
    def dim(self) -> int:
        return self.embeddings.shape[1]

    def __len__(self) -> int:
        return len(self.concepts)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} concepts, d={self.dim}, fingerprint={self.fingerprint!r})"


def _existing_file(name: str) -> str:
    """`name` if it is a file; otherwise a FileNotFoundError that says what names mean."""
    if os.path.isfile(name):
        return name
    from audioconcepts.vocab.sources import is_shipped, shipped_names  # sources imports this module

    if is_shipped(name):
        raise FileNotFoundError(
            f"{name!r} is a shipped concept list without embeddings; embed it with "
            "audioconcepts.vocab.sources.embed_vocabulary"
        )
    raise FileNotFoundError(f"no vocabulary file {name!r}; shipped vocabularies: {', '.join(shipped_names())}")


def _names(concepts: list[str], mask: np.ndarray) -> str:
    picked = [concepts[i] for i in np.flatnonzero(mask)]
    more = f" and {len(picked) - 5} more" if len(picked) > 5 else ""
    return ", ".join(repr(c) for c in picked[:5]) + more
