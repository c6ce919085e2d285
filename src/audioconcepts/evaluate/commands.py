"""Typer command function for `audioconcepts reproduce` (registered in cli.py).

Top-level imports are typer and the standard library only, so `audioconcepts --help` stays fast.
Exit status: 0 when the report was written (what could not run is listed in it); 2 when nothing
could run (no dataset found, model or vocabulary unusable): one message, no traceback.
"""

from __future__ import annotations

from pathlib import Path

import typer

EXIT_CANNOT_RUN = 2


def reproduce_command(
    data_root: Path | None = typer.Option(
        None, "--data-root", help="A folder with one sub-folder per dataset in its published layout "
        "(urbansound8k, esc50, tut2017, vocalsound, dcase2017_task4, audioset, clotho, audiocaps)."
    ),
    embeddings: Path | None = typer.Option(
        None, "--embeddings", help="A folder of precomputed embeddings instead of audio: NAME.parquet (or NAME.npy + "
        "NAME.json) and NAME.csv (id + label, or id + caption) per dataset; optional NAME.text.* and NAME.prompts.*."
    ),
    model: str = typer.Option(
        "msclap:2023", "--model", "-m", help="The encoder (the paper's: msclap:2023), for audio, class prompts, captions and the vocabulary."
    ),
    out: Path = typer.Option(Path("reproduce-report"), "--out", "-o", help="Output folder: report.md, results.json and PNG figures."),
    vocab: str = typer.Option(
        "fsd50k-eval-baseline-2k", "--vocab", help="Vocabulary of the tables (default: the paper's baseline recipe on the bundled "
        "FSD50K evaluation-set tags): a shipped name, a text file, or a vocabulary .npz (e.g. from `vocab build fsd50k`)."
    ),
    recipe: list[str] = typer.Option(
        ["fsd50k-eval-pruned-2k", "fsd50k-eval-clustered-2k", "fsd50k-eval-baseline-3k", "fsd50k-eval-baseline-5k"],
        "--recipe", help="Vocabularies compared with --vocab (the paper's recipes and sizes; repeat the option).",
    ),
    l1_penalty: float = typer.Option(0.05, "--l1-penalty", "-l", min=1e-6, help="Lambda of the tables (the paper's: 0.05)."),
    resamples: int = typer.Option(1000, "--resamples", min=0, help="Bootstrap resamples per number (0: no intervals)."),
    confidence: float = typer.Option(0.95, "--confidence", min=0.5, max=0.999, help="Confidence level of the intervals."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap and of the fine-tuned projector."),
    dataset: list[str] = typer.Option([], "--dataset", help="Only these datasets (repeat the option; default: all found)."),
    finetune: bool = typer.Option(True, "--finetune/--no-finetune", help="Train the paper's projector H on the development folds."),
    epochs: int = typer.Option(100, "--epochs", min=1, help="Epochs for the projector H."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Embedding cache (default: $AUDIOCONCEPTS_CACHE or ~/.cache/audioconcepts)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the embedding cache."),
) -> None:
    """Reproduce the paper's Tables I-IV and figures from the datasets present, with the published
    numbers side by side with ours; works offline from precomputed embeddings (--embeddings)."""
    if data_root is None and embeddings is None:
        raise typer.BadParameter("give --data-root (audio) or --embeddings (precomputed embeddings)", param_hint="--data-root")
    if cache_dir is not None and no_cache:
        raise typer.BadParameter("give --cache-dir or --no-cache, not both", param_hint="--no-cache")
    from audioconcepts.evaluate.report import ReportSettings, reproduce

    settings = ReportSettings(
        l1_penalty=l1_penalty, n_resamples=resamples, confidence=confidence, seed=seed, vocab=vocab,
        recipes=tuple(recipe), finetune=finetune, finetune_epochs=epochs, datasets=tuple(dataset) or None,
    )  # fmt: skip
    cache = None
    if not no_cache:
        from audioconcepts.encoders.cache import EmbeddingCache

        cache = EmbeddingCache(cache_dir / "embeddings.sqlite" if cache_dir is not None else None)
    try:
        report = reproduce(
            data_root, embeddings, model, out, settings=settings, cache=cache,
            progress=lambda msg: typer.echo(msg, err=True),
        )  # fmt: skip
    except (FileNotFoundError, ValueError, RuntimeError, OSError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(EXIT_CANNOT_RUN) from None
    finally:
        if cache is not None:
            cache.close()
    typer.echo(f"wrote {report.markdown} and {len(report.figures)} figures")
    for what, why in report.skipped:
        typer.echo(f"skipped {what}: {why}", err=True)
