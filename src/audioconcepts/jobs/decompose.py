"""The out-of-core decompose job: embeddings (Parquet or .npy, any size) to concept codes in Parquet parts.

Steps: open the input for streaming and check its model fingerprint against the vocabulary's; fit a
ConceptDecomposer once (the modality mean is given, or computed in a first streaming pass over the
input exactly as `ConceptDecomposer.fit(X)` computes it in memory); then decompose one part of
`chunk_rows` rows at a time and write its files atomically, recording each finished part in the
manifest. Memory is bounded by `chunk_rows` (plus the vocabulary), not by the number of rows.

Parts are aligned to the decomposer's batches (`batch_size` rows, from row 0): `chunk_rows` is
rounded down to a multiple of `batch_size`, or `batch_size` is lowered to `chunk_rows` when that is
smaller. The solver works batch by batch and BLAS rounding in the last bit depends on a batch's
row count, so this alignment is what makes the job's codes bit-identical to
`ConceptDecomposer(vocab, batch_size=...).fit(X).transform(X)` on the whole array in memory.

Resuming: run the same call again. Parts in the manifest are kept (their files are not touched);
only the missing row ranges are decomposed. A finished job does nothing. A different input,
vocabulary or parameters is refused (JobConflictError) unless `overwrite=True`, which deletes the
old job's files first. The output layout is described in `parts`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from audioconcepts.jobs import manifest as mf
from audioconcepts.jobs import storage
from audioconcepts.jobs.parts import CODES, DIAGNOSTICS, run_part
from audioconcepts.jobs.progress import job_progress
from audioconcepts.jobs.source import EmbeddingSource

ENGINES = ("local", "ray")
DEFAULT_CHUNK_ROWS = 12 * 4096  # 49,152 rows: 100 MB of float32 input at d = 512


@dataclass
class RayOptions:
    """How the Ray engine runs: `address` of a cluster (None: start or join a local one),
    `concurrency` actors (each loads the vocabulary once), `num_cpus` / `num_gpus` per actor
    (None: 1 CPU, and 1 GPU when the cluster has GPUs)."""

    address: str | None = None
    concurrency: int = 2
    num_cpus: float | None = None
    num_gpus: float | None = None


@dataclass
class JobResult:
    """What a job run did."""

    out: str
    rows: int  #: rows of the input
    parts: int  #: parts of the finished job
    parts_written: int  #: parts decomposed by this run (0 when the job was already finished)
    rows_written: int  #: rows decomposed by this run
    invalid_rows: int  #: rows over the whole job with status 3 (NaN, inf, all-zero, null or wrong length)
    seconds: float  #: wall time of this run
    centering: str = ""  #: where the modality mean came from
    notes: list[str] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.rows_written / self.seconds if self.seconds > 0 else 0.0


def decompose_job(
    input: str | os.PathLike,
    vocab: Any,
    out: str | os.PathLike,
    *,
    l1_penalty: float = 0.15,
    target_l0: int | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    engine: str = "local",
    model: str | None = None,
    modality_mean: np.ndarray | str | os.PathLike | None = None,
    solver: str = "auto",
    batch_size: int = 4096,
    n_jobs: int | None = None,
    certify: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    cache: Any = None,
    ray: RayOptions | None = None,
    on_part: Callable[[dict[str, Any]], None] | None = None,
    on_chunk: Callable[[Any], None] | None = None,
) -> JobResult:
    """Decompose every row of `input` over `vocab` into OUT/codes and OUT/diagnostics Parquet parts.

    input: a Parquet file or folder of parts (local or s3://... with engine="ray" or "local"), or a
        local .npy with its .json sidecar (see `source`).
    vocab: a Vocabulary; a vocabulary file holding embeddings for the input's model; or, with
        `model`, a shipped name / text file / vocabulary file embedded with that model's text
        encoder (through `cache`, an EmbeddingCache or None).
    modality_mean: None (computed from the input in a first streaming pass), a (d,) array, or a
        .npy file holding one.
    chunk_rows: rows per part, read and decomposed at once; memory grows with it, not with the input.
        Aligned to `batch_size` (see the module docstring).
    engine: "local" (this process) or "ray" (Ray Data actors, see `ray_engine`; options in `ray`).
    on_part(record): called after each part is recorded in the manifest; on_chunk(chunk): sees
        every chunk read (local engine). Both are for monitoring and tests.
    """
    from audioconcepts.decompose import ConceptDecomposer

    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer; got {chunk_rows!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
    if chunk_rows >= batch_size:
        chunk_rows -= chunk_rows % batch_size
    else:
        batch_size = chunk_rows
    t0 = time.perf_counter()
    source = EmbeddingSource(input)
    vocabulary, vocab_source = resolve_vocabulary(vocab, source.fingerprint, model=model, cache=cache)
    if vocabulary.dim != source.dim:
        raise ValueError(f"{source.location}: vectors have d = {source.dim} but the vocabulary has d = {vocabulary.dim}")
    out = os.fspath(out)
    fs, folder = storage.resolve(out)
    decomposer = ConceptDecomposer(
        vocabulary, l1_penalty=l1_penalty, target_l0=target_l0, solver=solver, batch_size=batch_size, n_jobs=n_jobs
    )
    decomposer._check_params()
    given_mean = _given_mean(modality_mean, source.dim)
    identity = {
        "kind": "decompose",
        "input": source.identity(),
        "parameters": {"l1_penalty": float(l1_penalty), "target_l0": target_l0, "solver": solver, "certify": bool(certify)},
        "vocabulary": mf.vocabulary_record(vocabulary, vocab_source),
        "centering": {"source": "input"} if given_mean is None else {"source": "given", "sha256": mf.array_sha256(given_mean)},
    }
    job = mf.open_job(fs, folder, out, identity, overwrite, (CODES, DIAGNOSTICS), extra_keys=("modality_mean",))
    notes: list[str] = []
    _check_recorded_parts(fs, folder, job, notes)
    mean = given_mean
    if mean is None:
        if "modality_mean" in job.extra:
            mean = np.asarray(job.extra["modality_mean"]["mean"], np.float64)
        else:
            mean, usable = streamed_modality_mean(source, batch_size, progress=progress)
            job.extra["modality_mean"] = {"rows": usable, "mean": mean.tolist()}
            job.save(fs, folder)
    centering = "the streamed mean of the input's usable rows" if given_mean is None else "the given modality mean"
    decomposer.fit(modality_mean=mean)
    todo = mf.todo_ranges(source.n_rows, job.done_ranges(), chunk_rows)
    written = rows_written = 0
    if todo:
        for sub in (CODES, DIAGNOSTICS):
            fs.create_dir(storage.join(folder, sub), recursive=True)

        def record(part: dict[str, Any]) -> None:
            nonlocal written, rows_written
            job.parts.append(part)
            job.complete = sum(p["rows"] for p in job.parts) == source.n_rows
            job.save(fs, folder)
            written += 1
            rows_written += part["rows"]
            if on_part is not None:
                on_part(part)

        done = sum(p["rows"] for p in job.parts)
        with job_progress("decomposing", source.n_rows, done, enabled=progress) as advance:
            if engine == "local":
                concepts = pa.array(vocabulary.concepts, pa.string())
                for start, end in todo:
                    part = run_part(decomposer, source, start, end, out, concepts, certify, on_chunk)
                    record(part)
                    advance(part["rows"])
            else:
                from audioconcepts.jobs.ray_engine import run_parts

                for part in run_parts(decomposer, source, todo, out, certify, ray or RayOptions()):
                    record(part)
                    advance(part["rows"])
    if not job.complete:
        job.complete = sum(p["rows"] for p in job.parts) == source.n_rows
        job.save(fs, folder)
    return JobResult(
        out,
        source.n_rows,
        len(job.parts),
        written,
        rows_written,
        sum(p["invalid"] for p in job.parts),
        time.perf_counter() - t0,
        centering,
        notes,
    )


def resolve_vocabulary(vocab: Any, fingerprint: str, *, model: str | None = None, cache: Any = None) -> tuple[Any, str]:
    """(Vocabulary embedded with the input's model, a description of where it came from)."""
    from audioconcepts.vocab import Vocabulary

    if isinstance(vocab, Vocabulary):
        if vocab.fingerprint != fingerprint:
            raise ValueError(
                f"the vocabulary was embedded with {vocab.fingerprint!r} but the input comes from {fingerprint!r}; "
                "use a vocabulary embedded with the input's model"
            )
        return vocab, "a Vocabulary object"
    spec = os.fspath(vocab)
    if model is None:
        from audioconcepts.vocab.sources import SHIPPED

        if not os.path.isfile(spec) and spec in SHIPPED:
            raise ValueError(
                f"{spec!r} is a shipped concept list without embeddings: give the input's model (--model) to embed it, "
                f"or a vocabulary file with embeddings for {fingerprint!r}"
            )
        return Vocabulary.load(spec, fingerprint=fingerprint), spec
    from audioconcepts.encoders import load_encoder
    from audioconcepts.vocab.sources import embed_vocabulary

    encoder = load_encoder(model)
    if encoder.fingerprint != fingerprint:
        raise ValueError(
            f"--model {model} has fingerprint {encoder.fingerprint!r} but the input was embedded with {fingerprint!r}; "
            "give the model that embedded the input"
        )
    if os.path.isfile(spec) and spec.endswith(".npz"):
        vocabulary = Vocabulary.load(spec)
        if fingerprint in vocabulary.fingerprints:
            return Vocabulary.load(spec, fingerprint=fingerprint), spec
    return embed_vocabulary(spec, encoder, cache), f"{spec} embedded with {model}"


def streamed_modality_mean(source: EmbeddingSource, batch_size: int = 4096, *, progress: bool = False) -> tuple[np.ndarray, int]:
    """(mean of the L2-normalised usable rows, number of usable rows), read `batch_size` rows at a
    time; the same sums in the same order as `ConceptDecomposer.fit(X)` with that batch_size, so the
    result is identical to fitting on the whole array in memory."""
    from audioconcepts.decompose.preprocess import l2_normalize

    total, count = np.zeros(source.dim), 0
    with job_progress("modality mean", source.n_rows, enabled=progress) as advance:
        for chunk in source.read(0, source.n_rows, batch_size):
            Z = np.asarray(chunk.vectors, dtype=np.float64)
            with np.errstate(invalid="ignore", over="ignore"):
                ok = np.isfinite(Z).all(axis=1) & np.any(Z != 0, axis=1)
            total += l2_normalize(Z[ok]).sum(axis=0)
            count += int(ok.sum())
            advance(len(chunk))
    if count == 0:
        raise ValueError(f"{source.location}: no usable embeddings to estimate the modality mean (every row is NaN, inf or zero)")
    return total / count, count


def _given_mean(value: Any, d: int) -> np.ndarray | None:
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"modality mean file not found: {path} (a .npy holding one vector of length {d})")
        value = np.load(path, allow_pickle=False)
    mean = np.asarray(value, dtype=np.float64).reshape(-1)
    if mean.shape != (d,) or not np.isfinite(mean).all():
        raise ValueError(f"the modality mean must be a finite vector of length {d}; got shape {np.shape(value)}")
    return mean


def _check_recorded_parts(fs, folder: str, job: mf.Manifest, notes: list[str]) -> None:
    """Forget recorded parts whose files have gone (they are decomposed again), and clear the
    temporary files a crash can leave behind (local folders)."""
    kept = []
    for part in job.parts:
        if all(storage.exists(fs, storage.join(folder, part[key])) for key in (CODES, DIAGNOSTICS)):
            kept.append(part)
        else:
            notes.append(f"part rows {part['start']}-{part['end']} was recorded but its files are missing; decomposing it again")
    if len(kept) != len(job.parts):
        job.parts, job.complete = kept, False
        job.save(fs, folder)
    if storage.is_local(fs):
        for sub in (CODES, DIAGNOSTICS):
            path = os.path.join(folder, sub)
            if os.path.isdir(path):
                for name in os.listdir(path):
                    if name.startswith(".") and name.endswith(".tmp"):
                        os.remove(os.path.join(path, name))


def read_codes(out: str | os.PathLike):
    """A finished job's output in memory (for inspection and tests; large outputs are better read
    with pyarrow / DuckDB directly): (codes CSR (n, k), ids, concepts, diagnostics DataFrame)."""
    import pyarrow.parquet as pq
    import scipy.sparse as sp

    fs, folder = storage.resolve(os.fspath(out))
    job = mf.load(fs, folder, ("modality_mean",))
    if job is None:
        raise FileNotFoundError(f"{out}: no job manifest ({mf.MANIFEST})")
    if not job.complete:
        raise ValueError(f"{out}: the job is not finished ({sum(p['rows'] for p in job.parts)} of {job.identity['input']['rows']} rows); run it again to resume")
    n, k = job.identity["input"]["rows"], job.identity["vocabulary"]["concepts"]
    parts = sorted(job.parts, key=lambda p: p["start"])
    codes = pa.concat_tables([pq.read_table(storage.join(folder, p["codes"]), filesystem=fs) for p in parts])
    diag = pa.concat_tables([pq.read_table(storage.join(folder, p["diagnostics"]), filesystem=fs) for p in parts])
    rows = codes.column("row").to_numpy()
    matrix = sp.csr_matrix(
        (codes.column("weight").to_numpy(), (rows, codes.column("concept_index").to_numpy())), shape=(n, k)
    )
    concepts = [None] * k
    for i, c in zip(codes.column("concept_index").to_pylist(), codes.column("concept").to_pylist()):
        concepts[i] = c
    return matrix, diag.column("id").to_pylist(), concepts, diag.to_pandas()
