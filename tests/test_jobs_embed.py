"""The out-of-core embed job with a tiny random CLAP: parts, failures, resume, reruns, and its output
decomposed by the decompose job over a vocabulary embedded with the same model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import build_tiny_clap

from audioconcepts import ConceptDecomposer
from audioconcepts.encoders import load_encoder
from audioconcepts.encoders.cached import embed_files
from audioconcepts.jobs import EmbeddingSource, JobConflictError, decompose_job, embed_job, read_codes

FIXTURES = Path(__file__).parent / "fixtures" / "esc10"


@pytest.fixture(scope="module")
def encoder(clap_dir):
    return load_encoder(str(clap_dir))


@pytest.fixture
def sounds(tmp_path) -> Path:
    """The ESC-10 fixture clips plus one corrupt file, sorted so the corrupt one is in the middle."""
    folder = tmp_path / "sounds"
    folder.mkdir()
    for clip in sorted(FIXTURES.glob("*.flac")):
        shutil.copy(clip, folder / clip.name)
    (folder / "4-160000-A-99.flac").write_bytes(b"not audio at all")
    return folder


def states(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.glob("part-*.parquet")}


def test_embed_job_parts_equal_embedding_the_files_at_once(sounds, encoder, tmp_path):
    result = embed_job([sounds], encoder, tmp_path / "job", chunk_files=4, progress=False)
    files = sorted(str(p) for p in sounds.glob("*.flac"))
    assert (result.files, result.parts, result.parts_written) == (len(files), 3, 3)
    assert [Path(p).name for p, _ in result.failures] == ["4-160000-A-99.flac"]
    whole = embed_files(encoder, files, None)
    table = pq.read_table(result.embeddings)
    assert table.column("id").to_pylist() == whole.paths
    assert table.column("content_hash").to_pylist() == whole.content_hashes
    got = np.stack(table.column("vector").to_numpy(zero_copy_only=False))
    np.testing.assert_allclose(got, whole.embeddings.vectors, atol=1e-6)
    source = EmbeddingSource(result.embeddings)  # the parts folder is a decompose input
    assert (source.n_rows, source.dim, source.fingerprint) == (len(files) - 1, encoder.dim, encoder.fingerprint)


def test_embed_job_resumes_reruns_and_refuses_a_changed_file_list(sounds, encoder, tmp_path):
    out = tmp_path / "job"
    calls = []

    def crash(part):
        calls.append(part)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embed_job([sounds], encoder, out, chunk_files=3, progress=False, on_part=crash)
    before = states(out / "embeddings")
    assert len(before) == 2
    result = embed_job([sounds], encoder, out, chunk_files=3, progress=False)
    assert (result.parts, result.parts_written) == (4, 2)
    after = states(out / "embeddings")
    assert {k: after[k] for k in before} == before
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["complete"] and manifest["rows_done"] == 11
    again = embed_job([sounds], encoder, out, chunk_files=3, progress=False)
    assert again.parts_written == 0 and states(out / "embeddings") == after
    shutil.copy(next(FIXTURES.glob("*.flac")), sounds / "zzz-new.flac")
    with pytest.raises(JobConflictError, match="listing_sha256"):
        embed_job([sounds], encoder, out, chunk_files=3, progress=False)


def test_embedded_parts_decompose_with_a_vocabulary_embedded_by_the_model(sounds, encoder, clap_dir, tmp_path):
    embedded = embed_job([sounds], encoder, tmp_path / "job", chunk_files=5, progress=False)
    words = ["dog", "rain", "crying baby", "clock tick", "sneezing", "helicopter", "chainsaw", "rooster",
             "fire crackling", "sea waves", "engine", "bird", "wind", "water", "voice", "music"]
    (tmp_path / "words.txt").write_text("\n".join(words))
    out = tmp_path / "codes"
    result = decompose_job(embedded.embeddings, tmp_path / "words.txt", out, model=str(clap_dir), l1_penalty=0.05,
                           chunk_rows=4, progress=False)
    assert result.rows == 10 and result.invalid_rows == 0
    W, ids, _, _ = read_codes(out)
    vectors = EmbeddingSource(embedded.embeddings).read(0, 10, 10).__next__().vectors
    from audioconcepts.vocab.sources import embed_vocabulary

    reference = ConceptDecomposer(embed_vocabulary(tmp_path / "words.txt", encoder), 0.05, batch_size=4).fit(vectors)
    assert (W != reference.transform(vectors)).nnz == 0
    assert W.nnz > 0 and ids == embedded_ids(embedded.embeddings)
    with pytest.raises(ValueError, match="--model .* has fingerprint"):
        other = build_tiny_clap(tmp_path / "other-clap", seed=1)
        decompose_job(embedded.embeddings, tmp_path / "words.txt", tmp_path / "x", model=str(other), progress=False)


def embedded_ids(folder: str) -> list[str]:
    return pq.read_table(folder).column("id").to_pylist()


def test_audioconcepts_embed_to_a_folder_is_the_resumable_job_and_feeds_decompose(sounds, clap_dir, tmp_path):
    from typer.testing import CliRunner

    from audioconcepts.cli import app

    runner = CliRunner()
    out, codes = tmp_path / "job", tmp_path / "codes"
    common = ["--cache-dir", str(tmp_path / "cache")]
    first = runner.invoke(app, ["embed", str(sounds), "-m", str(clap_dir), "--out", str(out), "--chunk-files", "4", *common])
    assert first.exit_code == 1 and "4-160000-A-99.flac" in first.stderr  # the corrupt file is listed, the rest written
    parts = states(out / "embeddings")
    assert len(parts) == 3  # 11 files in parts of 4
    again = runner.invoke(app, ["embed", str(sounds), "-m", str(clap_dir), "--out", str(out), "--chunk-files", "4", *common])
    assert "already finished" in again.stderr and states(out / "embeddings") == parts
    concepts = tmp_path / "concepts.txt"
    concepts.write_text("dog\nrain\nrooster\nclock\n", encoding="utf-8")
    result = runner.invoke(
        app, ["decompose", str(out / "embeddings"), "--vocab", str(concepts), "-m", str(clap_dir), "--out", str(codes), *common]
    )
    assert result.exit_code == 0, result.output
    diagnostics = pq.read_table(codes / "diagnostics").to_pandas()
    assert len(diagnostics) == 10 and (diagnostics["status"] == 0).all()
