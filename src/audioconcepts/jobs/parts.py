"""One part of a decompose job: decompose rows [start, end) of the input and write their Parquet files.

Shared by the local and the Ray engine, so both produce the same files from the same rows.

Output layout of a job folder ``OUT/``:

- ``OUT/codes/part-<start>-<end>.parquet``: one row per non-zero weight, columns
  ``row`` (int64, input row number), ``id`` (string, the input's id), ``concept_index`` (int32,
  column in the vocabulary), ``concept`` (string, dictionary-encoded), ``weight`` (float64, > 0).
  Read the whole set with ``pyarrow.parquet.read_table("OUT/codes")`` or ``jobs.read_codes(OUT)``.
- ``OUT/diagnostics/part-<start>-<end>.parquet``: one row per input row (rows whose code is empty
  too), columns ``row``, ``id``, ``nnz`` (int32), ``cosine`` (float64, cosine(recomposed, original);
  NaN for invalid rows), ``status`` (int8: 0 solved, 1 degenerate concept skipped, 2 iteration budget
  exhausted, 3 invalid input row), ``duality_gap``, ``kkt_violation`` (float64; NaN unless the
  job certifies).
- ``OUT/_manifest.json``: see `manifest`.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import pyarrow as pa

from audioconcepts.jobs import storage
from audioconcepts.jobs.source import Chunk, EmbeddingSource

CODES, DIAGNOSTICS = "codes", "diagnostics"

CODES_SCHEMA = pa.schema(
    [
        ("row", pa.int64()),
        ("id", pa.string()),
        ("concept_index", pa.int32()),
        ("concept", pa.dictionary(pa.int32(), pa.string())),
        ("weight", pa.float64()),
    ]
)
DIAGNOSTICS_SCHEMA = pa.schema(
    [
        ("row", pa.int64()),
        ("id", pa.string()),
        ("nnz", pa.int32()),
        ("cosine", pa.float64()),
        ("status", pa.int8()),
        ("duality_gap", pa.float64()),
        ("kkt_violation", pa.float64()),
    ]
)


def part_name(start: int, end: int) -> str:
    return f"part-{start:012d}-{end:012d}.parquet"


def decompose_chunk(decomposer: Any, chunk: Chunk, concepts: pa.Array, certify: bool) -> tuple[pa.Table, pa.Table]:
    """(codes table, diagnostics table) of one chunk of rows."""
    with warnings.catch_warnings():  # invalid rows are counted in the diagnostics, not warned about per chunk
        warnings.simplefilter("ignore", RuntimeWarning)
        result = decomposer.decompose(chunk.vectors, certify=certify)
    codes = result.codes.tocsr()
    codes.sort_indices()
    n = len(chunk)
    rows = chunk.start + np.arange(n, dtype=np.int64)
    ids = pa.array(chunk.ids, pa.string())
    per_row = np.diff(codes.indptr)
    local = np.repeat(np.arange(n), per_row)
    index = codes.indices.astype(np.int32)
    codes_table = pa.table(
        {
            "row": pa.array(rows[local]),
            "id": ids.take(pa.array(local, pa.int64())),
            "concept_index": pa.array(index),
            "concept": pa.DictionaryArray.from_arrays(pa.array(index), concepts),
            "weight": pa.array(codes.data.astype(np.float64)),
        },
        schema=CODES_SCHEMA,
    )
    diagnostics = pa.table(
        {
            "row": pa.array(rows),
            "id": ids,
            "nnz": pa.array(per_row.astype(np.int32)),
            "cosine": pa.array(np.asarray(result.cosine, np.float64)),
            "status": pa.array(np.asarray(result.status, np.int8)),
            "duality_gap": pa.array(np.asarray(result.duality_gap, np.float64)),
            "kkt_violation": pa.array(np.asarray(result.kkt_violation, np.float64)),
        },
        schema=DIAGNOSTICS_SCHEMA,
    )
    return codes_table, diagnostics


def run_part(
    decomposer: Any,
    source: EmbeddingSource,
    start: int,
    end: int,
    out: str,
    concepts: pa.Array,
    certify: bool,
    on_chunk: Any = None,
) -> dict[str, Any]:
    """Decompose rows [start, end) (read as one chunk) and write the part's two files atomically;
    returns the part's manifest record. `on_chunk(chunk)` sees every chunk read (tests, monitoring)."""
    t0 = time.perf_counter()
    fs, folder = storage.resolve(out)
    codes, diagnostics = [], []
    for chunk in source.read(start, end, end - start):
        if on_chunk is not None:
            on_chunk(chunk)
        c, d = decompose_chunk(decomposer, chunk, concepts, certify)
        codes.append(c)
        diagnostics.append(d)
    codes_t = pa.concat_tables(codes) if codes else CODES_SCHEMA.empty_table()
    diag_t = pa.concat_tables(diagnostics) if diagnostics else DIAGNOSTICS_SCHEMA.empty_table()
    if diag_t.num_rows != end - start:
        raise RuntimeError(f"read {diag_t.num_rows} rows for part [{start}, {end}) of {source.location}; the input changed?")
    name = part_name(start, end)
    storage.write_parquet_atomic(fs, storage.join(folder, CODES, name), codes_t)
    storage.write_parquet_atomic(fs, storage.join(folder, DIAGNOSTICS, name), diag_t)
    status = diag_t.column("status").to_numpy()
    return {
        "start": start,
        "end": end,
        "rows": end - start,
        "codes": f"{CODES}/{name}",
        "diagnostics": f"{DIAGNOSTICS}/{name}",
        "weights": codes_t.num_rows,
        "invalid": int((status == 3).sum()),
        "unsolved": int(((status == 1) | (status == 2)).sum()),
        "seconds": round(time.perf_counter() - t0, 3),
    }
