"""Stage `evaluate`: how faithful is each model? Writes ``eval/``.

Models: the classical baselines (LensKit) on every test pair, the agents' rating prior
alone, and the LM agents (zero-shot, global-lora, persona-lora) on the agents' test
pairs (all, or a seeded sample per user); where those differ, the baselines are also
scored on the agents' pairs. The parts live in :mod:`personasim.evaluation`:

- rating fidelity (:mod:`~personasim.evaluation.ratings`): RMSE, MAE, URR with 95%
  user-bootstrap intervals, per persona and per trait level, the rating distributions,
  a paired bootstrap of each model against the best baseline and of each agent against
  its prior alone, and the same on new items (no training rating);
- taste alignment (:mod:`~personasim.evaluation.taste_fidelity`): popularity, the
  baselines and the agents' watch probabilities on candidate lists at 1:1, 1:3, 1:9;
- free generation (:mod:`~personasim.evaluation.agent_scores`): a sample of agent
  answers in words, parsed, for the URR of the papers.

Each model's results are checkpointed as soon as they exist, in a folder named after
the settings they depend on (:class:`~personasim.evaluation.checkpoints.UnitStore`);
the stage keeps its checkpoints, so a killed evaluation resumes at the next model and
one that changes only the taste or the analysis settings asks no agent anything again.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from personasim.agents.prior import CFPrior
from personasim.agents.watch_prior import WatchPrior
from personasim.cf.dataset import training_log
from personasim.cf.fitted import FittedModels
from personasim.config import (
    AGENT_ADAPTERS,
    NO_RATINGS,
    config_hash,
    part_settings,
    stage_settings,
)
from personasim.data.tables import read_parquet, write_parquet
from personasim.errors import StageError
from personasim.evaluation.agent_scores import AgentScoring, free_generation_summary
from personasim.evaluation.checkpoints import UnitStore
from personasim.evaluation.fidelity import TRAITS, group_metrics
from personasim.evaluation.ratings import (
    PREDICTIONS_COLUMNS,
    PRIOR_MODEL,
    FittedBaselines,
    RatingComparison,
    agent_pairs,
    baseline_ratings,
    model_metrics,
    prior_ratings,
)
from personasim.evaluation.taste import shown_lists
from personasim.evaluation.taste_fidelity import (
    baseline_taste_scores,
    taste_lists,
    taste_metrics,
    taste_users,
)
from personasim.personas.assignment import read_user_personas
from personasim.pipeline.ingest import IngestStage
from personasim.pipeline.stage import Stage
from personasim.progress import progress
from personasim.run_folder import ADAPTERS, DATA, EVAL, PROFILES, RUN
from personasim.simulation.recommenders import create_recommender, fit_recommender
from personasim.workspace import atomic_write_text

__all__ = ["EvaluateStage"]

logger = logging.getLogger(__name__)

RATINGS_NOT_MEASURED = (
    "rating fidelity (RMSE, MAE, URR; the rating baselines and the rating prior): "
    f"{NO_RATINGS}; taste (the watch decision) is measured"
)


class EvaluateStage(Stage):
    """Fit the baselines, score the agents, measure fidelity and taste, write ``eval/``."""

    name = "evaluate"
    folder = EVAL.stage.folder
    upstream = (IngestStage,)
    keeps_checkpoints = True  # each model's results: reused when only some settings change

    def scores_agents(self) -> bool:
        """Whether agents are scored: asked for, and trained in this run folder (without
        trained agents, `evaluate` scores the baselines and says how to add the agents)."""
        return bool(self.config.evaluate.agents) and (
            self.workspace.read_manifest(ADAPTERS.stage) is not None
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
        """The `[evaluate]` settings that change a result, the `[cf]` models', the rating
        scale and the seed."""
        return [
            stage_settings(self.config.evaluate),
            part_settings(self.config.cf, "ratings"),
            *self._shown_settings(),
            list(self.config.data.rating_scale),
            self.config.seed,
        ]

    def _shown_settings(self) -> list[Any]:
        """The `[cf]` settings of the recommenders whose lists are taste lists (none
        without shown lists)."""
        if not self.config.evaluate.taste_shown:
            return []
        return [part_settings(self.config.cf, "recommenders")]

    def _stores(self) -> dict[str, UnitStore]:
        """The checkpoint store of each part, keyed by the settings it depends on (the
        fields of `[evaluate]` and `[cf]` that enter the part's key)."""
        cfg = self.config.evaluate
        base = self.workspace.checkpoint_dir(
            self.folder, config_hash(self.input_hashes(), self.config.seed)[:16]
        )
        scale = list(self.config.data.rating_scale)
        rating = [part_settings(cfg, "ratings"), part_settings(self.config.cf, "ratings"), scale]
        taste = [part_settings(cfg, "taste"), *rating, *self._shown_settings()]
        return {
            "ratings": UnitStore(base, "ratings", *rating),
            "taste": UnitStore(base, "taste", *taste),
            "generation": UnitStore(base, "generation", part_settings(cfg, "generation")),
        }

    # --- the stage -----------------------------------------------------------------------

    def build(self, out: Path) -> dict[str, Any]:
        """Fit, predict, checkpoint per model; write predictions, metrics and taste."""
        cfg = self.config.evaluate
        seed = self.config.seed
        interactions = read_parquet(self.workspace.require(DATA.interactions))
        items = read_parquet(self.workspace.require(DATA.items))
        test = interactions[interactions["split"] == "test"].reset_index(drop=True)
        pairs = agent_pairs(test, cfg.agent_pairs_per_user, seed)
        stores = self._stores()

        training, fit_data = training_log(self.workspace, interactions)
        genres = {
            str(i): [] if g is None else list(g)
            for i, g in zip(items["item_id"], items["genres"], strict=True)
        }
        models = FittedModels(self.workspace.root / RUN.fitted_models, training)
        fitted = FittedBaselines(training, cfg, self.config.cf, seed, genres, models)
        trained = (self.workspace.read_manifest(ADAPTERS.stage) or {}).get("summary", {})
        agents = self._agents(trained)
        if self.config.data.implicit:
            summary = self._without_ratings(out, test, pairs)
        else:
            rated = (test, pairs, items)
            summary = self._ratings(out, rated, fitted, fit_data, agents, trained, stores)
        if cfg.taste:
            lists = taste_lists(interactions, items, cfg, seed, self._shown(interactions, fitted))
            scores = baseline_taste_scores(
                lists,
                fitted,
                self._watch_prior(),
                stores["taste"],
                ratings=not self.config.data.implicit,
            )
            if agents is not None:
                scores += agents.watch_scores(lists["pairs"], stores["taste"])
            summary["taste"] = taste_metrics(lists, scores, cfg, seed, out)
        return summary

    def _without_ratings(
        self, out: Path, test: pd.DataFrame, pairs: pd.DataFrame
    ) -> dict[str, Any]:
        """The rating part of a log without ratings: nothing scored, and the summary
        says so (an empty ``metrics.json``; taste is measured as usual)."""
        atomic_write_text(EVAL.metrics.under(out), "{}\n")
        logger.info("evaluate: %s", RATINGS_NOT_MEASURED)
        return {
            "metrics": {},
            "test_ratings": int(len(test)),
            "agent_pairs": int(len(pairs)),
            "best_baseline": None,
            "not_measured": {"ratings": RATINGS_NOT_MEASURED},
        }

    def _ratings(
        self,
        out: Path,
        rated: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
        fitted: FittedBaselines,
        fit_data: Any,
        agents: AgentScoring | None,
        trained: dict[str, Any],
        stores: dict[str, UnitStore],
    ) -> dict[str, Any]:
        """Rating fidelity of the test ratings, the agents' pairs and the items in `rated`:
        every model's ratings, metrics, comparisons, groups, new items and free answers
        (`trained`: the train stage's summary); writes predictions and metrics."""
        test, pairs, items = rated
        cfg = self.config.evaluate
        scale = tuple(self.config.data.rating_scale) if cfg.clip_to_scale else None
        frames, notes = baseline_ratings(
            fitted, test, stores["ratings"], scale=scale, fit_data=fit_data
        )
        prior = self._prior_alone(test, trained)  # also without agents: no LM in it
        if prior is not None:
            frames.append(prior[0])
            notes[PRIOR_MODEL] = prior[1]
        if agents is not None:
            asked = pairs[["user_id", "item_id", "rating"]]
            for model, frame, note in agents.ratings(asked, stores["ratings"]):
                frames.append(frame)
                notes[model] = note

        predictions = self._predictions(frames)
        metrics = model_metrics(predictions, pairs, notes, cfg.baselines)
        comparison = RatingComparison(cfg.baselines, cfg.bootstrap_rounds, self.config.seed)
        # Every model's predictions on the agents' pairs, the frame of each comparison.
        on_pairs = predictions.merge(pairs[["user_id", "item_id"]], on=["user_id", "item_id"])
        compared, best = comparison.on_shared_pairs(
            on_pairs,
            tuple(self.config.data.rating_scale),  # type: ignore[arg-type]
        )
        for name, entry in compared.items():
            metrics[name]["compared"] = entry
        groups = self._groups()
        if groups is not None:
            write_parquet(group_metrics(on_pairs, groups), EVAL.groups.under(out))
        unseen = set(items.loc[items["train_count"] == 0, "item_id"].astype(str))
        kinds = {name: m.get("kind") for name, m in metrics.items()}
        new_items = comparison.on_new_items(on_pairs, unseen, kinds)
        if new_items is not None:
            atomic_write_text(EVAL.new_items.under(out), json.dumps(new_items, indent=2) + "\n")
        if agents is not None and agents.kinds and cfg.free_generation_pairs:
            answers = agents.free_answers(pairs, stores["generation"])
            generated = pd.concat(answers, ignore_index=True)
            write_parquet(generated, EVAL.free_generation.under(out))
            for name, entry in free_generation_summary(generated).items():
                metrics[name]["free_generation"] = entry
        columns = PREDICTIONS_COLUMNS + [
            c for c in predictions.columns if c not in PREDICTIONS_COLUMNS
        ]
        write_parquet(predictions[columns], EVAL.predictions.under(out))
        atomic_write_text(EVAL.metrics.under(out), json.dumps(metrics, indent=2) + "\n")
        summary: dict[str, Any] = {
            "metrics": metrics,
            "test_ratings": int(len(test)),
            "agent_pairs": int(len(pairs)),
            "best_baseline": best,
        }
        if new_items is not None:
            summary["new_items"] = new_items
        return summary

    def _predictions(self, frames: list[pd.DataFrame]) -> pd.DataFrame:
        """Every model's predictions in one table, with each user's persona."""
        predictions = pd.concat(frames, ignore_index=True)
        if "greedy_is_digit" in predictions:
            predictions["greedy_is_digit"] = predictions["greedy_is_digit"].astype("boolean")
        persona_of = read_user_personas(self.workspace)
        predictions["persona"] = pd.array(
            predictions["user_id"].map(persona_of).to_numpy(dtype=object), dtype="string"
        )
        return predictions

    def _agents(self, training: dict[str, Any]) -> AgentScoring | None:
        """The agent kinds to score (those `agents.modes` trained; `training` is the
        train stage's summary), or None when no agents are trained here (with a warning
        when some were asked for)."""
        cfg = self.config.evaluate
        if not cfg.agents:
            return None
        if not self.scores_agents():
            message = (
                f"evaluate.agents asks for {', '.join(cfg.agents)}, but {self.workspace.root} "
                f"has no trained agents: run `personasim train --workdir "
                f"{self.workspace.root}` (or `personasim run`), or set evaluate.agents = [] "
                "to score the baselines only (evaluate.agents_optional = true: do so with a "
                "warning)"
            )
            if not cfg.agents_optional:
                raise StageError(message)
            logger.warning("evaluate: %s; scoring the baselines only", message)
            return None
        if self.config.agents.language_model == "off":
            logger.info(
                "evaluate: agents.language_model is 'off': the agents are their priors, "
                "scored as the prior rows"
            )
            return None
        from personasim.pipeline.train import TrainStage

        stale = TrainStage(self.workspace, self.config).status()
        if stale is not None:
            logger.warning(
                "evaluate: the trained agents are out of date (%s); scoring them as they "
                "are; `personasim run` retrains first",
                stale,
            )
        trained = {"none"} | set(self.config.agents.modes)
        kinds = []
        for kind in cfg.agents:
            if AGENT_ADAPTERS[kind] not in trained:
                logger.warning(
                    "evaluate: %s skipped: agents.modes does not train %r",
                    kind,
                    AGENT_ADAPTERS[kind],
                )
                continue
            kinds.append(kind)
        return AgentScoring(self.workspace.root, kinds, self.config, training)

    def _prior_alone(
        self, test: pd.DataFrame, summary: dict[str, Any]
    ) -> tuple[pd.DataFrame, dict[str, Any]] | None:
        """The agents' rating prior alone on every test pair, and its note (`summary`:
        the train stage's)."""
        folder = self.workspace.stage_dir(ADAPTERS.stage)
        if not CFPrior.saved_in(folder):
            return None
        note = {
            "kind": "prior",
            "prior_model": summary.get("prior_model", self.config.agents.prior_model),
            "prior_weights": summary.get("prior_weights"),
        }
        return prior_ratings(CFPrior.load(folder), test), note

    def _shown(self, interactions: pd.DataFrame, fitted: FittedBaselines) -> pd.DataFrame | None:
        """The recommenders' shown lists (``evaluate.taste_shown``), each recommender
        fitted on the baselines' training data as `simulate` fits it."""
        cfg = self.config.evaluate
        if not cfg.taste_shown:
            return None
        recommend = {}
        with progress("shown lists: fitting", total=len(cfg.taste_shown), unit="models") as advance:
            for name in cfg.taste_shown:
                recommender = create_recommender(name, self.config.simulate, self.config.cf)
                fit_recommender(recommender, fitted.training, self.config.seed, fitted.models)
                recommend[name] = recommender.recommend
                advance(1)
        users = taste_users(interactions, cfg, self.config.seed)
        return shown_lists(interactions, recommend, users, candidates=cfg.taste_candidates)

    def _watch_prior(self) -> WatchPrior | None:
        folder = self.workspace.stage_dir(ADAPTERS.stage)
        return WatchPrior.load(folder) if ADAPTERS.watch_prior.under(folder).is_file() else None

    def _groups(self) -> pd.DataFrame | None:
        """``user_id, persona, activity, conformity, diversity`` where known."""
        path = self.workspace.path(PROFILES.profiles)
        if not path.exists():
            return None
        profiles = read_parquet(path)
        groups = profiles[["user_id", *[t for t in TRAITS if t in profiles]]].copy()
        groups["user_id"] = groups["user_id"].astype(str)
        persona_of = read_user_personas(self.workspace)
        if persona_of:
            groups.insert(1, "persona", groups["user_id"].map(persona_of))
        return groups
