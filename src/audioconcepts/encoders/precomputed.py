"""Precomputed embeddings: vectors made elsewhere (another environment or tool) plus their fingerprint.

Two file formats, both written by `save_precomputed`:

- ``name.npy``: a float (n, d) array, with a sidecar ``name.json`` holding
  ``{"fingerprint": "...", "ids": [...]}`` ("ids" optional);
- ``name.parquet``: columns ``id`` (string), ``fingerprint`` (string, the same on every row) and
  ``vector`` (list of floats, d per row).

Rows are L2-normalised on load (the package contract), so vectors from other tools need not be;
rows that already have unit norm are kept exactly.
`load_encoder("precomputed:<file>")` returns a `PrecomputedEmbeddings`, which has no model:
`embed_audio` / `embed_text` raise EncoderCapabilityError.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from audioconcepts.embeddings import Embeddings
from audioconcepts.encoders import EncoderCapabilityError

_COLUMNS = ("id", "fingerprint", "vector")


class PrecomputedEmbeddings:
    """Embeddings loaded from a file: `.embeddings` (with fingerprint) and optional row `.ids`."""

    sample_rate = None

    def __init__(self, embeddings: Embeddings, ids: list[str] | None, path: str) -> None:
        self.embeddings, self.ids, self.path = embeddings, ids, path
        self.fingerprint = embeddings.fingerprint
        self.dim = embeddings.vectors.shape[1]

    def _refuse(self, what: str) -> EncoderCapabilityError:
        return EncoderCapabilityError(
            f"'precomputed:{self.path}' holds stored embeddings, not a model: it cannot embed new {what}. "
            f"Use .embeddings, or load the model named in its fingerprint ({self.fingerprint!r})."
        )

    def embed_audio(self, audio: Any, *, batch_size: int = 8) -> Embeddings:
        """Always raises: there is no model to embed new audio with."""
        raise self._refuse("audio")

    def embed_text(self, texts: list[str], *, batch_size: int = 64) -> Embeddings:
        """Always raises: there is no model to embed new text with."""
        raise self._refuse("text")


def load(path: str) -> PrecomputedEmbeddings:
    """Read a .npy (+ .json sidecar) or .parquet file of embeddings; validates and normalises rows."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"precomputed embeddings file not found: {path}")
    suffix = file.suffix.lower()
    if suffix == ".npy":
        vectors, fingerprint, ids = _read_npy(file)
    elif suffix == ".parquet":
        vectors, fingerprint, ids = _read_parquet(file)
    else:
        raise ValueError(f"{path}: precomputed embeddings must be .npy (with a .json sidecar) or .parquet")
    return PrecomputedEmbeddings(_checked(vectors, fingerprint, ids, path), ids, path)


def save_precomputed(
    path: str | os.PathLike,
    embeddings: Embeddings,
    ids: Sequence[str] | None = None,
    extra: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Write `embeddings` to .npy (+ .json sidecar) or .parquet (ids default to "0".."n-1" there).

    `extra`: more string columns for Parquet (e.g. path, content_hash), one value per row; the
    loader ignores them."""
    file = Path(path)
    ids = None if ids is None else [str(i) for i in ids]
    vectors = np.asarray(embeddings.vectors, dtype=np.float32)
    _checked(vectors, embeddings.fingerprint, ids, str(path))
    if file.suffix.lower() == ".npy":
        if extra:
            raise ValueError(f"{path}: extra columns need a .parquet file")
        np.save(file, vectors)
        sidecar = {"fingerprint": embeddings.fingerprint} | ({"ids": ids} if ids is not None else {})
        file.with_suffix(".json").write_text(json.dumps(sidecar, indent=1))
    elif file.suffix.lower() == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        n, d = vectors.shape
        columns = {"id": pa.array(ids if ids is not None else [str(i) for i in range(n)], pa.string())}
        for name, values in (extra or {}).items():
            if name in _COLUMNS or len(values) != n:
                raise ValueError(f"extra column {name!r}: needs a new name and one value per row ({n})")
            columns[name] = pa.array([str(v) for v in values], pa.string())
        columns["fingerprint"] = pa.array([embeddings.fingerprint] * n, pa.string())
        columns["vector"] = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), d)
        pq.write_table(pa.table(columns), file)
    else:
        raise ValueError(f"{path}: use a .npy or .parquet file name")


def _read_npy(file: Path) -> tuple[np.ndarray, str, list[str] | None]:
    sidecar = file.with_suffix(".json")
    if not sidecar.is_file():
        raise FileNotFoundError(
            f'{file}: needs a sidecar {sidecar.name} with the model fingerprint: {{"fingerprint": ...}}'
        )
    meta = json.loads(sidecar.read_text())
    if not isinstance(meta, dict) or "fingerprint" not in meta:
        raise ValueError(f"{sidecar}: must be a JSON object with a 'fingerprint' key")
    ids = meta.get("ids")
    return np.load(file, allow_pickle=False), meta["fingerprint"], None if ids is None else [str(i) for i in ids]


def _read_parquet(file: Path) -> tuple[np.ndarray, str, list[str]]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    missing = set(_COLUMNS) - set(pq.read_schema(file).names)
    if missing:
        raise ValueError(f"{file}: missing column(s) {sorted(missing)}; expected {list(_COLUMNS)}")
    table = pq.read_table(file, columns=list(_COLUMNS))
    fingerprints = pc.unique(table.column("fingerprint")).to_pylist()
    if len(fingerprints) != 1:
        raise ValueError(f"{file}: expected one fingerprint on every row, found {fingerprints[:5]}")
    column = table.column("vector").combine_chunks()
    lengths = pc.unique(pc.list_value_length(column)).to_pylist()
    if column.null_count or len(lengths) != 1:
        raise ValueError(f"{file}: every 'vector' must be a non-null list of the same length, found lengths {lengths}")
    vectors = column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), lengths[0])
    return vectors, fingerprints[0], [str(i) for i in table.column("id").to_pylist()]


def _checked(vectors: np.ndarray, fingerprint: Any, ids: list[str] | None, path: str) -> Embeddings:
    """Embeddings after the checks every precomputed file must pass: 2-D finite non-zero rows,
    a non-empty fingerprint string, and one unique id per row when ids are given."""
    if not isinstance(fingerprint, str) or not fingerprint:
        raise ValueError(f"{path}: the fingerprint must be a non-empty string naming the model")
    if vectors.ndim != 2 or not np.issubdtype(vectors.dtype, np.number) or vectors.shape[1] == 0:
        raise ValueError(f"{path}: expected a numeric (n, d) array, got {vectors.dtype} {vectors.shape}")
    norms = np.linalg.norm(vectors.astype(np.float64), axis=1, keepdims=True)
    if not np.isfinite(norms).all() or (norms == 0).any():
        raise ValueError(f"{path}: vectors must be finite and non-zero")
    if ids is not None and (len(ids) != len(vectors) or len(set(ids)) != len(ids)):
        raise ValueError(
            f"{path}: need one unique id per row ({len(ids)} ids, {len(set(ids))} unique, {len(vectors)} rows)"
        )
    # rows already unit-norm are kept bit for bit, so a save/load round trip is exact
    unit = np.abs(norms - 1) <= 1e-5
    return Embeddings(np.where(unit, vectors, vectors / norms).astype(np.float32), fingerprint)
