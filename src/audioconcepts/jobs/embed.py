"""The out-of-core embed job: audio files to embeddings in Parquet parts, with a manifest and resume.

Files are taken in a fixed order (`find_audio_files`: as given, folder contents sorted) and embedded
`chunk_files` at a time through `encoders.cached.embed_files` (so the embedding cache is used and
filled as usual). Each part is written atomically to ``OUT/embeddings/part-<start>-<end>.parquet``
in the `save_precomputed` format (id = the path as found, path = absolute path, content_hash,
fingerprint, vector), so ``OUT/embeddings`` is a valid input of `decompose_job` and of
``precomputed:``-style readers. Files that fail are listed with their reason in the part's manifest
record and do not stop the job. Rerunning resumes; a finished job does nothing; another file list
(files added, removed or changed), model or chunk size is refused unless `overwrite=True`.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from audioconcepts.jobs import manifest as mf
from audioconcepts.jobs import storage
from audioconcepts.jobs.progress import job_progress

EMBEDDINGS = "embeddings"
DEFAULT_CHUNK_FILES = 256


@dataclass
class EmbedJobResult:
    """What an embed job run did; `failures` lists (path, reason) over the whole job."""

    out: str
    files: int
    parts: int
    parts_written: int
    files_written: int  #: files handled by this run (embedded, from the cache, or failed)
    embedded: int  #: files embedded by the model in this run (the rest came from the cache)
    seconds: float
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def embeddings(self) -> str:
        """The folder of embedding parts (an input for decompose_job)."""
        return storage.join(self.out, EMBEDDINGS) if storage.is_uri(self.out) else os.path.join(self.out, EMBEDDINGS)


def embed_job(
    paths: Sequence[str | os.PathLike],
    model: Any,
    out: str | os.PathLike,
    *,
    chunk_files: int = DEFAULT_CHUNK_FILES,
    cache: Any = None,
    batch_size: int = 8,
    overwrite: bool = False,
    progress: bool = True,
    on_part: Callable[[dict[str, Any]], None] | None = None,
) -> EmbedJobResult:
    """Embed the audio files in `paths` (files or folders) with `model` (a spec for load_encoder
    or a loaded encoder) into Parquet parts under OUT/embeddings, `chunk_files` files per part."""
    from audioconcepts.encoders.audio import find_audio_files
    from audioconcepts.encoders.cached import embed_files

    if not isinstance(chunk_files, int) or chunk_files < 1:
        raise ValueError(f"chunk_files must be a positive integer; got {chunk_files!r}")
    t0 = time.perf_counter()
    files = find_audio_files(list(paths))
    if not files:
        raise FileNotFoundError(f"no audio files found in {', '.join(map(os.fspath, paths))}")
    encoder = model
    if isinstance(model, (str, os.PathLike)):
        from audioconcepts.encoders import load_encoder

        encoder = load_encoder(os.fspath(model))
    out = os.fspath(out)
    fs, folder = storage.resolve(out)
    identity = {
        "kind": "embed",
        "input": _listing(files),
        "parameters": {"chunk_files": chunk_files, "fingerprint": encoder.fingerprint},
    }
    job = mf.open_job(fs, folder, out, identity, overwrite, (EMBEDDINGS,))
    kept = [p for p in job.parts if storage.exists(fs, storage.join(folder, p["embeddings"]))]
    if len(kept) != len(job.parts):
        job.parts, job.complete = kept, False
        job.save(fs, folder)
    todo = mf.todo_ranges(len(files), job.done_ranges(), chunk_files)
    written = handled = embedded = 0
    if todo:
        fs.create_dir(storage.join(folder, EMBEDDINGS), recursive=True)
    done = sum(p["rows"] for p in job.parts)
    with job_progress("embedding", len(files), done, unit="files", enabled=progress) as advance:
        for start, end in todo:
            t = time.perf_counter()
            result = embed_files(encoder, files[start:end], cache, batch_size=batch_size, progress=advance)
            name = f"part-{start:012d}-{end:012d}.parquet"
            storage.write_parquet_atomic(fs, storage.join(folder, EMBEDDINGS, name), _table(result, encoder))
            part = {
                "start": start,
                "end": end,
                "rows": end - start,
                "embeddings": f"{EMBEDDINGS}/{name}",
                "embedded_rows": len(result.paths),
                "computed": result.computed,
                "failures": [[e.path, e.reason] for e in result.failures],
                "seconds": round(time.perf_counter() - t, 3),
            }
            job.parts.append(part)
            job.complete = sum(p["rows"] for p in job.parts) == len(files)
            job.save(fs, folder)
            written += 1
            handled += end - start
            embedded += result.computed
            if on_part is not None:
                on_part(part)
    if not job.complete:
        job.complete = True
        job.save(fs, folder)
    failures = [(p, r) for part in sorted(job.parts, key=lambda p: p["start"]) for p, r in part["failures"]]
    return EmbedJobResult(out, len(files), len(job.parts), written, handled, embedded, time.perf_counter() - t0, failures)


def _listing(files: list[str]) -> dict[str, Any]:
    """The file list as a manifest records it: count plus a hash of (path, size, mtime) per file, so
    adding, removing or changing any file makes a different job (without storing millions of paths)."""
    digest = hashlib.sha256()
    for f in files:
        try:
            st = os.stat(f)
            digest.update(f"{os.path.abspath(f)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{os.path.abspath(f)}\0missing\n".encode())
    return {"files": len(files), "first": files[0], "last": files[-1], "listing_sha256": digest.hexdigest()}


def _table(result: Any, encoder: Any) -> pa.Table:
    vectors = np.asarray(result.embeddings.vectors, np.float32)
    n, d = len(result.paths), encoder.dim
    return pa.table(
        {
            "id": pa.array(result.paths, pa.string()),
            "path": pa.array([os.path.abspath(p) for p in result.paths], pa.string()),
            "content_hash": pa.array(result.content_hashes, pa.string()),
            "fingerprint": pa.array([encoder.fingerprint] * n, pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), d),
        }
    )


