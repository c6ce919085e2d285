"""The `audioconcepts` command line."""

from __future__ import annotations

import typer

app = typer.Typer(help="Read CLAP audio embeddings as sparse mixes of named concepts.", no_args_is_help=True)


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


if __name__ == "__main__":
    app()
