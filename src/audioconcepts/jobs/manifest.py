"""The job manifest: what a job is (input, parameters, vocabulary) and which parts are finished.

It lives beside the parts as ``_manifest.json`` (the leading '_' keeps Parquet dataset readers away
from it) and is rewritten atomically after every finished part, so after a crash it lists exactly
the parts whose files are complete. A part is a row range [start, end) of the input; its files are
written (atomically) before it enters the manifest, so a part file that is not listed is an
unfinished leftover and is simply written again.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow.fs as pafs

from audioconcepts.jobs import storage

FORMAT = "audioconcepts-job/1"
MANIFEST = "_manifest.json"
#: The keys that define a job; a resumed job must match them all.
IDENTITY_KEYS = ("kind", "input", "parameters", "vocabulary", "centering")


class JobConflictError(RuntimeError):
    """The output folder holds a different job (other input, parameters or vocabulary)."""


def array_sha256(*arrays: np.ndarray, text: str = "") -> str:
    digest = hashlib.sha256(text.encode("utf-8"))
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def vocabulary_record(vocabulary: Any, source: str) -> dict[str, Any]:
    """The vocabulary as a manifest records it: a hash of its concepts, embeddings and fingerprint."""
    text = vocabulary.fingerprint + "\0" + "\0".join(vocabulary.concepts)
    return {
        "from": source,  # informational: moving the file does not change the job
        "fingerprint": vocabulary.fingerprint,
        "concepts": len(vocabulary),
        "dim": vocabulary.dim,
        "sha256": array_sha256(vocabulary.embeddings, text=text),
    }


@dataclass
class Manifest:
    """A job's identity (see IDENTITY_KEYS) plus its finished parts, sorted by start row."""

    identity: dict[str, Any]
    parts: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  #: results kept with the job (e.g. the modality mean)
    complete: bool = False
    created: float = field(default_factory=time.time)

    def as_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            **self.identity,
            **self.extra,
            "complete": self.complete,
            "rows_done": sum(p["rows"] for p in self.parts),
            "created": self.created,
            "updated": time.time(),
            "parts": sorted(self.parts, key=lambda p: p["start"]),
        }

    @classmethod
    def from_json(cls, value: dict[str, Any], extra_keys: tuple[str, ...] = ()) -> Manifest:
        if value.get("format") != FORMAT:
            raise JobConflictError(f"unknown manifest format {value.get('format')!r}; expected {FORMAT!r}")
        identity = {k: value[k] for k in IDENTITY_KEYS if k in value}
        extra = {k: value[k] for k in extra_keys if k in value}
        return cls(identity, list(value.get("parts", [])), extra, bool(value.get("complete")), value.get("created", time.time()))

    def save(self, fs: pafs.FileSystem, folder: str) -> None:
        storage.write_json_atomic(fs, storage.join(folder, MANIFEST), self.as_json())

    def differences(self, identity: dict[str, Any]) -> list[str]:
        """Human-readable list of what differs between this job and `identity` (empty if the same)."""
        out = []
        for key in IDENTITY_KEYS:
            old, new = self.identity.get(key), identity.get(key)
            if _significant(old) == _significant(new):
                continue
            if isinstance(old, dict) and isinstance(new, dict):
                for sub in sorted(set(old) | set(new)):
                    if sub not in _INFORMATIONAL and old.get(sub) != new.get(sub):
                        out.append(f"{key}.{sub}: was {_short(old.get(sub))}, now {_short(new.get(sub))}")
            else:
                out.append(f"{key}: was {_short(old)}, now {_short(new)}")
        return out

    def done_ranges(self) -> list[tuple[int, int]]:
        return sorted((p["start"], p["end"]) for p in self.parts)


def load(fs: pafs.FileSystem, folder: str, extra_keys: tuple[str, ...] = ()) -> Manifest | None:
    path = storage.join(folder, MANIFEST)
    if not storage.exists(fs, path):
        return None
    return Manifest.from_json(storage.read_json(fs, path), extra_keys)


def open_job(
    fs: pafs.FileSystem,
    folder: str,
    out: str,
    identity: dict[str, Any],
    overwrite: bool,
    outputs: tuple[str, ...],
    extra_keys: tuple[str, ...] = (),
) -> Manifest:
    """The job's manifest in `folder`: the existing one when it matches `identity`, else a new one.

    A different job there is refused unless `overwrite`, which deletes that job's `outputs`
    sub-folders and manifest (nothing else); a folder holding anything but a job is refused."""
    existing = load(fs, folder, extra_keys)
    if existing is not None:
        diffs = existing.differences(identity)
        if not diffs:
            return existing
        if not overwrite:
            raise JobConflictError(
                f"{out} holds a different job: " + "; ".join(diffs[:6])
                + ". Use overwrite=True (--overwrite) to replace it, or choose another output folder."
            )
    elif storage.exists(fs, folder):
        listing = fs.get_file_info(pafs.FileSelector(folder, recursive=False, allow_not_found=True))
        leftovers = [i.base_name for i in listing if i.base_name not in outputs]
        if leftovers and not overwrite:
            raise JobConflictError(
                f"{out} exists and is not a job folder (it holds {sorted(leftovers)[:5]}); choose an empty or new folder"
            )
    for path in (storage.join(folder, sub) for sub in outputs):
        if storage.exists(fs, path):
            fs.delete_dir(path)
    if storage.exists(fs, storage.join(folder, MANIFEST)):
        fs.delete_file(storage.join(folder, MANIFEST))
    fs.create_dir(folder, recursive=True)
    job = Manifest(identity)
    job.save(fs, folder)
    return job


def todo_ranges(n_rows: int, done: list[tuple[int, int]], chunk_rows: int) -> list[tuple[int, int]]:
    """The row ranges of [0, n_rows) not covered by `done`, cut into pieces of at most chunk_rows."""
    gaps, position = [], 0
    for start, end in sorted(done):
        if start > position:
            gaps.append((position, start))
        position = max(position, end)
    if position < n_rows:
        gaps.append((position, n_rows))
    return [(lo, min(hi, lo + chunk_rows)) for a, hi in gaps for lo in range(a, hi, chunk_rows)]


#: Keys recorded for people, ignored when comparing jobs.
_INFORMATIONAL = ("from",)


def _significant(value: Any) -> Any:
    return {k: v for k, v in value.items() if k not in _INFORMATIONAL} if isinstance(value, dict) else value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 160 else text[:157] + "..."
