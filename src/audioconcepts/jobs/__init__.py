"""Out-of-core jobs: decompose (and embed) inputs of any size in Parquet parts, with a manifest and resume.

`decompose_job` streams embeddings and writes concept codes; `embed_job` embeds audio files into
Parquet parts that `decompose_job` reads. Both run locally; `decompose_job(engine="ray")` runs on
Ray Data. Typer commands for the CLI are in `jobs.commands`.

Names are imported on first use, so importing `audioconcepts.jobs.commands` (for the CLI) does not
load pyarrow or the solvers.
"""

from __future__ import annotations

from audioconcepts._lazy import lazy_exports

_EXPORTS = {
    "EmbeddingSource": "audioconcepts.jobs.source",
    "EmbedJobResult": "audioconcepts.jobs.embed",
    "embed_job": "audioconcepts.jobs.embed",
    "JobConflictError": "audioconcepts.jobs.manifest",
    "JobResult": "audioconcepts.jobs.decompose",
    "RayOptions": "audioconcepts.jobs.decompose",
    "decompose_job": "audioconcepts.jobs.decompose",
    "read_codes": "audioconcepts.jobs.decompose",
    "streamed_modality_mean": "audioconcepts.jobs.decompose",
}

__all__ = [
    "EmbedJobResult",
    "EmbeddingSource",
    "JobConflictError",
    "JobResult",
    "RayOptions",
    "decompose_job",
    "embed_job",
    "read_codes",
    "streamed_modality_mean",
]


__getattr__ = lazy_exports(__name__, _EXPORTS)
