"""The Ray engine on a local Ray cluster (2 CPUs): the same files as the local engine, bit for bit,
with resume shared between engines and file:// URIs for input and output."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_jobs import LAMBDA, file_states, write_parquet

from audioconcepts import ConceptDecomposer
from audioconcepts.jobs import RayOptions, decompose_job, read_codes

ray = pytest.importorskip("ray")

N = 900


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()


@pytest.fixture
def inputs(tmp_path, caption_space):
    X = caption_space.embeddings.vectors[1000 : 1000 + N].copy()
    X[[7, 611]] = np.nan  # bad rows: status 3, the job goes on
    caption_space.vocabulary.save(tmp_path / "vocab.npz")
    return write_parquet(tmp_path / "emb.parquet", X, caption_space.embeddings.fingerprint), tmp_path / "vocab.npz", X


def test_ray_engine_writes_the_same_files_as_the_local_engine(ray_cluster, inputs, tmp_path, caption_space):
    emb, vocab, X = inputs
    local = decompose_job(emb, vocab, tmp_path / "local", chunk_rows=200, progress=False, solver="active-set")
    # the Ray side reads and writes through file:// URIs, as it would through s3://
    distributed = decompose_job(
        f"file://{emb}", vocab, f"file://{tmp_path / 'ray'}", chunk_rows=200, engine="ray", progress=False,
        solver="active-set", ray=RayOptions(concurrency=2),
    )
    assert (local.parts, distributed.parts, distributed.parts_written) == (5, 5, 5)
    for sub in ("codes", "diagnostics"):
        names = sorted(p.name for p in (tmp_path / "local" / sub).glob("part-*"))
        assert names == sorted(p.name for p in (tmp_path / "ray" / sub).glob("part-*"))
        for name in names:
            a, b = pq.read_table(tmp_path / "local" / sub / name), pq.read_table(tmp_path / "ray" / sub / name)
            assert a.schema == b.schema and a.num_rows == b.num_rows
            assert a.to_pandas().equals(b.to_pandas()), f"{sub}/{name} differs"  # NaN (uncertified gaps) equal NaN
    assert distributed.invalid_rows == 2
    W, _, _, diag = read_codes(tmp_path / "ray")
    assert np.flatnonzero(diag["status"].to_numpy() == 3).tolist() == [7, 611]
    with pytest.warns(RuntimeWarning, match="not usable"):
        reference = ConceptDecomposer(caption_space.vocabulary, LAMBDA, batch_size=200).fit(X).transform(X)
    assert (W != reference).nnz == 0 and W.nnz > 20 * N
    manifest = json.loads((tmp_path / "ray" / "_manifest.json").read_text())
    assert manifest["complete"] and manifest["rows_done"] == N


def test_ray_resumes_a_job_the_local_engine_started(ray_cluster, inputs, tmp_path, caption_space):
    emb, vocab, X = inputs
    out = tmp_path / "job"

    def stop(part):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        decompose_job(emb, vocab, out, chunk_rows=300, progress=False, on_part=stop)
    before = file_states(out)
    result = decompose_job(emb, vocab, out, chunk_rows=300, engine="ray", progress=False, ray=RayOptions(concurrency=2))
    assert (result.parts, result.parts_written) == (3, 2)
    after = file_states(out)
    assert {k: after[k] for k in before} == before
    W, *_ = read_codes(out)
    with pytest.warns(RuntimeWarning, match="not usable"):
        assert (W != ConceptDecomposer(caption_space.vocabulary, LAMBDA, batch_size=300).fit(X).transform(X)).nnz == 0
    assert decompose_job(emb, vocab, out, chunk_rows=300, engine="ray", progress=False).parts_written == 0
