"""Typer command functions for the out-of-core jobs (registered in cli.py as `decompose` and `embed-job`).

Top-level imports are typer and the standard library only, so `audioconcepts --help` stays fast.

Exit status: 0 when every row / file was processed; 1 when some rows were unusable (status 3 in the
diagnostics) or some files failed (listed), the rest written; 2 when the job cannot run (input,
vocabulary or model unusable, a different job in the output folder, Ray missing): one message, no traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

EXIT_SOME_FAILED, EXIT_CANNOT_RUN = 1, 2


def decompose_command(
    input: str = typer.Argument(
        ..., help="Embeddings: a Parquet file or folder of parts (id, fingerprint, vector; as written by `embed`), "
        "a .npy with its .json sidecar, or an object-store URI (s3://bucket/emb/)."
    ),
    vocab: str = typer.Option(
        ..., "--vocab", help="A vocabulary file with embeddings for the input's model; or, with --model, a shipped "
        "name or a text file (one concept per line) embedded with that model."
    ),
    out: str = typer.Option(..., "--out", "-o", help="Output folder (or URI): codes/ and diagnostics/ Parquet parts plus _manifest.json."),
    model: str | None = typer.Option(None, "--model", "-m", help="The model that made the input, to embed --vocab with (must match the input's fingerprint)."),
    l1_penalty: float = typer.Option(0.15, "--l1-penalty", "-l", min=1e-6, help="Lambda in SpLiCE units (0.05 ~ 100 concepts, 0.25 ~ 15)."),
    target_l0: int | None = typer.Option(None, "--target-l0", min=1, help="Concepts per row instead of a lambda (exact path, slower)."),
    chunk_rows: int = typer.Option(49_152, "--chunk-rows", min=1, help="Rows per part: read, decomposed and written at once (memory grows with it, not with the input); rounded down to a multiple of the solver batch (4,096)."),
    modality_mean: Path | None = typer.Option(None, "--modality-mean", help="A .npy (d,) audio modality mean; default: the mean of the input, computed in a first streaming pass."),
    engine: str = typer.Option("local", "--engine", help="local (this process) or ray (Ray Data actors; pip install 'audioconcepts[ray]')."),
    solver: str = typer.Option("auto", "--solver", help="auto, active-set, torch or sklearn."),
    certify: bool = typer.Option(False, "--certify", help="Also compute each row's duality gap and KKT violation (slower)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a different job found in --out (its files are deleted)."),
    ray_address: str | None = typer.Option(None, "--ray-address", help="Ray cluster to join (e.g. auto, ray://head:10001); default: start a local one."),
    workers: int = typer.Option(2, "--workers", min=1, help="Ray: number of actors (each loads the vocabulary once)."),
    cpus_per_worker: float = typer.Option(1.0, "--cpus-per-worker", min=0.0, help="Ray: CPUs per actor (also its solver threads)."),
    gpus_per_worker: float | None = typer.Option(None, "--gpus-per-worker", min=0.0, help="Ray: GPUs per actor (default: 1 when the cluster has GPUs, else 0)."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Embedding cache for --model (default: $AUDIOCONCEPTS_CACHE or ~/.cache/audioconcepts)."),
) -> None:
    """Decompose embeddings of any size into concept codes, in resumable Parquet parts.

    Rerun the same command after a crash to resume (finished parts are kept); a finished job does
    nothing. A different input, vocabulary or parameters is refused unless --overwrite."""
    from audioconcepts.jobs.decompose import RayOptions, decompose_job

    with _job_errors():
        cache = _cache(cache_dir) if model is not None else None
        try:
            result = decompose_job(
                input, vocab, out, l1_penalty=l1_penalty, target_l0=target_l0, chunk_rows=chunk_rows, engine=engine,
                model=model, modality_mean=modality_mean, solver=solver, certify=certify, overwrite=overwrite,
                cache=cache, ray=RayOptions(ray_address, workers, cpus_per_worker, gpus_per_worker),
            )
        finally:
            if cache is not None:
                cache.close()
    for note in result.notes:
        _info(note)
    if result.parts_written == 0:
        _info(f"{out}: the job is already finished ({result.rows:,} rows in {result.parts} parts); nothing to do")
    else:
        _info(
            f"decomposed {result.rows_written:,} rows in {result.parts_written} parts ({result.rows_per_second:,.0f} rows/s); "
            f"{result.rows:,} rows in {result.parts} parts in {out}; centering: {result.centering}"
        )
    if result.invalid_rows:
        _error(f"{result.invalid_rows:,} rows were not usable embeddings (NaN, inf, zero, null or wrong length): "
               "status 3 in diagnostics/, empty codes; the other rows are decomposed")
        raise typer.Exit(EXIT_SOME_FAILED)


def embed_job_command(
    paths: list[Path] = typer.Argument(..., help="Audio files, or folders searched recursively for audio files."),
    model: str = typer.Option(..., "--model", "-m", help="A CLAP model: Hugging Face id or local checkpoint directory."),
    out: str = typer.Option(..., "--out", "-o", help="Output folder (or URI): embeddings/ Parquet parts plus _manifest.json."),
    chunk_files: int = typer.Option(256, "--chunk-files", min=1, help="Files per part."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a different job found in --out."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Embedding cache directory (default: $AUDIOCONCEPTS_CACHE or ~/.cache/audioconcepts)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the embedding cache."),
) -> None:
    """Embed many audio files into resumable Parquet parts (OUT/embeddings, a `decompose` input).

    Rerun after a crash to resume; failed files are listed and do not stop the job."""
    from audioconcepts.jobs.embed import embed_job

    if no_cache and cache_dir is not None:
        raise typer.BadParameter("give --cache-dir or --no-cache, not both", param_hint="--no-cache")
    with _job_errors():
        cache = None if no_cache else _cache(cache_dir)
        try:
            result = embed_job([str(p) for p in paths], model, out, chunk_files=chunk_files, cache=cache, overwrite=overwrite)
        finally:
            if cache is not None:
                cache.close()
    if result.parts_written == 0:
        _info(f"{out}: the job is already finished ({result.files:,} files in {result.parts} parts); nothing to do")
    else:
        _info(f"handled {result.files_written:,} files in {result.parts_written} parts ({result.embedded:,} embedded now, "
              f"the rest from the cache); embeddings in {result.embeddings}")
    if result.failures:
        for path, reason in result.failures:
            _error(f"{path}: {reason}")
        _error(f"{len(result.failures)} file(s) failed; the others were embedded")
        raise typer.Exit(EXIT_SOME_FAILED)


def _cache(cache_dir: Path | None):
    from audioconcepts.encoders.cache import EmbeddingCache

    return EmbeddingCache(cache_dir / "embeddings.sqlite" if cache_dir is not None else None)


@contextmanager
def _job_errors() -> Iterator[None]:
    """Anything that stops a job before or between parts: one clear message and exit status 2."""
    from audioconcepts.encoders import AdapterUnavailableError, EncoderCapabilityError, ModelUnavailableError
    from audioconcepts.jobs.manifest import JobConflictError

    try:
        yield
    except (JobConflictError, ModelUnavailableError, AdapterUnavailableError, EncoderCapabilityError,
            FileNotFoundError, ValueError, ImportError) as e:
        _error(str(e))
        raise typer.Exit(EXIT_CANNOT_RUN) from None


def _info(message: str) -> None:
    typer.echo(message, err=True)


def _error(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
