"""`personasim report`: the fidelity report of a run folder (report/report.html)."""

from __future__ import annotations

from typing import Annotated

import typer

from personasim.cli._common import ConfigOpt, ForceOpt, WorkdirOpt, nested, print_results
from personasim.pipeline import ReportStage, resolve_config, run_stage
from personasim.progress import console
from personasim.run_folder import REPORT
from personasim.workspace import Workspace

__all__ = ["report"]


def report(
    workdir: WorkdirOpt,
    config: ConfigOpt = None,
    title: Annotated[str | None, typer.Option(help="Title of the report.")] = None,
    force: ForceOpt = False,
) -> None:
    """Write report/report.html (one self-contained file: tables, intervals, plots,
    persona map) and report/summary.md from the run folder's evaluation."""
    workspace = Workspace(workdir)
    cfg = resolve_config(workspace, config, nested(report__title=title))
    result = run_stage(ReportStage, workspace, cfg, force=force)
    print_results([result])
    console.print(f"report: {workspace.path(REPORT.html)}")
    console.print(f"summary: {workspace.path(REPORT.markdown)}")
