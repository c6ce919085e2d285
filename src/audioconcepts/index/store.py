"""The concept index on disk: one DuckDB file holding files, their embeddings and concept codes.

Tables (schema version `SCHEMA_VERSION`):

- ``meta(key, value)``: JSON values: model fingerprint, embedding dimension, vocabulary name and the
  hash of its concept list, l1_penalty, the audio modality mean the codes were centred on (and where
  it came from), the kind of source ("audio" files or precomputed "embeddings").
- ``concepts(id, name, embedding FLOAT[d])``: the vocabulary, so that recomposition, editing and
  profiles need no model and no vocabulary file.
- ``files(id, path, folder, content_hash, duration, label, embedding FLOAT[d], nnz, cosine,
  code_norm, status)``: one row per indexed file (or precomputed id). ``nnz`` is NULL until the row
  has been decomposed; ids stay the same when a file's content changes.
- ``codes(file_id, concept_id, weight)``: the non-zero concept weights, the sparse codes in long form.
- ``failures(path, reason)``: files that could not be indexed in the last run that saw them.

`ConceptIndex` reads it a page at a time (``limit``/``offset`` everywhere), so a web app can browse,
fetch one clip, search and profile 10,000+ clips without loading them all. A DuckDB connection is
not shared between threads: use one `ConceptIndex` per thread (or `cursor()`), read-only for serving.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import numbers
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

SCHEMA_VERSION = 1


class ConceptIndexError(Exception):
    """Base of the concept index's errors."""


#: the earlier name of ConceptIndexError (kept: the web explorer imports it)
IndexError_ = ConceptIndexError


class IndexMismatchError(ConceptIndexError, ValueError):
    """The index was built with another model, vocabulary or l1_penalty than the one asked for."""


class IndexBusyError(ConceptIndexError, OSError):
    """The index file is open elsewhere in a way that excludes this connection (e.g. a writer)."""


class UnknownConceptError(ConceptIndexError, KeyError):
    """A concept name that is not in the index's vocabulary; `suggestions` holds the closest names."""

    def __init__(self, name: str, suggestions: Sequence[str]) -> None:
        self.name, self.suggestions = name, list(suggestions)
        hint = f"; did you mean {', '.join(repr(s) for s in self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"unknown concept {name!r}: it is not in the index's vocabulary{hint}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class UnknownClipError(ConceptIndexError, KeyError):
    """A clip id that is not in the index."""

    def __str__(self) -> str:
        return self.args[0]


def concept_list_hash(concepts: Sequence[str]) -> str:
    """sha256 of the concept names in order, one per line: identifies a vocabulary's columns."""
    return hashlib.sha256("\n".join(concepts).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Clip:
    """One indexed file: where it is, what it is labelled, and how well its code recomposes it."""

    id: int
    path: str
    label: str | None
    duration: float | None
    nnz: int | None
    cosine: float | None
    concepts: list[tuple[str, float]] = field(default_factory=list)  #: largest first

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": self.path,
            "label": self.label,
            "duration": self.duration,
            "nnz": self.nnz,
            "cosine": self.cosine,
            "concepts": [{"concept": c, "weight": w} for c, w in self.concepts],
        }

    def _repr_html_(self) -> str:
        from audioconcepts.display import explanation_html

        return explanation_html(self.concepts, title=f"{self.path} ({self.label or 'no label'})")


class HitList:
    """Shared behaviour of one page of search hits (`hits`): length, iteration and the clip ids."""

    hits: list

    def __len__(self) -> int:
        return len(self.hits)

    def __iter__(self):
        return iter(self.hits)

    @property
    def ids(self) -> list[int]:
        return [(h[0] if isinstance(h, tuple) else h.clip).id for h in self.hits]


@dataclass(frozen=True)
class Page:
    """One page of a longer list: `items`, the `total` number of matches, and where the page starts."""

    items: list
    total: int
    offset: int
    limit: int

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def __getitem__(self, i):
        return self.items[i]

    def _repr_html_(self) -> str:
        from audioconcepts.display import clips_html, esc

        note = (
            f"<p>{self.offset + 1}&ndash;{self.offset + len(self.items)} of {self.total}</p>"
            if self.items
            else f"<p>none of {self.total}</p>"
        )
        if all(isinstance(c, Clip) for c in self.items):
            return clips_html(self.items, note=note)
        return "<p>" + "<br>".join(esc(item) for item in self.items) + "</p>" + note


_SCHEMA = """
CREATE TABLE meta (key VARCHAR NOT NULL, value VARCHAR NOT NULL);
CREATE TABLE concepts (id INTEGER NOT NULL, name VARCHAR NOT NULL, embedding FLOAT[{d}] NOT NULL);
CREATE SEQUENCE file_ids START 1;
CREATE TABLE files (
    id INTEGER NOT NULL DEFAULT nextval('file_ids'),
    path VARCHAR NOT NULL,
    folder VARCHAR,
    content_hash VARCHAR NOT NULL,
    duration DOUBLE,
    label VARCHAR,
    embedding FLOAT[{d}] NOT NULL,
    nnz INTEGER,
    cosine DOUBLE,
    code_norm DOUBLE,
    status TINYINT
);
CREATE TABLE codes (file_id INTEGER NOT NULL, concept_id INTEGER NOT NULL, weight DOUBLE NOT NULL);
CREATE TABLE failures (path VARCHAR NOT NULL, reason VARCHAR NOT NULL);
"""
# No PRIMARY KEY / UNIQUE constraints: DuckDB checks them eagerly within a transaction, which breaks
# delete-then-insert updates; uniqueness of files.path and (file_id, concept_id) is kept by the writer.


def _duckdb():
    try:
        import duckdb
    except ImportError as e:  # pragma: no cover - duckdb is a dependency
        raise ImportError("the concept index needs duckdb: pip install duckdb") from e
    return duckdb


def arrow_table(con, sql: str, params: Sequence[Any] | None = None) -> Any:
    """A pyarrow Table of a query's result (the method's name changed between DuckDB 1.x and 2.x)."""
    relation = con.sql(sql, params=list(params) if params else None)
    for name in ("to_arrow_table", "fetch_arrow_table", "arrow"):
        method = getattr(relation, name, None)
        if method is not None:
            table = method()
            return table.read_all() if hasattr(table, "read_all") else table
    raise AttributeError("this DuckDB version returns no Arrow tables")


def fixed_size_array(vectors: np.ndarray):
    """A pyarrow FixedSizeList column (DuckDB's FLOAT[d]) from an (n, d) array."""
    import pyarrow as pa

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])


def vectors_of(column, d: int) -> np.ndarray:
    """(n, d) float32 from a pyarrow FixedSizeList column."""
    import pyarrow as pa

    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return np.asarray(column.flatten(), dtype=np.float32).reshape(-1, d)


class ConceptIndex:
    """An open concept index (a DuckDB file). Read-only by default; `build_index` opens it for writing.

    Use as a context manager, or call `close()`."""

    def __init__(self, path: str | os.PathLike, *, read_only: bool = True) -> None:
        self.path = os.fspath(path)
        if read_only and not os.path.isfile(self.path):
            raise FileNotFoundError(f"no concept index at {self.path!r}; build one with `audioconcepts index`")
        duckdb = _duckdb()
        try:
            self.con = duckdb.connect(self.path, read_only=read_only)
        except (duckdb.ConnectionException, duckdb.IOException) as e:
            raise IndexBusyError(
                f"cannot open the index {self.path!r} {'for reading' if read_only else 'for writing'}: it is open "
                f"elsewhere ({str(e).splitlines()[0]}). Close the other ConceptIndex or process first "
                "(DuckDB allows one writer, or any number of read-only readers in separate processes)"
            ) from e
        self.read_only = read_only
        self._meta: dict[str, Any] | None = None
        self._concepts: list[str] | None = None
        self._concept_ids: dict[str, int] | None = None
        self._decomposer = None
        if self.is_initialised():
            version = self.meta.get("schema_version")
            if version != SCHEMA_VERSION:
                self.con.close()
                raise IndexMismatchError(
                    f"{self.path!r} has index schema version {version}, this audioconcepts reads version "
                    f"{SCHEMA_VERSION}; rebuild it (audioconcepts index ... --rebuild)"
                )
        elif read_only:
            self.con.close()
            raise FileNotFoundError(f"{self.path!r} is not a concept index (it has no meta table)")

    # ----------------------------------------------------------- lifecycle
    def close(self) -> None:
        self.con.close()

    def cursor(self) -> ConceptIndex:
        """The same index on a new DuckDB cursor, for another thread (a connection is not shared
        between threads); close it when the thread is done."""
        other = copy.copy(self)
        other.con = self.con.cursor()
        other._decomposer = None
        other.__dict__.pop("_text_decomposer", None)
        return other

    def __enter__(self) -> ConceptIndex:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def is_initialised(self) -> bool:
        rows = self.con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'meta' AND table_schema = 'main'"
        ).fetchall()[0]
        return bool(rows[0])

    @contextmanager
    def transaction(self, **tables: Any) -> Iterator[Any]:
        """One DuckDB transaction on this index's connection, with `tables` (name -> Arrow table)
        registered for its statements; rolled back if anything inside fails, so a failed write
        leaves the index as it was."""
        con = self.con
        for name, table in tables.items():
            con.register(name, table)
        try:
            con.execute("BEGIN")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        finally:
            for name in tables:
                con.unregister(name)

    def initialise(self, meta: dict[str, Any], concepts: Sequence[str], concept_embeddings: np.ndarray) -> None:
        """Create the tables of a new index (an empty database), with its metadata and vocabulary."""
        import pyarrow as pa

        d = int(concept_embeddings.shape[1])
        table = pa.table(
            {
                "id": pa.array(range(len(concepts)), pa.int32()),
                "name": pa.array(list(concepts)),
                "embedding": fixed_size_array(concept_embeddings),
            }
        )
        with self.transaction(_new_concepts=table) as con:
            for statement in _SCHEMA.format(d=d).split(";"):
                if statement.strip():
                    con.execute(statement)
            con.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [(k, json.dumps(v)) for k, v in {**meta, "schema_version": SCHEMA_VERSION, "dim": d}.items()],
            )
            con.execute("INSERT INTO concepts SELECT * FROM _new_concepts")
        self._meta = None

    def drop_all(self) -> None:
        """Delete every table (for a rebuild)."""
        for statement in (
            "DROP TABLE IF EXISTS meta",
            "DROP TABLE IF EXISTS concepts",
            "DROP TABLE IF EXISTS files",
            "DROP TABLE IF EXISTS codes",
            "DROP TABLE IF EXISTS failures",
            "DROP SEQUENCE IF EXISTS file_ids",
        ):
            self.con.execute(statement)
        self._meta = self._concepts = self._concept_ids = self._decomposer = None

    def set_meta(self, key: str, value: Any) -> None:
        self.con.execute("DELETE FROM meta WHERE key = ?", [key])
        self.con.execute("INSERT INTO meta VALUES (?, ?)", [key, json.dumps(value)])
        self._meta = None

    # ----------------------------------------------------------- metadata
    @property
    def meta(self) -> dict[str, Any]:
        """The index's metadata (fingerprint, vocabulary_name, vocabulary_hash, l1_penalty, ...)."""
        if self._meta is None:
            self._meta = {k: json.loads(v) for k, v in self.con.execute("SELECT key, value FROM meta").fetchall()}
        return self._meta

    @property
    def fingerprint(self) -> str:
        return self.meta["fingerprint"]

    @property
    def dim(self) -> int:
        return int(self.meta["dim"])

    @property
    def l1_penalty(self) -> float:
        return float(self.meta["l1_penalty"])

    @property
    def modality_mean(self) -> np.ndarray | None:
        mean = self.meta.get("modality_mean")
        return None if mean is None else np.asarray(mean, dtype=np.float64)

    @property
    def concepts(self) -> list[str]:
        """The vocabulary's concept names; position = concept id = column of the codes."""
        if self._concepts is None:
            self._concepts = [r[0] for r in self.con.execute("SELECT name FROM concepts ORDER BY id").fetchall()]
        return self._concepts

    def concept_id(self, name: str) -> int:
        """The id of a concept (exact name, else a unique case-insensitive match); unknown names raise
        UnknownConceptError with the closest vocabulary names."""
        if self._concept_ids is None:
            self._concept_ids = {c: i for i, c in enumerate(self.concepts)}
        if name in self._concept_ids:
            return self._concept_ids[name]
        folded = [c for c in self._concept_ids if c.casefold() == name.casefold()]
        if len(folded) == 1:
            return self._concept_ids[folded[0]]
        close = difflib.get_close_matches(name, self.concepts, n=5, cutoff=0.6)
        if not close:
            close = difflib.get_close_matches(name.casefold(), [c.casefold() for c in self.concepts], n=5, cutoff=0.5)
            close = [next(c for c in self.concepts if c.casefold() == f) for f in close]
        raise UnknownConceptError(name, close)

    def vocabulary(self):
        """The stored vocabulary as a Vocabulary (names and embeddings, with the index's fingerprint)."""
        from audioconcepts.vocab import Vocabulary

        table = arrow_table(self.con, "SELECT name, embedding FROM concepts ORDER BY id")
        return Vocabulary(
            table.column("name").to_pylist(),
            vectors_of(table.column("embedding"), self.dim),
            self.fingerprint,
            provenance={"name": self.meta.get("vocabulary_name")},
        )

    def decomposer(self):
        """A ConceptDecomposer with the index's vocabulary, l1_penalty and modality mean, fitted."""
        if self._decomposer is None:
            from audioconcepts.decompose import ConceptDecomposer

            self._decomposer = ConceptDecomposer(self.vocabulary(), l1_penalty=self.l1_penalty).fit(
                modality_mean=self.modality_mean
            )
        return self._decomposer

    def check_compatible(self, fingerprint: str, what: str = "the model") -> None:
        """Raise IndexMismatchError unless `fingerprint` is the index's model."""
        if fingerprint != self.fingerprint:
            raise IndexMismatchError(
                f"the index {self.path!r} was built with model {self.fingerprint!r}, but {what} is "
                f"{fingerprint!r}; use the same model, or rebuild the index"
            )

    # ----------------------------------------------------------- reading files
    def __len__(self) -> int:
        return int(self.con.execute("SELECT count(*) FROM files").fetchall()[0][0])

    def count(self, *, folder: str | None = None, label: str | None = None) -> int:
        where, params = _scope_sql(folder, label, None)
        return int(self.con.execute(f"SELECT count(*) FROM files f WHERE {where}", params).fetchall()[0][0])

    def clips(
        self,
        *,
        offset: int = 0,
        limit: int = 50,
        folder: str | None = None,
        label: str | None = None,
        top: int = 5,
    ) -> Page:
        """A page of clips (ordered by path) with their `top` concepts."""
        _check_page(offset, limit)
        where, params = _scope_sql(folder, label, None)
        total = int(self.con.execute(f"SELECT count(*) FROM files f WHERE {where}", params).fetchall()[0][0])
        rows = self.con.execute(
            f"SELECT id FROM files f WHERE {where} ORDER BY path, id LIMIT ? OFFSET ?",
            [*params, int(limit), int(offset)],
        ).fetchall()
        return Page(self.get_clips([r[0] for r in rows], top=top), total, offset, limit)

    def get_clips(self, ids: Sequence[int], *, top: int | None = 5) -> list[Clip]:
        """The clips with these ids, in this order, each with its `top` concepts (None: all of them)."""
        ids = [int(i) for i in ids]
        if not ids:
            return []
        rows = self.con.execute(
            "SELECT id, path, label, duration, nnz, cosine FROM files WHERE id IN (SELECT unnest(?::INTEGER[]))", [ids]
        ).fetchall()
        by_id = {r[0]: r for r in rows}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise UnknownClipError(f"no clip with id {missing[0]} in the index")
        concepts = self.top_concepts(ids, top)
        return [Clip(*by_id[i], concepts=concepts.get(i, [])) for i in ids]

    def clip(self, clip_id: int, *, top: int | None = None) -> Clip:
        """One clip with its whole code (top=None) or its `top` concepts."""
        return self.get_clips([clip_id], top=top)[0]

    def clip_id(self, path: str | os.PathLike) -> int:
        """The id of the clip stored under `path` (absolute or as indexed, e.g. a precomputed id)."""
        for candidate in dict.fromkeys([os.fspath(path), os.path.abspath(os.fspath(path))]):
            row = next(iter(self.con.execute("SELECT id FROM files WHERE path = ?", [candidate]).fetchall()), None)
            if row:
                return int(row[0])
        raise UnknownClipError(f"{os.fspath(path)!r} is not in the index {self.path!r}; index it first")

    def top_concepts(self, ids: Sequence[int], top: int | None) -> dict[int, list[tuple[str, float]]]:
        """Each clip's largest weights as (concept, weight), largest first (ties by concept id)."""
        if not ids:
            return {}
        limit = (
            ""
            if top is None
            else "QUALIFY row_number() OVER (PARTITION BY file_id ORDER BY weight DESC, concept_id) <= ?"
        )
        params: list[Any] = [list(map(int, ids))] + ([] if top is None else [int(top)])
        rows = self.con.execute(
            f"SELECT file_id, concept_id, weight FROM codes WHERE file_id IN (SELECT unnest(?::INTEGER[])) {limit} "
            "ORDER BY file_id, weight DESC, concept_id",
            params,
        ).fetchall()
        out: dict[int, list[tuple[str, float]]] = {}
        names = self.concepts
        for file_id, concept_id, weight in rows:
            out.setdefault(file_id, []).append((names[concept_id], float(weight)))
        return out

    def codes(self, ids: Sequence[int]) -> sp.csr_matrix:
        """The codes of these clips as a CSR matrix (len(ids), k), rows in the order of `ids`."""
        ids = [int(i) for i in ids]
        self.get_clips(ids, top=0)  # raises for unknown ids
        rows = self.con.execute(
            "SELECT file_id, concept_id, weight FROM codes WHERE file_id IN (SELECT unnest(?::INTEGER[]))", [ids]
        ).fetchnumpy()
        position = {i: p for p, i in enumerate(ids)}
        r = np.fromiter((position[i] for i in rows["file_id"]), dtype=np.int64, count=len(rows["file_id"]))
        return sp.csr_matrix(
            (np.asarray(rows["weight"], np.float64), (r, np.asarray(rows["concept_id"], np.int64))),
            shape=(len(ids), len(self.concepts)),
        )

    def embeddings(self, ids: Sequence[int]) -> np.ndarray:
        """The dense embeddings (len(ids), d) of these clips, rows in the order of `ids`."""
        ids = [int(i) for i in ids]
        table = arrow_table(
            self.con, "SELECT id, embedding FROM files WHERE id IN (SELECT unnest(?::INTEGER[]))", [ids]
        )
        vectors = vectors_of(table.column("embedding"), self.dim)
        position = {i: p for p, i in enumerate(table.column("id").to_pylist())}
        missing = [i for i in ids if i not in position]
        if missing:
            raise UnknownClipError(f"no clip with id {missing[0]} in the index")
        return vectors[[position[i] for i in ids]]

    def ids(self, *, folder: str | None = None, label: str | None = None) -> list[int]:
        """All clip ids (ordered by id), optionally of one folder or label."""
        where, params = _scope_sql(folder, label, None)
        return [r[0] for r in self.con.execute(f"SELECT id FROM files f WHERE {where} ORDER BY id", params).fetchall()]

    def labels(self) -> list[tuple[str, int]]:
        """The labels in the index and how many clips carry each."""
        return [
            tuple(r)
            for r in self.con.execute(
                "SELECT label, count(*) FROM files WHERE label IS NOT NULL GROUP BY label ORDER BY label"
            ).fetchall()
        ]

    def folders(self) -> list[tuple[str, int]]:
        """The folders that directly hold indexed files, and how many each holds."""
        return [
            tuple(r)
            for r in self.con.execute(
                "SELECT folder, count(*) FROM files WHERE folder IS NOT NULL GROUP BY folder ORDER BY folder"
            ).fetchall()
        ]

    def failures(self) -> list[tuple[str, str]]:
        """Files the last indexing run could not index, with the reason."""
        return [tuple(r) for r in self.con.execute("SELECT path, reason FROM failures ORDER BY path").fetchall()]

    # ----------------------------------------------------------- nearest neighbours
    def nearest(
        self,
        vector: np.ndarray,
        *,
        limit: int = 10,
        offset: int = 0,
        exclude: Iterable[int] = (),
        scope_ids: Sequence[int] | None = None,
    ) -> Page:
        """Clips ranked by cosine(vector, embedding), best first: a Page of (id, cosine). Computed in
        DuckDB, a page at a time; ties are broken by id."""
        _check_page(offset, limit)
        v = np.asarray(vector, dtype=np.float64).reshape(-1)
        if v.shape != (self.dim,) or not np.isfinite(v).all() or not v.any():
            raise ValueError(
                f"the query vector must be a finite, non-zero vector of length {self.dim}; got shape {v.shape}"
            )
        exclude = [int(i) for i in exclude]
        where, params = _scope_sql(None, None, scope_ids)
        sql_from = f"FROM files f WHERE {where} AND NOT list_contains(?::INTEGER[], f.id)"
        params = [*params, exclude]
        total = int(self.con.execute(f"SELECT count(*) {sql_from}", params).fetchall()[0][0])
        rows = self.con.execute(
            f"SELECT f.id, array_cosine_similarity(f.embedding, ?::FLOAT[{self.dim}]) AS score {sql_from} "
            "ORDER BY score DESC, f.id LIMIT ? OFFSET ?",
            [(v / np.linalg.norm(v)).astype(np.float32).tolist(), *params, int(limit), int(offset)],
        ).fetchall()
        return Page([(int(i), float(s)) for i, s in rows], total, offset, limit)


def _check_page(offset: int, limit: int) -> None:
    for name, value in (("limit", limit), ("offset", offset)):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer; got {value!r}")


def folder_prefix(folder: str | os.PathLike) -> str:
    """The absolute folder path with a trailing separator, for prefix matching of stored paths."""
    return os.path.join(os.path.abspath(os.fspath(folder)), "")


def _scope_sql(folder: str | os.PathLike | None, label: str | None, ids: Sequence[int] | None) -> tuple[str, list[Any]]:
    """A WHERE condition on `files f` (and its bound parameters) for a folder, a label and/or ids."""
    parts, params = ["TRUE"], []
    if folder is not None:
        parts.append("starts_with(f.path, ?)")
        params.append(folder_prefix(folder))
    if label is not None:
        parts.append("f.label = ?")
        params.append(str(label))
    if ids is not None:
        parts.append("list_contains(?::INTEGER[], f.id)")
        params.append([int(i) for i in ids])
    return " AND ".join(parts), params
