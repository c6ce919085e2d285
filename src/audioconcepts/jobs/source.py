"""Streaming input for jobs: embeddings read a bounded chunk of rows at a time, never whole.

Inputs (as written by `audioconcepts embed`, `save_precomputed` or the embed job):

- Parquet: one file or a folder of part files (read in name order; names starting with '.' or '_'
  are skipped), local or on object storage (s3://...). Columns: ``vector`` (fixed-size or variable
  list of floats, d per row), ``fingerprint`` (the model, the same on every row), ``id`` (optional,
  default: the row number). Rows are read by row group with pyarrow's buffered reader
  (``pre_buffer=False``), so memory follows the chunk size, not the file size.
- ``.npy`` (local): a float (n, d) array, memory-mapped, with its ``.json`` sidecar
  (``{"fingerprint": ..., "ids": [...]}``, ids optional).

A row whose vector is null, has the wrong length or holds NaN comes out as a row of NaN, which the
decomposer reports as status 3 (invalid input row) without stopping the job.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from audioconcepts.jobs import storage

#: pyarrow's read buffer per open Parquet file (bytes)
READ_BUFFER = 1 << 20


@dataclass
class Chunk:
    """Rows [start, start + len) of the input: their ids and vectors ((n, d); NaN rows are unusable)."""

    start: int
    ids: list[str]
    vectors: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class _RowGroup:
    file: str
    index: int
    start: int  #: global row number of its first row
    rows: int


class EmbeddingSource:
    """An embeddings input opened for streaming: `n_rows`, `dim`, `fingerprint`, `identity()`, `read()`."""

    def __init__(self, location: str | os.PathLike) -> None:
        self.location = os.fspath(location)
        self.fs, self.path = storage.resolve(self.location)
        info = self.fs.get_file_info(self.path)
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"input not found: {self.location}")
        if info.type == pafs.FileType.Directory:
            selector = pafs.FileSelector(self.path, recursive=False)
            self.files = sorted(
                f.path for f in self.fs.get_file_info(selector)
                if f.type == pafs.FileType.File and f.base_name.endswith(".parquet") and f.base_name[0] not in "._"
            )
            if not self.files:
                raise FileNotFoundError(f"{self.location}: a folder without .parquet files")
            self.kind = "parquet"
        elif self.path.lower().endswith(".parquet"):
            self.files, self.kind = [self.path], "parquet"
        elif self.path.lower().endswith(".npy"):
            if not storage.is_local(self.fs):
                raise ValueError(f"{self.location}: .npy input must be a local file; use Parquet on object storage")
            self.files, self.kind = [self.path], "npy"
        else:
            raise ValueError(f"{self.location}: input must be a .parquet file, a folder of them, or a .npy file")
        if self.kind == "parquet":
            self._open_parquet()
        else:
            self._open_npy()

    # ------------------------------------------------------------------ opening
    def _open_parquet(self) -> None:
        groups: list[_RowGroup] = []
        fingerprints: set[str] = set()
        dims: set[int] = set()
        row = 0
        self.has_ids = True
        for file in self.files:
            pf = self._parquet_file(file)
            schema = pf.schema_arrow
            missing = {"vector", "fingerprint"} - set(schema.names)
            if missing:
                raise ValueError(
                    f"{file}: missing column(s) {sorted(missing)}; embeddings Parquet needs 'vector' (list of floats), "
                    "'fingerprint' (the model) and optionally 'id' (write it with `audioconcepts embed` or save_precomputed)"
                )
            self.has_ids &= "id" in schema.names
            vtype = schema.field("vector").type
            if pa.types.is_fixed_size_list(vtype):
                dims.add(vtype.list_size)
            elif not (pa.types.is_list(vtype) or pa.types.is_large_list(vtype)):
                raise ValueError(f"{file}: column 'vector' must be a list of floats; it is {vtype}")
            elif not pa.types.is_floating(vtype.value_type) and not pa.types.is_integer(vtype.value_type):
                raise ValueError(f"{file}: column 'vector' must hold numbers; it holds {vtype.value_type}")
            fingerprints |= self._fingerprints(pf)
            for g in range(pf.metadata.num_row_groups):
                rows = pf.metadata.row_group(g).num_rows
                groups.append(_RowGroup(file, g, row, rows))
                row += rows
        if not dims and row:  # variable-length lists: take d from the first non-null vector
            dims.add(self._first_length())
        if len(fingerprints) > 1:
            raise ValueError(f"{self.location}: rows come from several models {sorted(fingerprints)[:5]}; decompose one model's embeddings at a time")
        if len(dims) > 1:
            raise ValueError(f"{self.location}: vectors of different lengths across files: {sorted(dims)}")
        if row == 0:
            raise ValueError(f"{self.location}: the input has no rows")
        self.groups, self.n_rows = groups, row
        self.fingerprint, self.dim = fingerprints.pop(), dims.pop()

    def _parquet_file(self, file: str) -> pq.ParquetFile:
        return pq.ParquetFile(self.fs.open_input_file(file), pre_buffer=False, buffer_size=READ_BUFFER)

    def _fingerprints(self, pf: pq.ParquetFile) -> set[str]:
        """Distinct fingerprints of a file: from row-group statistics when they settle it, else by
        reading the (small, dictionary-encoded) column one row group at a time."""
        column = pf.schema_arrow.get_field_index("fingerprint")
        found: set[str] = set()
        for g in range(pf.metadata.num_row_groups):
            stats = pf.metadata.row_group(g).column(column).statistics
            if stats is not None and stats.has_min_max and stats.min == stats.max and stats.null_count == 0:
                found.add(stats.min if isinstance(stats.min, str) else bytes(stats.min).decode())
                continue
            values = pf.read_row_group(g, columns=["fingerprint"]).column(0)
            if values.null_count:
                raise ValueError(f"{self.location}: some rows have no fingerprint")
            found |= set(pc.unique(values).to_pylist())
        return found

    def _first_length(self) -> int:
        for file in self.files:
            for batch in self._parquet_file(file).iter_batches(batch_size=1024, columns=["vector"]):
                lengths = pc.drop_null(pc.list_value_length(batch.column(0)))
                if len(lengths):
                    return int(lengths[0].as_py())
        raise ValueError(f"{self.location}: every vector is null")

    def _open_npy(self) -> None:
        sidecar = os.path.splitext(self.path)[0] + ".json"
        if not os.path.isfile(sidecar):
            raise FileNotFoundError(f'{self.location}: needs a sidecar {os.path.basename(sidecar)} with the model fingerprint: {{"fingerprint": ...}}')
        with open(sidecar, encoding="utf-8") as f:
            meta = json.load(f)
        if not isinstance(meta, dict) or not isinstance(meta.get("fingerprint"), str) or not meta["fingerprint"]:
            raise ValueError(f"{sidecar}: must be a JSON object with a non-empty 'fingerprint'")
        self._array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        if self._array.ndim != 2 or not np.issubdtype(self._array.dtype, np.number) or self._array.shape[0] == 0:
            raise ValueError(f"{self.location}: expected a non-empty numeric (n, d) array, got {self._array.dtype} {self._array.shape}")
        self.n_rows, self.dim = self._array.shape
        self.fingerprint = meta["fingerprint"]
        ids = meta.get("ids")
        if ids is not None and len(ids) != self.n_rows:
            raise ValueError(f"{sidecar}: {len(ids)} ids for {self.n_rows} rows")
        self._ids = None if ids is None else [str(i) for i in ids]
        self.has_ids = ids is not None

    # ----------------------------------------------------------------- identity
    def identity(self) -> dict[str, Any]:
        """The input as recorded in a job manifest: each file's identity, rows, d and fingerprint."""
        files = [storage.file_identity(self.fs, f, self._display(f)).as_dict() for f in self.files]
        if self.kind == "npy":
            sidecar = os.path.splitext(self.path)[0] + ".json"
            files.append(storage.file_identity(self.fs, sidecar, self._display(sidecar)).as_dict())
        return {"location": self.location, "files": files, "rows": self.n_rows, "dim": self.dim, "fingerprint": self.fingerprint}

    def _display(self, path: str) -> str:
        return self.location if len(self.files) == 1 and path == self.path else path

    # ------------------------------------------------------------------ reading
    def read(self, start: int, end: int, chunk_rows: int) -> Iterator[Chunk]:
        """Rows [start, end) in order, as chunks of exactly `chunk_rows` rows (the last may be shorter)."""
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be positive; got {chunk_rows}")
        start, end = max(0, start), min(end, self.n_rows)
        if start >= end:
            return
        if self.kind == "npy":
            for lo in range(start, end, chunk_rows):
                hi = min(end, lo + chunk_rows)
                ids = self._ids[lo:hi] if self._ids is not None else [str(i) for i in range(lo, hi)]
                yield Chunk(lo, ids, np.array(self._array[lo:hi]))
            return
        pending: list[pa.RecordBatch] = []
        held, position = 0, start
        for batch in self._batches(start, end, chunk_rows):
            pending.append(batch)
            held += batch.num_rows
            while held >= chunk_rows:
                table = pa.Table.from_batches(pending).combine_chunks()
                yield self._chunk(position, table.slice(0, chunk_rows))
                rest = table.slice(chunk_rows)
                position += chunk_rows
                pending, held = ([b for b in rest.to_batches()] if rest.num_rows else []), rest.num_rows
        if held:
            yield self._chunk(position, pa.Table.from_batches(pending).combine_chunks())

    def _batches(self, start: int, end: int, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """Record batches (at most `batch_rows` rows each) covering exactly rows [start, end)."""
        columns = ["vector", "fingerprint"] + (["id"] if self.has_ids else [])
        wanted = [g for g in self.groups if g.start < end and g.start + g.rows > start]
        for file in dict.fromkeys(g.file for g in wanted):
            mine = [g for g in wanted if g.file == file]
            row = mine[0].start
            pf = self._parquet_file(file)
            for batch in pf.iter_batches(batch_size=batch_rows, row_groups=[g.index for g in mine], columns=columns):
                lo, hi = max(start, row), min(end, row + batch.num_rows)
                if lo < hi:
                    yield batch.slice(lo - row, hi - lo)
                row += batch.num_rows
                if row >= end:
                    break

    def _chunk(self, start: int, table: pa.Table) -> Chunk:
        n = table.num_rows
        fps = pc.unique(table.column("fingerprint")).to_pylist()
        if fps != [self.fingerprint]:
            raise ValueError(f"{self.location}: rows {start}-{start + n} carry fingerprints {fps[:3]}, expected {self.fingerprint!r}")
        ids = [str(i) for i in table.column("id").to_pylist()] if self.has_ids else [str(i) for i in range(start, start + n)]
        return Chunk(start, ids, self._vectors(table.column("vector").combine_chunks(), n))

    def _vectors(self, column: pa.Array, n: int) -> np.ndarray:
        d = self.dim
        dtype = np.float64 if pa.types.is_float64(column.type.value_type) else np.float32
        if pa.types.is_fixed_size_list(column.type) and column.null_count == 0:
            values = column.flatten()
            return values.to_numpy(zero_copy_only=False).astype(dtype, copy=False).reshape(n, d)
        out = np.full((n, d), np.nan, dtype)
        lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False)
        good = np.flatnonzero(lengths == d)
        if len(good):
            rows = column.take(pa.array(good))
            out[good] = rows.flatten().to_numpy(zero_copy_only=False).astype(dtype, copy=False).reshape(len(good), d)
        return out
