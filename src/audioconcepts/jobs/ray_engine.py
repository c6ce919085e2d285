"""The Ray engine of the decompose job: the same parts as the local engine, decomposed by Ray Data actors.

Pipeline: ``ray.data.from_items(row ranges still to do)`` -> ``map_batches(_PartWorker,
compute=ActorPoolStrategy(size=N),
batch_size=1, num_cpus=..., num_gpus=...)`` -> the driver streams the finished parts' records back and
records each one in the manifest as it arrives. `_PartWorker` is a callable class, so Ray runs it as
a pool of actors: each builds the fitted ConceptDecomposer (vocabulary, preprocessed concepts, solver
state, compiled kernels) once, then for each row range reads those rows straight from the input
(local or object storage), decomposes them and writes the part's two Parquet files to the output
(local or object storage) with `parts.run_part`, exactly as the local engine does.

Why ranges and not ``read_parquet(...).map_batches(...).write_parquet(...)``: Ray Data's blocks have
no stable global row number and `write_parquet` names files itself, so a crashed run could neither
say which rows are done nor resume without redoing everything; with explicit row ranges the output
files, the manifest and resume are the same as the local engine's, and outputs are identical.

GPUs: when the cluster has GPUs and `num_gpus` is not set, each actor asks for one, and the
decomposer's solver="auto" picks the torch solver on CUDA. Codes are then equal to the CPU solver's
within solver tolerance, not bit for bit; pass solver="active-set" for bit-identical output.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np


class _PartWorker:
    """A Ray Data actor: fitted decomposer and open input kept for all the ranges it is given."""

    def __init__(self, state: dict[str, Any]) -> None:
        import pyarrow as pa

        from audioconcepts.decompose import ConceptDecomposer
        from audioconcepts.jobs.source import EmbeddingSource
        from audioconcepts.vocab import Vocabulary

        vocabulary = Vocabulary(state["concepts"], state["embeddings"], state["fingerprint"])
        device = state["device"]
        if device is None and state["use_gpu"]:
            device = "cuda"
        self.decomposer = ConceptDecomposer(vocabulary, device=device, **state["params"]).fit(modality_mean=state["mean"])
        self.source = EmbeddingSource(state["input"])
        if self.source.n_rows != state["rows"]:
            raise RuntimeError(f"{state['input']}: this worker sees {self.source.n_rows} rows, the driver saw {state['rows']}")
        self.out, self.certify = state["out"], state["certify"]
        self.concepts = pa.array(vocabulary.concepts, pa.string())

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        from audioconcepts.jobs.parts import run_part

        records = []
        for start, end in zip(batch["start"].tolist(), batch["end"].tolist()):
            record = run_part(self.decomposer, self.source, int(start), int(end), self.out, self.concepts, self.certify)
            records.append(json.dumps(record))
        return {"record": records}


def _absolute(location: str) -> str:
    """Workers may run elsewhere: local paths are made absolute (URIs are kept)."""
    import os

    from audioconcepts.jobs.storage import is_uri

    return location if is_uri(location) else os.path.abspath(location)


def _ray():
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise ImportError('engine="ray" needs Ray Data: pip install "audioconcepts[ray]" (or "ray[data]>=2.10")') from e
    return ray


def run_parts(decomposer: Any, source: Any, todo: list[tuple[int, int]], out: str, certify: bool, options: Any) -> Iterator[dict[str, Any]]:
    """Decompose the row ranges `todo` on Ray; yields each finished part's record as it completes."""
    ray = _ray()
    if not ray.is_initialized():
        ray.init(address=options.address, ignore_reinit_error=True, log_to_driver=False, include_dashboard=False)
    use_gpu = bool(ray.cluster_resources().get("GPU", 0)) if options.num_gpus is None else options.num_gpus > 0
    num_gpus = options.num_gpus if options.num_gpus is not None else (1 if use_gpu else 0)
    num_cpus = options.num_cpus if options.num_cpus is not None else 1
    vocab = decomposer.vocabulary
    params = {
        "l1_penalty": decomposer.l1_penalty,
        "target_l0": decomposer.target_l0,
        "solver": decomposer.solver,
        "batch_size": decomposer.batch_size,
        "n_jobs": max(1, int(num_cpus)) if decomposer.n_jobs is None else decomposer.n_jobs,
    }
    state = {
        "concepts": vocab.concepts,
        "embeddings": vocab.embeddings,
        "fingerprint": vocab.fingerprint,
        "params": params,
        "device": decomposer.device,
        "use_gpu": use_gpu,
        "mean": decomposer.modality_mean_,
        "input": _absolute(source.location),
        "rows": source.n_rows,
        "out": _absolute(out),
        "certify": certify,
    }
    items = [{"start": s, "end": e} for s, e in todo]
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    ds = ds.map_batches(
        _PartWorker,
        fn_constructor_kwargs={"state": state},
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=options.concurrency),
        num_cpus=num_cpus,
        num_gpus=num_gpus,
    )
    for row in ds.iter_rows():
        yield json.loads(row["record"])
