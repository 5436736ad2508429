"""Stage `evaluate`: how faithful is each model? Writes ``eval/``.

Models: the classical baselines (LensKit) on every test pair, and the LM agents
(zero-shot, global LoRA, persona LoRA) on the agents' test pairs (all, or a seeded
sample per user); where those differ, the baselines are also scored on the agents'
pairs. On the pairs every model scored it then measures:

- rating fidelity: RMSE, MAE, URR with 95% user-bootstrap intervals, per persona and
  per trait level, and a paired bootstrap of each model against the best baseline;
- the rating distribution: predicted vs true histograms, Wasserstein and KL;
- taste alignment (:mod:`personasim.evaluation.taste`): popularity, the baselines and
  the agents' watch probabilities on candidate lists at 1:1, 1:3, 1:9;
- free generation: a sample of agent answers in words, parsed, for the URR of the papers.

Each model's results are checkpointed as soon as they exist, so a killed evaluation
resumes at the next model; rating predictions of the previous evaluation are reused
when only the taste or generation settings changed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from personasim.agents.agent import pair_scorer
from personasim.agents.prior import CFPrior
from personasim.agents.watch_prior import WATCH_PRIOR_FILE, WatchPrior
from personasim.cf.explicit import (
    PARTIAL_BASELINES,
    fit_baseline,
    predict_baseline,
    training_dataset,
)
from personasim.cf.implicit import IMPLICIT_SCORERS, fit_implicit
from personasim.config import config_hash
from personasim.data.tables import read_parquet, write_parquet
from personasim.evaluation.bootstrap import (
    mean_interval,
    paired_rmse_difference,
    rmse_mae_intervals,
)
from personasim.evaluation.fidelity import (
    TRAITS,
    distribution_distance,
    group_metrics,
    rating_histograms,
)
from personasim.evaluation.metrics import mae, parse_rating, rating_metrics, rmse
from personasim.evaluation.taste import (
    best_f1_threshold,
    calibration,
    candidate_lists,
    list_metrics,
)
from personasim.pipeline.ingest import IngestStage
from personasim.pipeline.stage import Stage
from personasim.progress import progress
from personasim.scale.executor import get_executor
from personasim.workspace import atomic_write_text, file_sha256

__all__ = [
    "AGENT_MODES",
    "PREDICTIONS_COLUMNS",
    "TASTE_METRICS",
    "EvaluateStage",
    "agent_pairs",
    "training_log",
]

logger = logging.getLogger(__name__)

PREDICTIONS_COLUMNS = ["user_id", "item_id", "rating", "predicted", "model", "persona", "valid"]
"""Columns of ``eval/predictions.parquet`` (contract); agents add ``argmax``,
``digit_mass`` and ``greedy_is_digit``."""

AGENT_MODES = {"zero-shot": "none", "global-lora": "global", "persona-lora": "persona"}
"""Evaluated agent model -> UserAgent mode."""

_Ratings = list[tuple[str, pd.DataFrame, dict[str, Any]]]
"""(model, its test predictions, its note) per agent model."""

PRIOR_MODEL = "prior"
"""The agents' rating prior alone (no language model), as a rating model."""

WATCH_PRIOR_MODEL = "watch-prior"
"""The agents' watch prior alone (no language model), as a taste model."""

TASTE_METRICS = ("accuracy", "precision", "recall", "f1", "auc")
"""Per-list taste-alignment metrics, averaged over users."""

_RATING_SETTINGS = (
    "baselines",
    "bias_damping",
    "mf_embedding_size",
    "mf_epochs",
    "mf_regularization",
    "knn_neighbours",
    "clip_to_scale",
    "agent_pairs_per_user",
)
_TASTE_SETTINGS = ("taste_candidates", "taste_ratios", "taste_samplers", "taste_users")
_COMPUTED = {
    "rmse",
    "mae",
    "urr",
    "n",
    "n_users",
    "on_agent_pairs",
    "compared",
    "free_generation",
}


def training_log(workspace: Any, interactions: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """What the baselines and recommenders train on: the sampled users' train part plus
    the other users' histories (when the split kept them), and a description of it."""
    train = interactions[interactions["split"] == "train"]
    others = read_parquet(workspace.require("data", "others.parquet"))
    n_users = interactions["user_id"].nunique()
    if others.empty:
        return train, f"train part of the {n_users} sampled users"
    training = pd.concat([train, others], ignore_index=True)
    described = (
        f"train part of the {n_users} sampled users + full histories of "
        f"{others['user_id'].nunique()} other users"
    )
    return training, described


def agent_pairs(test: pd.DataFrame, per_user: int, seed: int) -> pd.DataFrame:
    """The test pairs the agents score: all, or up to `per_user` per user (seeded)."""
    if not per_user:
        return test
    rng = np.random.default_rng(seed)
    keep = []
    for _, idx in test.groupby("user_id", sort=True).indices.items():
        keep.extend(idx if len(idx) <= per_user else np.sort(rng.choice(idx, per_user, False)))
    return test.iloc[np.sort(np.asarray(keep))].reset_index(drop=True)


def _rating_key(evaluate: dict[str, Any], scale: Any, seed: Any, inputs: Any) -> str:
    subset = {k: evaluate.get(k) for k in _RATING_SETTINGS}
    return config_hash(subset, list(scale), seed, inputs)[:16]


def _taste_key(evaluate: dict[str, Any], rating_key: str) -> str:
    return config_hash({k: evaluate.get(k) for k in _TASTE_SETTINGS}, rating_key)[:16]


def _generation_key(evaluate: dict[str, Any]) -> str:
    return config_hash(
        evaluate.get("free_generation_pairs"), evaluate.get("free_generation_tokens")
    )[:8]


class EvaluateStage(Stage):
    """Fit the baselines, score the agents, measure fidelity and taste, write ``eval/``."""

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

    # --- keys and reuse ------------------------------------------------------------------

    def _keys(self) -> tuple[str, str]:
        """Checkpoint keys of the rating part and of the taste part."""
        settings = json.loads(self.config.evaluate.model_dump_json())
        inputs = self.input_hashes()
        rating = _rating_key(settings, self.config.data.rating_scale, self.config.seed, inputs)
        return rating, _taste_key(settings, rating)

    def _previous_ratings(self, rating_key: str) -> tuple[pd.DataFrame | None, dict[str, Any]]:
        """The previous evaluation's rating predictions and notes, if made with the same
        rating settings, inputs and seed and still intact; else ``(None, {})``."""
        manifest = self.workspace.read_manifest(self.folder)
        if manifest is None or self.reason == "forced":
            return None, {}
        try:
            evaluate, scale, seed = manifest["config"]
            key = _rating_key(evaluate, scale, seed, manifest["inputs"])
            recorded = manifest["outputs"]["predictions.parquet"]["sha256"]
        except (KeyError, TypeError, ValueError):
            return None, {}
        path = self.workspace.path(self.folder, "predictions.parquet")
        metrics_path = self.workspace.path(self.folder, "metrics.json")
        if key != rating_key or not path.exists() or file_sha256(path) != recorded:
            return None, {}
        metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
        notes = {m: {k: v for k, v in d.items() if k not in _COMPUTED} for m, d in metrics.items()}
        logger.info("evaluate: rating predictions reused from the previous evaluation")
        self._previous_agent_scores(manifest, evaluate, key)
        return read_parquet(path), notes

    def _previous_agent_scores(
        self, manifest: dict[str, Any], evaluate: dict[str, Any], rating_key: str
    ) -> None:
        """The previous evaluation's agent taste scores (same taste settings) and free
        answers (same generation settings), when their files are intact."""
        settings = json.loads(self.config.evaluate.model_dump_json())
        wanted = {
            "taste_scores.parquet": _taste_key(evaluate, rating_key)
            == _taste_key(settings, rating_key),
            "free_generation.parquet": _generation_key(evaluate) == _generation_key(settings),
        }
        for name, same in wanted.items():
            path = self.workspace.path(self.folder, name)
            recorded = manifest["outputs"].get(name, {}).get("sha256")
            if same and path.exists() and file_sha256(path) == recorded:
                self._previous[name] = read_parquet(path)
                logger.info("evaluate: %s reused from the previous evaluation", name)

    # --- the stage -----------------------------------------------------------------------

    def build(self, out: Path) -> dict[str, Any]:
        """Fit, predict, checkpoint per model; write predictions, metrics and taste."""
        cfg = self.config.evaluate
        interactions = read_parquet(self.workspace.require("data", "interactions.parquet"))
        test = interactions[interactions["split"] == "test"].reset_index(drop=True)
        persona_of = self._personas()
        rating_key, taste_key = self._keys()
        checkpoints = self.workspace.checkpoint_dir(
            self.folder, config_hash(self.input_hashes(), self.config.seed)[:16]
        )
        self._previous: dict[str, pd.DataFrame] = {}
        previous, previous_notes = self._previous_ratings(rating_key)
        pairs = agent_pairs(test, cfg.agent_pairs_per_user, self.config.seed)
        frames, notes, fitted = self._baselines(
            interactions, test, checkpoints / f"r{rating_key}", previous, previous_notes
        )
        agent_models: list[str] = []
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
            agent_models = self._trained_agents()
            prior = self._prior_alone(test)
            if prior is not None:
                frames.append(prior[0])
                notes[PRIOR_MODEL] = prior[1]

        lists = self._taste_lists(interactions) if cfg.taste else None
        taste_scores: list[pd.DataFrame] = []
        if lists is not None:
            taste_scores += self._baseline_taste(lists, fitted, checkpoints / f"t{taste_key}")
        generations: list[pd.DataFrame] = []
        if agent_models:
            ratings, taste, generations = self._agents(
                agent_models,
                pairs,
                lists,
                checkpoints / f"r{rating_key}",
                checkpoints / f"t{taste_key}",
                previous,
                previous_notes,
            )
            for model, frame, note in ratings:
                frames.append(frame)
                notes[model] = note
            taste_scores += taste

        predictions = pd.concat(frames, ignore_index=True)
        if "greedy_is_digit" in predictions:
            predictions["greedy_is_digit"] = predictions["greedy_is_digit"].astype("boolean")
        predictions["persona"] = pd.array(
            predictions["user_id"].map(persona_of).to_numpy(dtype=object), dtype="string"
        )
        metrics = self._rating_metrics(predictions, pairs, notes)
        compared = self._compared(predictions, pairs, metrics, out)
        new_items = self._new_items(predictions, pairs, metrics)
        if new_items is not None:
            atomic_write_text(out / "new_items.json", json.dumps(new_items, indent=2) + "\n")
        if generations:
            generated = pd.concat(generations, ignore_index=True)
            write_parquet(generated, out / "free_generation.parquet")
            for name, part in generated.groupby("model", sort=False):
                metrics[str(name)]["free_generation"] = {
                    "urr": round(float(1.0 - part["valid"].mean()), 6),
                    "n": int(len(part)),
                    "rmse_parsed": round(
                        rmse(part.loc[part.valid, "rating"], part.loc[part.valid, "parsed"]), 6
                    ),
                    "definition": "share of free-text answers with no rating on the scale",
                }
        columns = PREDICTIONS_COLUMNS + [
            c for c in predictions.columns if c not in PREDICTIONS_COLUMNS
        ]
        write_parquet(predictions[columns], out / "predictions.parquet")
        atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        summary: dict[str, Any] = {
            "metrics": metrics,
            "test_ratings": int(len(test)),
            "agent_pairs": int(len(pairs)),
            "best_baseline": compared["best_baseline"],
        }
        if new_items is not None:
            summary["new_items"] = new_items
        if lists is not None and taste_scores:
            summary["taste"] = self._taste_metrics(lists, taste_scores, out)
        return summary

    def _personas(self) -> dict[str, str]:
        path = self.workspace.path("personas", "assignments.parquet")
        if not path.exists():
            return {}
        frame = read_parquet(path)
        return dict(zip(frame["user_id"].astype(str), frame["persona"], strict=True))

    def _groups(self) -> pd.DataFrame | None:
        """``user_id, persona, activity, conformity, diversity`` where known."""
        path = self.workspace.path("profiles", "profiles.parquet")
        if not path.exists():
            return None
        profiles = read_parquet(path)
        groups = profiles[["user_id", *[t for t in TRAITS if t in profiles]]].copy()
        groups["user_id"] = groups["user_id"].astype(str)
        persona_of = self._personas()
        if persona_of:
            groups.insert(1, "persona", groups["user_id"].map(persona_of))
        return groups

    # --- ratings -------------------------------------------------------------------------

    def _baselines(
        self,
        interactions: pd.DataFrame,
        test: pd.DataFrame,
        checkpoints: Path,
        previous: pd.DataFrame | None,
        previous_notes: dict[str, Any],
    ) -> tuple[list[pd.DataFrame], dict[str, dict[str, Any]], _LazyBaselines]:
        cfg = self.config.evaluate
        checkpoints.mkdir(parents=True, exist_ok=True)
        training, fit_data = training_log(self.workspace, interactions)
        scale = tuple(self.config.data.rating_scale) if cfg.clip_to_scale else None
        items = read_parquet(self.workspace.require("data", "items.parquet"))
        genres = {
            str(i): [] if g is None else list(g)
            for i, g in zip(items["item_id"], items["genres"], strict=True)
        }
        fitted = _LazyBaselines(training, cfg, self.config.seed, genres)
        frames: list[pd.DataFrame] = []
        notes: dict[str, dict[str, Any]] = {}
        with progress("fitting baselines", total=len(cfg.baselines), unit="models") as advance:
            for name in cfg.baselines:
                restored = _restore(name, checkpoints, previous, previous_notes)
                if restored is not None:
                    frames.append(restored[0])
                    notes[name] = restored[1]
                    advance(1)
                    continue
                result = fitted.predict(name, test, scale)
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
                note = {
                    "kind": "baseline",
                    "fit_data": fit_data,
                    "fit_ratings": int(len(training)),
                    "fallbacks": result.fallbacks,
                    "clipped_to_scale": cfg.clip_to_scale,
                }
                _checkpoint(name, checkpoints, frame, note)
                frames.append(frame)
                notes[name] = note
                advance(1)
        return frames, notes, fitted

    def _prior_alone(self, test: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]] | None:
        """The agents' rating prior alone (no language model) on every test pair: the
        expectation of the digit prior, which is the CF model's prediction."""
        folder = self.workspace.stage_dir("adapters")
        if not (folder / "prior.npy").exists():
            return None
        prior = CFPrior.load(folder)
        predicted = np.empty(len(test))
        for user, rows in test.groupby("user_id", sort=False).indices.items():
            predicted[rows] = prior.predict(
                str(user), test["item_id"].iloc[rows].astype(str).tolist()
            )
        frame = pd.DataFrame(
            {
                "user_id": test["user_id"],
                "item_id": test["item_id"],
                "rating": test["rating"],
                "predicted": predicted,
                "model": PRIOR_MODEL,
                "valid": True,
            }
        )
        trained = self.workspace.read_manifest("adapters") or {}
        summary = trained.get("summary", {})
        note = {
            "kind": "prior",
            "prior_model": summary.get("prior_model", self.config.agents.prior_model),
            "prior_weights": summary.get("prior_weights"),
        }
        return frame, note

    def _trained_agents(self) -> list[str]:
        trained = {"none"} | set(self.config.agents.modes)
        names = []
        for name in self.config.evaluate.agents:
            if AGENT_MODES[name] not in trained:
                logger.warning(
                    "evaluate: %s skipped: agents.modes does not train %r", name, AGENT_MODES[name]
                )
                continue
            names.append(name)
        return names

    def _agents(
        self,
        names: list[str],
        pairs: pd.DataFrame,
        lists: dict[str, Any] | None,
        rating_dir: Path,
        taste_dir: Path,
        previous: pd.DataFrame | None,
        previous_notes: dict[str, Any],
    ) -> tuple[_Ratings, list[pd.DataFrame], list[pd.DataFrame]]:
        """The agent models: their test ratings (also without Ml when asked), taste
        scores and free answers. What a checkpoint holds is restored; the rest is scored
        by one model holding every mode's adapters, all modes in one pass (a prompt's
        layers below the adapters run once for all of them). The model loads only if
        needed."""
        from personasim.agents import UserAgent

        cfg = self.config.evaluate
        modes = {name: AGENT_MODES[name] for name in names}
        taste_dir.mkdir(parents=True, exist_ok=True)
        shared: Any = None

        def load() -> Any:
            nonlocal shared
            if shared is None:
                wanted = list(modes.values())
                shared = UserAgent.from_workdir(
                    self.workspace.root,
                    mode=wanted[0],
                    also=wanted[1:],  # type: ignore[arg-type]
                )
            return shared

        asked = pairs[["user_id", "item_id", "rating"]]
        ratings = self._agent_ratings(
            {name: name for name in names},
            modes,
            asked,
            load,
            rating_dir,
            previous,
            previous_notes,
            "",
        )
        if cfg.without_rationales and self.config.agents.use_rationales:
            bare = {f"{n}-ms": n for n in names if modes[n] != "none"}
            ratings += self._agent_ratings(
                bare, modes, asked, load, rating_dir, previous, previous_notes, "Ms (Ml left out)"
            )

        taste: list[pd.DataFrame] = []
        if lists is not None:
            earlier = self._previous.get("taste_scores.parquet")
            found = {}
            for name in names:
                path = taste_dir / f"{name}.parquet"
                found[name] = read_parquet(path) if path.exists() else _model_rows(earlier, name)
            todo = {n: modes[n] for n in names if found[n] is None}
            if todo:
                for name, frame in _watch_scores(load(), lists["pairs"], todo).items():
                    write_parquet(frame, taste_dir / f"{name}.parquet")
                    found[name] = frame
            taste = [found[name] for name in names]

        generated: list[pd.DataFrame] = []
        if cfg.free_generation_pairs:
            settings = _generation_key(json.loads(cfg.model_dump_json()))
            for name in names:
                generated.append(
                    _checkpointed(
                        taste_dir / f"{name}.generated-{settings}.parquet",
                        _model_rows(self._previous.get("free_generation.parquet"), name),
                        lambda name=name: self._free_answers(
                            load().as_mode(modes[name]), name, pairs
                        ),
                    )
                )
        return ratings, taste, generated

    def _agent_ratings(
        self,
        models: dict[str, str],
        modes: dict[str, str],
        asked: pd.DataFrame,
        load: Callable[[], Any],
        folder: Path,
        previous: pd.DataFrame | None,
        previous_notes: dict[str, Any],
        context: str,
    ) -> _Ratings:
        """Test ratings of agent `models` (model -> the agent model it varies; `context`:
        the rationale left out), from checkpoints or scored together."""
        done = {m: _restore(m, folder, previous, previous_notes) for m in models}
        todo = [m for m in models if done[m] is None]
        if todo:
            executor = get_executor(self.config.scale)
            wanted = [modes[models[m]] for m in todo]
            if executor.name == "in-process" or context:
                agent = load()
                index = agent.index
                if context:
                    agent.index = None  # no retrieved rationale
                try:
                    with progress(f"rating with {', '.join(todo)}", total=None):
                        scored = agent.predict_pairs_by_mode(wanted, asked)
                finally:
                    agent.index = index
                by_model = {m: scored[mode] for m, mode in zip(todo, wanted, strict=True)}
                dtype = agent.lm.dtype_name
            else:
                root = str(self.workspace.root)
                dtype = self.config.agents.dtype  # resolved on each worker
                by_model = {
                    m: executor.score_pairs(partial(pair_scorer, root, mode), asked)
                    for m, mode in zip(todo, wanted, strict=True)
                }
            for m, mode in zip(todo, wanted, strict=True):
                note = {**self._agent_note(mode, by_model[m]), "dtype": dtype}
                if context:
                    note["context"] = context
                done[m] = (by_model[m].assign(model=m, valid=True), note)
                _checkpoint(m, folder, *done[m])
        return [(m, *done[m]) for m in models]  # type: ignore[misc]

    def _agent_note(self, mode: str, scored: pd.DataFrame) -> dict[str, Any]:
        agents_cfg = self.config.agents
        training = json.loads((self.workspace.stage_dir("adapters") / "manifest.json").read_text())[
            "summary"
        ]
        adapters = (
            {k: v for k, v in training["adapters"].items() if (mode == "global") == (k == "global")}
            if mode != "none"
            else {}
        )
        return {
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

    def _free_answers(self, agent: Any, name: str, pairs: pd.DataFrame) -> pd.DataFrame:
        cfg = self.config.evaluate
        n = min(cfg.free_generation_pairs, len(pairs))
        rng = np.random.default_rng(self.config.seed)
        chosen = pairs.iloc[np.sort(rng.choice(len(pairs), n, replace=False))]
        requests = [
            (str(u), part["item_id"].astype(str).tolist())
            for u, part in chosen.groupby("user_id", sort=False)
        ]
        with progress(f"free answers of {name}", total=None):
            answers = agent.answer_freely(requests, max_new_tokens=cfg.free_generation_tokens)
        scale = tuple(self.config.data.rating_scale)
        truth = dict(
            zip(
                zip(chosen["user_id"].astype(str), chosen["item_id"].astype(str), strict=True),
                chosen["rating"].astype(float),
                strict=True,
            )
        )
        rows = []
        for (user, items), texts in zip(requests, answers, strict=True):
            for item, text in zip(items, texts, strict=True):
                parsed = parse_rating(text, scale)  # type: ignore[arg-type]
                rows.append(
                    {
                        "model": name,
                        "user_id": user,
                        "item_id": item,
                        "rating": truth[(user, item)],
                        "answer": text,
                        "parsed": np.nan if parsed is None else parsed,
                        "valid": parsed is not None,
                    }
                )
        return pd.DataFrame(rows)

    def _rating_metrics(
        self, predictions: pd.DataFrame, pairs: pd.DataFrame, notes: dict[str, Any]
    ) -> dict[str, dict[str, Any]]:
        cfg = self.config.evaluate
        metrics: dict[str, dict[str, Any]] = {}
        keys = set(zip(pairs["user_id"], pairs["item_id"], strict=True))
        for name in dict.fromkeys(predictions["model"]):
            mine = predictions[predictions["model"] == name]
            m = rating_metrics(mine)
            m.update(notes[name])
            if "greedy_is_digit" in mine and mine["greedy_is_digit"].notna().all():
                # Agents: the share of answers whose most likely token is not a digit.
                m["urr"] = round(float(1.0 - mine["greedy_is_digit"].astype(bool).mean()), 6)
            if (name in cfg.baselines or name == PRIOR_MODEL) and len(pairs) < len(mine):
                on = mine[[k in keys for k in zip(mine.user_id, mine.item_id, strict=True)]]
                truth, pred = on["rating"].to_numpy(), on["predicted"].to_numpy()
                m["on_agent_pairs"] = {
                    "rmse": round(rmse(truth, pred), 6),
                    "mae": round(mae(truth, pred), 6),
                    "n": int(len(on)),
                }
            metrics[name] = m
        return metrics

    def _compared(
        self,
        predictions: pd.DataFrame,
        pairs: pd.DataFrame,
        metrics: dict[str, dict[str, Any]],
        out: Path,
    ) -> dict[str, Any]:
        """Intervals, distributions, groups and the paired comparison with the best
        baseline, all on the pairs every model scored (the agents' pairs)."""
        cfg = self.config.evaluate
        on = predictions.merge(pairs[["user_id", "item_id"]], on=["user_id", "item_id"])
        valid = on[on["valid"]]
        present = set(valid["model"])
        baselines = [b for b in cfg.baselines if b in present]
        best = (
            min(baselines, key=lambda b: rmse(*_truth_pred(valid[valid.model == b])))
            if baselines
            else None
        )
        histograms = rating_histograms(on, tuple(self.config.data.rating_scale))  # type: ignore[arg-type]
        for name, part in valid.groupby("model", sort=False):
            entry: dict[str, Any] = {
                **self._errors(part),
                "histogram": histograms.get(str(name)),
                **distribution_distance(histograms[str(name)]),
            }
            by_model = {m: valid[valid.model == m] for m in (best, PRIOR_MODEL) if m in present}
            entry.update(self._versus(str(name), part, by_model, best))
            metrics[str(name)]["compared"] = entry
        groups = self._groups()
        if groups is not None:
            write_parquet(group_metrics(on, groups), out / "groups.parquet")
        return {"best_baseline": best}

    def _new_items(
        self, predictions: pd.DataFrame, pairs: pd.DataFrame, metrics: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Every model on the scored test pairs of items no training rating holds (the
        new-items protocol's withheld items, or items only the test part rated): RMSE
        and MAE with intervals, paired against the best baseline there and, for the
        agents, against their prior alone. ``None`` when there are no such pairs."""
        cfg = self.config.evaluate
        items = read_parquet(self.workspace.require("data", "items.parquet"))
        unseen = set(items.loc[items["train_count"] == 0, "item_id"].astype(str))
        on = predictions.merge(pairs[["user_id", "item_id"]], on=["user_id", "item_id"])
        on = on[on["valid"] & on["item_id"].astype(str).isin(unseen)]
        if on.empty:
            return None
        by_model = {str(name): part for name, part in on.groupby("model", sort=False)}
        baselines = [b for b in cfg.baselines if b in by_model]
        best = min(baselines, key=lambda b: rmse(*_truth_pred(by_model[b])), default=None)
        models: dict[str, Any] = {}
        for name, part in by_model.items():
            models[name] = {
                "kind": metrics[name].get("kind"),
                **self._errors(part),
                **self._versus(name, part, by_model, best),
            }
        return {
            "definition": "test pairs whose item has no training rating",
            "items": int(on["item_id"].nunique()),
            "best_baseline": best,
            "models": models,
        }

    def _errors(self, part: pd.DataFrame) -> dict[str, Any]:
        """RMSE and MAE of one model's pairs with their user-bootstrap intervals."""
        cfg = self.config.evaluate
        r, a = rmse_mae_intervals(part, rounds=cfg.bootstrap_rounds, seed=self.config.seed)
        return {
            "n": int(len(part)),
            "n_users": int(part["user_id"].nunique()),
            "rmse": round(r.estimate, 6),
            "rmse_ci": r.as_list(),
            "mae": round(a.estimate, 6),
            "mae_ci": a.as_list(),
        }

    def _versus(
        self, name: str, part: pd.DataFrame, by_model: dict[str, pd.DataFrame], best: str | None
    ) -> dict[str, Any]:
        """A model's paired comparisons: with the best baseline (unless it is that one)
        and, for an agent, with its prior alone (when `by_model` holds them)."""
        out: dict[str, Any] = {}
        if best is not None and name != best:
            out["vs_best_baseline"] = {"baseline": best, **self._paired(part, by_model[best])}
        if name in AGENT_MODES and PRIOR_MODEL in by_model:
            out["vs_prior_alone"] = self._paired(part, by_model[PRIOR_MODEL])
        return out

    def _paired(self, model: pd.DataFrame, other: pd.DataFrame) -> dict[str, Any]:
        """RMSE of `model` minus `other` on their shared pairs, with a paired user
        bootstrap interval and a verdict."""
        cfg = self.config.evaluate
        diff, shared = paired_rmse_difference(
            model, other, rounds=cfg.bootstrap_rounds, seed=self.config.seed
        )
        verdict = "better" if diff.high < 0 else "worse" if diff.low > 0 else "no clear difference"
        return {
            "rmse_difference": round(diff.estimate, 6),
            "ci": diff.as_list(),
            "pairs": shared,
            "verdict": verdict,
        }

    # --- taste ---------------------------------------------------------------------------

    def _taste_lists(self, interactions: pd.DataFrame) -> dict[str, Any]:
        """Test lists to measure on and train lists to calibrate thresholds on."""
        cfg = self.config.evaluate
        items = read_parquet(self.workspace.require("data", "items.parquet"))
        users = sorted(interactions["user_id"].astype(str).unique())
        if cfg.taste_users and cfg.taste_users < len(users):
            rng = np.random.default_rng(self.config.seed)
            users = sorted(rng.choice(users, cfg.taste_users, replace=False).tolist())
        built = {}
        for part in ("test", "train"):
            built[part] = candidate_lists(
                interactions,
                items,
                users,
                part=part,
                candidates=cfg.taste_candidates,
                ratios=cfg.taste_ratios,
                samplers=cfg.taste_samplers,
                seed=self.config.seed + (0 if part == "test" else 1),
            )
        all_pairs = pd.concat([built["test"].pairs, built["train"].pairs]).drop_duplicates()
        return {
            "test": built["test"].lists,
            "train": built["train"].lists,
            "pairs": all_pairs.reset_index(drop=True),
            "popularity": dict(
                zip(items["item_id"].astype(str), items["train_count"].astype(float), strict=True)
            ),
        }

    def _baseline_taste(
        self, lists: dict[str, Any], fitted: _LazyBaselines, taste_dir: Path
    ) -> list[pd.DataFrame]:
        """Scores of the implicit-feedback baselines (popularity, item-kNN, implicit MF,
        fitted on the same training data as the rating baselines), of the rating
        baselines (predicted rating; the global mean is constant and left out), and of
        the agents' watch prior alone when the agents have one."""
        pairs = lists["pairs"]
        out = []
        with progress("taste baselines", total=len(IMPLICIT_SCORERS), unit="models") as advance:
            for kind in IMPLICIT_SCORERS:
                scorer = fit_implicit(kind, fitted.training, seed=self.config.seed)
                out.append(pairs.assign(model=kind, score=scorer.score_pairs(pairs)))
                advance(1)
        adapters = self.workspace.stage_dir("adapters")
        if (adapters / WATCH_PRIOR_FILE).is_file():
            prior = WatchPrior.load(adapters)
            odds = np.zeros(len(pairs))
            items = pairs["item_id"].astype(str).to_numpy()
            for user, idx in pairs.groupby(pairs["user_id"].astype(str)).indices.items():
                odds[idx] = prior.log_odds(str(user), items[idx].tolist())
            out.append(pairs.assign(model=WATCH_PRIOR_MODEL, score=odds))
        for name in self.config.evaluate.baselines:
            if name == "global_mean":
                continue
            scores = fitted.predict(name, pairs, None).predicted
            scores = np.where(np.isnan(scores), np.nanmin(scores), scores)
            out.append(pairs.assign(model=name, score=scores))
        return out

    def _taste_metrics(
        self, lists: dict[str, Any], scores: list[pd.DataFrame], out: Path
    ) -> dict[str, Any]:
        """Calibrate each model's threshold on train lists, measure on test lists;
        writes ``taste.json`` (summary), ``taste.parquet`` (per user and list),
        ``taste_scores.parquet`` (every score) and ``taste_lists.parquet``."""
        cfg = self.config.evaluate
        scored = pd.concat(scores, ignore_index=True)
        write_parquet(scored, out / "taste_scores.parquet")
        write_parquet(
            pd.concat([lists["test"].assign(part="test"), lists["train"].assign(part="train")]),
            out / "taste_lists.parquet",
        )
        per_user: list[pd.DataFrame] = []
        summary: dict[str, Any] = {}
        for sampler in cfg.taste_samplers:
            for ratio in cfg.taste_ratios:
                key = f"{sampler} 1:{ratio}"
                summary[key] = {}
                for model, mine in scored.groupby("model", sort=False):
                    parts = {}
                    for part in ("train", "test"):
                        frame = lists[part]
                        frame = frame[(frame.sampler == sampler) & (frame.ratio == ratio)]
                        parts[part] = frame.merge(
                            mine[["user_id", "item_id", "score"]], on=["user_id", "item_id"]
                        )
                    threshold = best_f1_threshold(
                        parts["train"]["score"].to_numpy(), parts["train"]["positive"].to_numpy()
                    )
                    result = list_metrics(parts["test"], threshold)
                    result.insert(0, "model", model)
                    result.insert(1, "sampler", sampler)
                    result.insert(2, "ratio", ratio)
                    per_user.append(result.assign(threshold=threshold))
                    entry: dict[str, Any] = {"users": int(len(result)), "threshold": threshold}
                    if model in AGENT_MODES or model == WATCH_PRIOR_MODEL:  # probabilities
                        p = parts["test"]["score"].to_numpy("float64")
                        if model == WATCH_PRIOR_MODEL:
                            p = 1.0 / (1.0 + np.exp(-p))  # its score is log-odds
                        entry["calibration"] = calibration(p, parts["test"]["positive"])
                    for metric in TASTE_METRICS:
                        interval = mean_interval(
                            result[metric].to_numpy(),
                            rounds=cfg.bootstrap_rounds,
                            seed=self.config.seed,
                        )
                        entry[metric] = round(interval.estimate, 6)
                        entry[f"{metric}_ci"] = interval.as_list()
                    summary[key][str(model)] = entry
                self._taste_compared(summary[key], per_user, sampler, ratio)
        write_parquet(pd.concat(per_user, ignore_index=True), out / "taste.parquet")
        atomic_write_text(out / "taste.json", json.dumps(summary, indent=2) + "\n")
        return summary

    def _taste_compared(
        self, models: dict[str, Any], per_user: list[pd.DataFrame], sampler: str, ratio: int
    ) -> None:
        """Add to each agent's (and the watch prior's) entry its paired difference from
        the best baseline of this list kind (by AUC) and, for the agents, from the prior
        alone: per-user AUC and F1 differences, bootstrap over users."""
        agents = set(AGENT_MODES)
        baselines = [m for m in models if m not in agents and m != WATCH_PRIOR_MODEL]
        if not baselines:
            return
        best = max(baselines, key=lambda m: models[m]["auc"])
        rows = pd.concat(per_user, ignore_index=True)
        rows = rows[(rows.sampler == sampler) & (rows.ratio == ratio)].set_index(
            ["model", "user_id"]
        )

        def paired(model: str, other: str) -> dict[str, Any]:
            entry: dict[str, Any] = {"against": other}
            for metric in ("auc", "f1"):
                diff = (rows.loc[model, metric] - rows.loc[other, metric]).dropna()
                interval = mean_interval(
                    diff.to_numpy(),
                    rounds=self.config.evaluate.bootstrap_rounds,
                    seed=self.config.seed,
                )
                entry[metric] = round(interval.estimate, 6)
                entry[f"{metric}_ci"] = interval.as_list()
            low, high = entry["auc_ci"]
            verdict = "better" if low > 0 else "worse" if high < 0 else "no clear difference"
            entry["verdict"] = verdict
            return entry

        for model in models:
            if model in agents or model == WATCH_PRIOR_MODEL:
                models[model]["vs_best_baseline"] = paired(model, best)
            if model in agents and WATCH_PRIOR_MODEL in models and model != "zero-shot":
                models[model]["vs_prior_alone"] = paired(model, WATCH_PRIOR_MODEL)


class _LazyBaselines:
    """The baselines, each fitted on first use (restored predictions need no fit)."""

    def __init__(
        self, training: pd.DataFrame, config: Any, seed: int, genres: dict[str, list[str]]
    ) -> None:
        self.training, self.config, self.seed, self.genres = training, config, seed, genres
        self.dataset: Any = None
        self.fitted: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        """The fitted scorer `name`."""
        if name not in self.fitted:
            if self.dataset is None:
                self.dataset = training_dataset(self.training)
            self.fitted[name] = fit_baseline(
                name, self.config, self.dataset, self.seed, genres=self.genres
            )
        return self.fitted[name]

    def predict(self, name: str, pairs: pd.DataFrame, scale: tuple[float, ...] | None) -> Any:
        """Predictions of `name` for `pairs`; MF and item-kNN fall back on the user+item
        bias model where they cannot predict (an item never seen, no rated neighbour)."""
        scorer = self.get(name)
        fallback = self.get("user_item_bias") if name in PARTIAL_BASELINES else None
        return predict_baseline(scorer, pairs, fallback=fallback, scale=scale)


def _truth_pred(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return frame["rating"].to_numpy("float64"), frame["predicted"].to_numpy("float64")


def _checkpointed(
    path: Path, earlier: pd.DataFrame | None, compute: Callable[[], pd.DataFrame]
) -> pd.DataFrame:
    """This run's checkpoint at `path`, else the previous evaluation's rows, else
    `compute()` (checkpointed at `path`)."""
    if path.exists():
        return read_parquet(path)
    if earlier is not None:
        return earlier
    frame = compute()
    write_parquet(frame, path)
    return frame


def _model_rows(frame: pd.DataFrame | None, name: str) -> pd.DataFrame | None:
    """The rows of model `name` in a previous table, or None."""
    if frame is None or name not in set(frame["model"]):
        return None
    return frame[frame["model"] == name].reset_index(drop=True)


def _checkpoint(name: str, folder: Path, frame: pd.DataFrame, note: dict[str, Any]) -> None:
    write_parquet(frame, folder / f"{name}.parquet")
    atomic_write_text(folder / f"{name}.json", json.dumps(note))


def _restore(
    name: str, folder: Path, previous: pd.DataFrame | None, previous_notes: dict[str, Any]
) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """A model's rating predictions from this run's checkpoint or the previous
    evaluation (same rating settings), or None."""
    path, note_path = folder / f"{name}.parquet", folder / f"{name}.json"
    if path.exists() and note_path.exists():
        logger.info("evaluate: %s restored from checkpoint", name)
        return read_parquet(path), json.loads(note_path.read_text())
    if previous is not None and name in set(previous["model"]) and name in previous_notes:
        frame = previous[previous["model"] == name].drop(columns=["persona"])
        frame = frame.dropna(axis=1, how="all").reset_index(drop=True)
        return frame, previous_notes[name]
    return None


def _watch_scores(
    agent: Any, pairs: pd.DataFrame, modes: dict[str, str]
) -> dict[str, pd.DataFrame]:
    """P(yes) of each agent model (name -> mode) for every (user, item) pair, all modes
    in one pass, users in groups of 8."""
    groups = list(pairs.groupby("user_id", sort=True).indices.items())
    scores = {name: np.full(len(pairs), np.nan) for name in modes}
    items = pairs["item_id"].astype(str).to_numpy()
    label = ", ".join(modes)
    total = len(pairs) * len(modes)
    with progress(f"taste lists: {label}", total=total, unit="decisions") as advance:
        for start in range(0, len(groups), 8):
            chunk = groups[start : start + 8]
            probs = agent.watch_probabilities_by_mode(
                list(modes.values()), [(u, items[idx].tolist()) for u, idx in chunk]
            )
            for name, mode in modes.items():
                for (_, idx), p in zip(chunk, probs[mode], strict=True):
                    scores[name][idx] = p
            advance(sum(len(idx) for _, idx in chunk) * len(modes))
    return {name: pairs.assign(model=name, score=scores[name]) for name in modes}
