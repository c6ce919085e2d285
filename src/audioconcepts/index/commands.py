"""Command functions for `audioconcepts index`, `audioconcepts search` and `audioconcepts profile`.

Registered by cli.py (``app.command("index")(index_command)`` ...). Only typer and the standard
library are imported at module level, so `audioconcepts --help` stays fast.

Exit status: 0 success; 1 some files could not be indexed (listed on stderr, the others indexed);
2 the index, model or vocabulary cannot be used, or the query is wrong (one message, no traceback).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

EXIT_SOME_FILES_FAILED, EXIT_UNUSABLE = 1, 2
DEFAULT_DB = Path("audioconcepts-index.duckdb")
_DB_HELP = "The index file (DuckDB)."


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_UNUSABLE)


def _open_index(db: Path):
    from audioconcepts.index.store import ConceptIndex, IndexMismatchError

    try:
        return ConceptIndex(db)
    except (FileNotFoundError, IndexMismatchError) as e:
        raise _fail(str(e)) from None
    except Exception as e:  # duckdb.IOException etc.: not a DuckDB file, or locked by a writer
        raise _fail(f"cannot open the index {os.fspath(db)!r}: {e}") from None


def _emit_json(data) -> None:
    typer.echo(json.dumps(data, indent=1, ensure_ascii=False))


def index_command(
    paths: list[Path] = typer.Argument(
        ..., help="Audio files, or folders searched recursively for .wav .flac .ogg .mp3 .aif .aiff files."
    ),
    model: str = typer.Option(
        ..., "--model", "-m", help="A CLAP model: Hugging Face id or local checkpoint directory."
    ),
    vocab: str = typer.Option(
        "captions-2k", "--vocab", help="A shipped vocabulary name or a text file (one concept per line)."
    ),
    db: Path = typer.Option(DEFAULT_DB, "--db", help=_DB_HELP),
    l1_penalty: float = typer.Option(
        0.15, "--l1-penalty", "-l", min=1e-6, help="Lambda in SpLiCE units (0.05 ~ 100 concepts, 0.25 ~ 15)."
    ),
    cache_dir: Path | None = typer.Option(
        None,
        "--cache-dir",
        help="Directory of the embedding cache (default: $AUDIOCONCEPTS_CACHE or ~/.cache/audioconcepts).",
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the embedding cache."),
    labels_csv: Path | None = typer.Option(
        None,
        "--labels",
        help="CSV with a file column (path/filename/file/id) and a label column (label/category/class/tag).",
    ),
    folder_labels: bool = typer.Option(
        False, "--folder-labels", help="Label each file with the name of its parent folder."
    ),
    rebuild: bool = typer.Option(
        False, "--rebuild", help="Start the index over (needed to change model, vocabulary or l1_penalty)."
    ),
) -> None:
    """Build or update a concept index of audio files: only new or changed files are embedded and
    decomposed; files that vanished are removed. Exit status: 0 done, 1 some files failed (listed,
    the rest indexed), 2 model, vocabulary or index unusable."""
    from audioconcepts.index.build import read_labels_csv

    if labels_csv is not None and folder_labels:
        raise typer.BadParameter("give --labels or --folder-labels, not both", param_hint="--labels")
    labels = "folder" if folder_labels else None
    if labels_csv is not None:
        try:
            labels = read_labels_csv(labels_csv)
        except (OSError, ValueError) as e:
            raise _fail(f"cannot read labels: {e}") from None
    report, _ = index_files(paths, model, vocab, db, l1_penalty, cache_dir, no_cache, labels=labels, rebuild=rebuild)
    typer.echo(
        f"{db}: {report.total} files indexed ({report.added} added, {report.updated} changed, {report.removed} removed, "
        f"{report.unchanged} unchanged; {report.embedded} embedded now); centering: {report.centering}",
        err=True,
    )
    if report.failures:
        for path, reason in report.failures:
            typer.echo(f"error: {path}: {reason}", err=True)
        typer.echo(f"error: {len(report.failures)} file(s) could not be indexed; the others were", err=True)
        raise typer.Exit(EXIT_SOME_FILES_FAILED)


def index_files(
    paths: list[Path],
    model: str,
    vocab: str,
    db: Path,
    l1_penalty: float,
    cache_dir: Path | None,
    no_cache: bool,
    *,
    labels=None,
    rebuild: bool = False,
):
    """Index (or update the index of) `paths` into `db` with progress bars; returns the build report
    and the loaded encoder. Unusable model, vocabulary or index: one message, exit status 2."""
    from audioconcepts.cli import _find_files, _model_errors, _open_cache, _progress
    from audioconcepts.index.build import build_index
    from audioconcepts.index.store import IndexMismatchError
    from audioconcepts.vocab.sources import embed_vocabulary

    files = _find_files(paths)
    with _open_cache(cache_dir, no_cache) as cache, _model_errors():
        from audioconcepts.encoders import load_encoder

        typer.echo(f"loading {model} ...", err=True)
        encoder = load_encoder(model)
        with _progress() as progress:
            try:
                vocabulary = embed_vocabulary(vocab, encoder, cache, progress=progress)
            except (OSError, ValueError) as e:
                raise _fail(f"cannot use vocabulary {vocab!r}: {e}") from None
            try:
                report = build_index(
                    files, encoder, vocabulary, db, l1_penalty=l1_penalty, cache=cache, labels=labels,
                    vocabulary_name=vocab, rebuild=rebuild, progress=progress,
                )
            except IndexMismatchError as e:
                raise _fail(str(e)) from None
    return report, encoder


def search_command(
    query: str | None = typer.Argument(
        None, help="A concept query (e.g. 'rain > 0.1 and not traffic'), or with --text free text."
    ),
    db: Path = typer.Option(DEFAULT_DB, "--db", help=_DB_HELP),
    text: bool = typer.Option(
        False, "--text", help="Treat the query as free text: embed it with --model and rank densely and by concepts."
    ),
    like: str | None = typer.Option(None, "--like", help="Search by example: an indexed file (path) or clip id."),
    plus: list[str] = typer.Option(
        [],
        "--plus",
        help="With --like: add a concept ('dog': by the clip's largest weight; 'dog=0.2': set it). Repeatable.",
    ),
    minus: list[str] = typer.Option([], "--minus", help="With --like: remove a concept. Repeatable."),
    limit: int = typer.Option(10, "--limit", "-n", min=0, help="Results per page."),
    offset: int = typer.Option(0, "--offset", min=0, help="Skip this many results (paging)."),
    model: str | None = typer.Option(
        None, "--model", "-m", help="With --text: the index's model (Hugging Face id or directory)."
    ),
    rank: str = typer.Option(
        "dense", "--rank", help="With --text: 'dense' (cosine of embeddings) or 'concepts' (cosine of concept codes)."
    ),
    label: str | None = typer.Option(None, "--label", help="Concept queries: only clips with this label."),
    folder: Path | None = typer.Option(None, "--folder", help="Concept queries: only clips under this folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Directory of the embedding cache."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the embedding cache."),
) -> None:
    """Search the index by concepts (the default), by text (--text) or by example with edits (--like).

    Query language: conditions like `rain > 0.1` (operators > >= < <= =; a bare concept means > 0)
    combined with and / or / not and parentheses; quote concepts of several words ("church bell").
    Matches are ranked by the summed weights of the concepts the query asks for."""
    from audioconcepts.index.query import QuerySyntaxError, concept_query
    from audioconcepts.index.store import IndexMismatchError, UnknownClipError, UnknownConceptError

    if like is not None and (text or query):
        raise typer.BadParameter("--like searches by example: give no query and no --text with it", param_hint="--like")
    if like is None and (plus or minus):
        raise typer.BadParameter("--plus and --minus edit the example of --like", param_hint="--plus")
    if (label is not None or folder is not None) and (like is not None or text):
        raise typer.BadParameter("--label and --folder narrow concept queries only", param_hint="--label")
    if like is None and not query:
        raise typer.BadParameter("give a concept query, --text with a text, or --like FILE", param_hint="QUERY")
    with _open_index(db) as index:
        try:
            if like is not None:
                from audioconcepts.index.search import parse_edits, search_like

                example: int | str = int(like) if like.isdigit() and not os.path.exists(like) else like
                clip_id = example if isinstance(example, int) else index.clip_id(example)
                code = dict(index.clip(clip_id).concepts)
                edits = parse_edits(plus, minus, code)
                result = search_like(index, clip_id, edits, limit=limit, offset=offset)
            elif text:
                result = _text_search(index, query, model, rank, limit, offset, cache_dir, no_cache)
            else:
                result = concept_query(index, query, limit=limit, offset=offset, label=label, folder=folder)
        except (QuerySyntaxError, UnknownConceptError, UnknownClipError, IndexMismatchError, ValueError) as e:
            raise _fail(str(e)) from None
        if as_json:
            _emit_json(result.to_dict())
        else:
            _print_result(result)


def _text_search(index, query: str, model: str | None, rank: str, limit: int, offset: int, cache_dir, no_cache):
    from audioconcepts.cli import _model_errors, _open_cache
    from audioconcepts.index.search import text_search

    model = model or index.meta.get("model")
    if model is None:
        raise typer.BadParameter(f"--text needs --model: the index's model ({index.fingerprint})", param_hint="--model")
    with _open_cache(cache_dir, no_cache) as cache, _model_errors():
        from audioconcepts.encoders import load_encoder

        encoder = load_encoder(model)
        return text_search(index, query, encoder, rank=rank, limit=limit, offset=offset, cache=cache)


def _concepts_text(items, n: int = 5) -> str:
    return ", ".join(f"{c} {w:.2f}" for c, w in items[:n])


def _print_result(result) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from audioconcepts.index.query import QueryResult
    from audioconcepts.index.search import LikeResult, TextSearchResult

    console = Console()
    shown = (
        f"{result.offset + 1}-{result.offset + len(result)} of {result.total}"
        if len(result)
        else f"none of {result.total}"
    )
    if isinstance(result, QueryResult):
        table = Table(title=Text(f"{result.query}  ({shown})"))
        for name, justify in (
            ("score", "right"),
            ("id", "right"),
            ("file", "left"),
            ("label", "left"),
            ("query concepts", "left"),
            ("top concepts", "left"),
        ):
            table.add_column(name, justify=justify, overflow="fold")
        for h in result.hits:
            table.add_row(
                f"{h.score:.3f}",
                str(h.clip.id),
                Text(h.clip.path),
                Text(h.clip.label or ""),
                Text(_concepts_text(h.matched, 10)),
                Text(_concepts_text(h.clip.concepts)),
            )
    elif isinstance(result, TextSearchResult):
        console.print(Text(f"the text's concepts: {_concepts_text(result.text_concepts, 8)}"))
        table = Table(title=Text(f"{result.text!r} ranked by {result.rank}  ({shown})"))
        for name, justify in (
            ("dense", "right"),
            ("concepts", "right"),
            ("id", "right"),
            ("file", "left"),
            ("label", "left"),
            ("shared concepts (text/clip)", "left"),
        ):
            table.add_column(name, justify=justify, overflow="fold")
        for h in result.hits:
            shared = ", ".join(f"{c} {a:.2f}/{b:.2f}" for c, a, b in h.shared[:5])
            table.add_row(
                f"{h.dense:.3f}",
                f"{h.concept_score:.3f}",
                str(h.clip.id),
                Text(h.clip.path),
                Text(h.clip.label or ""),
                Text(shared),
            )
    elif isinstance(result, LikeResult):
        for c in result.changes:
            console.print(Text(f"{c.concept}: {c.before:.3f} -> {c.after:.3f}"))
        console.print(
            Text(
                f"edited code: {_concepts_text(result.edited, 8)} (cosine to the original: {result.cosine_to_source:.3f})"
            )
        )
        table = Table(title=Text(f"like {result.source.path}  ({shown})"))
        for name, justify in (
            ("cosine", "right"),
            ("id", "right"),
            ("file", "left"),
            ("label", "left"),
            ("top concepts", "left"),
        ):
            table.add_column(name, justify=justify, overflow="fold")
        for clip, score in result.hits:
            table.add_row(
                f"{score:.3f}",
                str(clip.id),
                Text(clip.path),
                Text(clip.label or ""),
                Text(_concepts_text(clip.concepts)),
            )
    else:  # pragma: no cover
        raise TypeError(type(result))
    console.print(table)


def profile_command(
    db: Path = typer.Option(DEFAULT_DB, "--db", help=_DB_HELP),
    folder: Path | None = typer.Option(None, "--folder", help="Only clips under this folder."),
    label: str | None = typer.Option(None, "--label", help="Only clips with this label."),
    query: str | None = typer.Option(None, "--query", "-q", help="Only clips matching this concept query."),
    ids: list[int] = typer.Option([], "--id", help="Only these clip ids (repeatable)."),
    by_label: bool = typer.Option(False, "--by-label", help="One profile per label."),
    top: int = typer.Option(20, "--top", min=1, help="Concepts shown."),
    offset: int = typer.Option(0, "--offset", min=0, help="Skip this many concepts (paging)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Concept profile (mean weight, share of clips using each concept) of a folder, a label, a
    query's matches or chosen clips, for auditing what a dataset contains."""
    from audioconcepts.index.profile import profile
    from audioconcepts.index.query import QuerySyntaxError
    from audioconcepts.index.store import UnknownConceptError

    with _open_index(db) as index:
        try:
            if by_label:
                if folder is not None or label is not None or query is not None or ids:
                    raise typer.BadParameter(
                        "--by-label profiles every label; give no other filter", param_hint="--by-label"
                    )
                profiles = [profile(index, label=name, limit=top, offset=offset) for name, _ in index.labels()]
                if not profiles:
                    raise _fail("the index has no labels (index with --labels CSV or --folder-labels)")
            else:
                profiles = [
                    profile(index, folder=folder, label=label, query=query, ids=ids or None, limit=top, offset=offset)
                ]
        except (QuerySyntaxError, UnknownConceptError, ValueError) as e:
            raise _fail(str(e)) from None
    if as_json:
        _emit_json([p.to_dict() for p in profiles] if by_label else profiles[0].to_dict())
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    for p in profiles:
        table = Table(title=Text(f"{p.scope}: {p.n_clips} clips, {p.total_concepts} concepts used"))
        table.add_column("concept", overflow="fold")
        table.add_column("mean weight", justify="right")
        table.add_column("", no_wrap=True)
        table.add_column("used by", justify="right")
        scale = max((r.mean for r in p.rows), default=0.0) or 1.0
        for r in p.rows:
            table.add_row(
                Text(r.concept), f"{r.mean:.3f}", "█" * max(1, round(20 * r.mean / scale)), f"{100 * r.prevalence:.0f}%"
            )
        console.print(table)
