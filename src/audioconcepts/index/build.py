"""Building and incrementally updating a concept index.

`build_index(paths, encoder, vocabulary, db_path)` indexes audio files: it hashes every file
(sha256 of its bytes), embeds only files that are new or whose content changed (through the
embedding cache, so even those may cost nothing), removes files that vanished, and decomposes
only the rows it (re)embedded. `build_index_from_embeddings(ids, embeddings, ...)` does the same
for vectors computed elsewhere (the content hash of a row is the hash of its vector unless given).

The audio modality mean that codes are centred on is fixed when the index is first built (from
the files, or the bundled reference clips when there are fewer than 20) and stored in the index:
later updates reuse it, so old and new codes stay comparable. `rebuild=True` starts over.

An index remembers its model fingerprint, vocabulary (name and concept-list hash) and l1_penalty;
updating it with another one raises IndexMismatchError naming both, unless `rebuild=True`.

Work is written in batches: rows are stored with their embeddings as soon as they are embedded,
then decomposed; a run that is killed leaves undecomposed rows, which the next run finishes.
A file that cannot be read or embedded is recorded in the `failures` table; the others are indexed.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audioconcepts.index.store import (
    ConceptIndex,
    IndexMismatchError,
    arrow_table,
    concept_list_hash,
    fixed_size_array,
    vectors_of,
)

#: files embedded (and written) per batch
EMBED_BATCH = 64
#: rows decomposed (and written) per batch
DECOMPOSE_BATCH = 2048

LabelSource = Mapping[str, str] | Callable[[str], str | None] | str | os.PathLike | None


@dataclass(frozen=True)
class IndexReport:
    """What an indexing run did: counts of added, updated (content changed), removed and unchanged
    files, the files embedded by the model now (not from the cache), and the failures."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    decomposed: int = 0
    embedded: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    centering: str = ""
    total: int = 0


def read_labels_csv(path: str | os.PathLike) -> dict[str, str]:
    """Labels from a CSV with a header: a file column (`path`, `filename`, `file` or `id`) and a label
    column (`label`, `category`, `class` or `tag`). Keys are the values as written (file names or paths)."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = {name.strip().lower(): name for name in reader.fieldnames or []}
        file_col = next((fields[c] for c in ("path", "filename", "file", "id") if c in fields), None)
        label_col = next((fields[c] for c in ("label", "category", "class", "tag") if c in fields), None)
        if file_col is None or label_col is None:
            raise ValueError(
                f"{os.fspath(path)!r} needs a header with a file column (path, filename, file or id) and a label "
                f"column (label, category, class or tag); it has {list(fields.values())}"
            )
        return {row[file_col].strip(): row[label_col].strip() for row in reader if row.get(file_col)}


def _labeller(labels: LabelSource) -> Callable[[str], str | None]:
    """A function path -> label from a mapping (by path as given, absolute path or file name), the
    word "folder" (the name of the parent folder), a CSV file name, a callable, or None."""
    if labels is None:
        return lambda path: None
    if callable(labels):
        return labels
    if isinstance(labels, (str, os.PathLike)):
        if labels == "folder":
            return lambda path: os.path.basename(os.path.dirname(path)) or None
        labels = read_labels_csv(labels)
    table = dict(labels)
    absolute = {os.path.abspath(k): v for k, v in table.items()}

    def lookup(path: str) -> str | None:
        return table.get(path) or absolute.get(os.path.abspath(path)) or table.get(os.path.basename(path))

    return lookup


def _vocabulary_name(vocabulary: Any, name: str | None) -> str:
    if name:
        return str(name)
    provenance = getattr(vocabulary, "provenance", {}) or {}
    for key in ("name", "recipe"):
        if provenance.get(key):
            return str(provenance[key])
    if provenance.get("sources"):
        return ", ".join(map(str, provenance["sources"]))
    return f"{len(vocabulary)} concepts"


def _open_for_writing(
    db_path: str | os.PathLike,
    fingerprint: str,
    vocabulary: Any,
    vocabulary_name: str,
    l1_penalty: float,
    source: str,
    rebuild: bool,
) -> ConceptIndex:
    """Open (creating if needed) the index for writing and check it was built with the same model,
    vocabulary and l1_penalty (or wipe it when `rebuild`)."""
    os.makedirs(os.path.dirname(os.path.abspath(os.fspath(db_path))), exist_ok=True)
    index = ConceptIndex(db_path, read_only=False)
    try:
        if index.is_initialised() and rebuild:
            index.drop_all()
        meta = {
            "fingerprint": fingerprint,
            "vocabulary_name": vocabulary_name,
            "vocabulary_hash": concept_list_hash(vocabulary.concepts),
            "n_concepts": len(vocabulary),
            "l1_penalty": float(l1_penalty),
            "source": source,
        }
        if not index.is_initialised():
            index.initialise(meta, vocabulary.concepts, vocabulary.embeddings)
            return index
        old = index.meta
        problems = []
        if old["fingerprint"] != fingerprint:
            problems.append(f"model {old['fingerprint']!r} (asked for {fingerprint!r})")
        if old["vocabulary_hash"] != meta["vocabulary_hash"]:
            same_name = " with a different concept list" if old["vocabulary_name"] == vocabulary_name else ""
            problems.append(
                f"vocabulary {old['vocabulary_name']!r} of {old['n_concepts']} concepts "
                f"(asked for {vocabulary_name!r} of {len(vocabulary)} concepts{same_name})"
            )
        if float(old["l1_penalty"]) != float(l1_penalty):
            problems.append(f"l1_penalty {old['l1_penalty']:g} (asked for {float(l1_penalty):g})")
        if old.get("source") != source:
            problems.append(f"{old.get('source')} rows (asked to add {source} rows)")
        if problems:
            raise IndexMismatchError(
                f"the index {index.path!r} was built with " + "; ".join(problems) + ". Use the index's settings, "
                "another --db file, or rebuild it (rebuild=True, `audioconcepts index ... --rebuild`), which "
                "re-decomposes every file (embeddings come from the cache)"
            )
        return index
    except BaseException:
        index.close()
        raise


def _sync_rows(
    index: ConceptIndex,
    keys: dict[str, str],
    scope: Callable[[str], bool],
) -> tuple[list[str], list[str], int, int]:
    """Compare path -> content hash with the index: delete rows in `scope` that vanished, and return
    (new paths, changed paths, unchanged count, removed count)."""
    stored = dict(index.con.execute("SELECT path, content_hash FROM files").fetchall())
    new = [p for p in keys if p not in stored]
    changed = [p for p in keys if p in stored and stored[p] != keys[p]]
    unchanged = sum(1 for p in keys if stored.get(p) == keys[p])
    vanished = [p for p in stored if p not in keys and scope(p)]
    if vanished:
        with index.transaction() as con:
            con.execute("DELETE FROM codes WHERE file_id IN (SELECT id FROM files WHERE list_contains(?, path))", [vanished])
            con.execute("DELETE FROM files WHERE list_contains(?, path)", [vanished])
    return new, changed, unchanged, len(vanished)


def _write_rows(
    index: ConceptIndex,
    paths: list[str],
    hashes: list[str],
    vectors: np.ndarray,
    durations: list[float | None],
    labels: list[str | None],
    folders: list[str | None],
) -> None:
    """Insert new rows or replace the embedding of changed ones (keeping their ids); codes are
    cleared and nnz set to NULL, so the rows are decomposed next."""
    import pyarrow as pa

    table = pa.table(
        {
            "path": pa.array(paths, pa.string()),
            "folder": pa.array(folders, pa.string()),
            "content_hash": pa.array(hashes, pa.string()),
            "duration": pa.array(durations, pa.float64()),
            "label": pa.array(labels, pa.string()),
            "embedding": fixed_size_array(vectors),
        }
    )
    with index.transaction(_batch=table) as con:
        con.execute("DELETE FROM codes WHERE file_id IN (SELECT f.id FROM files f JOIN _batch b ON f.path = b.path)")
        con.execute(
            "UPDATE files SET content_hash = b.content_hash, duration = b.duration, label = b.label, folder = b.folder, "
            "embedding = b.embedding, nnz = NULL, cosine = NULL, code_norm = NULL, status = NULL "
            "FROM _batch b WHERE files.path = b.path"
        )
        con.execute(
            "INSERT INTO files (path, folder, content_hash, duration, label, embedding) "
            "SELECT path, folder, content_hash, duration, label, embedding FROM _batch b "
            "WHERE b.path NOT IN (SELECT path FROM files)"
        )
        con.execute("DELETE FROM failures WHERE path IN (SELECT path FROM _batch)")


def _set_labels(index: ConceptIndex, labels: Mapping[str, str | None]) -> None:
    """Set the label of the stored files named in `labels` (path -> label)."""
    import pyarrow as pa

    if not labels:
        return
    table = pa.table(
        {"path": pa.array(list(labels), pa.string()), "label": pa.array(list(labels.values()), pa.string())}
    )
    with index.transaction(_labels=table) as con:
        con.execute(
            "UPDATE files SET label = l.label FROM _labels l WHERE files.path = l.path AND files.label IS DISTINCT FROM l.label"
        )


def _record_failures(index: ConceptIndex, failures: list[tuple[str, str]]) -> None:
    if not failures:
        return
    with index.transaction() as con:
        con.execute("DELETE FROM failures WHERE list_contains(?, path)", [[p for p, _ in failures]])
        con.executemany("INSERT INTO failures VALUES (?, ?)", failures)


def _ensure_mean(index: ConceptIndex, mean_of: Callable[[np.ndarray], tuple[np.ndarray, str]]) -> str:
    """The stored modality mean's source; computes (from all stored embeddings) and stores it if absent."""
    if index.meta.get("modality_mean") is not None:
        return index.meta.get("centering", "")
    table = arrow_table(index.con, "SELECT embedding FROM files ORDER BY id")
    vectors = vectors_of(table.column("embedding"), index.dim)
    mean, source = mean_of(vectors)
    with index.transaction():
        index.set_meta("modality_mean", [float(x) for x in np.asarray(mean, np.float64)])
        index.set_meta("centering", source)
    return source


def _decompose_pending(
    index: ConceptIndex, vocabulary: Any, l1_penalty: float, progress: Callable[[int], None] | None
) -> int:
    """Decompose every row whose nnz is NULL, DECOMPOSE_BATCH at a time; returns how many."""
    from audioconcepts.decompose import ConceptDecomposer

    pending = [r[0] for r in index.con.execute("SELECT id FROM files WHERE nnz IS NULL ORDER BY id").fetchall()]
    if not pending:
        return 0
    decomposer = ConceptDecomposer(vocabulary, l1_penalty=l1_penalty).fit(modality_mean=index.modality_mean)
    import pyarrow as pa

    for lo in range(0, len(pending), DECOMPOSE_BATCH):
        ids = pending[lo : lo + DECOMPOSE_BATCH]
        X = index.embeddings(ids)
        result = decomposer.decompose(X)
        coo = result.codes.tocoo()
        codes = pa.table(
            {
                "file_id": pa.array(np.asarray(ids, np.int32)[coo.row]),
                "concept_id": pa.array(coo.col.astype(np.int32)),
                "weight": pa.array(coo.data.astype(np.float64)),
            }
        )
        norms = np.sqrt(np.asarray(result.codes.multiply(result.codes).sum(axis=1)).ravel())
        stats = pa.table(
            {
                "id": pa.array(np.asarray(ids, np.int32)),
                "nnz": pa.array(np.asarray(result.nnz, np.int32)),
                "cosine": pa.array(np.asarray(result.cosine, np.float64)),
                "code_norm": pa.array(norms.astype(np.float64)),
                "status": pa.array(np.asarray(result.status, np.int8)),
            }
        )
        with index.transaction(_codes=codes, _stats=stats) as con:
            con.execute("DELETE FROM codes WHERE list_contains(?::INTEGER[], file_id)", [ids])
            con.execute("INSERT INTO codes SELECT file_id, concept_id, weight FROM _codes ORDER BY file_id, concept_id")
            con.execute(
                "UPDATE files SET nnz = s.nnz, cosine = s.cosine, code_norm = s.code_norm, status = s.status "
                "FROM _stats s WHERE files.id = s.id"
            )
        if progress:
            progress(len(ids))
    return len(pending)


def _duration(path: str) -> float | None:
    try:
        import soundfile as sf

        return float(sf.info(path).duration)
    except Exception:  # noqa: BLE001 - duration is optional metadata; decoding errors are reported by embedding
        return None


def build_index(
    paths: Sequence[str | os.PathLike],
    encoder: Any,
    vocabulary: Any,
    db_path: str | os.PathLike,
    *,
    l1_penalty: float = 0.15,
    cache: Any = None,
    labels: LabelSource = None,
    vocabulary_name: str | None = None,
    rebuild: bool = False,
    progress: Any = None,
) -> IndexReport:
    """Index audio files (files, or folders searched recursively) into the DuckDB file `db_path`.

    Only new or changed files (by content hash) are embedded and decomposed; indexed files under the
    given folders (or named directly) that no longer exist are removed, as is any indexed file that
    no longer exists anywhere. `labels`: None, "folder" (parent folder name), a CSV file (see
    `read_labels_csv`), a mapping (path, absolute path or file name -> label) or a callable.
    `progress(description, total)` starts a task and returns its advance(n) (see encoders.cached)."""
    from audioconcepts.centering import audio_modality_mean
    from audioconcepts.embeddings import Embeddings
    from audioconcepts.encoders.audio import find_audio_files
    from audioconcepts.encoders.cache import file_key
    from audioconcepts.encoders.cached import embed_files, start_task

    if vocabulary.fingerprint != encoder.fingerprint:
        raise IndexMismatchError(
            f"the vocabulary was embedded with {vocabulary.fingerprint!r} but the encoder is {encoder.fingerprint!r}"
        )
    label_of = _labeller(labels)
    found = [os.path.abspath(p) for p in find_audio_files(paths)]
    found = list(dict.fromkeys(found))
    roots = [os.path.abspath(os.fspath(p)) for p in paths]

    def in_scope(stored: str) -> bool:
        if not os.path.exists(stored):
            return True
        return any(stored == r or stored.startswith(os.path.join(r, "")) for r in roots)

    index = _open_for_writing(
        db_path,
        encoder.fingerprint,
        vocabulary,
        _vocabulary_name(vocabulary, vocabulary_name),
        l1_penalty,
        "audio",
        rebuild,
    )
    if getattr(encoder, "spec", None):
        index.set_meta("model", encoder.spec)  # so search --text and serve can load it without --model
    with index:
        keys: dict[str, str] = {}
        failures: list[tuple[str, str]] = []
        for path in found:
            try:
                keys[path] = file_key(path)
            except OSError as e:
                failures.append((path, f"cannot read: {e.strerror or e}"))
        new, changed, unchanged, removed = _sync_rows(index, keys, in_scope)
        old_failures = [
            p for (p,) in index.con.execute("SELECT path FROM failures").fetchall() if p in keys or in_scope(p)
        ]
        if old_failures:  # this run decides again about every file it can see
            index.con.execute("DELETE FROM failures WHERE list_contains(?, path)", [old_failures])
        todo = new + changed
        advance = start_task(progress, "embedding audio", len(todo))
        embedded = 0
        for lo in range(0, len(todo), EMBED_BATCH):
            chunk = todo[lo : lo + EMBED_BATCH]
            result = embed_files(encoder, chunk, cache, progress=advance)
            embedded += result.computed
            failures += [(e.path, e.reason) for e in result.failures]
            if result.paths:
                _write_rows(
                    index,
                    result.paths,
                    result.content_hashes,
                    result.embeddings.vectors,
                    [_duration(p) for p in result.paths],
                    [label_of(p) for p in result.paths],
                    [os.path.dirname(p) for p in result.paths],
                )
        _record_failures(index, failures)
        if labels is not None:  # new labels apply to unchanged files too
            _set_labels(index, {p: label_of(p) for p in keys})
        failed = {p for p, _ in failures}
        stale = [p for p in changed if p in failed]  # changed, then failed: its old code no longer describes it
        if stale:
            _sync_rows(index, {p: k for p, k in keys.items() if p not in stale}, lambda p: p in stale)
        total = len(index)
        centering = ""
        if total:

            def mean_of(X: np.ndarray) -> tuple[np.ndarray, str]:
                c = audio_modality_mean(encoder, Embeddings(X, encoder.fingerprint), cache, progress=progress)
                return c.mean, c.source

            centering = _ensure_mean(index, mean_of)
        decomposed = _decompose_pending(index, vocabulary, l1_penalty, start_task(progress, "decomposing", total))
        return IndexReport(
            added=sum(1 for p in new if p not in failed),
            updated=sum(1 for p in changed if p not in failed),
            removed=removed,
            unchanged=unchanged,
            decomposed=decomposed,
            embedded=embedded,
            failures=failures,
            centering=centering,
            total=total,
        )


def vector_hash(vector: np.ndarray) -> str:
    """sha256 of a vector's float32 little-endian bytes: the content hash of a precomputed row."""
    return hashlib.sha256(np.ascontiguousarray(vector, dtype="<f4").tobytes()).hexdigest()


def build_index_from_embeddings(
    ids: Sequence[str],
    embeddings: Any,
    vocabulary: Any,
    db_path: str | os.PathLike,
    *,
    l1_penalty: float = 0.15,
    modality_mean: np.ndarray | None = None,
    labels: Sequence[str | None] | None = None,
    content_hashes: Sequence[str] | None = None,
    durations: Sequence[float | None] | None = None,
    vocabulary_name: str | None = None,
    remove_missing: bool = True,
    rebuild: bool = False,
    progress: Any = None,
) -> IndexReport:
    """Index precomputed embeddings (an `Embeddings`, whose fingerprint must match the vocabulary's),
    one per id (stored in the `path` column). Rows whose id and content hash (default: the hash of the
    vector) are already indexed are skipped; with `remove_missing`, indexed ids not in `ids` are removed.
    The modality mean is `modality_mean`, else the mean of the unit rows, fixed at the first build."""
    from audioconcepts.decompose.preprocess import l2_normalize
    from audioconcepts.embeddings import Embeddings, check_fingerprint
    from audioconcepts.encoders.cached import start_task

    if not isinstance(embeddings, Embeddings):
        raise TypeError("embeddings must be an audioconcepts.Embeddings (vectors plus the fingerprint of their model)")
    X = np.asarray(check_fingerprint(embeddings, vocabulary.fingerprint), dtype=np.float32)
    ids = [str(i) for i in ids]
    if X.ndim != 2 or X.shape[0] != len(ids) or X.shape[1] != vocabulary.dim:
        raise ValueError(f"embeddings of shape {X.shape} do not match {len(ids)} ids of dimension {vocabulary.dim}")
    if len(set(ids)) != len(ids):
        raise ValueError("ids must be unique")
    for name, values in (("labels", labels), ("content_hashes", content_hashes), ("durations", durations)):
        if values is not None and len(values) != len(ids):
            raise ValueError(f"{name} has {len(values)} entries for {len(ids)} ids")
    finite = np.isfinite(X).all(axis=1) & np.any(X != 0, axis=1)
    failures = [(ids[i], "not a usable embedding (NaN, inf or all zero)") for i in np.flatnonzero(~finite)]
    hashes = list(content_hashes) if content_hashes is not None else [vector_hash(x) for x in X]
    keys = {ids[i]: hashes[i] for i in np.flatnonzero(finite)}
    index = _open_for_writing(
        db_path,
        embeddings.fingerprint,
        vocabulary,
        _vocabulary_name(vocabulary, vocabulary_name),
        l1_penalty,
        "embeddings",
        rebuild,
    )
    with index:
        new, changed, unchanged, removed = _sync_rows(index, keys, lambda p: remove_missing)
        position = {i: n for n, i in enumerate(ids)}
        todo = new + changed
        for lo in range(0, len(todo), DECOMPOSE_BATCH):
            rows = [position[i] for i in todo[lo : lo + DECOMPOSE_BATCH]]
            _write_rows(
                index,
                [ids[r] for r in rows],
                [hashes[r] for r in rows],
                X[rows],
                [None if durations is None else durations[r] for r in rows],
                [None if labels is None else labels[r] for r in rows],
                [None] * len(rows),
            )
        _record_failures(index, failures)
        if labels is not None:
            _set_labels(index, {ids[i]: labels[i] for i in np.flatnonzero(finite)})
        total = len(index)
        centering = ""
        if total:
            if modality_mean is not None:
                mean_of = lambda V: (np.asarray(modality_mean, np.float64), "the given modality mean")
            else:
                mean_of = lambda V: (l2_normalize(V).mean(axis=0), f"the {len(V)} indexed embeddings")
            centering = _ensure_mean(index, mean_of)
        decomposed = _decompose_pending(index, vocabulary, l1_penalty, start_task(progress, "decomposing", total))
        return IndexReport(
            added=len(new),
            updated=len(changed),
            removed=removed,
            unchanged=unchanged,
            decomposed=decomposed,
            embedded=0,
            failures=failures,
            centering=centering,
            total=total,
        )
