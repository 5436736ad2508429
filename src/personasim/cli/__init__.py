"""The command-line interface: a thin layer over the Python API.

Exit codes: 0 success, 2 usage or configuration error, 3 data or stage failure. Errors
are one line; ``-v`` adds the traceback.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from personasim._version import __version__
from personasim.cli._common import configure_logging
from personasim.cli.compare import compare
from personasim.cli.config import config_app
from personasim.cli.evaluate import evaluate
from personasim.cli.ingest import ingest
from personasim.cli.personas import personas_app
from personasim.cli.profile import profile
from personasim.cli.report import report
from personasim.cli.run import run
from personasim.cli.serve import serve
from personasim.cli.simulate import simulate
from personasim.cli.status import status
from personasim.cli.train import train
from personasim.cli.tune import tune
from personasim.errors import INTERNAL_ERROR_EXIT, PersonaSimError
from personasim.progress import console
from personasim.run_folder import MANIFEST

__all__ = ["app", "main"]

app = typer.Typer(
    name="personasim",
    help="Simulated users from a recommender system's interaction log.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_state = {"verbose": 0}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"personasim {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="More detail; tracebacks on errors.")
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Warnings and errors only.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    _state["verbose"] = verbose
    configure_logging(verbose, quiet)


app.command()(ingest)
app.command()(profile)
app.command()(train)
app.command()(evaluate)
app.command()(simulate)
app.command()(report)
app.command()(run)
app.command()(serve)
app.command()(status)
app.command()(tune)
app.command()(compare)
app.add_typer(personas_app, name="personas")
app.add_typer(config_app, name="config")


_STORAGE_ERRORS = {
    errno.ENOSPC: "no space left on the run folder's device: free space or use another --workdir",
    errno.EDQUOT: "disk quota exceeded in the run folder: free space or use another --workdir",
    errno.EACCES: "permission denied: the run folder (or a file in it) is not writable",
    errno.EROFS: "the run folder is on a read-only filesystem: use another --workdir",
}


def _kept(argv: list[str] | None) -> str:
    """What an interrupted command leaves in its run folder: the finished stages and the
    checkpoints of the unfinished ones."""
    args = list(sys.argv[1:] if argv is None else argv)
    folder = next(
        (b for a, b in zip(args, args[1:], strict=False) if a == "--workdir"),
        next((a.split("=", 1)[1] for a in args if a.startswith("--workdir=")), None),
    )
    if folder is None or not Path(folder).is_dir():
        return "nothing half-written was kept"
    root = Path(folder)
    finished = sorted(p.parent.name + "/" for p in root.glob(f"*/{MANIFEST}"))
    pending = root / ".checkpoints"
    partial = sorted(p.name for p in pending.iterdir() if p.is_dir()) if pending.is_dir() else []
    kept = f"kept in {root}: finished stages {', '.join(finished) or 'none'}"
    if partial:
        kept += f"; the checkpoints of {', '.join(partial)} (their finished units)"
    return kept + "; nothing half-written"


def _say_interrupted(argv: list[str] | None) -> None:
    console.print(f"interrupted; {_kept(argv)}; rerun the command to resume", soft_wrap=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `personasim` command and `python -m personasim`."""
    # Before transformers is imported (stages import it lazily): its weight-loading bars
    # and deprecation notices are noise in a CLI that draws its own progress bars.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\..*")
    try:
        # Typer handles its own usage errors (exit 2) and --help; ours come out here.
        app(args=argv, prog_name="personasim")
    except PersonaSimError as e:
        if _state["verbose"]:
            console.print_exception()
        console.print(
            f"[bold red]error:[/bold red] {escape(str(e))}", highlight=False, soft_wrap=True
        )
        sys.exit(e.exit_code)
    except SystemExit as e:
        if e.code == 130:  # Typer turns Ctrl-C (KeyboardInterrupt) into exit 130
            _say_interrupted(argv)
        raise
    except KeyboardInterrupt:
        _say_interrupted(argv)
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - the last line of defence of the CLI
        if isinstance(e, OSError) and e.errno in _STORAGE_ERRORS:
            if _state["verbose"]:
                console.print_exception()
            where = f" ({e.filename})" if e.filename else ""
            console.print(
                f"[bold red]error:[/bold red] {escape(_STORAGE_ERRORS[e.errno])}"
                f"{escape(where)}; nothing half-written was kept (finished stages and "
                "checkpoints are intact): rerun once fixed",
                highlight=False,
                soft_wrap=True,
            )
            sys.exit(3)
        logging.getLogger("personasim").debug("unexpected error", exc_info=True)
        if _state["verbose"]:
            console.print_exception()
        console.print(
            f"[bold red]error:[/bold red] unexpected {type(e).__name__}: {escape(str(e))} "
            "(an internal error: run with -v for the traceback, and report it)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(INTERNAL_ERROR_EXIT)
