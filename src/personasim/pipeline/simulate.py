"""Stage `simulate`: recommenders evaluated by the agents, and by the held-out log.

For each recommender (LensKit built-ins and plug-ins, fitted on the training log that
the baselines use):

1. it ranks the unrated items of every simulated user (a batch of users at once where
   its scorer allows: :func:`~personasim.simulation.recommenders.recommend_many`); the
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
simulation resumes at the next one.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from personasim.cf.dataset import training_log
from personasim.config import AGENT_ADAPTERS, NO_RATINGS, config_hash
from personasim.data.tables import read_parquet, write_parquet
from personasim.errors import ConfigError
from personasim.evaluation.bootstrap import mean_interval
from personasim.evaluation.session_intervals import session_intervals
from personasim.personas.assignment import read_user_personas
from personasim.pipeline.ingest import IngestStage
from personasim.pipeline.simulate_agents import (
    LazyAgents,
    NoAgents,
    SessionsOnWorker,
    merge_session_logs,
)
from personasim.pipeline.simulate_checks import FAMILY_OF, ladder_check, leave_family_out_check
from personasim.pipeline.stage import Stage
from personasim.progress import progress
from personasim.scale.executor import get_executor
from personasim.simulation.feedback import (
    change_intervals,
    exposure_measures,
    history_drift,
    loop_trend,
)
from personasim.simulation.measures import (
    item_novelty,
    offline_metrics,
    per_user_agreement,
    rank_agreement,
    session_metrics,
    user_session_metrics,
)
from personasim.simulation.recommenders import Recommender, create_recommender, recommend_many
from personasim.simulation.sessions import SessionLog, pages_of, run_sessions
from personasim.workspace import atomic_write_text, file_sha256

__all__ = ["OFFLINE_METRICS", "SimulateStage"]

logger = logging.getLogger(__name__)

OFFLINE_METRICS = ("ndcg", "recall")
"""Offline metrics per recommender (at ``offline_k``), from the held-out log."""

_CHUNKS_PER_WORKER = 2
"""Chunks of users per worker when the sessions are spread over an executor."""
_RANKED_AT_ONCE = 1024
"""Users whose lists are asked for in one :func:`recommend_many` call."""
_AGREEMENT_SIMULATED = ("likes", "watch_rate", "like_rate", "mean_rating", "exit_page")
_RATING_MEASURES = ("likes", "like_rate", "mean_rating")
"""The simulated measures a log without ratings does not have."""
LIKES_NOT_MEASURED = (
    f"likes, like rate and mean rating: {NO_RATINGS}; the agents decide only what they "
    "watch, and the verdict is the watch rate, the log-hit ratio and the offline metrics"
)


class SimulateStage(Stage):
    """Sessions of the agents with each recommender, set against the held-out log."""

    name = "simulate"
    folder = "simulate"
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

    def _recommender_source(self, name: str) -> list[str | None]:
        """What a recommender's sessions depend on besides its name: the plugin it is
        loaded from, and the content of its rankings file (a changed file is simulated
        again instead of restored from the old file's checkpoint)."""
        cfg = self.config.simulate
        path = cfg.rankings.get(name)
        return [cfg.plugins.get(name), *([file_sha256(Path(path))] if path else [])]

    def settings(self) -> list[Any]:
        """The `[simulate]` section, the content of its rankings files, and the seed."""
        rankings = {
            name: file_sha256(Path(path)) if Path(path).is_file() else "missing"
            for name, path in sorted(self.config.simulate.rankings.items())
        }
        # (whether a missing agent fails the stage or warns changes no result)
        simulate = self.config.simulate.model_dump(
            mode="json", exclude_none=True, exclude={"agent_optional"}
        )
        # the threshold in effect (older runs, which set 4 on 1-5, keep their hash)
        simulate["like_threshold"] = self.config.simulate.likes_from(self.config.data.scale)
        return [simulate, rankings, self.config.seed]

    # --- the stage -----------------------------------------------------------------------

    def build(self, out: Path) -> dict[str, Any]:
        """Fit the recommenders, run the sessions (and feedback rounds), measure."""
        cfg = self.config.simulate
        if not cfg.recommenders:
            atomic_write_text(out / "metrics.json", json.dumps({"recommenders": {}}) + "\n")
            return {"recommenders": 0}
        ws = self.workspace
        seed = self.config.seed
        started = time.perf_counter()
        interactions = read_parquet(ws.require("data", "interactions.parquet"))
        items = read_parquet(ws.require("data", "items.parquet"))
        profiles = read_parquet(ws.require("profiles", "profiles.parquet"))
        training, described = training_log(ws, interactions)
        training = training[["user_id", "item_id", "rating", "timestamp"]].reset_index(drop=True)
        test = interactions[interactions["split"] == "test"]
        users = _sample(sorted(profiles["user_id"].astype(str)), cfg.users, seed, "users")
        history = (
            interactions[interactions["split"] == "train"]
            .groupby("user_id")["item_id"]
            .agg(lambda s: [str(i) for i in s])
            .to_dict()
        )
        history = {u: history.get(u, []) for u in users}
        activity = dict(zip(profiles["user_id"].astype(str), profiles["activity"], strict=True))
        persona_of = read_user_personas(ws)
        # rounds run so far stay valid when only the number of rounds changes
        # (and each recommender's sessions stay valid when others join or leave the list)
        session_settings = cfg.model_dump(
            exclude={
                "feedback_rounds",
                "feedback_users",
                "recommenders",
                "plugins",
                "rankings",
                "ladder",
                "leave_family_out",
            }
        )
        checkpoints = ws.checkpoint_dir(
            self.folder, config_hash(self.input_hashes(), session_settings, seed)[:16]
        )
        counts = training.groupby("item_id").size()
        catalogue = int(training["item_id"].nunique())
        novelty = item_novelty(counts.to_dict(), int(training["user_id"].nunique()))
        popularity = counts.rank(pct=True).to_dict()
        genres = dict(zip(items["item_id"].astype(str), items["genres"].map(list), strict=True))
        agent: LazyAgents | None = LazyAgents(
            ws.root,
            cfg.agent,
            self._session_model(interactions, items),
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
        timings: dict[str, float] = {}

        logs: dict[str, SessionLog] = {}
        offline: list[pd.DataFrame] = []
        recommenders: dict[str, Recommender] = {}
        tops: dict[str, dict[str, list[str]]] = {}
        shown: dict[str, dict[str, list[list[str]]]] = {}
        for name in cfg.recommenders:
            t0 = time.perf_counter()
            recommender = create_recommender(name, cfg)
            recommender.fit(training, seed=seed)
            recommenders[name] = recommender
            pages, top = self._rankings(recommender, users, history)
            tops[name] = top
            shown[name] = pages
            offline.append(offline_metrics(top, test, cfg.offline_k).assign(recommender=name))
            logs[name] = self._sessions(agent, name, 0, pages, activity, checkpoints)
            timings[name] = round(time.perf_counter() - t0, 2)
            logger.info("simulate: %s done in %.0f s", name, timings[name])

        events, sessions = _stack(logs, persona_of, 0)
        offline_frame = pd.concat(offline, ignore_index=True)
        test_items = set(zip(test["user_id"].astype(str), test["item_id"].astype(str), strict=True))
        metrics: dict[str, Any] = {"recommenders": {}, "personas": {}}
        for name in cfg.recommenders:
            ev, se = (
                events[events["recommender"] == name],
                sessions[sessions["recommender"] == name],
            )
            row = session_metrics(ev, se, catalogue=catalogue, novelty=novelty)
            row.update(_log_hits(ev, test_items))
            off = offline_frame[offline_frame["recommender"] == name]
            for metric in OFFLINE_METRICS:
                row[metric] = float(off[metric].mean())
            metrics["recommenders"][name] = _rounded(row)
            metrics["personas"][name] = {
                str(p): _rounded(
                    session_metrics(
                        ev[ev["persona"] == p],
                        se[se["persona"] == p],
                        catalogue=catalogue,
                        novelty=novelty,
                    )
                )
                for p in sorted(se["persona"].dropna().unique())
            }
        implicit = self.config.data.implicit
        if implicit:  # no ratings: the likes of the sessions are not there to count
            for row in [metrics["recommenders"], *metrics["personas"].values()]:
                for entry in row.values():
                    for measure in _RATING_MEASURES:
                        entry.pop(measure, None)
            metrics["not_measured"] = {"likes": LIKES_NOT_MEASURED}
        headline = "watch_rate" if implicit else "likes"
        metrics["agreement"] = _agreement(metrics["recommenders"], headline)
        if agent is not None:
            metrics["intervals"] = session_intervals(
                sessions[["recommender", "user_id", "shown", "watched", "liked"]],
                rounds=self.config.evaluate.bootstrap_rounds,
                seed=seed,
                measures=("watch_rate",) if implicit else ("watch_rate", "likes"),
            )
        if agent is not None:
            metrics["checks"] = self._checks(
                agent, interactions, items, shown, logs, history, activity, checkpoints, metrics
            )
        if cfg.other_watch_priors and agent is not None:
            metrics["watch_priors"] = self._other_priors(
                agent,
                interactions,
                items,
                recommenders,
                shown,
                activity,
                checkpoints,
                test_items,
                metrics,
            )
        user_agreement = self._user_agreement(events, sessions, offline_frame, headline)
        metrics["per_user_agreement"] = _summarise_user_agreement(user_agreement, seed, headline)
        feedback = None
        rounds_events: list[pd.DataFrame] = []
        if cfg.feedback_rounds and agent is not None:
            context = _Context(
                agent,
                training,
                history,
                activity,
                checkpoints,
                genres,
                popularity,
                novelty,
                catalogue,
            )
            feedback, rounds_events, spread = self._feedback(
                context, recommenders, logs, tops, users
            )
            write_parquet(feedback, out / "feedback.parquet")
            metrics["feedback"] = feedback.to_dict(orient="records")
            metrics["feedback_trends"] = {
                str(name): loop_trend(part, spread[str(name)])
                for name, part in feedback.groupby("recommender", sort=False)
            }
        if agent is not None:
            # the reported sessions' decisions: the first round's and the feedback rounds'
            shown = pd.concat([events[["user_id", "watched"]], *rounds_events], ignore_index=True)
            metrics["decisions"] = agent.decisions(shown, not implicit)
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
            "recommenders": timings,
            "total": round(time.perf_counter() - started, 1),
        }
        write_parquet(events, out / "events.parquet")
        write_parquet(sessions, out / "sessions.parquet")
        write_parquet(offline_frame, out / "offline.parquet")
        write_parquet(user_agreement, out / "user_agreement.parquet")
        atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        return {
            "recommenders": metrics["recommenders"],
            "agreement": metrics["agreement"]["headline"],
            "users": len(users),
        }

    # --- parts ---------------------------------------------------------------------------

    def _rankings(
        self, recommender: Recommender, users: list[str], history: dict[str, list[str]]
    ) -> tuple[dict[str, list[list[str]]], dict[str, list[str]]]:
        """Each user's session pages and top-k list from one ranking."""
        cfg = self.config.simulate
        need = max(cfg.page_size * cfg.max_pages, cfg.offline_k)
        pages, top = {}, {}
        with progress(f"ranking: {recommender.name}", total=len(users), unit="users") as advance:
            for start in range(0, len(users), _RANKED_AT_ONCE):
                chunk = users[start : start + _RANKED_AT_ONCE]
                lists = recommend_many(recommender, chunk, [history[u] for u in chunk], need)
                for user, ranking in zip(chunk, lists, strict=True):
                    # the first `need` new, distinct items: one page of that size
                    flat = next(iter(pages_of(ranking, set(), need, 1)), [])
                    top[user] = flat[: cfg.offline_k]
                    pages[user] = pages_of(flat, set(), cfg.page_size, cfg.max_pages)
                advance(len(chunk))
        return pages, top

    def _other_priors(
        self,
        agent: LazyAgents,
        interactions: pd.DataFrame,
        items: pd.DataFrame,
        recommenders: dict[str, Recommender],
        pages: dict[str, dict[str, list[list[str]]]],
        activity: dict[str, Any],
        checkpoints: Path,
        test_items: set[tuple[str, str]],
        metrics: dict[str, Any],
    ) -> dict[str, Any]:
        """The sessions again under each other watch prior: per recommender the watch
        rate, likes and log-hit ratio, how the recommenders' order agrees with nDCG, and
        with their order under the agents' own prior."""
        fit = self._prior_fitter(interactions, items)
        swapped: dict[str, Any] = {}

        def swap_to(kind: str) -> Callable[[], None]:
            """Fit and swap in `kind` before the first of its sessions that must run
            (none when all are restored: no agents loaded, no prior fitted)."""

            def prepare() -> None:
                if swapped.get("kind") != kind:
                    loaded = agent.get()
                    swapped.setdefault("own", loaded.watch_prior)
                    loaded.watch_prior = fit(kind, [])
                    swapped["kind"] = kind

            return prepare

        cfg = self.config.simulate
        out: dict[str, Any] = {}
        try:
            for kind in cfg.other_watch_priors:
                table = {}
                for name in recommenders:
                    log = self._sessions(
                        agent,
                        name,
                        0,
                        pages[name],
                        activity,
                        checkpoints,
                        kind,
                        prepare=swap_to(kind),
                    )
                    row = session_metrics(log.events, log.sessions, catalogue=1, novelty={})
                    row.update(_log_hits(log.events, test_items))
                    row["ndcg"] = metrics["recommenders"][name]["ndcg"]
                    kept = ("watch_rate", "likes", "log_hit_ratio", "ndcg")
                    if self.config.data.implicit:
                        kept = tuple(k for k in kept if k not in _RATING_MEASURES)
                    table[name] = _rounded({k: row[k] for k in kept})
                own_order = {n: r["watch_rate"] for n, r in metrics["recommenders"].items()}
                out[kind] = {
                    "recommenders": table,
                    "watch_rate~ndcg": _rounded(
                        rank_agreement(
                            {n: r["watch_rate"] for n, r in table.items()},
                            {n: r["ndcg"] for n, r in table.items()},
                        )
                    ),
                    "watch_rate~own_prior": _rounded(
                        rank_agreement({n: r["watch_rate"] for n, r in table.items()}, own_order)
                    ),
                }
        finally:
            if "own" in swapped:
                agent.get().watch_prior = swapped["own"]
        return out

    def _session_model(
        self, interactions: pd.DataFrame, items: pd.DataFrame
    ) -> Callable[[Any], None]:
        """Gives loaded agents' stacked watch prior its model back (fitted as the train
        stage fitted it: same data, seed and families), so that what a user watched
        earlier in a session moves their prior (``simulate.session_recency``)."""
        from personasim.agents.choice_prior import session_model

        def attach(agent: Any) -> None:
            prior = agent.watch_prior
            if not self.config.simulate.session_recency or prior is None:
                return
            if prior.kind != "stacked" or prior.session is not None:
                return
            train, others = self._choice_logs(interactions)
            with progress("watch prior (stacked): its model, for the sessions", total=None):
                prior.session = session_model(
                    train,
                    others,
                    items,
                    seed=self.config.seed,
                    exclude=self.config.agents.watch_prior_exclude,
                )

        return attach

    def _choice_logs(self, interactions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """What the watch priors are fitted on: the simulated users' train part and the
        other users' rows (as the train stage fits them)."""
        others = read_parquet(self.workspace.require("data", "others.parquet"))
        return interactions[interactions["split"] == "train"], others

    def _prior_fitter(
        self, interactions: pd.DataFrame, items: pd.DataFrame
    ) -> Callable[[str, list[str]], Any]:
        """``(kind, families left out) -> a watch prior`` fitted as the train stage fits
        the agents' own (on the same watch examples)."""
        from personasim.agents.choice_prior import fit_choice_prior

        ws = self.workspace
        examples = read_parquet(ws.require("adapters", "examples.parquet"))
        watch = examples[examples["task"] == "watch"][["user_id", "item_id", "target"]]
        train, others = self._choice_logs(interactions)
        simulated = sorted(interactions["user_id"].astype(str).unique())

        def fit(kind: str, exclude: list[str]) -> Any:
            with progress(f"watch prior ({kind}, without {exclude or 'nothing'})", total=None):
                prior, _, _ = fit_choice_prior(
                    kind,
                    train,
                    others,
                    items,
                    simulated,
                    watch,
                    seed=self.config.seed,
                    exclude=exclude,
                )
            return prior

        return fit

    def _checks(
        self,
        agent: LazyAgents,
        interactions: pd.DataFrame,
        items: pd.DataFrame,
        shown: dict[str, dict[str, list[list[str]]]],
        logs: dict[str, SessionLog],
        history: dict[str, list[str]],
        activity: dict[str, Any],
        checkpoints: Path,
        metrics: dict[str, Any],
    ) -> dict[str, Any]:
        """The ladder and leave-family-out checks (:mod:`personasim.pipeline.simulate_checks`)."""
        cfg = self.config.simulate
        seed = self.config.seed

        def simulate(
            name: str,
            pages: dict[str, list[list[str]]],
            variant: str,
            prepare: Callable[[], None] | None = None,
        ) -> SessionLog:
            return self._sessions(
                agent, name, 0, pages, activity, checkpoints, variant, prepare=prepare
            )

        checks: dict[str, Any] = {}
        table = metrics["recommenders"]
        measures = ("watch_rate",) if self.config.data.implicit else ("watch_rate", "likes")
        strong = [n for n in cfg.recommenders if n in FAMILY_OF]
        if cfg.ladder and strong:
            best = max(strong, key=lambda n: table[n]["ndcg"])
            test = interactions[interactions["split"] == "test"]
            catalogue = items.loc[items["train_count"] > 0, "item_id"].astype(str).tolist()
            checks["ladder"] = ladder_check(
                best,
                shown[best],
                logs[best],
                history,
                catalogue,
                test.astype({"user_id": str, "item_id": str}),
                simulate,
                shares=cfg.ladder,
                k=cfg.offline_k,
                seed=seed,
                rounds=self.config.evaluate.bootstrap_rounds,
                measures=measures,
            )
        agents_cfg = self.config.agents
        if cfg.leave_family_out and agents_cfg.watch_prior == "stacked" and strong:
            fit = self._prior_fitter(interactions, items)
            own: dict[str, Any] = {}

            def use(prior: Any) -> None:
                """Swap the agents' prior; None puts their own back (loads nothing when
                every session came from a checkpoint)."""
                if prior is None:
                    if own:
                        agent.get().watch_prior = own["prior"]
                    return
                loaded = agent.get()
                own.setdefault("prior", loaded.watch_prior)
                loaded.watch_prior = prior

            checks["leave_family_out"] = leave_family_out_check(
                {n: table[n] for n in cfg.recommenders},
                shown,
                lambda family: fit("stacked", [*agents_cfg.watch_prior_exclude, family]),
                use,
                simulate,
                measures=measures,
            )
        return checks

    def _sessions(
        self,
        agent: LazyAgents | None,
        name: str,
        round_: int,
        pages: dict[str, list[list[str]]],
        activity: dict[str, Any],
        checkpoints: Path,
        variant: str = "",
        *,
        prepare: Callable[[], None] | None = None,
    ) -> SessionLog:
        """One recommender's sessions in one round, from the checkpoint when it exists
        (`variant`: sessions under another watch prior, or of altered pages; `prepare`
        runs first when they are not restored)."""
        tag = f"round{round_}-{config_hash(name, *self._recommender_source(name))[:12]}"
        if variant:
            tag += f"-prior-{variant}"
        if round_:  # rounds after the first add the watched items ("w")
            tag += f"-u{self.config.simulate.feedback_users}-w"
        stem = checkpoints / tag
        events_path, sessions_path = (
            stem.with_suffix(".events.parquet"),
            stem.with_suffix(".sessions.parquet"),
        )
        if events_path.exists() and sessions_path.exists():
            logger.info("simulate: %s round %d restored from checkpoint", name, round_)
            return SessionLog(read_parquet(events_path), read_parquet(sessions_path))
        cfg = self.config.simulate
        scale = self.config.data.scale
        if agent is None:
            return run_sessions(
                NoAgents(), {u: [] for u in pages}, {}, cfg, seed=0, label="", scale=scale
            )
        if prepare is not None:  # e.g. swap in another prior: only for sessions to run
            prepare()
        activity = {u: int(activity.get(u, 2)) for u in pages}
        label = f"round{round_}"  # common random numbers across recommenders
        executor = get_executor(self.config.scale)
        # the checks' and other priors' sessions (variants) swap the driver's priors: here
        if executor.parallelism > 1 and not variant and self._agents_portable():
            log = self._sessions_on_workers(executor, agent, name, pages, activity, label)
        else:
            total = sum(len(page) for p in pages.values() for page in p)
            with progress(
                f"sessions: {name} (round {round_})", total=total, unit="items at most"
            ) as advance:
                log = run_sessions(
                    agent.get(),
                    pages,
                    activity,
                    cfg,
                    seed=self.config.seed,
                    label=label,
                    advance=advance,
                    scale=scale,
                    rates=not self.config.data.implicit,
                )
        write_parquet(log.sessions, sessions_path)
        write_parquet(log.events, events_path)
        return log

    def _agents_portable(self) -> bool:
        """Whether a worker that loads the agents from the run folder gets the driver's
        agents: not when the stacked watch prior reads the sessions (its session model
        is fitted here, not stored)."""
        agents = self.config.agents
        return not (self.config.simulate.session_recency and agents.watch_prior == "stacked")

    def _sessions_on_workers(
        self,
        executor: Any,
        agent: LazyAgents,
        name: str,
        pages: dict[str, list[list[str]]],
        activity: dict[str, int],
        label: str,
    ) -> SessionLog:
        """The sessions split into chunks of users over the executor's workers (each
        loads the agents once), merged as one run writes them."""
        users = list(pages)
        parts = max(1, min(len(users), executor.parallelism * _CHUNKS_PER_WORKER))
        bounds = np.linspace(0, len(users), parts + 1).astype(int)
        chunks = [
            (
                {u: pages[u] for u in users[a:b]},
                {u: activity[u] for u in users[a:b]},
            )
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)
            if b > a
        ]
        work = SessionsOnWorker(
            str(self.workspace.root),
            agent.model,
            agent.language_model,
            self.config.simulate,
            self.config.seed,
            label,
            self.config.data.scale,
            not self.config.data.implicit,
        )
        logs = executor.map(work, chunks, label=f"sessions: {name} ({label}, {executor.name})")
        return merge_session_logs(logs, users)

    def _user_agreement(
        self,
        events: pd.DataFrame,
        sessions: pd.DataFrame,
        offline: pd.DataFrame,
        simulated: str = "likes",
    ) -> pd.DataFrame:
        """Per user: do the recommenders that gave this user's agent more likes (or
        watches: `simulated`) also score a higher nDCG on this user's held-out items?"""
        per_user = []
        for name, se in sessions.groupby("recommender", sort=False):
            ev = events[events["recommender"] == name]
            per_user.append(user_session_metrics(ev, se).assign(recommender=name))
        table = pd.concat(per_user).pivot(index="user_id", columns="recommender", values=simulated)
        ndcg = offline.pivot(index="user_id", columns="recommender", values="ndcg")
        return per_user_agreement(table, ndcg)

    def _feedback(
        self,
        ctx: _Context,
        recommenders: dict[str, Recommender],
        logs: dict[str, SessionLog],
        first_top: dict[str, dict[str, list[str]]],
        users: list[str],
    ) -> tuple[pd.DataFrame, list[pd.DataFrame], dict[str, Any]]:
        """The feedback study (:mod:`personasim.simulation.feedback`): rounds of adding
        what the agents watched, retraining, ranking and simulating again; measured on
        each round's sessions and top-k lists (whose length does not depend on how long
        the agents stayed).

        Returns:
            One row per recommender and round, the events (``user_id, watched``) of the
            rounds after the first, and per recommender the 95% intervals of the change
            of its lists from the first round to the last.
        """
        cfg = self.config.simulate
        seed = self.config.seed
        rates = not self.config.data.implicit
        loop_users = _sample(users, cfg.feedback_users, seed, "feedback")
        chosen = set(loop_users)
        start = {u: list(ctx.history[u]) for u in loop_users}
        catalogue = sorted(ctx.training["item_id"].astype(str).unique())
        rows = []
        later: list[pd.DataFrame] = []
        spread: dict[str, Any] = {}
        last_time = int(ctx.training["timestamp"].max())
        for name, recommender in recommenders.items():
            log = SessionLog(
                logs[name].events[logs[name].events["user_id"].isin(chosen)],
                logs[name].sessions[logs[name].sessions["user_id"].isin(chosen)],
            )
            added = ctx.training
            user_history = {u: list(start[u]) for u in loop_users}
            for round_ in range(cfg.feedback_rounds + 1):
                t0 = time.perf_counter()
                if round_:
                    took = log.events[log.events["watched"]]
                    new = pd.DataFrame(
                        {
                            "user_id": took["user_id"].astype(str),
                            "item_id": took["item_id"].astype(str),
                            "rating": took["rating"].astype(float),
                            "timestamp": last_time + round_,
                        }
                    )
                    added = pd.concat([added, new], ignore_index=True)
                    for user, item in zip(new["user_id"], new["item_id"], strict=True):
                        user_history[user].append(item)
                    recommender.fit(added, seed=seed)
                    pages, top = self._rankings(recommender, loop_users, user_history)
                    log = self._sessions(
                        ctx.agent, name, round_, pages, ctx.activity, ctx.checkpoints
                    )
                    later.append(log.events[["user_id", "watched"]])
                else:
                    top = {u: first_top[name][u] for u in loop_users}
                listed = pd.DataFrame(
                    [(u, i) for u, items in top.items() for i in items],
                    columns=["user_id", "item_id"],
                )
                if round_ == 0:
                    first_listed = listed
                session = session_metrics(
                    log.events, log.sessions, catalogue=ctx.catalogue, novelty=ctx.novelty
                )
                session.pop("coverage")  # of the lists instead, below
                if not rates:
                    for measure in _RATING_MEASURES:
                        session.pop(measure, None)
                rows.append(
                    {
                        "recommender": name,
                        "round": round_,
                        **_rounded(session),
                        **_rounded(
                            exposure_measures(listed, catalogue, ctx.genres, ctx.popularity)
                        ),
                        "history_drift": round(history_drift(start, user_history, ctx.genres), 6),
                        "items_added": int(len(added) - len(ctx.training)),
                        "seconds": round(time.perf_counter() - t0, 2),
                    }
                )
            spread[name] = change_intervals(
                first_listed,
                listed,
                len(catalogue),
                ctx.genres,
                rounds=self.config.evaluate.bootstrap_rounds,
                seed=seed,
            )
        return pd.DataFrame(rows), later, spread


@dataclass
class _Context:
    """What the feedback rounds share with the first round."""

    agent: LazyAgents | None
    training: pd.DataFrame
    history: dict[str, list[str]]
    activity: dict[str, Any]
    checkpoints: Path
    genres: dict[str, list[str]]
    popularity: dict[str, float]
    novelty: dict[str, float]
    catalogue: int


def _sample(users: list[str], n: int, seed: int, purpose: str) -> list[str]:
    """All `users`, or a seeded sample of `n` of them (sorted)."""
    if not n or n >= len(users):
        return list(users)
    rng = np.random.default_rng([seed, len(purpose), sum(map(ord, purpose))])
    return sorted(rng.choice(users, size=n, replace=False).tolist())


def _stack(
    logs: dict[str, SessionLog], persona_of: dict[str, str], round_: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every recommender's events and sessions in two tables, with persona and round."""
    events = pd.concat(
        [log.events.assign(recommender=name, round=round_) for name, log in logs.items()],
        ignore_index=True,
    )
    sessions = pd.concat(
        [log.sessions.assign(recommender=name, round=round_) for name, log in logs.items()],
        ignore_index=True,
    )
    for frame in (events, sessions):
        frame["persona"] = frame["user_id"].map(persona_of).astype("string")
    lead = ["recommender", "round", "user_id", "persona"]
    return (
        events[lead + [c for c in events.columns if c not in lead]],
        sessions[lead + [c for c in sessions.columns if c not in lead]],
    )


def _log_hits(events: pd.DataFrame, test_items: set[tuple[str, str]]) -> dict[str, float]:
    """How the log judges the shown items: the share the user rated in the held-out
    period, and that share among the items the agent watched and among those it skipped."""
    in_log = np.array(
        [(u, i) in test_items for u, i in zip(events["user_id"], events["item_id"], strict=True)]
    )
    watched = events["watched"].to_numpy(bool)
    hits_watched = float(in_log[watched].mean()) if watched.any() else float("nan")
    hits_skipped = float(in_log[~watched].mean()) if (~watched).any() else float("nan")
    return {
        "log_hit_rate": float(in_log.mean()) if len(in_log) else float("nan"),
        "log_hit_rate_watched": hits_watched,
        "log_hit_rate_skipped": hits_skipped,
        # >1: the agents watch what the real user went on to rate more than what they skip
        "log_hit_ratio": hits_watched / hits_skipped if hits_skipped > 0 else float("nan"),
    }


def _agreement(table: dict[str, dict[str, float]], headline: str = "likes") -> dict[str, Any]:
    """Kendall and Spearman between every simulated metric and every offline one (the
    `headline` one against nDCG first)."""
    pairs = {}
    measured = next(iter(table.values()), {})
    for simulated in [m for m in _AGREEMENT_SIMULATED if m in measured]:
        for off in OFFLINE_METRICS:
            result = rank_agreement(
                {n: row[simulated] for n, row in table.items()},
                {n: row[off] for n, row in table.items()},
            )
            pairs[f"{simulated}~{off}"] = _rounded(result)
    return {
        "headline": {"simulated": headline, "offline": "ndcg", **pairs[f"{headline}~ndcg"]},
        "pairs": pairs,
    }


def _summarise_user_agreement(
    frame: pd.DataFrame, seed: int, simulated: str = "likes"
) -> dict[str, Any]:
    out: dict[str, Any] = {"simulated": simulated, "offline": "ndcg", "users": int(len(frame))}
    for column in ("kendall_tau", "spearman"):
        values = frame[column].dropna().to_numpy()
        interval = mean_interval(values, rounds=1000, seed=seed)
        out[column] = _rounded(
            {"mean": interval.estimate, "low": interval.low, "high": interval.high}
        )
    out["defined_users"] = int(frame["kendall_tau"].notna().sum())
    return out


def _rounded(values: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (round(float(v), 6) if isinstance(v, (float, np.floating)) else v)
        for k, v in values.items()
    }
