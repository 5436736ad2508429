"""Running stages over a run folder: configuration layering and the stage order."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from personasim.config import RunConfig, load_config, read_toml
from personasim.pipeline.evaluate import EvaluateStage
from personasim.pipeline.ingest import IngestStage
from personasim.pipeline.personas import PersonasStage
from personasim.pipeline.profile import ProfileStage
from personasim.pipeline.report import ReportStage
from personasim.pipeline.simulate import SimulateStage
from personasim.pipeline.stage import Stage, StageResult
from personasim.pipeline.train import TrainStage
from personasim.workspace import Workspace

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


def resolve_config(
    workspace: Workspace,
    config_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> RunConfig:
    """The effective configuration of a command on a run folder.

    Layers, later ones winning: defaults, the run folder's ``config.toml``, `config_file`,
    `overrides` (from command-line options). Each stage that succeeds saves it back to
    the run folder's ``config.toml``, so later commands on the folder use the same
    settings.

    Raises:
        ConfigError: A layer is unreadable or a setting invalid.
    """
    layers: list[tuple[str, dict[str, Any]]] = []
    if workspace.config_path.exists():
        layers.append((str(workspace.config_path), read_toml(workspace.config_path)))
    if config_file is not None:
        layers.append((str(config_file), read_toml(Path(config_file))))
    if overrides:
        layers.append(("command-line options", overrides))
    return load_config(layers)


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
