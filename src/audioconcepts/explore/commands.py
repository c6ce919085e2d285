"""`audioconcepts serve`: the web explorer on 127.0.0.1, for an index file or a folder of sounds.

Registered by cli.py (``app.command("serve")(serve_command)``). Only typer and the standard library
are imported at module level, so `audioconcepts --help` stays fast.

Exit status: 0 stopped normally; 2 the index, model, vocabulary or host cannot be used (one message).
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

EXIT_UNUSABLE = 2
DEFAULT_DB = Path("audioconcepts-index.duckdb")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_UNUSABLE)


def _build(target: Path, model: str, vocab: str, db: Path, l1_penalty: float, cache_dir: Path | None, no_cache: bool, folder_labels: bool):
    """Index (or update the index of) the folder `target` into `db`; returns the loaded encoder."""
    from audioconcepts.index.commands import index_files

    labels = "folder" if folder_labels else None
    report, encoder = index_files([target], model, vocab, db, l1_penalty, cache_dir, no_cache, labels=labels)
    typer.echo(
        f"{db}: {report.total} files indexed ({report.added} added, {report.updated} changed, {report.removed} removed, "
        f"{report.unchanged} unchanged)",
        err=True,
    )
    for path, reason in report.failures:
        typer.echo(f"warning: {path}: {reason} (not indexed; serving the others)", err=True)
    return encoder


def serve_command(
    target: Path = typer.Argument(..., help="An index file (from `audioconcepts index`), or a folder of sounds to index first."),
    model: str | None = typer.Option(
        None, "--model", "-m",
        help="The index's model (Hugging Face id or directory): needed to index a folder, and for text search (loaded on the first one).",
    ),
    vocab: str = typer.Option("captions-2k", "--vocab", help="With a folder: the vocabulary to index it with."),
    db: Path | None = typer.Option(None, "--db", help=f"With a folder: the index file to build or update (default: ./{DEFAULT_DB})."),
    port: int = typer.Option(8765, "--port", "-p", min=1, max=65535, help="TCP port."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; only loopback addresses unless --allow-remote."),
    allow_remote: bool = typer.Option(
        False, "--allow-remote",
        help="Allow a non-loopback --host. The explorer has no login: anyone who reaches it can list and play every indexed file.",
    ),
    l1_penalty: float = typer.Option(0.15, "--l1-penalty", "-l", min=1e-6, help="With a folder: lambda in SpLiCE units."),
    folder_labels: bool = typer.Option(False, "--folder-labels", help="With a folder: label each file with its parent folder's name."),
    text_centering: str = typer.Option(
        "vocabulary", "--text-centering",
        help="Centre text queries on the vocabulary's mean ('vocabulary', for audio indexes) or the index's mean ('index', for indexes of text embeddings).",
    ),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Directory of the embedding cache."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the embedding cache."),
) -> None:
    """Browse, search, edit and profile an index in the browser (http://127.0.0.1:PORT).

    TARGET is an index file, or a folder of sounds: then it is indexed (or its index updated: only
    new and changed files are embedded) with --model and --vocab first. Only the indexed files are
    served, by id."""
    from audioconcepts.explore.server import UnsafeHostError, check_host

    if text_centering not in ("vocabulary", "index"):
        raise typer.BadParameter("use 'vocabulary' or 'index'", param_hint="--text-centering")
    try:
        check_host(host, allow_remote)
    except UnsafeHostError as e:
        raise _fail(str(e)) from None
    encoder = None
    if target.is_dir():
        if model is None:
            raise typer.BadParameter(f"{target} is a folder: indexing it needs --model (and --vocab)", param_hint="--model")
        db = db or DEFAULT_DB
        encoder = _build(target, model, vocab, db, l1_penalty, cache_dir, no_cache, folder_labels)
        index_path = db
    elif target.is_file():
        if db is not None and os.path.abspath(db) != os.path.abspath(target):
            raise typer.BadParameter("--db names the index to build from a folder; TARGET is already an index file", param_hint="--db")
        index_path = target
    else:
        raise _fail(f"{target} does not exist: give an index file or a folder of sounds")
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise _fail('the explorer needs starlette and uvicorn: pip install "audioconcepts[explore]"') from None
    from audioconcepts.explore.server import serve
    from audioconcepts.index.store import ConceptIndex, IndexMismatchError

    try:  # a clear message for a file that is not an index, an old schema, or one a writer holds
        ConceptIndex(index_path).close()
    except (FileNotFoundError, IndexMismatchError) as e:
        raise _fail(str(e)) from None
    except Exception as e:  # noqa: BLE001 - duckdb's errors for non-index files and locks
        raise _fail(f"cannot open the index {os.fspath(index_path)!r}: {e}") from None
    try:
        _check_port(host, port)
    except OSError as e:
        raise _fail(f"cannot serve on {host}:{port}: {e.strerror or e}; choose another --port") from None
    typer.echo(f"serving {index_path} on http://{host}:{port} (Ctrl-C stops)", err=True)
    serve(index_path, host, port, model=model, encoder=encoder, allow_remote=allow_remote, text_centering=text_centering, log_level="warning")


def _check_port(host: str, port: int) -> None:
    """Raise OSError if `port` cannot be bound on `host` now (uvicorn would only log and exit)."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host.strip("[]"), port))
