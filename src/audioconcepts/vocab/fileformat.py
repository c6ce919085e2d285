"""The vocabulary file: concepts, provenance and embeddings for any number of models, in one `.npz`.

Layout (an uncompressed NumPy `.npz`, a zip of `.npy` arrays, read with `allow_pickle=False`, so
opening a file never runs code):

- `header`: uint8, the UTF-8 bytes of a JSON object
  `{"format": "audioconcepts-vocabulary", "version": 1, "concepts": [...],
  "provenance": {...}, "fingerprints": [fp_0, fp_1, ...]}`;
- `embeddings_0`, `embeddings_1`, ...: float32 (k, d_i) arrays, row j embedding concept j with
  model `fingerprints[i]` (fingerprints are indexed, not used as member names, as they contain '/').

Uncompressed so that arrays are read straight into memory; zip CRCs catch corrupted members.
A file may hold no embeddings at all: a concept list with its provenance.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FORMAT = "audioconcepts-vocabulary"
VERSION = 1


class VocabularyFileError(ValueError):
    """A file that is not a readable vocabulary file of this version; the message names the file."""


class MissingFingerprintError(VocabularyFileError):
    """The file has no embeddings for the requested model (or several models and none was chosen)."""


@dataclass
class VocabularyFile:
    """The contents of a vocabulary file; `embeddings` maps fingerprint to a float32 (k, d) array."""

    concepts: list[str]
    provenance: dict[str, Any] = field(default_factory=dict)
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)


def write(
    path: str | os.PathLike,
    concepts: Sequence[str],
    provenance: Mapping[str, Any] | None = None,
    embeddings: Mapping[str, np.ndarray] | None = None,
) -> None:
    """Write a vocabulary file at exactly `path` (no suffix added), replacing it atomically."""
    concepts = list(concepts)
    embeddings = dict(embeddings or {})
    for fp, E in embeddings.items():
        if not isinstance(fp, str) or not fp:
            raise ValueError(f"fingerprints must be non-empty strings; got {fp!r}")
        if np.ndim(E) != 2 or np.shape(E)[0] != len(concepts):
            raise ValueError(f"embeddings for {fp!r} must have shape ({len(concepts)}, d); got {np.shape(E)}")
    header = {
        "format": FORMAT,
        "version": VERSION,
        "concepts": concepts,
        "provenance": dict(provenance or {}),
        "fingerprints": list(embeddings),
    }
    try:
        text = json.dumps(header, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"provenance must be JSON-serialisable: {e}") from e
    arrays = {"header": np.frombuffer(text.encode("utf-8"), dtype=np.uint8)}
    for i, E in enumerate(embeddings.values()):
        arrays[f"embeddings_{i}"] = np.ascontiguousarray(E, dtype=np.float32)
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def is_vocabulary_file(path: str | os.PathLike) -> bool:
    """Whether `path` is an npz (zip) file, i.e. meant as a vocabulary file rather than a text list."""
    return zipfile.is_zipfile(path)


def read(path: str | os.PathLike, *, with_embeddings: bool = True) -> VocabularyFile:
    """Read a vocabulary file; raises VocabularyFileError if it is corrupt, truncated or another version."""
    name = os.fspath(path)
    try:
        with np.load(name, allow_pickle=False) as data:
            header = _header(data, name)
            concepts, fingerprints = header["concepts"], header["fingerprints"]
            embeddings = {}
            if with_embeddings:
                for i, fp in enumerate(fingerprints):
                    E = data[f"embeddings_{i}"]
                    if E.dtype != np.float32 or E.ndim != 2 or E.shape[0] != len(concepts):
                        raise VocabularyFileError(
                            f"{name}: embeddings for {fp!r} are {E.dtype} {E.shape}, "
                            f"expected float32 ({len(concepts)}, d)"
                        )
                    embeddings[fp] = E
    except VocabularyFileError:
        raise
    except FileNotFoundError:
        raise
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise VocabularyFileError(f"{name} is not a readable vocabulary file (corrupt or truncated?): {e}") from e
    return VocabularyFile(concepts, header["provenance"], embeddings)


def _header(data: Any, name: str) -> dict[str, Any]:
    """The validated JSON header of an opened file."""
    if not isinstance(data, np.lib.npyio.NpzFile) or "header" not in data.files:
        raise VocabularyFileError(f"{name} is not a vocabulary file (no header)")
    raw = data["header"]
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise VocabularyFileError(f"{name}: the header is not UTF-8 bytes")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VocabularyFileError(f"{name}: the header is not valid JSON: {e}") from e
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise VocabularyFileError(f"{name} is not an {FORMAT} file")
    if header.get("version") != VERSION:
        raise VocabularyFileError(
            f"{name} is vocabulary format version {header.get('version')!r}; "
            f"this audioconcepts reads version {VERSION} (upgrade audioconcepts or rebuild the file)"
        )
    concepts, fingerprints = header.get("concepts"), header.get("fingerprints")
    if not isinstance(concepts, list) or not all(isinstance(c, str) for c in concepts):
        raise VocabularyFileError(f"{name}: 'concepts' must be a list of strings")
    if not isinstance(fingerprints, list) or not all(isinstance(f, str) for f in fingerprints):
        raise VocabularyFileError(f"{name}: 'fingerprints' must be a list of strings")
    if not isinstance(header.get("provenance"), dict):
        raise VocabularyFileError(f"{name}: 'provenance' must be a JSON object")
    return header


def select(file: VocabularyFile, fingerprint: str | None, name: str) -> str:
    """The fingerprint to use: `fingerprint` if the file has it, else the file's only one."""
    have = list(file.embeddings)
    if fingerprint is not None:
        if fingerprint not in file.embeddings:
            raise MissingFingerprintError(
                f"{name} has no embeddings for model {fingerprint!r}; it has "
                + (", ".join(repr(f) for f in have) if have else "none (a concept list only)")
            )
        return fingerprint
    if len(have) == 1:
        return have[0]
    if not have:
        raise MissingFingerprintError(
            f"{name} holds concepts but no embeddings; use Vocabulary.load_concepts, or embed them with a model"
        )
    raise MissingFingerprintError(
        f"{name} has embeddings for several models ({', '.join(repr(f) for f in have)}); choose one with fingerprint="
    )
