"""The simulate stage's sessions: one recommender's in one round, checkpointed.

Each recommender's sessions of a round (and of each variant: the checks' altered pages,
another watch prior) are kept in the stage's checkpoint folder under a tag of the
recommender, its source, the round and the variant, so a killed simulation resumes at
the next one. Sessions that must run run in process, or in chunks of users over the
executor's workers (:mod:`personasim.pipeline.simulate_agents`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from personasim.config import RunConfig, config_hash
from personasim.data.tables import read_parquet, write_parquet
from personasim.pipeline.simulate_agents import (
    LazyAgents,
    NoAgents,
    SessionsOnWorker,
    merge_session_logs,
)
from personasim.progress import progress
from personasim.scale.executor import get_executor
from personasim.simulation.sessions import SessionLog, run_sessions
from personasim.workspace import Workspace, file_sha256

__all__ = ["SessionRunner"]

logger = logging.getLogger(__name__)

_CHUNKS_PER_WORKER = 2
"""Chunks of users per worker when the sessions are spread over an executor."""


@dataclass
class SessionRunner:
    """Runs the recommenders' sessions of one simulation, or restores them from its
    checkpoints."""

    workspace: Workspace
    config: RunConfig
    agent: LazyAgents | None
    """The agents (None: no agents, every session is empty)."""
    activity: dict[str, Any]
    """Each user's activity level (2 where unknown)."""
    checkpoints: Path
    """The folder of the sessions' checkpoints."""

    def recommender_source(self, name: str) -> list[str | None]:
        """What a recommender's sessions depend on besides its name: the plugin it is
        loaded from, and the content of its rankings file (a changed file is simulated
        again instead of restored from the old file's checkpoint)."""
        cfg = self.config.simulate
        path = cfg.rankings.get(name)
        return [cfg.plugins.get(name), *([file_sha256(Path(path))] if path else [])]

    def sessions(
        self,
        name: str,
        round_: int,
        pages: dict[str, list[list[str]]],
        variant: str = "",
        *,
        prepare: Callable[[], None] | None = None,
    ) -> SessionLog:
        """One recommender's sessions in one round, from the checkpoint when it exists
        (`variant`: sessions under another watch prior, or of altered pages; `prepare`
        runs first when they are not restored)."""
        agent = self.agent
        tag = f"round{round_}-{config_hash(name, *self.recommender_source(name))[:12]}"
        if variant:
            tag += f"-prior-{variant}"
        if round_:  # rounds after the first add the watched items ("w")
            tag += f"-u{self.config.simulate.feedback_users}-w"
        stem = self.checkpoints / tag
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
        activity = {u: int(self.activity.get(u, 2)) for u in pages}
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
