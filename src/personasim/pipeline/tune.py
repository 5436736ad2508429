"""Choosing the agents' settings on held-out train ratings, never on the test split.

Each point of a grid (e.g. LoRA rank x learning rate x epochs) is one run folder under
``<workdir>/tune/``, made with ``split.validation_share``: the last share of each
user's train ratings is its test part and the real test ratings are not in it. The
stages up to `evaluate` run there as in any run folder (resumable: a killed tuning
resumes at the point and stage it reached), and the points are ranked by the RMSE of
the agents on those validation ratings, each with its paired difference from the
prior alone.
"""

from __future__ import annotations

import itertools
import json
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from personasim.config import RunConfig, config_hash, deep_merge, load_config
from personasim.errors import ConfigError
from personasim.pipeline.evaluate import EvaluateStage
from personasim.pipeline.ingest import IngestStage
from personasim.pipeline.personas import PersonasStage
from personasim.pipeline.profile import ProfileStage
from personasim.pipeline.runner import run_stage
from personasim.pipeline.train import TrainStage
from personasim.workspace import Workspace, atomic_write_text

__all__ = ["TUNE_STAGES", "parse_grid", "tune"]

TUNE_STAGES = (IngestStage, ProfileStage, PersonasStage, TrainStage, EvaluateStage)
"""The stages a tuning point runs."""


def parse_grid(specs: Sequence[str]) -> dict[str, list[Any]]:
    """``"agents.lora_rank=8,16"`` specs as a grid: dotted setting -> values (each a
    TOML literal: 8, 5e-4, true, "text").

    Raises:
        ConfigError: A spec without ``=`` or a value TOML cannot read.
    """
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise ConfigError(f"grid spec {spec!r}: write it as section.key=value1,value2")
        parsed = []
        for value in values.split(","):
            try:
                parsed.append(tomllib.loads(f"v = {value.strip()}")["v"])
            except tomllib.TOMLDecodeError:
                parsed.append(value.strip())  # a bare word is a string
        grid[key.strip()] = parsed
    return grid


def _nested(key: str, value: Any) -> dict[str, Any]:
    out: Any = value
    for part in reversed(key.split(".")):
        out = {part: out}
    return out


def _points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grid.values())]


def tune(
    workdir: str | Path,
    config: RunConfig,
    grid: dict[str, list[Any]],
    *,
    validation_share: float = 0.1,
    on_point: Callable[[int, int, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run every point of `grid` on held-out train ratings and rank them.

    Args:
        workdir: The folder of the tuning (one run folder per point under ``tune/``).
        config: The base configuration; each point overrides its settings.
        grid: Dotted setting -> values (:func:`parse_grid`).
        validation_share: The share of each user's train ratings held out.
        on_point: Called with (number, count, point) before each point runs.

    Returns:
        What ``tune/results.json`` holds: per point its settings, folder and the
        validation RMSE of each agent with its interval and its paired difference
        from the prior alone; the best point (lowest RMSE of the first agent).

    Raises:
        ConfigError: A grid key is not a setting, or a value is invalid for it.
    """
    if not 0.0 < validation_share < 1.0:
        raise ConfigError(f"validation_share must be in (0, 1), got {validation_share}")
    root = Workspace(workdir).root / "tune"
    base = json.loads(config.model_dump_json())
    points = _points(grid)
    rows = []
    for number, point in enumerate(points):
        raw = deep_merge(base, {"split": {"validation_share": validation_share}})
        for key, value in point.items():
            raw = deep_merge(raw, _nested(key, value))
        cfg = load_config([(f"tuning point {point}", raw)])
        folder = root / config_hash(point)[:12]
        if on_point is not None:
            on_point(number, len(points), point)
        workspace = Workspace(folder)
        results = [run_stage(stage, workspace, cfg) for stage in TUNE_STAGES]
        metrics = results[-1].summary["metrics"]
        rows.append({"point": point, "folder": str(folder), "agents": _agent_rows(metrics)})
    measured = [r for r in rows if r["agents"]]
    names = list(measured[0]["agents"]) if measured else []
    trained = [n for n in names if n != "zero-shot"]
    first = (trained or names or [None])[0]
    best = min(measured, key=lambda r: r["agents"][first]["rmse"]) if first else None
    out = {
        "validation_share": validation_share,
        "grid": grid,
        "ranked_by": first,
        "best": best["point"] if best else None,
        "points": rows,
    }
    atomic_write_text(root / "results.json", json.dumps(out, indent=2) + "\n")
    return out


def _agent_rows(metrics: dict[str, Any]) -> dict[str, Any]:
    """The agents' validation RMSE, interval and difference from the prior alone."""
    out = {}
    for name, m in metrics.items():
        if m.get("kind") != "agent" or "compared" not in m:
            continue
        c = m["compared"]
        out[name] = {
            "rmse": c["rmse"],
            "rmse_ci": c["rmse_ci"],
            "vs_prior_alone": c.get("vs_prior_alone"),
            "n": c["n"],
        }
    if "prior" in metrics and "compared" in metrics["prior"]:
        out_prior = metrics["prior"]["compared"]
        for entry in out.values():
            entry["prior_rmse"] = out_prior["rmse"]
    return out
