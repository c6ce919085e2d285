"""Where job files live: local paths or object-storage URIs (s3://, gs://, ...) through pyarrow filesystems.

Every write is atomic: a reader (or a job resuming after a crash) sees either no file or the whole
file. Locally that is write-to-temp-then-rename in the same folder; on object stores a PUT is already
all-or-nothing, so the file is written under its final name.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

#: Bytes read from the start and from the end of a file for its content sample hash.
SAMPLE_BYTES = 1 << 20


def is_uri(location: str) -> bool:
    """True for "scheme://..." locations (s3://, gs://, hdfs://, file://)."""
    return "://" in location


def resolve(location: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or a URI pyarrow understands."""
    location = os.fspath(location)
    if is_uri(location):
        return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), os.path.abspath(location)


def join(base: str, *names: str) -> str:
    return "/".join([base.rstrip("/"), *names])


def exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def is_local(fs: pafs.FileSystem) -> bool:
    return isinstance(fs, pafs.LocalFileSystem)


def write_bytes_atomic(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Write `data` so that `path` is either absent, the old file, or the complete new file."""
    if is_local(fs):
        folder, name = os.path.split(path)
        tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    else:
        with fs.open_output_stream(path) as f:
            f.write(data)


def write_parquet_atomic(fs: pafs.FileSystem, path: str, table: pa.Table, **options: Any) -> None:
    """`table` as a Parquet file at `path`, atomically (see module docstring)."""
    if is_local(fs):
        folder, name = os.path.split(path)
        tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex}.tmp")  # '.' prefix: datasets ignore it
        try:
            pq.write_table(table, tmp, **options)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    else:
        pq.write_table(table, path, filesystem=fs, **options)


def read_json(fs: pafs.FileSystem, path: str) -> Any:
    with fs.open_input_stream(path) as f:
        return json.loads(f.read().decode("utf-8"))


def write_json_atomic(fs: pafs.FileSystem, path: str, value: Any) -> None:
    write_bytes_atomic(fs, path, (json.dumps(value, indent=1, sort_keys=False) + "\n").encode("utf-8"))


@dataclass(frozen=True)
class FileIdentity:
    """What identifies an input file's contents without reading it all: size, modification time and
    a SHA-256 of its first and last MiB (which for Parquet covers the footer with every row group's
    offsets and statistics)."""

    path: str
    size: int
    mtime_ns: int | None
    sample_sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "mtime_ns": self.mtime_ns, "sample_sha256": self.sample_sha256}


def file_identity(fs: pafs.FileSystem, path: str, display: str) -> FileIdentity:
    info = fs.get_file_info(path)
    if info.type != pafs.FileType.File:
        raise FileNotFoundError(f"input file not found: {display}")
    digest = hashlib.sha256()
    with fs.open_input_file(path) as f:
        digest.update(f.read(min(SAMPLE_BYTES, info.size)))
        if info.size > SAMPLE_BYTES:
            f.seek(max(SAMPLE_BYTES, info.size - SAMPLE_BYTES))
            digest.update(f.read())
    mtime = info.mtime_ns if info.mtime is not None else None
    return FileIdentity(display, info.size, mtime, digest.hexdigest())
