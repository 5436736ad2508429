"""Stage `evaluate`: predict every test rating with every model, write ``eval/``.

At this stage the models are the classical baselines. Each model's predictions are
checkpointed as soon as they exist, so a killed evaluation resumes at the next model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from personasim.config import config_hash
from personasim.data.tables import read_parquet, write_parquet
from personasim.evaluation.baselines import (
    fit_baseline,
    predict_baseline,
    training_dataset,
)
from personasim.evaluation.metrics import rating_metrics
from personasim.pipeline.ingest import IngestStage
from personasim.pipeline.stage import Stage
from personasim.progress import progress
from personasim.workspace import atomic_write_text

__all__ = ["PREDICTIONS_COLUMNS", "EvaluateStage"]

logger = logging.getLogger(__name__)

PREDICTIONS_COLUMNS = ["user_id", "item_id", "rating", "predicted", "model", "persona", "valid"]
"""Columns of ``eval/predictions.parquet`` (contract)."""


class EvaluateStage(Stage):
    """Fit the baselines on the training data and score the sampled users' test ratings."""

    name = "evaluate"
    folder = "eval"
    upstream = (IngestStage,)

    def settings(self) -> list[Any]:
        """The `[evaluate]` section, the rating scale and the seed."""
        return [self.config.evaluate, list(self.config.data.rating_scale), self.config.seed]

    def _training(self, interactions: pd.DataFrame) -> tuple[pd.DataFrame, str]:
        train = interactions[interactions["split"] == "train"]
        others = read_parquet(self.workspace.require("data", "others.parquet"))
        n_users = interactions["user_id"].nunique()
        if others.empty:
            return train, f"train part of the {n_users} sampled users"
        training = pd.concat([train, others], ignore_index=True)
        described = (
            f"train part of the {n_users} sampled users + full histories of "
            f"{others['user_id'].nunique()} other users"
        )
        return training, described

    def build(self, out: Path) -> dict[str, Any]:
        """Fit, predict, checkpoint per model; write predictions and metrics."""
        cfg = self.config.evaluate
        interactions = read_parquet(self.workspace.require("data", "interactions.parquet"))
        test = interactions[interactions["split"] == "test"].reset_index(drop=True)
        training, fit_data = self._training(interactions)
        checkpoints = self.workspace.checkpoint_dir(
            self.folder, config_hash(self.config_hash(), self.input_hashes())[:16]
        )
        scale = tuple(self.config.data.rating_scale) if cfg.clip_to_scale else None

        dataset = None
        fitted: dict[str, Any] = {}
        frames: list[pd.DataFrame] = []
        notes: dict[str, dict[str, Any]] = {}
        with progress("fitting baselines", total=len(cfg.baselines), unit="models") as advance:
            for name in cfg.baselines:
                path = checkpoints / f"{name}.parquet"
                note_path = checkpoints / f"{name}.json"
                if path.exists() and note_path.exists():
                    logger.info("evaluate: %s restored from checkpoint", name)
                    frames.append(read_parquet(path))
                    notes[name] = json.loads(note_path.read_text())
                    advance(1)
                    continue
                if dataset is None:
                    dataset = training_dataset(training)
                fallback = None
                if name == "biased_mf":
                    # MF cannot score items it never saw; the bias model can.
                    if "user_item_bias" not in fitted:
                        fitted["user_item_bias"] = fit_baseline(
                            "user_item_bias", cfg, dataset, self.config.seed
                        )
                    fallback = fitted["user_item_bias"]
                fitted[name] = fit_baseline(name, cfg, dataset, self.config.seed)
                result = predict_baseline(fitted[name], test, fallback=fallback, scale=scale)
                frame = pd.DataFrame(
                    {
                        "user_id": test["user_id"],
                        "item_id": test["item_id"],
                        "rating": test["rating"],
                        "predicted": result.predicted,
                        "model": name,
                        "persona": pd.array([None] * len(test), dtype="string"),
                        "valid": ~np.isnan(result.predicted),
                    }
                )
                write_parquet(frame, path)
                note = {"fallbacks": result.fallbacks}
                atomic_write_text(note_path, json.dumps(note))
                frames.append(frame)
                notes[name] = note
                advance(1)

        predictions = pd.concat(frames, ignore_index=True)[PREDICTIONS_COLUMNS]
        metrics: dict[str, dict[str, Any]] = {}
        for name in cfg.baselines:
            m = rating_metrics(predictions[predictions["model"] == name])
            m.update(
                kind="baseline",
                fit_data=fit_data,
                fit_ratings=int(len(training)),
                fallbacks=notes[name]["fallbacks"],
                clipped_to_scale=cfg.clip_to_scale,
            )
            metrics[name] = m
        write_parquet(predictions, out / "predictions.parquet")
        atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        return {"metrics": metrics, "test_ratings": int(len(test))}
