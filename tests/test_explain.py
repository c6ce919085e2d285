"""`audioconcepts explain` and `embed` end to end, with a tiny random CLAP checkpoint and real ESC-10 clips:
outputs, failures and exit codes, the embedding cache, centering, vocabularies, Parquet round trip."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

pytest.importorskip("torch")
pytest.importorskip("transformers")

from audioconcepts.centering import audio_modality_mean
from audioconcepts.cli import app
from audioconcepts.embeddings import Embeddings
from audioconcepts.encoders import load_encoder
from audioconcepts.encoders.cache import EmbeddingCache
from audioconcepts.encoders.hf_clap import HFClapEncoder
from audioconcepts.explain import explain_audio
from audioconcepts.vocab.sources import concept_list

ESC10 = Path(__file__).parent / "fixtures" / "esc10"
CLIPS = sorted(ESC10.glob("*.flac"))
CONCEPTS = ["dog", "rain", "engine", "bird", "water", "fire", "baby", "clock", "wind", "speech", "saw", "rooster"]

runner = CliRunner()


@pytest.fixture(autouse=True)
def shared_cache(tmp_path_factory, monkeypatch) -> Path:
    """One cache for this module's tests (never the user's): the reference set is embedded once."""
    directory = tmp_path_factory.getbasetemp() / "explain-cache"
    monkeypatch.setenv("AUDIOCONCEPTS_CACHE", str(directory))
    return directory


@pytest.fixture(scope="module")
def encoder(clap_dir):
    return load_encoder(str(clap_dir))


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("vocab") / "concepts.txt"
    path.write_text("# a small vocabulary\n\n" + "\n".join(f"  {c}  " for c in CONCEPTS) + "\n# the end\n")
    return path


@pytest.fixture
def windows_embedded(monkeypatch) -> list[int]:
    """Counts audio windows that reach the model (cache misses), over every encoder instance."""
    counts: list[int] = []
    original = HFClapEncoder._embed_windows

    def counting(self, windows):
        counts.append(len(windows))
        return original(self, windows)

    monkeypatch.setattr(HFClapEncoder, "_embed_windows", counting)
    return counts


def crops(folder: Path, n: int, seconds: float = 0.5) -> list[Path]:
    """n distinct short clips cut from the fixture audio (different clips and offsets)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        x, rate = sf.read(CLIPS[i % len(CLIPS)], dtype="float32")
        start = int((i // len(CLIPS)) * seconds * rate)
        paths.append(folder / f"crop{i:02d}.wav")
        sf.write(paths[-1], x[start : start + int(seconds * rate)], rate)
    return paths


def test_explain_prints_a_table_and_writes_csv_with_the_default_vocabulary(clap_dir, tmp_path):
    out = tmp_path / "concepts.csv"
    result = runner.invoke(app, ["explain", str(ESC10), "--model", str(clap_dir), "--csv", str(out), "--top", "3"])
    assert result.exit_code == 0, result.output
    assert "Top concepts at l1_penalty=0.15" in result.stdout and "cosine" in result.stdout
    assert all(p.name in result.stdout for p in CLIPS)
    assert "centering: the audio modality mean of the bundled reference set of 20 ESC-10 clips" in result.stderr
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [Path(r["path"]).name for r in rows] == [p.name for p in CLIPS]
    assert rows[0].keys() >= {"path", "nnz", "cosine", "concept_1", "weight_1", "concept_3", "weight_3"}
    assert all(0 < float(r["weight_1"]) and int(r["nnz"]) >= 1 for r in rows)


def test_json_is_the_only_stdout_and_a_corrupt_file_is_reported(clap_dir, vocab_file, tmp_path):
    folder = tmp_path / "sounds"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(CLIPS[0], folder / "a.flac")
    shutil.copy(CLIPS[1], folder / "sub" / "b.flac")
    (folder / "broken.wav").write_bytes(b"RIFF not really a wav file" * 10)
    (folder / "notes.txt").write_text("not audio, not picked up from a folder")
    result = runner.invoke(app, ["explain", str(folder), "--model", str(clap_dir), "--vocab", str(vocab_file), "--json"])
    assert result.exit_code == 1, result.output
    rows = json.loads(result.stdout)
    assert sorted(Path(r["path"]).name for r in rows) == ["a.flac", "b.flac"]
    for row in rows:
        assert row.keys() == {"path", "concepts", "nnz", "cosine"}
        assert 1 <= len(row["concepts"]) <= 5 and row["nnz"] >= len(row["concepts"]) and 0 < row["cosine"] <= 1
        assert {c["concept"] for c in row["concepts"]} <= set(CONCEPTS)
        assert all(c["weight"] > 0 for c in row["concepts"])
    assert "broken.wav" in result.stderr and "notes.txt" not in result.stderr
    assert "1 file(s) failed" in result.stderr


def test_second_run_embeds_nothing_and_a_new_file_only_itself(encoder, vocab_file, tmp_path, windows_embedded):
    folder = tmp_path / "sounds"
    files = crops(folder, 3, seconds=2.5)  # 3 windows each
    with EmbeddingCache(tmp_path / "own.sqlite") as cache:
        first = explain_audio([folder], encoder, vocab_file, cache=cache)
        assert first.computed == 3 and sum(windows_embedded) == 3 * 3 + 20 * 5  # + the reference set, 5 s clips
        windows_embedded.clear()
        second = explain_audio([folder], encoder, vocab_file, cache=cache)
        assert second.computed == 0 and windows_embedded == []
        assert second.rows == first.rows
        shutil.copy(files[0], folder / "same-bytes.wav")  # a copy is a cache hit under a new name
        crops(tmp_path / "more", 1, seconds=1.0)[0].rename(folder / "new.wav")
        third = explain_audio([folder], encoder, vocab_file, cache=cache)
        assert third.computed == 1 and sum(windows_embedded) == 1
        assert len(third.rows) == 5 and third.centering == "the bundled reference set of 20 ESC-10 clips"


def test_centering_switches_to_your_files_at_the_threshold(encoder, clap_dir, vocab_file, tmp_path, windows_embedded):
    with EmbeddingCache(tmp_path / "own.sqlite") as cache:
        reference = audio_modality_mean(encoder, Embeddings(np.zeros((0, 16), np.float32), encoder.fingerprint), cache)
        assert reference.source == "the bundled reference set of 20 ESC-10 clips"
        windows_embedded.clear()
        again = audio_modality_mean(encoder, Embeddings(np.zeros((0, 16), np.float32), encoder.fingerprint), cache)
        assert windows_embedded == [] and np.array_equal(again.mean, reference.mean)  # cached per model
    folder = tmp_path / "many"
    crops(folder, 20)
    result = runner.invoke(app, ["explain", str(folder), "-m", str(clap_dir), "--vocab", str(vocab_file)])
    assert result.exit_code == 0, result.output
    assert "centering: the audio modality mean of your 20 files" in result.stderr
    (folder / "crop19.wav").unlink()
    result = runner.invoke(app, ["explain", str(folder), "-m", str(clap_dir), "--vocab", str(vocab_file)])
    assert "the bundled reference set of 20 ESC-10 clips" in result.stderr


def test_vocab_file_ignores_blank_lines_and_comments(vocab_file):
    assert concept_list(str(vocab_file)) == CONCEPTS
    assert len(concept_list("captions-2k")) == 2000


def test_unknown_vocabulary_and_unknown_model_exit_2_without_traceback(clap_dir, monkeypatch):
    result = runner.invoke(app, ["explain", str(CLIPS[0]), "-m", str(clap_dir), "--vocab", "no-such-vocab"])
    assert result.exit_code == 2 and "neither a shipped name (see `audioconcepts vocab list`) nor a file" in result.stderr
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for command in (["explain", str(CLIPS[0])], ["embed", str(CLIPS[0]), "--out", "x.parquet"]):
        result = runner.invoke(app, [*command, "--model", "no-such-org/no-such-clap"])
        assert result.exit_code == 2, result.output
        assert "could not load model 'no-such-org/no-such-clap'" in result.stderr and "HF_HUB_OFFLINE" in result.stderr
        assert "Traceback" not in result.output and result.stdout == ""


def test_embed_writes_parquet_that_loads_back(encoder, clap_dir, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    folder = tmp_path / "sounds"
    folder.mkdir()
    for clip in CLIPS[:3]:
        shutil.copy(clip, folder / clip.name)
    (folder / "empty.flac").write_bytes(b"")
    out = tmp_path / "emb.parquet"
    result = runner.invoke(app, ["embed", str(folder), "--model", str(clap_dir), "--out", str(out), "--no-cache"])
    assert result.exit_code == 1 and "empty.flac" in result.stderr
    table = pq.read_table(out)
    assert table.column_names == ["id", "path", "content_hash", "fingerprint", "vector"]
    assert [Path(p).name for p in table.column("path").to_pylist()] == [c.name for c in CLIPS[:3]]
    assert len(set(table.column("content_hash").to_pylist())) == 3
    loaded = load_encoder(f"precomputed:{out}")
    assert loaded.fingerprint == encoder.fingerprint
    expected = encoder.embed_audio(sorted(str(p) for p in folder.glob("*.flac") if p.stat().st_size)).vectors
    np.testing.assert_allclose(loaded.embeddings.vectors, expected, atol=1e-6)


class RecordedProgress:
    """A `Progress` that records each task's description, total and how far it was advanced."""

    def __init__(self) -> None:
        self.tasks: dict[str, list[int]] = {}  # description -> [total, done]

    def __call__(self, description: str, total: int):
        self.tasks[description] = task = [total, 0]

        def advance(n: int) -> None:
            task[1] += n

        return advance


def test_progress_covers_concepts_files_and_reference_clips(encoder, vocab_file, tmp_path):
    folder = tmp_path / "sounds"
    crops(folder, 2)
    with EmbeddingCache(tmp_path / "own.sqlite") as cache:
        for _ in range(2):  # embedded, then all from the cache: every task still completes
            progress = RecordedProgress()
            explain_audio([folder], encoder, vocab_file, cache=cache, progress=progress)
            assert progress.tasks == {
                "embedding concepts": [len(CONCEPTS), len(CONCEPTS)],
                "embedding audio": [2, 2],
                "embedding reference clips": [20, 20],
            }


def test_explain_shows_progress_on_a_terminal_only(clap_dir, vocab_file, tmp_path, monkeypatch):
    folder = tmp_path / "sounds"
    crops(folder, 2)
    args = ["explain", str(folder), "-m", str(clap_dir), "--vocab", str(vocab_file), "--no-cache"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and "embedding" not in result.stderr  # not a terminal: no bars
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich: treat the captured stderr as a terminal
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for task in ("embedding concepts", "embedding audio", "embedding reference clips"):
        assert task in result.stderr
