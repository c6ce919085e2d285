"""The `audioconcepts` command line.

Exit status of `explain` and `embed`: 0 when every file was processed; 1 when some files failed
(each is listed on stderr with the reason; the others are still processed and written); 2 when the
model or vocabulary could not be loaded (one message, no traceback) or an option is wrong.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:  # imported lazily at run time, so `--help` does not load numpy and the audio stack
    from audioconcepts.encoders.cached import Advance, Progress

app = typer.Typer(help="Read CLAP audio embeddings as sparse mixes of named concepts.", no_args_is_help=True)

EXIT_SOME_FILES_FAILED, EXIT_MODEL_UNAVAILABLE = 1, 2
_PATHS_HELP = "Audio files, or folders searched recursively for .wav .flac .ogg .mp3 .aif .aiff files."
_MODEL_HELP = "A CLAP model: Hugging Face id (e.g. laion/larger_clap_general) or local checkpoint directory."
_CACHE_DIR_HELP = "Directory of the embedding cache (default: $AUDIOCONCEPTS_CACHE or ~/.cache/audioconcepts)."
_NO_CACHE_HELP = "Neither read nor write the embedding cache."


@app.callback()
def main() -> None:
    """audioconcepts: explain, audit and search audio embeddings through named concepts."""


@app.command()
def demo(
    l1_penalty: float = typer.Option(0.15, "--l1-penalty", "-l", min=1e-6, help="Lambda in SpLiCE units (0.05 ~ 100 concepts, 0.25 ~ 15)."),
    examples: int = typer.Option(5, min=1, help="How many captions to explain."),
    top: int = typer.Option(6, min=1, help="Concepts shown per caption."),
    rows: int | None = typer.Option(None, min=1, help="Captions used in the sweep (default: all 4,875)."),
) -> None:
    """Decompose real sound descriptions over a bundled 2,000-word vocabulary (offline)."""
    from audioconcepts.demo import run_demo

    run_demo(l1_penalty=l1_penalty, examples=examples, top=top, rows=rows)


@app.command()
def explain(
    paths: list[Path] = typer.Argument(..., help=_PATHS_HELP),
    model: str = typer.Option(..., "--model", "-m", help=_MODEL_HELP),
    vocab: str = typer.Option(
        "captions-2k",
        "--vocab",
        help="Concepts to explain with: a shipped name or a text file (one concept per line; blank lines and "
        "'#' comments ignored). Default captions-2k: the 2,000 most frequent words of real sound captions "
        "(Clotho, AudioCaps, MusicCaps), i.e. words people use to describe audio.",
    ),
    l1_penalty: float = typer.Option(0.15, "--l1-penalty", "-l", min=1e-6, help="Lambda in SpLiCE units (0.05 ~ 100 concepts, 0.25 ~ 15)."),
    top: int = typer.Option(5, min=1, help="Concepts shown per file."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list (one object per file) to stdout instead of a table."),
    csv_file: Path | None = typer.Option(None, "--csv", help="Also write a CSV table: path, nnz, cosine, concept_1, weight_1, ..."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help=_CACHE_DIR_HELP),
    no_cache: bool = typer.Option(False, "--no-cache", help=_NO_CACHE_HELP),
) -> None:
    """Explain each audio file as its top concepts: embed (cached), centre, decompose, print.

    Centering uses the mean of your files when there are at least 20, else a bundled reference set
    of 20 ESC-10 clips; the output says which. Exit status: 0 all files explained, 1 some failed
    (listed on stderr, the rest explained), 2 model or vocabulary unavailable."""
    from audioconcepts.explain import explain_audio
    from audioconcepts.vocab.sources import embed_vocabulary

    files = _find_files(paths)
    with _open_cache(cache_dir, no_cache) as cache, _model_errors():
        encoder = _load_model(model)
        with _progress() as progress:
            try:
                vocabulary = embed_vocabulary(vocab, encoder, cache, progress=progress)
            except (OSError, ValueError) as e:
                _error(f"cannot use vocabulary {vocab!r}: {e}")
                raise typer.Exit(EXIT_MODEL_UNAVAILABLE) from None
            result = explain_audio(
                files, encoder, vocabulary, l1_penalty=l1_penalty, top=top, cache=cache, progress=progress
            )
    if as_json:
        rows = [
            {"path": r.path, "concepts": [{"concept": c, "weight": w} for c, w in r.concepts], "nnz": r.nnz, "cosine": r.cosine}
            for r in result.rows
        ]
        typer.echo(json.dumps(rows, indent=1))
    else:
        _print_table(result.rows, l1_penalty)
    if csv_file is not None:
        _write_csv(csv_file, result.rows, top)
    _info(f"{len(result.rows)} files explained ({result.computed} embedded now, the rest from the cache); centering: the audio modality mean of {result.centering}.")
    _exit_for(result.failures)


@app.command()
def embed(
    paths: list[Path] = typer.Argument(..., help=_PATHS_HELP),
    model: str = typer.Option(..., "--model", "-m", help=_MODEL_HELP),
    out: str = typer.Option(
        ..., "--out", "-o",
        help="A .parquet file (id, path, content_hash, fingerprint, vector), or a folder or URI for a resumable "
        "job: OUT/embeddings/ Parquet parts plus OUT/_manifest.json, a `decompose` input.",
    ),
    chunk_files: int = typer.Option(256, "--chunk-files", min=1, help="Job (folder output): files per part."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Job (folder output): replace a different job found in --out."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help=_CACHE_DIR_HELP),
    no_cache: bool = typer.Option(False, "--no-cache", help=_NO_CACHE_HELP),
) -> None:
    """Embed audio files into Parquet that `precomputed:<file>` and `decompose` read.

    With a folder as --out, the work is written in parts as it goes: rerun the same command after a
    crash to resume. Exit status: 0 all files embedded, 1 some failed (listed on stderr, the rest
    written), 2 model unavailable or a different job in --out."""
    if not out.lower().endswith(".parquet"):
        from audioconcepts.jobs.commands import embed_job_command

        embed_job_command(paths, model, out, chunk_files, overwrite, cache_dir, no_cache)
        return
    from audioconcepts.encoders.cached import embed_files
    from audioconcepts.encoders.precomputed import save_precomputed

    files = _find_files(paths)
    with _open_cache(cache_dir, no_cache) as cache, _model_errors():
        encoder = _load_model(model)
        with _progress() as progress:
            result = embed_files(encoder, files, cache, progress=progress("embedding audio", len(files)))
    failures = [(e.path, e.reason) for e in result.failures]
    if not result.paths:
        _exit_for(failures, "no file could be embedded; nothing written")
    save_precomputed(
        out,
        result.embeddings,
        ids=result.paths,
        extra={"path": [os.path.abspath(p) for p in result.paths], "content_hash": result.content_hashes},
    )
    _info(f"wrote {len(result.paths)} embeddings to {out} ({result.computed} embedded now, the rest from the cache)")
    _exit_for(failures)


def _register_commands() -> None:
    """Commands whose code lives beside what they drive (their modules import only typer at load time)."""
    from audioconcepts.evaluate.commands import reproduce_command
    from audioconcepts.explore.commands import serve_command
    from audioconcepts.index.commands import index_command, profile_command, search_command
    from audioconcepts.jobs.commands import decompose_command

    app.command("decompose")(decompose_command)
    app.command("index")(index_command)
    app.command("search")(search_command)
    app.command("profile")(profile_command)
    app.command("serve")(serve_command)
    app.command("reproduce")(reproduce_command)


_register_commands()


vocab_app = typer.Typer(help="List, inspect, build and compare concept vocabularies.", no_args_is_help=True)
app.add_typer(vocab_app, name="vocab")


@vocab_app.command("list")
def vocab_list() -> None:
    """The shipped vocabularies: name, number of concepts, description."""
    from rich.console import Console
    from rich.table import Table

    from audioconcepts.vocab.sources import shipped_vocabularies

    table = Table(title="Shipped vocabularies (use with --vocab NAME)")
    table.add_column("name", no_wrap=True)
    table.add_column("concepts", justify="right")
    table.add_column("description")
    for v in shipped_vocabularies():
        table.add_row(v.name, f"{v.size:,}", v.description)
    Console().print(table)


@vocab_app.command("show")
def vocab_show(
    name: str = typer.Argument(..., help="A shipped vocabulary name (see `audioconcepts vocab list`) or a vocabulary file."),
    top: int = typer.Option(30, "--top", min=1, help="How many concepts to print (in stored order)."),
) -> None:
    """Size, provenance summary and the first concepts of a vocabulary."""
    from audioconcepts.vocab import Vocabulary

    try:
        concepts, provenance = Vocabulary.load_concepts(name)
    except (OSError, ValueError) as e:  # VocabularyFileError is a ValueError
        _error(str(e))
        raise typer.Exit(EXIT_MODEL_UNAVAILABLE) from None
    typer.echo(f"{name}: {len(concepts):,} concepts")
    for key in ("description", "recipe"):
        if provenance.get(key):
            typer.echo(f"{key}: {provenance[key]}")
    if provenance.get("sources"):
        typer.echo(f"sources: {', '.join(map(str, provenance['sources']))}")
    parameters = provenance.get("parameters")
    if parameters:
        typer.echo("parameters: " + ", ".join(f"{k}={v}" for k, v in parameters.items()))
    if provenance.get("merged"):
        typer.echo(f"merged roots: {len(provenance['merged']):,} concepts pool several surface forms")
    if provenance.get("dropped"):
        typer.echo("dropped: " + ", ".join(f"{k} {len(v):,}" for k, v in provenance["dropped"].items()))
    counts = provenance.get("counts") or {}
    shown = concepts[:top]
    typer.echo(f"first {len(shown)} concepts:")
    for c in shown:
        typer.echo(f"  {c}" + (f"  ({counts[c]:,})" if c in counts and len(set(counts.values())) > 1 else ""))


@vocab_app.command("build")
def vocab_build(
    recipe: str = typer.Argument(..., help="fsd50k (baseline + pruned, + clustered with --model), baseline, pruned, clustered, captions, ontology or list."),
    sources: list[Path] = typer.Argument(..., help="FSD50K *_clips_info_FSD50K.json files or their folder (or tag<TAB>count TSVs); caption CSVs (Clotho, AudioCaps, MusicCaps); an AudioSet ontology.json; or a text file."),
    out: Path = typer.Option(..., "--out", "-o", help="A folder (one NAME.npz per vocabulary) or, for a single vocabulary, a .npz file."),
    size: list[int] = typer.Option([], "--size", "-s", help="Vocabulary size; repeat for several (default: 2000, 3000 and 5000 for fsd50k, else 2000)."),
    model: str | None = typer.Option(None, "--model", "-m", help="Embed the concepts with this model and store the embeddings in the files (needed by clustered)."),
    name: str | None = typer.Option(None, "--name", help="Name prefix of the vocabularies (default: fsd50k, captions, audioset-ontology or the list's file name)."),
    pool: int = typer.Option(10000, "--pool", min=2, help="Most frequent tags the pruned and clustered recipes start from."),
    descriptions: bool = typer.Option(False, "--descriptions", help="ontology: embed 'name: description' instead of the name."),
    seed: int = typer.Option(0, "--seed", help="k-means seed of the clustered recipe."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help=_CACHE_DIR_HELP),
    no_cache: bool = typer.Option(False, "--no-cache", help=_NO_CACHE_HELP),
) -> None:
    """Build vocabulary files with the paper's recipes (or from captions, the AudioSet ontology, a list).

    Example, with FSD50K's metadata: `audioconcepts vocab build fsd50k FSD50K.metadata/ --out vocabs/ -m MODEL`
    writes fsd50k-{baseline,pruned,clustered}-{2k,3k,5k}.npz."""
    from audioconcepts.encoders.cached import embed_texts
    from audioconcepts.vocab import make

    if recipe not in make.RECIPES:
        raise typer.BadParameter(f"choose one of {', '.join(make.RECIPES)}", param_hint="RECIPE")
    if recipe == "clustered" and model is None:
        raise typer.BadParameter("the clustered recipe embeds tags with a model: give --model", param_hint="--model")
    with _open_cache(cache_dir, no_cache) as cache, _model_errors():
        encoder = _load_model(model) if model else None
        with _progress() as progress:

            def embed(texts: list[str]):
                return embed_texts(encoder, texts, cache, progress=progress(f"embedding {len(texts):,} concepts", len(texts))).vectors

            try:
                built = make.build_concepts(
                    recipe, sources, size, prefix=name, pool=pool, embed_texts=embed if encoder else None,
                    seed=seed, descriptions=descriptions,
                )
                written = make.write_vocabularies(
                    built, out, embed if encoder else None, encoder.fingerprint if encoder else None
                )
            except (OSError, ValueError) as e:
                _error(str(e))
                raise typer.Exit(EXIT_MODEL_UNAVAILABLE) from None
    if recipe == "fsd50k" and encoder is None:
        _info("clustered vocabularies skipped: they embed tags with a model (give --model)")
    for path, (vocab_name, b) in zip(written, built.items()):
        typer.echo(f"{vocab_name}: {len(b.concepts):,} concepts -> {path}")


@vocab_app.command("report")
def vocab_report(
    name: str = typer.Argument(..., help="A shipped vocabulary name, a vocabulary file or a text file (one concept per line)."),
    model: str | None = typer.Option(None, "--model", "-m", help="The model whose space to measure in (not needed for a file that holds one model's embeddings)."),
    threshold: float = typer.Option(0.9, "--threshold", "-t", help="Cosine above which two concepts count as near duplicates."),
    corpus: list[Path] = typer.Option([], "--corpus", help="Caption CSVs (Clotho, AudioCaps, MusicCaps) to measure coverage on (default: the bundled 4,875 AudioCaps test captions)."),
    l1_penalty: float = typer.Option(0.15, "--l1-penalty", "-l", min=1e-6, help="Lambda of the fidelity measure."),
    pairs: int = typer.Option(15, "--pairs", min=0, help="Near-duplicate pairs to list."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help=_CACHE_DIR_HELP),
    no_cache: bool = typer.Option(False, "--no-cache", help=_NO_CACHE_HELP),
) -> None:
    """Size, near-duplicate pairs, redundancy, caption coverage and decomposition fidelity of a vocabulary.

    Fidelity is measured on the bundled reference clips for audio models, and on the coverage
    captions (as stand-ins for audio) for text-only models."""
    from dataclasses import asdict

    from audioconcepts.vocab import Vocabulary, VocabularyFileError
    from audioconcepts.vocab.report import vocabulary_report
    from audioconcepts.vocab.sources import embed_vocabulary

    with _open_cache(cache_dir, no_cache) as cache, _model_errors():
        encoder = _load_model(model) if model else None
        with _progress() as progress:
            try:
                vocabulary = embed_vocabulary(name, encoder, cache, progress=progress) if encoder else Vocabulary.load(name)
                captions = _report_captions(corpus)
                reference, source = _report_reference(encoder, captions, cache, progress) if encoder else (None, "")
            except (OSError, ValueError, VocabularyFileError) as e:
                _error(f"cannot report on {name!r}: {e}")
                raise typer.Exit(EXIT_MODEL_UNAVAILABLE) from None
            report = vocabulary_report(
                vocabulary, name, threshold=threshold, captions=captions, reference=reference,
                reference_source=source, l1_penalty=l1_penalty, show_pairs=pairs,
            )
    if as_json:
        typer.echo(json.dumps(asdict(report), indent=1))
    else:
        _print_vocab_report(report)


def _report_captions(corpus: list[Path]) -> list[str]:
    from audioconcepts.vocab.builders import CaptionCorpus

    if corpus:
        return list(CaptionCorpus(corpus))
    from audioconcepts.caption_space import load_caption_space

    return load_caption_space().captions


def _report_reference(encoder, captions: list[str], cache, progress):
    """Embeddings to measure fidelity on: the bundled reference clips, or captions for text-only models."""
    from audioconcepts.centering import reference_clip_embeddings
    from audioconcepts.encoders import EncoderCapabilityError
    from audioconcepts.encoders.cached import embed_texts

    try:
        return reference_clip_embeddings(encoder, cache, progress=progress), "bundled ESC-10 reference clips"
    except EncoderCapabilityError:
        texts = captions[:1000]
        embedded = embed_texts(encoder, texts, cache, progress=progress("embedding captions", len(texts)))
        return embedded, "captions (a text-only model: captions stand in for audio)"


def _print_vocab_report(report) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"Vocabulary report: {report.name} ({report.fingerprint})", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("concepts", f"{report.size:,} (d = {report.dim})")
    table.add_row(f"near-duplicate pairs (cosine > {report.threshold:g})", f"{report.n_near_duplicate_pairs:,}")
    table.add_row("concepts with a near duplicate", f"{report.share_with_near_duplicate:.1%}")
    table.add_row("mean cosine to nearest concept", f"{report.mean_nearest_cosine:.3f}")
    table.add_row("effective rank", f"{report.effective_rank:.1f} of at most {min(report.size, report.dim)}")
    if report.coverage:
        c = report.coverage
        table.add_row("caption-word coverage", f"{c.exact:.1%} exact, {c.by_lemma:.1%} by lemma ({c.n_words:,} words in {c.n_captions:,} captions)")
        table.add_row("most frequent missing words", ", ".join(f"{w} ({n})" for w, n in c.missing))
    if report.fidelity:
        f = report.fidelity
        table.add_row(f"fidelity at lambda {f.l1_penalty:g}", f"cosine {f.mean_cosine:.3f}, {f.mean_nnz:.1f} concepts (mean over {f.n:,} {f.source})")
    console.print(table)
    if report.near_duplicates:
        dupes = Table(title="Most similar concept pairs")
        for column in ("concept", "concept", "cosine"):
            dupes.add_column(column, justify="right" if column == "cosine" else "left")
        for a, b, cos in report.near_duplicates:
            dupes.add_row(a, b, f"{cos:.3f}")
        console.print(dupes)


# ---------------------------------------------------------------- helpers


def _info(message: str) -> None:
    typer.echo(message, err=True)


def _error(message: str) -> None:
    typer.echo(f"error: {message}", err=True)


def _find_files(paths: list[Path]) -> list[str]:
    from audioconcepts.encoders.audio import find_audio_files

    files = find_audio_files(paths)
    if not files:
        _error(f"no audio files found in {', '.join(map(str, paths))}")
        raise typer.Exit(EXIT_SOME_FILES_FAILED)
    return files


def _open_cache(cache_dir: Path | None, no_cache: bool):
    """The embedding cache as a context manager (a null one with --no-cache)."""
    from audioconcepts.encoders.cache import EmbeddingCache

    if no_cache:
        if cache_dir is not None:
            raise typer.BadParameter("give --cache-dir or --no-cache, not both", param_hint="--no-cache")
        return nullcontext(None)
    return EmbeddingCache(cache_dir / "embeddings.sqlite" if cache_dir is not None else None)


def _load_model(model: str):
    from audioconcepts.encoders import load_encoder

    _info(f"loading {model} ...")
    return load_encoder(model)


@contextmanager
def _model_errors() -> Iterator[None]:
    """A model that cannot be loaded or cannot embed audio: one clear message and exit status 2."""
    from audioconcepts.encoders import AdapterUnavailableError, EncoderCapabilityError, ModelUnavailableError

    try:
        yield
    except (ModelUnavailableError, AdapterUnavailableError, EncoderCapabilityError) as e:
        _error(str(e))
        raise typer.Exit(EXIT_MODEL_UNAVAILABLE) from None


@contextmanager
def _progress() -> Iterator[Progress]:
    """Progress bars on stderr (only when stderr is a terminal), one per task the yielded
    `progress(description, total)` starts; it returns that task's advance(n)."""
    from rich.console import Console
    from rich.progress import Progress as RichProgress

    console = Console(stderr=True)
    with RichProgress(console=console, transient=True, disable=not console.is_terminal) as bars:

        def start(description: str, total: int) -> Advance:
            task = bars.add_task(description, total=total)
            return lambda n: bars.advance(task, n)

        yield start


def _exit_for(failures: list[tuple[str, str]], summary: str | None = None) -> None:
    """List failed files on stderr and exit 1 if there are any."""
    if not failures:
        return
    for path, reason in failures:
        _error(f"{path}: {reason}")
    _error(summary or f"{len(failures)} file(s) failed; the others were processed")
    raise typer.Exit(EXIT_SOME_FILES_FAILED)


def _print_table(rows: list, l1_penalty: float) -> None:
    """The explanations as a rich table on stdout, file names relative to their common folder."""
    from rich.console import Console
    from rich.table import Table

    root = os.path.commonpath([os.path.dirname(os.path.abspath(r.path)) for r in rows]) if rows else ""
    table = Table(title=f"Top concepts at l1_penalty={l1_penalty:g}" + (f" (files under {root})" if root else ""))
    table.add_column("file", overflow="fold")
    table.add_column("concepts (weight)")
    table.add_column("n", justify="right")
    table.add_column("cosine", justify="right")
    for r in rows:
        concepts = ", ".join(f"{c} {w:.2f}" for c, w in r.concepts)
        table.add_row(os.path.relpath(os.path.abspath(r.path), root), concepts, str(r.nnz), f"{r.cosine:.3f}")
    Console().print(table)


def _write_csv(path: Path, rows: list, top: int) -> None:
    """One row per file: path, nnz, cosine, then concept_i, weight_i for its top concepts."""
    header = ["path", "nnz", "cosine"] + [f"{name}_{i}" for i in range(1, top + 1) for name in ("concept", "weight")]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for r in rows:
            writer.writerow([r.path, r.nnz, f"{r.cosine:.6f}"] + [x for c, w in r.concepts for x in (c, f"{w:.6f}")])


if __name__ == "__main__":
    app()
