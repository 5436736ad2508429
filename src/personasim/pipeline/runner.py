"""Running stages over a run folder: configuration layering and the stage order."""

from __future__ import annotations

import logging
from pathlib import Path

from personasim.config import RunConfig
from personasim.pipeline.evaluate import EvaluateStage
from personasim.pipeline.ingest import IngestStage
from personasim.pipeline.personas import PersonasStage
from personasim.pipeline.profile import ProfileStage
from personasim.pipeline.report import ReportStage
from personasim.pipeline.simulate import SimulateStage
from personasim.pipeline.stage import Stage, StageResult
from personasim.pipeline.train import TrainStage
from personasim.workspace import Workspace, resolve_config

__all__ = ["STAGES", "resolve_config", "run_pipeline", "run_stage"]

logger = logging.getLogger(__name__)

STAGES: tuple[type[Stage], ...] = (
    IngestStage,
    ProfileStage,
    PersonasStage,
    TrainStage,
    EvaluateStage,
    SimulateStage,
    ReportStage,
)
"""Every stage, in pipeline order."""


def run_stage(
    stage: type[Stage], workspace: Workspace, config: RunConfig, *, force: bool = False
) -> StageResult:
    """Run one stage (skipped when up to date unless `force`)."""
    return stage(workspace, config).run(force=force)


def run_pipeline(
    workdir: str | Path,
    config: RunConfig | None = None,
    *,
    force: bool = False,
    stages: tuple[type[Stage], ...] = STAGES,
) -> list[StageResult]:
    """Run every stage in order on a run folder, skipping the finished ones.

    Args:
        workdir: The run folder.
        config: The configuration; None uses the run folder's (or the defaults).
        force: Redo every stage even if up to date.
        stages: The stages to run, in order.

    Returns:
        One result per stage.
    """
    workspace = Workspace(workdir)
    if config is None:
        config = resolve_config(workspace)
    return [run_stage(stage, workspace, config, force=force) for stage in stages]
