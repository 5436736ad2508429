"""One progress helper for every long loop: rich bars on a terminal, log lines otherwise."""

from __future__ import annotations

import contextlib
import logging
import os
import time
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

logger = logging.getLogger("personasim.progress")

LOG_EVERY_S = 30.0
"""How often a long loop logs where it is when standard error is not a terminal."""


def _silenced() -> bool:
    return os.environ.get("PERSONASIM_PROGRESS", "").lower() in ("0", "false", "no", "off")


@contextlib.contextmanager
def _logged(description: str, total: float | None, unit: str) -> Iterator[Callable[[float], None]]:
    """Progress as log lines (a log file, CI): where the loop is every
    :data:`LOG_EVERY_S` seconds, and how long it took."""
    started = last = time.monotonic()
    done = 0.0
    logger.info("%s: started", description)

    def advance(n: float = 1) -> None:
        nonlocal done, last
        done += n
        now = time.monotonic()
        if now - last < LOG_EVERY_S:
            return
        last = now
        elapsed = now - started
        if total:
            eta = elapsed * (total - done) / done if done else float("nan")
            logger.info(
                "%s: %g/%g %s (%.0f%%), %.0f s, about %.0f s left",
                description, done, total, unit, 100 * done / total, elapsed, eta,
            )  # fmt: skip
        else:
            logger.info("%s: %.0f s", description, elapsed)

    yield advance
    logger.info("%s: done in %.1f s", description, time.monotonic() - started)


@contextlib.contextmanager
def progress(
    description: str, total: float | None = None, unit: str = ""
) -> Iterator[Callable[[float], None]]:
    """Show a progress bar while the block runs; yields `advance(n)`.

    When standard error is not a terminal (a log file, CI) the loop logs where it is
    instead (every :data:`LOG_EVERY_S` seconds, and when it ends); quiet when the
    environment sets ``PERSONASIM_PROGRESS=0`` (the tests).

    Args:
        description: What is being done, e.g. "training biased MF".
        total: Number of steps, or None for a spinner.
        unit: Shown after the counts, e.g. "users".
    """
    if _silenced():
        yield lambda n=1: None
        return
    if not console.is_terminal:
        with _logged(description, total, unit) as advance:
            yield advance
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
