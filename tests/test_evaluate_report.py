"""The reproduce command on a small synthetic embeddings folder: fully offline, no model at all
(class prompts and vocabulary precomputed), through the typer command function."""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from audioconcepts import Embeddings, Vocabulary
from audioconcepts.encoders.precomputed import save_precomputed
from audioconcepts.evaluate.commands import reproduce_command

FP = "synthetic-model"


@pytest.fixture()
def app():
    app = typer.Typer()
    app.command("reproduce")(reproduce_command)

    @app.callback()
    def main() -> None:
        """test app"""

    return app


@pytest.fixture()
def folder(tmp_path):
    rng = np.random.default_rng(0)
    k, d = 80, 32
    C = rng.normal(size=(k, d))
    C /= np.linalg.norm(C, axis=1, keepdims=True)
    Vocabulary([f"concept{i}" for i in range(k)], C.astype(np.float32), FP).save(tmp_path / "vocab.npz")
    classes = ["dog", "rain", "siren", "engine"]
    y = np.repeat(np.arange(4), 30)
    Z = C[:4][y] + 0.3 * C[rng.integers(4, k, 120)] + 0.2 * rng.normal(size=(120, d))
    ids = [f"clip{i}" for i in range(120)]
    emb = tmp_path / "emb"
    emb.mkdir()
    save_precomputed(emb / "esc50.parquet", Embeddings(Z.astype(np.float32), FP), ids=ids)
    (emb / "esc50.csv").write_text("id,label,fold\n" + "".join(f"{i},{classes[c]},{1 + n % 5}\n" for n, (i, c) in enumerate(zip(ids, y))))
    save_precomputed(emb / "esc50.prompts.parquet", Embeddings(C[:4].astype(np.float32), FP), ids=classes)
    return tmp_path


def test_reproduce_command_offline_without_a_model(app, folder):
    out = folder / "report"
    result = CliRunner().invoke(
        app,
        ["reproduce", "--embeddings", str(folder / "emb"), "--model", "", "--vocab", str(folder / "vocab.npz"),
         "--recipe", str(folder / "vocab.npz"), "--resamples", "50", "--epochs", "3", "--no-cache", "-o", str(out), "-l", "0.1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    md = (out / "report.md").read_text()
    row = next(l for l in md.splitlines() if l.startswith("| ESC-50 | accuracy |"))
    results = json.loads((out / "results.json").read_text())
    dense = results["datasets"]["esc50"]["zero_shot"]["dense"]["value"]
    assert dense > 0.9  # clips sit near their class prompt
    assert f"{dense:.3f}" in row and "0.939" in row and f"{dense - 0.939:+.3f}" in row  # ours, the paper's, the difference
    assert (out / "fig_lambda_classification.png").stat().st_size > 10_000
    assert "Clotho" in md.split("## Skipped")[1]  # absent datasets are listed with the reason
    if "finetuned" in results["datasets"]["esc50"]:  # fold 5 held out
        assert results["datasets"]["esc50"]["finetuned"]["n_test"] == 24


def test_reproduce_command_errors(app, tmp_path):
    r = CliRunner().invoke(app, ["reproduce", "--no-cache", "-o", str(tmp_path / "r")])
    assert r.exit_code == 2 and "--data-root" in r.output
    r = CliRunner().invoke(app, ["reproduce", "--embeddings", str(tmp_path), "--model", "", "--no-cache", "-o", str(tmp_path / "r")])
    assert r.exit_code == 2 and "no dataset found" in r.output and "esc50.csv" in r.output
    r = CliRunner().invoke(app, ["reproduce", "--embeddings", str(tmp_path / "nope"), "--model", "", "--no-cache"])
    assert r.exit_code == 2 and "not found" in r.output


def test_reproduce_from_audio_in_the_published_layout(tmp_path, clap_dir):
    """data_root path: ESC-50 layout with real ESC-10 clips, embedded by a tiny random CLAP checkpoint
    loaded like a real one; vocabulary from a text file embedded with the same model."""
    import csv
    import shutil
    from pathlib import Path

    from audioconcepts.encoders import load_encoder
    from audioconcepts.encoders.cache import EmbeddingCache
    from audioconcepts.evaluate.report import ReportSettings, reproduce

    fixtures = Path(__file__).parent / "fixtures" / "esc10"
    root = tmp_path / "data"
    (root / "esc50" / "meta").mkdir(parents=True)
    shutil.copy(fixtures / "meta.csv", root / "esc50" / "meta" / "esc50.csv")
    (root / "esc50" / "audio").mkdir()
    with (fixtures / "meta.csv").open(newline="") as f:
        names = [r["filename"] for r in csv.DictReader(f)]
    for n in names:
        shutil.copy(fixtures / n, root / "esc50" / "audio" / n)
    words = tmp_path / "concepts.txt"
    words.write_text("\n".join(["rain", "dog", "engine", "bird", "water", "fire", "baby", "clock", "saw", "wind", "sea", "crowd", "bell", "car", "voice", "music"]))
    settings = ReportSettings(
        l1_penalty=0.05, lambdas=(0.05, 0.2), n_resamples=20, vocab=str(words), vocab_sizes=(8,), recipes=(),
        finetune=False, similarity_ks=(1, 3),
    )  # fmt: skip
    encoder = load_encoder(str(clap_dir))
    with EmbeddingCache(tmp_path / "cache.sqlite") as cache:
        report = reproduce(data_root=root, encoder=encoder, out_dir=tmp_path / "out", settings=settings, cache=cache)
    esc = report.results["datasets"]["esc50"]
    assert esc["n"] == 10 and esc["missing"] == 0 and report.results["fingerprint"] == encoder.fingerprint
    md = report.markdown.read_text()
    row = next(l for l in md.splitlines() if l.startswith("| ESC-50 | accuracy |"))
    assert "0.939" in row  # the paper's dense number beside ours
    skipped = dict(report.skipped)
    assert "no folder urbansound8k or UrbanSound8K" in skipped["UrbanSound8K"]
    assert all(p.is_file() for p in report.figures)
