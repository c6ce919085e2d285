"""A persistent embedding cache in SQLite, so re-running an embedding job only embeds new or changed inputs.

Entries are keyed by (model fingerprint, content key): `file_key` hashes an audio file's bytes, so a
renamed file is still a hit and an edited one is a miss; `text_key` does the same for concept and
caption strings, so one cache also holds a vocabulary's text embeddings, under the fingerprint of
the model that embedded them (the "text:" prefix keeps text keys apart from file keys even when
audio and text share a fingerprint, as with CLAP).

SQLite runs in WAL mode with a busy timeout, and every `put_many` is one transaction, so several
processes can read and write the same cache at once, and a killed run loses at most the batch it was
writing. Use one `EmbeddingCache` per process (or thread); don't share one across `fork`.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import numpy as np

__all__ = ["EmbeddingCache", "default_cache_path", "file_key", "text_key"]

_DTYPE = np.dtype("<f4")  # on-disk format: little-endian float32, whatever the host's byte order
_BUSY_TIMEOUT_S = 30.0
_CHUNK = 500  # keys per SELECT, well under SQLite's bound-parameter limit

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS fingerprints ("
    " fingerprint TEXT PRIMARY KEY, dim INTEGER NOT NULL CHECK (dim > 0)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS embeddings ("
    " fingerprint TEXT NOT NULL, key TEXT NOT NULL, vector BLOB NOT NULL,"
    " PRIMARY KEY (fingerprint, key)) WITHOUT ROWID",
)


def default_cache_path() -> Path:
    """Where the cache lives by default: `$AUDIOCONCEPTS_CACHE/embeddings.sqlite` if that variable is
    set, else `$XDG_CACHE_HOME/audioconcepts/embeddings.sqlite`, else `~/.cache/audioconcepts/...`."""
    if os.environ.get("AUDIOCONCEPTS_CACHE"):
        directory = Path(os.environ["AUDIOCONCEPTS_CACHE"]).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        directory = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "audioconcepts"
    return directory / "embeddings.sqlite"


def file_key(path: str | os.PathLike) -> str:
    """Content key of a file: hex sha256 of its bytes (streamed), so renames hit and edits miss."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def text_key(text: str) -> str:
    """Content key of a text (a concept or caption): hex sha256 of `"text:" + text` in UTF-8."""
    return hashlib.sha256(("text:" + text).encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Embedding vectors (1-D float32) stored by (content key, model fingerprint) in a SQLite file.

    Every vector of one fingerprint has the same dimension, recorded by its first `put_many`; rows
    whose stored length disagrees with it are treated as misses and deleted. Usable as a context
    manager; `(key, fingerprint) in cache` tests for a valid entry.
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE), see _write.
        self._conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        try:
            self._enable_wal()
            # In WAL mode NORMAL loses no committed transaction when a process dies (only on power loss).
            self._conn.execute("PRAGMA synchronous=NORMAL")
            with self._write() as conn:
                for statement in _SCHEMA:
                    conn.execute(statement)
        except BaseException:
            self._conn.close()
            raise

    def _enable_wal(self) -> None:
        """Switch to WAL (persistent in the file). When several processes open a new file at once,
        the switch can fail with "database is locked" despite the busy timeout, so retry it."""
        deadline = time.monotonic() + _BUSY_TIMEOUT_S
        while True:
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as e:
                if e.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. IMMEDIATE takes the write lock up front, so a busy database makes
        us wait (busy timeout) instead of failing on a read-to-write upgrade."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:  # SQLite may already have rolled back on its own
                self._conn.execute("ROLLBACK")
            raise

    def _dim(self, fingerprint: str) -> int | None:
        row = self._conn.execute("SELECT dim FROM fingerprints WHERE fingerprint = ?", (fingerprint,)).fetchone()
        return None if row is None else row[0]

    def get_many(self, keys: Iterable[str], fingerprint: str) -> dict[str, np.ndarray]:
        """The cached vectors among `keys` for this model fingerprint; misses are simply absent."""
        keys = list(dict.fromkeys(keys))
        dim = self._dim(fingerprint)
        if dim is None or not keys:
            return {}
        hits: dict[str, np.ndarray] = {}
        bad: list[str] = []
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            rows = self._conn.execute(
                f"SELECT key, vector FROM embeddings WHERE fingerprint = ? AND key IN ({','.join('?' * len(chunk))})",
                (fingerprint, *chunk),
            )
            for key, blob in rows:
                if len(blob) == dim * _DTYPE.itemsize:
                    hits[key] = np.frombuffer(blob, dtype=_DTYPE).astype(np.float32)
                else:
                    bad.append(key)
        if bad:
            with self._write() as conn:  # the length test again, so a concurrent good rewrite survives
                conn.executemany(
                    "DELETE FROM embeddings WHERE fingerprint = ? AND key = ? AND length(vector) != ?",
                    [(fingerprint, key, dim * _DTYPE.itemsize) for key in bad],
                )
        return hits

    def put_many(
        self, items: Mapping[str, np.ndarray] | Iterable[tuple[str, np.ndarray]], fingerprint: str
    ) -> None:
        """Store vectors (replacing existing ones) in one transaction, so a batch is all or nothing.

        Vectors are stored as float32; all must be 1-D, finite and of the fingerprint's dimension.
        For an (n, d) matrix `X` of rows for `keys`, pass `zip(keys, X)`.
        """
        pairs = list(items.items() if isinstance(items, Mapping) else items)
        if not pairs:
            return
        rows = []
        dims = set()
        for key, vector in pairs:
            with np.errstate(over="ignore"):  # too large for float32 becomes inf, rejected below
                v = np.asarray(vector).astype(_DTYPE)
            if v.ndim != 1 or v.size == 0 or not np.isfinite(v).all():
                raise ValueError(f"embedding for key {key!r} must be a non-empty, finite 1-D float32 vector")
            dims.add(v.size)
            rows.append((fingerprint, key, v.tobytes()))
        if len(dims) > 1:
            raise ValueError(f"vectors of one batch have different dimensions: {sorted(dims)}")
        (dim,) = dims
        with self._write() as conn:
            conn.execute("INSERT OR IGNORE INTO fingerprints (fingerprint, dim) VALUES (?, ?)", (fingerprint, dim))
            known = self._dim(fingerprint)
            if known != dim:
                raise ValueError(f"fingerprint {fingerprint!r} has {known}-d embeddings in the cache, got {dim}-d")
            conn.executemany("INSERT OR REPLACE INTO embeddings (fingerprint, key, vector) VALUES (?, ?, ?)", rows)

    def fingerprints(self) -> dict[str, int]:
        """Number of stored entries per model fingerprint, e.g. to find old models to `prune`."""
        return dict(self._conn.execute("SELECT fingerprint, count(*) FROM embeddings GROUP BY fingerprint"))

    def prune(self, fingerprint: str) -> int:
        """Delete every entry of one model fingerprint (and its recorded dimension); returns how many.

        SQLite reuses the freed pages; the file itself only shrinks after a manual VACUUM.
        """
        with self._write() as conn:
            n = conn.execute("DELETE FROM embeddings WHERE fingerprint = ?", (fingerprint,)).rowcount
            conn.execute("DELETE FROM fingerprints WHERE fingerprint = ?", (fingerprint,))
        return n

    def __contains__(self, item: tuple[str, str]) -> bool:
        key, fingerprint = item
        return key in self.get_many([key], fingerprint)

    def __len__(self) -> int:
        """Stored entries over all fingerprints."""
        return self._conn.execute("SELECT count(*) FROM embeddings").fetchone()[0]

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.path)!r})"
