"""A rich progress bar for jobs: rows done / total, rows per second and time left.

Shown on stderr only when stderr is a terminal (as the rest of the CLI does), so logs and pipes stay clean.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: ``advance(n)``: n more rows (or files) are done.
Advance = Callable[[int], None]


@contextmanager
def job_progress(
    description: str, total: int, done: int = 0, unit: str = "rows", enabled: bool = True, console: Any = None
) -> Iterator[Advance]:
    """Yields advance(n); the bar starts at `done` (work finished by an earlier run) of `total`.
    `console`: a rich Console (default: stderr)."""
    if not enabled:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
    from rich.text import Text

    class _Rate(ProgressColumn):
        def render(self, task) -> Text:  # type: ignore[override]
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f} {unit}/s" if speed else f"? {unit}/s", style="progress.data.speed")

    console = console or Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _Rate(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as bars:
        task = bars.add_task(description, total=total, completed=done)
        yield lambda n: bars.advance(task, n)
