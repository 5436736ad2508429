"""Stage `evaluate`: predict the test ratings with every model, write ``eval/``.

Models: the classical baselines (LensKit) on every test pair, and the LM agents
(zero-shot, global LoRA, persona LoRA) on the agents' test pairs (all, or a seeded
sample per user); where those differ, the baselines are also scored on the agents'
pairs. Each model's predictions are checkpointed as soon as they exist, so a killed
evaluation resumes at the next model.
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
from personasim.evaluation.baselines import fit_baseline, predict_baseline, training_dataset
from personasim.evaluation.metrics import mae, rating_metrics, rmse
from personasim.pipeline.ingest import IngestStage
from personasim.pipeline.stage import Stage
from personasim.progress import progress
from personasim.workspace import atomic_write_text

__all__ = ["AGENT_MODES", "PREDICTIONS_COLUMNS", "EvaluateStage", "agent_pairs"]

logger = logging.getLogger(__name__)

PREDICTIONS_COLUMNS = ["user_id", "item_id", "rating", "predicted", "model", "persona", "valid"]
"""Columns of ``eval/predictions.parquet`` (contract); agents add ``argmax``,
``digit_mass`` and ``greedy_is_digit``."""

AGENT_MODES = {"zero-shot": "none", "global-lora": "global", "persona-lora": "persona"}
"""Evaluated agent model -> UserAgent mode."""


def agent_pairs(test: pd.DataFrame, per_user: int, seed: int) -> pd.DataFrame:
    """The test pairs the agents score: all, or up to `per_user` per user (seeded)."""
    if not per_user:
        return test
    rng = np.random.default_rng(seed)
    keep = []
    for _, idx in test.groupby("user_id", sort=True).indices.items():
        keep.extend(idx if len(idx) <= per_user else np.sort(rng.choice(idx, per_user, False)))
    return test.iloc[np.sort(np.asarray(keep))].reset_index(drop=True)


class EvaluateStage(Stage):
    """Fit the baselines, score the agents, write predictions and metrics."""

    name = "evaluate"
    folder = "eval"
    upstream = (IngestStage,)

    def scores_agents(self) -> bool:
        """Whether agents are scored: asked for, and trained in this run folder (without
        trained agents, `evaluate` scores the baselines and says how to add the agents)."""
        return bool(self.config.evaluate.agents) and (
            self.workspace.read_manifest("adapters") is not None
        )

    def upstream_stages(self) -> tuple[type[Stage], ...]:
        """Ingest, plus the train stage (and what it needs) when agents are scored."""
        if not self.scores_agents():
            return (IngestStage,)
        from personasim.pipeline.personas import PersonasStage
        from personasim.pipeline.profile import ProfileStage
        from personasim.pipeline.train import TrainStage

        return (IngestStage, ProfileStage, PersonasStage, TrainStage)

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
        persona_of = self._personas()
        checkpoints = self.workspace.checkpoint_dir(
            self.folder, config_hash(self.config_hash(), self.input_hashes())[:16]
        )
        frames, notes = self._baselines(interactions, test, checkpoints)
        pairs = agent_pairs(test, cfg.agent_pairs_per_user, self.config.seed)
        if cfg.agents and not self.scores_agents():
            logger.warning(
                "evaluate: no trained agents in %s: scoring the baselines only (run "
                "`personasim train`, or `personasim run`, to add %s)",
                self.workspace.root,
                ", ".join(cfg.agents),
            )
        elif cfg.agents:
            from personasim.pipeline.train import TrainStage

            stale = TrainStage(self.workspace, self.config).status()
            if stale is not None:
                logger.warning(
                    "evaluate: the trained agents are out of date (%s); scoring "
                    "them as they are; `personasim run` retrains first",
                    stale,
                )
            agent_frames, agent_notes = self._agents(pairs, checkpoints)
            frames += agent_frames
            notes.update(agent_notes)

        predictions = pd.concat(frames, ignore_index=True)
        if "greedy_is_digit" in predictions:
            predictions["greedy_is_digit"] = predictions["greedy_is_digit"].astype("boolean")
        predictions["persona"] = pd.array(
            predictions["user_id"].map(persona_of).to_numpy(dtype=object), dtype="string"
        )
        metrics: dict[str, dict[str, Any]] = {}
        keys = set(zip(pairs["user_id"], pairs["item_id"], strict=True))
        for name in dict.fromkeys(predictions["model"]):
            mine = predictions[predictions["model"] == name]
            m = rating_metrics(mine)
            m.update(notes[name])
            if name in cfg.baselines and len(pairs) < len(test):
                on = mine[[k in keys for k in zip(mine.user_id, mine.item_id, strict=True)]]
                truth, pred = on["rating"].to_numpy(), on["predicted"].to_numpy()
                m["on_agent_pairs"] = {
                    "rmse": round(rmse(truth, pred), 6),
                    "mae": round(mae(truth, pred), 6),
                    "n": int(len(on)),
                }
            metrics[name] = m
        columns = PREDICTIONS_COLUMNS + [
            c for c in predictions.columns if c not in PREDICTIONS_COLUMNS
        ]
        write_parquet(predictions[columns], out / "predictions.parquet")
        atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        return {"metrics": metrics, "test_ratings": int(len(test)), "agent_pairs": int(len(pairs))}

    def _personas(self) -> dict[str, str]:
        path = self.workspace.path("personas", "assignments.parquet")
        if not path.exists():
            return {}
        frame = read_parquet(path)
        return dict(zip(frame["user_id"].astype(str), frame["persona"], strict=True))

    def _baselines(
        self, interactions: pd.DataFrame, test: pd.DataFrame, checkpoints: Path
    ) -> tuple[list[pd.DataFrame], dict[str, dict[str, Any]]]:
        cfg = self.config.evaluate
        training, fit_data = self._training(interactions)
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
                        "valid": ~np.isnan(result.predicted),
                    }
                )
                write_parquet(frame, path)
                note = {
                    "kind": "baseline",
                    "fit_data": fit_data,
                    "fit_ratings": int(len(training)),
                    "fallbacks": result.fallbacks,
                    "clipped_to_scale": cfg.clip_to_scale,
                }
                atomic_write_text(note_path, json.dumps(note))
                frames.append(frame)
                notes[name] = note
                advance(1)
        return frames, notes

    def _agents(
        self, pairs: pd.DataFrame, checkpoints: Path
    ) -> tuple[list[pd.DataFrame], dict[str, dict[str, Any]]]:
        from personasim.agents import UserAgent

        agents_cfg = self.config.agents
        trained = {"none"} | set(agents_cfg.modes)
        frames: list[pd.DataFrame] = []
        notes: dict[str, dict[str, Any]] = {}
        training = json.loads((self.workspace.stage_dir("adapters") / "manifest.json").read_text())[
            "summary"
        ]
        for name in self.config.evaluate.agents:
            mode = AGENT_MODES[name]
            if mode not in trained:
                logger.warning("evaluate: %s skipped: agents.modes does not train %r", name, mode)
                continue
            path = checkpoints / f"{name}.parquet"
            note_path = checkpoints / f"{name}.json"
            if path.exists() and note_path.exists():
                logger.info("evaluate: %s restored from checkpoint", name)
                frames.append(read_parquet(path))
                notes[name] = json.loads(note_path.read_text())
                continue
            agent = UserAgent.from_workdir(self.workspace.root, mode=mode)  # type: ignore[arg-type]
            with progress(f"scoring {name}", total=None):
                scored = agent.predict_pairs(pairs[["user_id", "item_id", "rating"]])
            frame = scored.assign(model=name, valid=True)
            write_parquet(frame, path)
            adapters = (
                {
                    k: v
                    for k, v in training["adapters"].items()
                    if (mode == "global") == (k == "global")
                }
                if mode != "none"
                else {}
            )
            note = {
                "kind": "agent",
                "mode": mode,
                "context": "Ms+Ml" if agents_cfg.use_rationales else "Ms",
                "prior": agents_cfg.prior if mode != "none" else "none",
                "urr": round(float(1.0 - scored["greedy_is_digit"].mean()), 6),
                "urr_definition": "share of answers whose most likely token is not a digit",
                "digit_mass": round(float(scored["digit_mass"].mean()), 6),
                "predicted_std": round(float(scored["predicted"].std()), 4),
                "training_examples": sum(a["examples"] for a in adapters.values()),
                "training_steps": sum(a["steps"] for a in adapters.values()),
                "training_seconds": round(sum(a["seconds"] for a in adapters.values()), 1),
            }
            atomic_write_text(note_path, json.dumps(note))
            frames.append(frame)
            notes[name] = note
            del agent
        return frames, notes
