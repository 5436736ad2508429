"""Collect what the fidelity report shows from a run folder into one :class:`ReportData`.

:func:`collect_report` reads a run folder's ``eval/`` (and the persona cards and map,
the simulation's metrics and the stages' manifests when there); the tables
(:mod:`personasim.evaluation.report_tables`), the sentences
(:mod:`personasim.evaluation.report_sentences`) and the renderers
(:mod:`personasim.evaluation.report`) work from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from personasim.run_folder import (
    ADAPTERS,
    DATA,
    EVAL,
    MANIFEST,
    PERSONAS,
    PROFILES,
    SIMULATE,
    StageFolder,
)
from personasim.workspace import Workspace

__all__ = ["ReportData", "collect_report"]

_STAGES: tuple[StageFolder, ...] = tuple(
    files.stage for files in (DATA, PROFILES, PERSONAS, ADAPTERS, EVAL, SIMULATE)
)


@dataclass
class ReportData:
    """Everything the report shows, read from a run folder."""

    title: str
    metrics: dict[str, dict[str, Any]]
    taste: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    groups: pd.DataFrame | None = None
    predictions: pd.DataFrame | None = None
    taste_scores: pd.DataFrame | None = None
    taste_lists: pd.DataFrame | None = None
    free_answers: pd.DataFrame | None = None
    personas: list[dict[str, Any]] = field(default_factory=list)
    persona_map: bytes | None = None
    stages: list[dict[str, Any]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    simulation: dict[str, Any] = field(default_factory=dict)
    """``simulate/metrics.json`` when the simulate stage ran."""
    new_items: dict[str, Any] = field(default_factory=dict)
    """``eval/new_items.json``: the models on items no training rating holds."""
    not_measured: dict[str, str] = field(default_factory=dict)
    """What the stages did not measure, and why (a log without ratings: the ratings)."""


def _read(path: Path) -> pd.DataFrame | None:
    return pd.read_parquet(path) if path.exists() else None


def collect_report(workspace: Workspace, title: str | None = None) -> ReportData:
    """Read what the report shows from a run folder (``eval/`` must exist)."""
    manifest = json.loads((workspace.stage_dir(EVAL.stage) / MANIFEST).read_text())
    data = ReportData(
        title=title or f"personasim fidelity report: {workspace.root.name}",
        metrics=json.loads(workspace.path(EVAL.metrics).read_text()),
    )
    if workspace.path(EVAL.taste).exists():
        data.taste = json.loads(workspace.path(EVAL.taste).read_text())
    if workspace.path(EVAL.new_items).exists():
        data.new_items = json.loads(workspace.path(EVAL.new_items).read_text())
    data.groups = _read(workspace.path(EVAL.groups))
    data.predictions = _read(workspace.path(EVAL.predictions))
    data.taste_scores = _read(workspace.path(EVAL.taste_scores))
    data.taste_lists = _read(workspace.path(EVAL.taste_lists))
    data.free_answers = _read(workspace.path(EVAL.free_generation))
    cards = workspace.path(PERSONAS.cards)
    if cards.exists():
        data.personas = json.loads(cards.read_text())
    if workspace.path(PERSONAS.map).exists():
        data.persona_map = workspace.path(PERSONAS.map).read_bytes()
    simulation = workspace.path(SIMULATE.metrics)
    if simulation.exists():
        data.simulation = json.loads(simulation.read_text())
    for stage in _STAGES:
        path = workspace.stage_dir(stage) / MANIFEST
        if path.exists():
            m = json.loads(path.read_text())
            data.stages.append(
                {
                    "stage": m["stage"],
                    "wall_time_s": m.get("wall_time_s"),
                    "peak_rss_mib": m.get("peak_rss_mib"),
                    "at": m.get("started_at"),
                }
            )
    summary = manifest.get("summary", {})
    data.not_measured.update(summary.get("not_measured", {}))
    data.not_measured.update(data.simulation.get("not_measured", {}))
    rated = "ratings" not in data.not_measured
    data.facts = {
        "test ratings" if rated else "test interactions": summary.get("test_ratings"),
        "pairs scored by every model": summary.get("agent_pairs") if rated else None,
        "best classical baseline": summary.get("best_baseline"),
        "seed": manifest.get("seed"),
        "evaluated at": manifest.get("started_at"),
        "personasim": manifest.get("versions", {}).get("personasim"),
    }
    return data
