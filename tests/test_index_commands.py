"""The index, search and profile commands, driven through typer as `audioconcepts` will run them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from audioconcepts.index import ConceptIndex
from audioconcepts.index.commands import index_command, profile_command, search_command
from audioconcepts.index.profile import profile
from audioconcepts.index.query import concept_query

FIXTURES = Path(__file__).parent / "fixtures" / "esc10"
CONCEPTS = ["rain", "dog barking", "bird", "engine", "water", "fire", "clock", "baby", "wind", "sea"]

app = typer.Typer()
app.command("index")(index_command)
app.command("search")(search_command)
app.command("profile")(profile_command)
runner = CliRunner()


@pytest.fixture(scope="module")
def built(clap_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    sounds = root / "sounds"
    sounds.mkdir()
    for f in sorted(FIXTURES.glob("*.flac"))[:4]:
        shutil.copy(f, sounds / f.name)
    (sounds / "broken.flac").write_bytes(b"fLaC but not really")
    vocab = root / "concepts.txt"
    vocab.write_text("\n".join(CONCEPTS) + "\n")
    db = root / "ix.duckdb"
    args = [
        "index",
        str(sounds),
        "-m",
        str(clap_dir),
        "--vocab",
        str(vocab),
        "--db",
        str(db),
        "--cache-dir",
        str(root / "cache"),
        "--labels",
        str(FIXTURES / "meta.csv"),
    ]
    first = runner.invoke(app, args)
    (sounds / "broken.flac").unlink()
    second = runner.invoke(app, args)
    return {"db": db, "sounds": sounds, "vocab": vocab, "args": args, "first": first, "second": second, "root": root}


def test_index_reports_failures_then_updates(built):
    first, second = built["first"], built["second"]
    assert first.exit_code == 1, first.output
    assert "broken.flac" in first.stderr and "4 files indexed (4 added" in first.stderr
    assert second.exit_code == 0, second.output
    assert "4 files indexed (0 added, 0 changed, 0 removed, 4 unchanged; 0 embedded now)" in second.stderr
    with ConceptIndex(built["db"]) as index:
        assert len(index) == 4 and index.failures() == []
        assert {c.label for c in index.clips()} == {"rain", "helicopter", "chainsaw", "sneezing"}


def test_search_json_equals_the_python_api(built):
    db = str(built["db"])
    result = runner.invoke(app, ["search", "rain or bird or water", "--db", db, "--json", "--limit", "3"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    with ConceptIndex(db) as index:
        expected = concept_query(index, "rain or bird or water", limit=3)
        assert [h["id"] for h in data["hits"]] == expected.ids
        assert data["total"] == expected.total
        best = expected.hits[0]
    narrowed = runner.invoke(app, ["search", "rain or bird or water", "--db", db, "--json", "--label", "rain"])
    with ConceptIndex(db) as index:
        in_label = concept_query(index, "rain or bird or water", label="rain")
    assert [h["id"] for h in json.loads(narrowed.stdout)["hits"]] == in_label.ids
    assert all(h["label"] == "rain" for h in json.loads(narrowed.stdout)["hits"])
    table = runner.invoke(app, ["search", "rain or bird or water", "--db", db], env={"COLUMNS": "250"})
    assert table.exit_code == 0 and f"{best.score:.3f}" in table.stdout and f"of {expected.total}" in table.stdout


def test_search_like_with_plus_and_minus(built):
    db = str(built["db"])
    with ConceptIndex(db) as index:
        clip = index.clip(index.ids()[0])
    first_concept = clip.concepts[0][0]
    result = runner.invoke(
        app, ["search", "--like", clip.path, "--plus", "engine=0.4", "--minus", first_concept, "--db", db, "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["source"]["id"] == clip.id and clip.id not in [h["id"] for h in data["hits"]]
    assert {(c["concept"], c["after"]) for c in data["changes"]} == {("engine", 0.4), (first_concept, 0.0)}
    by_id = runner.invoke(
        app, ["search", "--like", str(clip.id), "--plus", "engine=0.4", "--minus", first_concept, "--db", db, "--json"]
    )
    assert json.loads(by_id.stdout)["hits"] == data["hits"]


def test_text_search_command(built, clap_dir):
    db = str(built["db"])
    result = runner.invoke(
        app, ["search", "rain on a roof", "--text", "-m", str(clap_dir), "--db", db, "--json", "--no-cache"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["rank"] == "dense" and data["total"] == 4 and len(data["hits"]) == 4
    # the index remembers the model it was built with (as an absolute path), so --model is optional
    from audioconcepts.index import ConceptIndex

    index = ConceptIndex(db)
    assert index.meta["model"] == str(Path(clap_dir).resolve())
    index.close()
    remembered = runner.invoke(app, ["search", "rain on a roof", "--text", "--db", db, "--json", "--no-cache"])
    assert remembered.exit_code == 0, remembered.output
    assert json.loads(remembered.stdout)["hits"] == data["hits"]


def test_profile_command_json_and_by_label(built):
    db = str(built["db"])
    result = runner.invoke(app, ["profile", "--db", db, "--label", "rain", "--json", "--top", "5"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    with ConceptIndex(db) as index:
        expected = profile(index, label="rain", limit=5)
    assert [r["concept"] for r in data["concepts"]] == [r.concept for r in expected.rows] and data["n_clips"] == 1
    by_label = runner.invoke(app, ["profile", "--db", db, "--by-label", "--json"])
    assert by_label.exit_code == 0 and len(json.loads(by_label.stdout)) == 4
    folder = runner.invoke(app, ["profile", "--db", db, "--folder", str(built["sounds"])], env={"COLUMNS": "200"})
    assert folder.exit_code == 0 and "4 clips" in " ".join(folder.stdout.split())  # the title may wrap


@pytest.mark.parametrize(
    "args, message",
    [
        (["search", "rian > 0.1"], "did you mean 'rain'"),
        (["search", "rain >"], "expected a number"),
        (["search", "--like", "no/such/file.wav"], "not in the index"),
        (["profile", "--query", "(rain"], "expected ')'"),
    ],
)
def test_bad_queries_exit_2_with_one_message(built, args, message):
    result = runner.invoke(app, [*args, "--db", str(built["db"])])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output


def test_missing_index_and_other_vocabulary_exit_2(built):
    missing = runner.invoke(app, ["search", "rain", "--db", str(built["root"] / "none.duckdb")])
    assert missing.exit_code == 2 and "no concept index" in missing.stderr
    other = built["root"] / "other.txt"
    other.write_text("rain\nthunder\n")
    args = list(built["args"])
    args[args.index("--vocab") + 1] = str(other)
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2 and "vocabulary" in refused.stderr and "--rebuild" in refused.stderr
