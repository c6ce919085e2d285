"""Out-of-core jobs: decompose (and embed) inputs of any size in Parquet parts, with a manifest and resume.

`decompose_job` streams embeddings and writes concept codes; `embed_job` embeds audio files into
Parquet parts that `decompose_job` reads. Both run locally; `decompose_job(engine="ray")` runs on
Ray Data. Typer commands for the CLI are in `jobs.commands`.
"""

from audioconcepts.jobs.decompose import JobResult, RayOptions, decompose_job, read_codes, streamed_modality_mean
from audioconcepts.jobs.embed import EmbedJobResult, embed_job
from audioconcepts.jobs.manifest import JobConflictError
from audioconcepts.jobs.source import EmbeddingSource

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
