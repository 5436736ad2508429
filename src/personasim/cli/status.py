"""`personasim status`: which stages of a run folder are up to date."""

from __future__ import annotations

from rich.table import Table

from personasim.cli._common import WorkdirOpt
from personasim.errors import ConfigError, StageError
from personasim.pipeline import STAGES, resolve_config
from personasim.progress import console
from personasim.workspace import Workspace

__all__ = ["status"]


def status(workdir: WorkdirOpt) -> None:
    """Show each stage: up to date, or why it would run."""
    if not workdir.is_dir():
        raise ConfigError(
            f"{workdir} is not a run folder (it does not exist): start one with "
            f"`personasim ingest --workdir {workdir}`"
        )
    workspace = Workspace(workdir)
    cfg = resolve_config(workspace)
    table = Table(title=f"stages of {workspace.root}", title_justify="left")
    for col in ("stage", "folder", "state", "recorded wall time (s)"):
        table.add_column(col)
    for stage_cls in STAGES:
        stage = stage_cls(workspace, cfg)
        try:
            why = stage.status()
        except StageError:
            why = "waits for an earlier stage"
        manifest = workspace.read_manifest(stage.folder) or {}
        state = "[green]up to date[/green]" if why is None else why
        table.add_row(stage.name, stage.folder + "/", state, str(manifest.get("wall_time_s", "")))
    console.print(table)
