"""The out-of-core decompose job (local engine): equal to the in-memory decomposer, bounded reads,
crash and resume, reruns, refused changes, bad rows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audioconcepts import ConceptDecomposer, Embeddings
from audioconcepts.encoders.precomputed import save_precomputed
from audioconcepts.jobs import EmbeddingSource, JobConflictError, decompose_job, read_codes, streamed_modality_mean
from audioconcepts.jobs.manifest import todo_ranges
from audioconcepts.vocab import Vocabulary

N = 700  # rows of the test input: several parts, and row groups that do not line up with them
LAMBDA = 0.15


@pytest.fixture(scope="module")
def vocabulary(caption_space) -> Vocabulary:
    return caption_space.vocabulary


@pytest.fixture(scope="module")
def X(caption_space) -> np.ndarray:
    return caption_space.embeddings.vectors[:N]


@pytest.fixture(scope="module")
def fingerprint(caption_space) -> str:
    return caption_space.embeddings.fingerprint


@pytest.fixture(scope="module")
def reference(vocabulary, X):
    """reference(batch): the in-memory decomposer on the whole array (modality mean fitted on X),
    codes and diagnostics, with the solver batch size the job uses (its part size when smaller than
    4096: BLAS rounding in the last bit depends on a batch's row count)."""
    cache = {}

    def decomposition(batch: int = 4096):
        if batch not in cache:
            cache[batch] = ConceptDecomposer(vocabulary, LAMBDA, batch_size=batch).fit(X).decompose(X)
        return cache[batch]

    return decomposition


def write_parquet(path: Path, X: np.ndarray, fingerprint: str, row_group_size: int = 97, ids=None) -> Path:
    """Embeddings Parquet in the save_precomputed format, with small row groups."""
    n, d = X.shape
    table = pa.table(
        {
            "id": pa.array(ids if ids is not None else [f"clip-{i}" for i in range(n)]),
            "fingerprint": pa.array([fingerprint] * n),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(X.reshape(-1)), d),
        }
    )
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


@pytest.fixture
def job_files(tmp_path, vocabulary, X, fingerprint):
    vocab_file = tmp_path / "vocab.npz"
    vocabulary.save(vocab_file)
    return write_parquet(tmp_path / "emb.parquet", X, fingerprint), vocab_file, tmp_path / "out"


def file_states(out: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime_ns) of every part file."""
    return {str(p.relative_to(out)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.rglob("part-*.parquet")}


def assert_same_codes(out: Path, reference_decomposition, ids=None) -> None:
    W, got_ids, _, diag = read_codes(out)
    ref = reference_decomposition.codes
    assert W.shape == ref.shape
    assert (W != ref).nnz == 0  # the same codes, bit for bit
    np.testing.assert_array_equal(diag["nnz"].to_numpy(), reference_decomposition.nnz)
    np.testing.assert_array_equal(diag["status"].to_numpy(), reference_decomposition.status)
    np.testing.assert_array_equal(diag["cosine"].to_numpy(), reference_decomposition.cosine)
    np.testing.assert_array_equal(diag["row"].to_numpy(), np.arange(ref.shape[0]))
    if ids is not None:
        assert got_ids == ids


# ----------------------------------------------------------------------------- equality


def test_streamed_modality_mean_is_the_in_memory_fit(job_files, vocabulary, X):
    model = ConceptDecomposer(vocabulary, LAMBDA).fit(X)
    mean, usable = streamed_modality_mean(EmbeddingSource(job_files[0]))
    assert usable == N
    np.testing.assert_array_equal(mean, model.modality_mean_)


def test_chunked_job_equals_in_memory_transform(job_files, reference, vocabulary):
    emb, vocab_file, out = job_files
    result = decompose_job(emb, vocab_file, out, l1_penalty=LAMBDA, chunk_rows=128, progress=False)
    assert (result.rows, result.parts, result.parts_written, result.rows_written) == (N, 6, 6, N)
    assert_same_codes(out, reference(128), ids=[f"clip-{i}" for i in range(N)])
    # and the same codes as the default batching, to the last bit or so
    W, *_ = read_codes(out)
    default = reference().codes
    assert (W != default).nnz == 0 or np.abs((W - default).toarray()).max() < 1e-14
    assert (W.indptr == default.indptr).all() and (W.indices == default.indices).all()
    # the codes table carries the concept names of the vocabulary
    codes = pq.read_table(out / "codes")
    names = codes.column("concept").to_pylist()
    index = codes.column("concept_index").to_pylist()
    assert all(vocabulary.concepts[i] == c for i, c in zip(index, names))
    assert (codes.column("weight").to_numpy() > 0).all()


def test_parts_are_aligned_to_solver_batches(job_files, reference):
    """chunk_rows=200 with batch_size=64 makes parts of 192 rows: bit-identical to the in-memory
    decomposer with batch_size=64, whose batches fall on the same rows."""
    emb, vocab_file, out = job_files
    result = decompose_job(emb, vocab_file, out, chunk_rows=200, batch_size=64, progress=False)
    manifest = json.loads((out / "_manifest.json").read_text())
    assert [(p["start"], p["end"]) for p in manifest["parts"]] == [(0, 192), (192, 384), (384, 576), (576, 700)]
    assert result.parts == 4
    assert_same_codes(out, reference(64))


def test_npy_and_folder_inputs_give_the_same_codes(tmp_path, vocabulary, X, fingerprint, reference):
    vocab_file = tmp_path / "vocab.npz"
    vocabulary.save(vocab_file)
    save_precomputed(tmp_path / "emb.npy", Embeddings(X, fingerprint), ids=[f"n{i}" for i in range(N)])
    decompose_job(tmp_path / "emb.npy", vocab_file, tmp_path / "out_npy", chunk_rows=200, progress=False)
    assert_same_codes(tmp_path / "out_npy", reference(200), ids=[f"n{i}" for i in range(N)])
    folder = tmp_path / "parts"
    folder.mkdir()
    for lo, hi in [(0, 250), (250, 251), (251, N)]:  # uneven part files, read in name order
        write_parquet(folder / f"part-{lo:05d}.parquet", X[lo:hi], fingerprint, ids=[f"f{i}" for i in range(lo, hi)])
    (folder / "_SUCCESS").write_text("")  # ignored, as by other Parquet readers
    decompose_job(folder, vocab_file, tmp_path / "out_dir", chunk_rows=128, progress=False)
    assert_same_codes(tmp_path / "out_dir", reference(128), ids=[f"f{i}" for i in range(N)])


def test_given_modality_mean_is_used(job_files, vocabulary, X, tmp_path):
    emb, vocab_file, out = job_files
    mean = np.asarray(X[:50], np.float64).mean(axis=0)
    np.save(tmp_path / "mean.npy", mean)
    result = decompose_job(emb, vocab_file, out, modality_mean=tmp_path / "mean.npy", chunk_rows=300, progress=False)
    assert result.centering == "the given modality mean"
    expected = ConceptDecomposer(vocabulary, LAMBDA, batch_size=300).fit(modality_mean=mean).transform(X)
    W, *_ = read_codes(out)
    assert (W != expected).nnz == 0


# ------------------------------------------------------------------- bounded reading


@pytest.mark.parametrize("chunk_rows", [1, 50, 97, 128, 1000])
def test_reading_path_never_exceeds_chunk_rows(job_files, X, chunk_rows):
    source = EmbeddingSource(job_files[0])
    batches = list(source._batches(0, N, chunk_rows))  # what pyarrow hands us
    assert max(b.num_rows for b in batches) <= chunk_rows
    chunks = list(source.read(0, N, chunk_rows))
    assert [len(c) for c in chunks[:-1]] == [chunk_rows] * (len(chunks) - 1)
    assert 0 < len(chunks[-1]) <= chunk_rows
    assert [c.start for c in chunks] == list(range(0, N, chunk_rows))
    np.testing.assert_array_equal(np.concatenate([c.vectors for c in chunks]), X)
    # a range that starts and ends inside row groups
    inner = list(source.read(101, 333, chunk_rows))
    np.testing.assert_array_equal(np.concatenate([c.vectors for c in inner]), X[101:333])
    assert [i for c in inner for i in c.ids] == [f"clip-{i}" for i in range(101, 333)]


def test_job_decomposes_at_most_chunk_rows_at_a_time(job_files):
    emb, vocab_file, out = job_files
    seen = []
    decompose_job(emb, vocab_file, out, chunk_rows=64, progress=False, on_chunk=lambda c: seen.append((c.start, len(c))))
    assert max(n for _, n in seen) <= 64
    assert sorted(seen) == [(s, min(64, N - s)) for s in range(0, N, 64)]


def test_todo_ranges_fill_exactly_the_gaps():
    assert todo_ranges(10, [], 4) == [(0, 4), (4, 8), (8, 10)]
    assert todo_ranges(10, [(0, 4), (8, 10)], 3) == [(4, 7), (7, 8)]
    assert todo_ranges(10, [(4, 8)], 100) == [(0, 4), (8, 10)]
    assert todo_ranges(10, [(0, 10)], 3) == []


# ------------------------------------------------------------------- crash and resume


class Crash(Exception):
    pass


def test_resume_after_a_crash_keeps_finished_parts(job_files, reference):
    emb, vocab_file, out = job_files
    finished = []

    def crash_after_two(part):
        finished.append(part)
        if len(finished) == 2:
            raise Crash

    with pytest.raises(Crash):
        decompose_job(emb, vocab_file, out, chunk_rows=128, progress=False, on_part=crash_after_two)
    manifest = json.loads((out / "_manifest.json").read_text())
    assert [(p["start"], p["end"]) for p in manifest["parts"]] == [(0, 128), (128, 256)]
    assert not manifest["complete"]
    before = file_states(out)
    assert len(before) == 4  # codes + diagnostics of the two finished parts
    result = decompose_job(emb, vocab_file, out, chunk_rows=128, progress=False)
    assert (result.parts_written, result.rows_written, result.parts) == (4, N - 256, 6)
    after = file_states(out)
    assert {k: after[k] for k in before} == before  # finished parts were not rewritten
    assert_same_codes(out, reference(128))


def test_resume_after_sigkill(job_files, reference):
    """A real crash: the process is killed (no cleanup, no exception handling) after its second part."""
    emb, vocab_file, out = job_files
    script = textwrap.dedent(
        f"""
        import os, signal
        from audioconcepts.jobs import decompose_job
        done = []
        def kill(part):
            done.append(part)
            if len(done) == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        decompose_job({str(emb)!r}, {str(vocab_file)!r}, {str(out)!r}, chunk_rows=100, progress=False, on_part=kill)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=600, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    manifest = json.loads((out / "_manifest.json").read_text())
    assert len(manifest["parts"]) == 2 and not manifest["complete"]
    before = file_states(out)
    # a leftover temporary file from an interrupted write is cleared, an unrecorded part file is rewritten
    (out / "codes" / ".part-x.parquet.123.tmp").write_bytes(b"partial")
    result = decompose_job(emb, vocab_file, out, chunk_rows=100, progress=False)
    assert result.parts_written == 5
    assert not list(out.rglob("*.tmp"))
    after = file_states(out)
    assert {k: after[k] for k in before} == before
    assert_same_codes(out, reference(100))


def test_rerun_of_a_finished_job_does_nothing(job_files, reference):
    emb, vocab_file, out = job_files
    decompose_job(emb, vocab_file, out, chunk_rows=256, progress=False)
    before, manifest = file_states(out), (out / "_manifest.json").read_text()
    result = decompose_job(emb, vocab_file, out, chunk_rows=256, progress=False)
    assert (result.parts_written, result.rows_written, result.parts) == (0, 0, 3)
    assert file_states(out) == before
    assert json.loads((out / "_manifest.json").read_text())["parts"] == json.loads(manifest)["parts"]
    # a different chunk size changes no output: the finished job is still finished
    assert decompose_job(emb, vocab_file, out, chunk_rows=50, progress=False).parts_written == 0


def test_a_lost_part_file_is_decomposed_again(job_files, reference):
    emb, vocab_file, out = job_files
    decompose_job(emb, vocab_file, out, chunk_rows=256, progress=False)
    lost = sorted((out / "diagnostics").glob("part-*.parquet"))[1]
    lost.unlink()
    result = decompose_job(emb, vocab_file, out, chunk_rows=256, progress=False)
    assert result.parts_written == 1 and "missing" in result.notes[0]
    assert_same_codes(out, reference(256))


# ---------------------------------------------------------------- refused changes


def test_changed_parameters_are_refused_unless_overwrite(job_files, vocabulary, X):
    emb, vocab_file, out = job_files
    decompose_job(emb, vocab_file, out, chunk_rows=256, progress=False)
    with pytest.raises(JobConflictError, match=r"l1_penalty: was 0.15, now 0.3.*--overwrite"):
        decompose_job(emb, vocab_file, out, l1_penalty=0.3, chunk_rows=256, progress=False)
    with pytest.raises(JobConflictError, match="centering"):
        decompose_job(emb, vocab_file, out, modality_mean=np.zeros(X.shape[1]) + 0.01, chunk_rows=256, progress=False)
    result = decompose_job(emb, vocab_file, out, l1_penalty=0.3, chunk_rows=256, progress=False, overwrite=True)
    assert result.parts_written == 3
    W, *_ = read_codes(out)
    assert (W != ConceptDecomposer(vocabulary, 0.3, batch_size=256).fit(X).transform(X)).nnz == 0


def test_changed_input_or_vocabulary_is_refused(job_files, vocabulary, X, fingerprint, tmp_path):
    emb, vocab_file, out = job_files
    decompose_job(emb, vocab_file, out, chunk_rows=256, progress=False)
    write_parquet(emb, X[::-1].copy(), fingerprint)  # same size, different rows
    with pytest.raises(JobConflictError, match="input.files"):
        decompose_job(emb, vocab_file, out, chunk_rows=256, progress=False)
    write_parquet(emb, X, fingerprint)
    other = Vocabulary(vocabulary.concepts[:500], vocabulary.embeddings[:500], vocabulary.fingerprint)
    with pytest.raises(JobConflictError, match="vocabulary"):
        decompose_job(emb, other, out, chunk_rows=256, progress=False)


def test_output_folder_that_is_not_a_job_is_refused(job_files):
    emb, vocab_file, out = job_files
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(JobConflictError, match="not a job folder"):
        decompose_job(emb, vocab_file, out, progress=False)
    assert (out / "precious.txt").read_text() == "keep me"


def test_fingerprint_mismatch_is_refused(job_files, vocabulary, X, tmp_path):
    emb, vocab_file, out = job_files
    write_parquet(emb, X, "laion/clap-htsat-unfused;d=384")
    with pytest.raises(Exception, match="laion/clap-htsat-unfused"):
        decompose_job(emb, vocab_file, out, progress=False)
    with pytest.raises(ValueError, match="shipped concept list without embeddings.*--model"):
        decompose_job(emb, "captions-pruned-2k", out, progress=False)


def test_mixed_fingerprints_in_one_input_are_refused(tmp_path, X, fingerprint, vocabulary):
    folder = tmp_path / "parts"
    folder.mkdir()
    write_parquet(folder / "a.parquet", X[:10], fingerprint)
    write_parquet(folder / "b.parquet", X[10:20], "other-model")
    with pytest.raises(ValueError, match="several models"):
        EmbeddingSource(folder)


# --------------------------------------------------------------------- bad rows


def test_bad_rows_get_status_3_and_the_job_goes_on(tmp_path, vocabulary, X, fingerprint):
    bad = X[:300].astype(np.float32).copy()
    bad[5] = np.nan
    bad[130, 7] = np.inf
    bad[131] = 0.0
    n, d = bad.shape
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(bad.reshape(-1)), d)
    # row 200: a null vector (Parquet allows it); the in-memory reference sees it as NaN
    vectors = pa.array([None if i == 200 else v for i, v in enumerate(vectors.to_pylist())], pa.list_(pa.float32(), d))
    pq.write_table(
        pa.table({"id": [str(i) for i in range(n)], "fingerprint": [fingerprint] * n, "vector": vectors}),
        tmp_path / "bad.parquet",
        row_group_size=64,
    )
    vocabulary.save(tmp_path / "vocab.npz")
    result = decompose_job(tmp_path / "bad.parquet", tmp_path / "vocab.npz", tmp_path / "out", chunk_rows=128, progress=False)
    assert result.invalid_rows == 4 and result.parts == 3
    W, _, _, diag = read_codes(tmp_path / "out")
    status = diag["status"].to_numpy()
    assert sorted(np.flatnonzero(status == 3)) == [5, 130, 131, 200]
    assert W[[5, 130, 131, 200]].nnz == 0
    assert np.isnan(diag["cosine"].to_numpy()[[5, 130, 131, 200]]).all()
    reference_input = bad.copy()
    reference_input[200] = np.nan
    with pytest.warns(RuntimeWarning, match="4 of 300 rows"):
        expected = ConceptDecomposer(vocabulary, LAMBDA, batch_size=128).fit(reference_input).decompose(reference_input)
    assert (W != expected.codes).nnz == 0
    np.testing.assert_array_equal(status, expected.status)


def test_bad_arguments_give_clear_errors(job_files, tmp_path):
    emb, vocab_file, out = job_files
    with pytest.raises(ValueError, match="unknown engine"):
        decompose_job(emb, vocab_file, out, engine="spark", progress=False)
    with pytest.raises(ValueError, match="chunk_rows"):
        decompose_job(emb, vocab_file, out, chunk_rows=0, progress=False)
    with pytest.raises(ValueError, match="modality mean must be a finite vector of length 384"):
        decompose_job(emb, vocab_file, out, modality_mean=np.zeros(3), progress=False)
    with pytest.raises(FileNotFoundError, match="input not found"):
        decompose_job(tmp_path / "nope.parquet", vocab_file, out, progress=False)
    pq.write_table(pa.table({"id": ["a"], "vec": [[1.0]]}), tmp_path / "wrong.parquet")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['fingerprint', 'vector'\]"):
        decompose_job(tmp_path / "wrong.parquet", vocab_file, out, progress=False)


# ------------------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def cli():
    import typer
    from typer.testing import CliRunner

    from audioconcepts.jobs.commands import decompose_command

    app = typer.Typer()
    app.command("decompose")(decompose_command)
    app.command("unused")(lambda: None)  # two commands, so "decompose" is a sub-command as in cli.py
    return lambda *args: CliRunner().invoke(app, ["decompose", *map(str, args)])


def test_decompose_command_runs_resumes_and_refuses(cli, job_files, reference):
    emb, vocab_file, out = job_files
    first = cli(emb, "--vocab", vocab_file, "--out", out, "--chunk-rows", 300)
    assert first.exit_code == 0, first.output
    assert f"decomposed {N:,} rows in 3 parts" in first.output
    assert_same_codes(out, reference(300))
    again = cli(emb, "--vocab", vocab_file, "--out", out, "--chunk-rows", 300)
    assert again.exit_code == 0 and "already finished" in again.output
    changed = cli(emb, "--vocab", vocab_file, "--out", out, "-l", 0.2)
    assert changed.exit_code == 2 and "l1_penalty: was 0.15, now 0.2" in changed.output and "--overwrite" in changed.output
    assert "Traceback" not in changed.output


def test_decompose_command_exit_1_for_bad_rows(cli, tmp_path, vocabulary, X, fingerprint):
    bad = X[:50].copy()
    bad[3] = np.nan
    write_parquet(tmp_path / "bad.parquet", bad, fingerprint)
    vocabulary.save(tmp_path / "vocab.npz")
    result = cli(tmp_path / "bad.parquet", "--vocab", tmp_path / "vocab.npz", "--out", tmp_path / "out")
    assert result.exit_code == 1 and "1 rows were not usable" in result.output
    assert read_codes(tmp_path / "out")[3]["status"].tolist()[3] == 3
    missing = cli(tmp_path / "nope.parquet", "--vocab", tmp_path / "vocab.npz", "--out", tmp_path / "o2")
    assert missing.exit_code == 2 and "input not found" in missing.output


def test_progress_bar_shows_rows_per_second_and_eta():
    import io
    import time

    from rich.console import Console

    from audioconcepts.jobs.progress import job_progress

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120)
    with job_progress("decomposing", 1000, done=400, console=console) as advance:
        for _ in range(3):
            time.sleep(0.05)
            advance(100)
    text = buffer.getvalue()
    assert "decomposing" in text and "700/1000" in text and "rows/s" in text and "ETA" in text


def test_variable_length_float64_lists_are_read_and_wrong_lengths_are_bad_rows(tmp_path, vocabulary, X, fingerprint):
    """Parquet written by other tools: list<double> vectors; a row of the wrong length is status 3."""
    rows = [list(map(float, v)) for v in X[:40]]
    rows[9] = rows[9][:-1]
    pq.write_table(pa.table({"fingerprint": [fingerprint] * 40, "vector": pa.array(rows, pa.list_(pa.float64()))}),
                   tmp_path / "var.parquet", row_group_size=16)
    source = EmbeddingSource(tmp_path / "var.parquet")
    assert (source.n_rows, source.dim, source.has_ids) == (40, X.shape[1], False)
    vocabulary.save(tmp_path / "vocab.npz")
    result = decompose_job(tmp_path / "var.parquet", tmp_path / "vocab.npz", tmp_path / "out", chunk_rows=15, progress=False)
    W, ids, _, diag = read_codes(tmp_path / "out")
    assert result.invalid_rows == 1 and diag["status"].tolist()[9] == 3
    assert ids == [str(i) for i in range(40)]  # no id column: the row number
    expected_input = X[:40].astype(np.float64)
    expected_input[9] = np.nan
    with pytest.warns(RuntimeWarning):
        expected = ConceptDecomposer(vocabulary, LAMBDA, batch_size=15).fit(expected_input).transform(expected_input)
    assert (W != expected).nnz == 0
