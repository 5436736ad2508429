"""The pipeline: resumable stages over a run folder."""

from __future__ import annotations

from personasim.pipeline.evaluate import EvaluateStage
from personasim.pipeline.ingest import IngestStage
from personasim.pipeline.personas import PersonasStage
from personasim.pipeline.profile import ProfileStage
from personasim.pipeline.report import ReportStage
from personasim.pipeline.runner import STAGES, resolve_config, run_pipeline, run_stage
from personasim.pipeline.simulate import SimulateStage
from personasim.pipeline.stage import Stage, StageResult
from personasim.pipeline.train import TrainStage

__all__ = [
    "STAGES",
    "EvaluateStage",
    "IngestStage",
    "PersonasStage",
    "ProfileStage",
    "ReportStage",
    "SimulateStage",
    "Stage",
    "StageResult",
    "TrainStage",
    "resolve_config",
    "run_pipeline",
    "run_stage",
]
