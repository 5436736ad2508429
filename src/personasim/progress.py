"""One progress-bar helper for every long loop: rich bars on a terminal, silent otherwise."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["console", "progress"]

console = Console(stderr=True)
"""The console progress bars and the CLI's messages go to (standard error)."""


def _enabled() -> bool:
    if os.environ.get("PERSONASIM_PROGRESS", "").lower() in ("0", "false", "no", "off"):
        return False
    return console.is_terminal


@contextlib.contextmanager
def progress(
    description: str, total: float | None = None, unit: str = ""
) -> Iterator[Callable[[float], None]]:
    """Show a progress bar while the block runs; yields `advance(n)`.

    Quiet when standard error is not a terminal (CI, logs, tests) or when the
    environment sets ``PERSONASIM_PROGRESS=0``.

    Args:
        description: What is being done, e.g. "training biased MF".
        total: Number of steps, or None for a spinner.
        unit: Shown after the counts, e.g. "users".
    """
    if not _enabled():
        yield lambda n=1: None
        return
    columns = [SpinnerColumn(), TextColumn("[bold]{task.description}")]
    if total is not None:
        columns += [BarColumn(), MofNCompleteColumn(), TextColumn(unit)]
        columns += [TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    else:
        columns += [TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: float = 1) -> None:
            bar.advance(task, n)

        yield advance
