"""Stage `simulate`: recommenders evaluated by the agents, and by the held-out log.

For each recommender (LensKit built-ins and plug-ins, fitted on the training log that
the baselines use):

1. it ranks the unrated items of every simulated user (a batch of users at once where
   its scorer allows: :func:`~personasim.simulation.batched_lists.recommend_many`); the
   first pages go to the user's agent in a session
   (:mod:`personasim.simulation.sessions`; with the Ray executor, chunks of users on
   its workers: :mod:`personasim.pipeline.simulate_agents`), the top ``offline_k`` are
   scored against the user's held-out items (nDCG, Recall);
2. the simulated metrics (watch rate, likes, mean rating, exit page, coverage,
   novelty), overall and per persona, are set beside the offline ones, and the two
   orderings of the recommenders are compared (Kendall, Spearman), overall and per user;
3. with ``feedback_rounds``, the items the agents liked are added to the recommender's
   training data, it is retrained and the sessions rerun, round after round; the genre
   diversity and popularity of what it shows are tracked.

Writes ``simulate/``: events.parquet (every item shown), sessions.parquet, offline.parquet
(per user and recommender), user_agreement.parquet, feedback.parquet (when rounds ran)
and metrics.json. Each recommender's sessions are checkpointed per round, so a killed
simulation resumes at the next one (:mod:`personasim.pipeline.simulate_sessions`).

The parts: the pages and the users (:mod:`personasim.simulation.experiment`), the
metrics (:mod:`personasim.simulation.summary`), the feedback rounds
(:mod:`personasim.simulation.feedback_rounds`), the checks
(:mod:`personasim.pipeline.simulate_checks`) and the other watch priors
(:mod:`personasim.pipeline.simulate_priors`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from personasim.cf.dataset import training_log
from personasim.cf.fitted import FittedModels
from personasim.config import AGENT_ADAPTERS, config_hash, part_settings, stage_settings
from personasim.data.tables import read_parquet, write_parquet
from personasim.errors import ConfigError
from personasim.evaluation.bootstrap import mean_interval
from personasim.evaluation.session_intervals import session_intervals
from personasim.personas.assignment import read_user_personas
from personasim.pipeline.ingest import IngestStage
from personasim.pipeline.simulate_agents import LazyAgents
from personasim.pipeline.simulate_checks import simulation_checks
from personasim.pipeline.simulate_priors import other_priors_sessions, session_model_attacher
from personasim.pipeline.simulate_sessions import SessionRunner
from personasim.pipeline.stage import Stage
from personasim.run_folder import DATA, PROFILES, RUN, SIMULATE
from personasim.simulation.experiment import ranked_pages, sample_users
from personasim.simulation.feedback import loop_trend
from personasim.simulation.feedback_rounds import FeedbackContext, feedback_rounds
from personasim.simulation.measures import item_novelty, offline_metrics
from personasim.simulation.recommenders import (
    Recommender,
    create_recommender,
    fit_recommender,
)
from personasim.simulation.sessions import SessionLog
from personasim.simulation.summary import (
    rank_agreements,
    recommender_metrics,
    rounded,
    stack_logs,
    user_agreement,
)
from personasim.workspace import atomic_write_text, file_sha256

__all__ = ["SimulateStage"]

logger = logging.getLogger(__name__)


class SimulateStage(Stage):
    """Sessions of the agents with each recommender, set against the held-out log."""

    name = "simulate"
    folder = SIMULATE.stage.folder
    upstream = (IngestStage,)
    keeps_checkpoints = True  # each recommender's sessions: reused when the list changes

    def upstream_stages(self) -> tuple[type[Stage], ...]:
        """Ingest, profile and personas, plus train unless the agents are zero-shot."""
        if not self.config.simulate.recommenders:
            return (IngestStage,)
        from personasim.pipeline.personas import PersonasStage
        from personasim.pipeline.profile import ProfileStage
        from personasim.pipeline.train import TrainStage

        stages: tuple[type[Stage], ...] = (IngestStage, ProfileStage, PersonasStage)
        if self.config.simulate.agent != "zero-shot" and self.has_agents():
            stages += (TrainStage,)
        return stages

    def has_agents(self) -> bool:
        """Whether the agents that play the users are configured to be trained (or
        are the zero-shot base model)."""
        agent = self.config.simulate.agent
        return agent == "zero-shot" or AGENT_ADAPTERS[agent] in self.config.agents.modes

    def settings(self) -> list[Any]:
        """The `[simulate]` settings that change a result, the recommenders' `[cf]`
        settings, the content of the rankings files, and the seed."""
        rankings = {
            name: file_sha256(Path(path)) if Path(path).is_file() else "missing"
            for name, path in sorted(self.config.simulate.rankings.items())
        }
        # (whether a missing agent fails the stage or warns changes no result)
        simulate = stage_settings(self.config.simulate)
        # the threshold in effect (older runs, which set 4 on 1-5, keep their hash)
        simulate["like_threshold"] = self.config.simulate.likes_from(self.config.data.scale)
        recommenders = part_settings(self.config.cf, "recommenders")
        return [simulate, recommenders, rankings, self.config.seed]

    # --- the stage -----------------------------------------------------------------------

    def build(self, out: Path) -> dict[str, Any]:
        """Fit the recommenders, run the sessions (and feedback rounds), measure."""
        cfg = self.config.simulate
        if not cfg.recommenders:
            atomic_write_text(SIMULATE.metrics.under(out), json.dumps({"recommenders": {}}) + "\n")
            return {"recommenders": 0}
        ws = self.workspace
        seed = self.config.seed
        started = time.perf_counter()
        interactions = read_parquet(ws.require(DATA.interactions))
        items = read_parquet(ws.require(DATA.items))
        profiles = read_parquet(ws.require(PROFILES.profiles))
        training, described = training_log(ws, interactions)
        training = training[["user_id", "item_id", "rating", "timestamp"]].reset_index(drop=True)
        test = interactions[interactions["split"] == "test"]
        users = sample_users(sorted(profiles["user_id"].astype(str)), cfg.users, seed, "users")
        history = (
            interactions[interactions["split"] == "train"]
            .groupby("user_id")["item_id"]
            .agg(lambda s: [str(i) for i in s])
            .to_dict()
        )
        history = {u: history.get(u, []) for u in users}
        activity = dict(zip(profiles["user_id"].astype(str), profiles["activity"], strict=True))
        persona_of = read_user_personas(ws)
        counts = training.groupby("item_id").size()
        catalogue = int(training["item_id"].nunique())
        novelty = item_novelty(counts.to_dict(), int(training["user_id"].nunique()))
        popularity = counts.rank(pct=True).to_dict()
        genres = dict(zip(items["item_id"].astype(str), items["genres"].map(list), strict=True))
        checkpoints = self._checkpoints()
        agent = self._agents(interactions, items)
        runner = SessionRunner(ws, self.config, agent, activity, checkpoints)
        first = self._first_round(runner, training, test, users, history)
        events, sessions = stack_logs(first.logs, persona_of, 0)
        offline_frame = first.offline
        test_items = set(zip(test["user_id"].astype(str), test["item_id"].astype(str), strict=True))
        implicit = self.config.data.implicit
        metrics = recommender_metrics(
            cfg.recommenders,
            events,
            sessions,
            offline_frame,
            test_items,
            catalogue=catalogue,
            novelty=novelty,
            implicit=implicit,
        )
        headline = "watch_rate" if implicit else "likes"
        metrics["agreement"] = rank_agreements(metrics["recommenders"], headline)
        if agent is not None:
            metrics["intervals"] = session_intervals(
                sessions[["recommender", "user_id", "shown", "watched", "liked"]],
                rounds=self.config.evaluate.bootstrap_rounds,
                seed=seed,
                measures=("watch_rate",) if implicit else ("watch_rate", "likes"),
            )
        if agent is not None:
            metrics["checks"] = simulation_checks(
                runner, agent, interactions, items, first.shown, first.logs, history, metrics
            )
        if cfg.other_watch_priors and agent is not None:
            metrics["watch_priors"] = other_priors_sessions(
                runner, agent, interactions, items, first.shown, test_items, metrics
            )
        agreement = user_agreement(events, sessions, offline_frame, headline)
        metrics["per_user_agreement"] = _summarise_user_agreement(agreement, seed, headline)
        rounds_events: list[pd.DataFrame] = []
        if cfg.feedback_rounds and agent is not None:
            context = FeedbackContext(training, history, genres, popularity, novelty, catalogue)
            rounds_events = self._feedback(out, runner, context, first, users, metrics)
        if agent is not None:
            # the reported sessions' decisions: the first round's and the feedback rounds'
            decided = pd.concat([events[["user_id", "watched"]], *rounds_events], ignore_index=True)
            metrics["decisions"] = agent.decisions(decided, not implicit)
        metrics["settings"] = {
            "agent": cfg.agent,
            "language_model": agent.language_model if agent is not None else None,
            "users": len(users),
            "training": described,
            "catalogue": catalogue,
            "offline_k": cfg.offline_k,
            "decisions": cfg.decisions,
        }
        metrics["wall_time_s"] = {
            "recommenders": first.timings,
            "total": round(time.perf_counter() - started, 1),
        }
        write_parquet(events, SIMULATE.events.under(out))
        write_parquet(sessions, SIMULATE.sessions.under(out))
        write_parquet(offline_frame, SIMULATE.offline.under(out))
        write_parquet(agreement, SIMULATE.user_agreement.under(out))
        atomic_write_text(SIMULATE.metrics.under(out), json.dumps(metrics, indent=2) + "\n")
        return {
            "recommenders": metrics["recommenders"],
            "agreement": metrics["agreement"]["headline"],
            "users": len(users),
        }

    # --- parts ---------------------------------------------------------------------------

    def _first_round(
        self,
        runner: SessionRunner,
        training: pd.DataFrame,
        test: pd.DataFrame,
        users: list[str],
        history: dict[str, list[str]],
    ) -> _FirstRound:
        """Each recommender fitted on `training`, its lists of `users` scored against
        `test`, and its sessions of round 0."""
        cfg = self.config.simulate
        first = _FirstRound()
        offline: list[pd.DataFrame] = []
        models = FittedModels(self.workspace.root / RUN.fitted_models, training)
        for name in cfg.recommenders:
            t0 = time.perf_counter()
            recommender = create_recommender(name, cfg, self.config.cf)
            fit_recommender(recommender, training, self.config.seed, models)
            first.recommenders[name] = recommender
            pages, top = ranked_pages(recommender, users, history, cfg)
            first.tops[name] = top
            first.shown[name] = pages
            offline.append(offline_metrics(top, test, cfg.offline_k).assign(recommender=name))
            first.logs[name] = runner.sessions(name, 0, pages)
            first.timings[name] = round(time.perf_counter() - t0, 2)
            logger.info("simulate: %s done in %.0f s", name, first.timings[name])
        first.offline = pd.concat(offline, ignore_index=True)
        return first

    def _feedback(
        self,
        out: Path,
        runner: SessionRunner,
        context: FeedbackContext,
        first: _FirstRound,
        users: list[str],
        metrics: dict[str, Any],
    ) -> list[pd.DataFrame]:
        """The feedback rounds (:mod:`personasim.simulation.feedback_rounds`): writes
        ``feedback.parquet``, puts the rounds and each recommender's trend in `metrics`,
        and returns the events (``user_id, watched``) of the rounds after the first."""
        feedback, rounds_events, spread = feedback_rounds(
            context,
            first.recommenders,
            first.logs,
            first.tops,
            users,
            runner.sessions,
            self.config.simulate,
            seed=self.config.seed,
            bootstrap_rounds=self.config.evaluate.bootstrap_rounds,
            rates=not self.config.data.implicit,
        )
        write_parquet(feedback, SIMULATE.feedback.under(out))
        metrics["feedback"] = feedback.to_dict(orient="records")
        metrics["feedback_trends"] = {
            str(name): loop_trend(part, spread[str(name)])
            for name, part in feedback.groupby("recommender", sort=False)
        }
        return rounds_events

    def _checkpoints(self) -> Path:
        """The sessions' checkpoint folder, named after the settings they depend on:
        rounds run so far stay valid when only the number of rounds changes (and each
        recommender's sessions stay valid when others join or leave the list)."""
        sessions = part_settings(self.config.simulate, "sessions")
        recommenders = part_settings(self.config.cf, "recommenders")
        key = config_hash(self.input_hashes(), sessions, recommenders, self.config.seed)
        return self.workspace.checkpoint_dir(self.folder, key[:16])

    def _agents(self, interactions: pd.DataFrame, items: pd.DataFrame) -> LazyAgents | None:
        """The agents that play the users, loaded on first use; None when they are not
        trained and ``simulate.agent_optional`` allows the offline metrics alone."""
        cfg = self.config.simulate
        agent: LazyAgents | None = LazyAgents(
            self.workspace.root,
            cfg.agent,
            session_model_attacher(self.workspace, self.config, interactions, items),
            self.config.agents.language_model,
        )
        if not self.has_agents():
            message = (
                f"simulate.agent is {cfg.agent!r}, which agents.modes does not train: add "
                f"{AGENT_ADAPTERS[cfg.agent]!r} to agents.modes (then `personasim train`), "
                "set simulate.agent to an agent it trains, or set simulate.agent_optional = "
                "true for the offline metrics only"
            )
            if not cfg.agent_optional:
                raise ConfigError(message)
            logger.warning("simulate: %s; offline metrics only", message)
            agent = None
        return agent


@dataclass
class _FirstRound:
    """Round 0 of every recommender: fitted, its lists and its sessions."""

    recommenders: dict[str, Recommender] = field(default_factory=dict)
    logs: dict[str, SessionLog] = field(default_factory=dict)
    tops: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    """Per recommender each user's top-k list."""
    shown: dict[str, dict[str, list[list[str]]]] = field(default_factory=dict)
    """Per recommender each user's session pages."""
    offline: pd.DataFrame = field(default_factory=pd.DataFrame)
    """The offline metrics per user and recommender."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per recommender."""


def _summarise_user_agreement(
    frame: pd.DataFrame, seed: int, simulated: str = "likes"
) -> dict[str, Any]:
    """The per-user agreement's mean Kendall and Spearman over the users, with 95%
    intervals, and how many users had it defined."""
    out: dict[str, Any] = {"simulated": simulated, "offline": "ndcg", "users": int(len(frame))}
    for column in ("kendall_tau", "spearman"):
        values = frame[column].dropna().to_numpy()
        interval = mean_interval(values, rounds=1000, seed=seed)
        out[column] = rounded(
            {"mean": interval.estimate, "low": interval.low, "high": interval.high}
        )
    out["defined_users"] = int(frame["kendall_tau"].notna().sum())
    return out
