"""The simulate stage's agents: loaded on first use, and loaded again where a chunk of
users' sessions runs (a Ray worker) so that the driver sends only pages and settings.

Sessions do not depend on which other users run beside them (each decision's draw is
seeded by the user, the page and the item's position), so a simulation split into
chunks of users gives the sessions of the whole: :class:`SessionsOnWorker` runs one
chunk, and the stage puts the chunks' events back in the order one run writes them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from personasim.config import AGENT_ADAPTERS, SimulateConfig
from personasim.rating_scale import RatingScale
from personasim.run_folder import ADAPTERS, MANIFEST
from personasim.simulation.sessions import SessionLog, run_sessions

__all__ = ["LazyAgents", "NoAgents", "SessionsOnWorker", "merge_session_logs"]

logger = logging.getLogger(__name__)


class NoAgents:
    """Stands in when no agents were trained: every session is empty."""

    def watch_probabilities(self, requests: Any) -> list[np.ndarray]:
        raise AssertionError("no agents")

    def rating_distributions(self, requests: Any) -> list[dict[str, np.ndarray]]:
        raise AssertionError("no agents")


class LazyAgents:
    """Loads the agents on first use (a fully checkpointed simulation never does): the
    language-model agents with ``agents.language_model = "on"`` (and for the zero-shot
    base model), else agents routed to their priors where the LM weights are 0."""

    def __init__(
        self,
        workdir: Path,
        model: str,
        on_load: Callable[[Any], None] | None = None,
        language_model: str = "on",
    ) -> None:
        self.workdir = workdir
        self.model = model
        self.on_load = on_load
        self.language_model = "on" if model == "zero-shot" else language_model
        self._agent: Any = None

    def _model_agents(self) -> Any:
        from personasim.agents import UserAgent

        logger.info("simulate: loading the %s agents' language model", self.model)
        return UserAgent.from_workdir(self.workdir, mode=AGENT_ADAPTERS[self.model])

    def get(self) -> Any:
        if self._agent is None:
            if self.language_model == "on":
                agent = self._model_agents()
            else:
                from personasim.agents.prior_agents import RoutedAgents

                load = None if self.language_model == "off" else self._model_agents
                agent = RoutedAgents.from_workdir(self.workdir, AGENT_ADAPTERS[self.model], load)
                logger.info(
                    "simulate: the %s agents answer from their priors%s",
                    self.model,
                    " and the language model" if agent.uses_model else " alone",
                )
            if self.on_load is not None:
                self.on_load(agent)
            self._agent = agent
        return self._agent

    def decisions(self, events: pd.DataFrame, rates: bool) -> dict[str, int]:
        """How many of the decisions in `events` the language model made and how many
        the priors did (each shown item is a watch decision, each watched one a rating
        when the agents rate); from the adapters' weights, so sessions restored from
        checkpoints count too."""
        from personasim.agents.prior_agents import Routing

        mode = AGENT_ADAPTERS[self.model]
        return Routing.from_workdir(self.workdir, mode, self.language_model).decisions(
            events, rates
        )


_LOADED: dict[tuple[Any, ...], Any] = {}
"""The agents a worker process loaded, by run folder, agents and adapters' manifest."""


def _worker_agents(workdir: str, model: str, language_model: str) -> Any:
    """The agents of a run folder, loaded once per worker process (again when the
    adapters changed since)."""
    manifest = Path(workdir) / ADAPTERS.stage.folder / MANIFEST
    key = (workdir, model, language_model, manifest.stat().st_mtime_ns if manifest.exists() else 0)
    if key not in _LOADED:
        _LOADED.clear()
        _LOADED[key] = LazyAgents(Path(workdir), model, None, language_model).get()
    return _LOADED[key]


@dataclass(frozen=True)
class SessionsOnWorker:
    """One chunk of users' sessions, run where the executor puts it; the agents are
    loaded there from the run folder (which every worker sees at the same path)."""

    workdir: str
    model: str
    language_model: str
    config: SimulateConfig
    seed: int
    label: str
    scale: RatingScale
    rates: bool

    def __call__(self, chunk: tuple[dict[str, list[list[str]]], dict[str, int]]) -> SessionLog:
        """The sessions of the chunk's users (``(pages, activity)``)."""
        pages, activity = chunk
        agents = _worker_agents(self.workdir, self.model, self.language_model)
        return run_sessions(
            agents,
            pages,
            activity,
            self.config,
            seed=self.seed,
            label=self.label,
            scale=self.scale,
            rates=self.rates,
        )


def merge_session_logs(logs: list[SessionLog], users: list[str]) -> SessionLog:
    """The chunks' sessions as one run over `users` writes them: sessions in the users'
    order, events page by page (users in order within a page)."""
    rank = {u: i for i, u in enumerate(users)}
    events = pd.concat([log.events for log in logs], ignore_index=True)
    order = np.lexsort(
        (
            events["position"].to_numpy(),
            events["user_id"].map(rank).to_numpy(),
            events["page"].to_numpy(),
        )
    )
    sessions = pd.concat([log.sessions for log in logs], ignore_index=True)
    sessions = sessions.iloc[np.argsort(sessions["user_id"].map(rank).to_numpy(), kind="stable")]
    return SessionLog(events.iloc[order].reset_index(drop=True), sessions.reset_index(drop=True))
