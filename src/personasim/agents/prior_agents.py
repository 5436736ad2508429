"""Simulated users answered by their collaborative priors alone: no language model.

An adapter whose fitted LM weights are 0 (:mod:`personasim.agents.calibration`) answers
exactly as its priors do: the rating distribution is the softmax of the rating prior's
Gaussian log-prior over the scale's levels, P(watch) the sigmoid of the watch prior's
log-odds (which reads what the user watched earlier in the session when the prior is the
stacked choice model). :class:`PriorAgents` computes those answers without loading,
tokenising or running the model, for every request of a call at once: the same numbers
as :class:`~personasim.agents.UserAgent` at weight 0, at the speed of the collaborative
models. :class:`RoutedAgents` sends each user's questions to the priors or to the
language model as a :class:`Routing` says (by their adapter's weights and
``agents.language_model``), which also counts the decisions each made.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, softmax

from personasim.agents.adapters import GLOBAL_ADAPTER, fitted_lm_weights
from personasim.agents.prior import CFPrior, prior_logits
from personasim.agents.watch_prior import WatchPrior
from personasim.config import RunConfig
from personasim.errors import ConfigError, StageError
from personasim.rating_scale import RatingScale
from personasim.run_folder import ADAPTERS, PERSONAS

__all__ = ["PriorAgents", "RoutedAgents", "Routing", "answers_from_prior"]

Requests = Sequence[tuple[str, Sequence[str]]]


class PriorAgents:
    """The answers of agents whose LM weights are 0, from the priors alone.

    Attributes:
        config: The run's settings (the prior's width and centre, the scale).
        prior: The rating prior (None for a log without ratings).
        watch_prior: The watch prior (swappable, as the agents' is).
        session_watched: What each user watched in the session under way.
    """

    def __init__(
        self,
        config: RunConfig,
        prior: CFPrior | None,
        watch_prior: WatchPrior | None,
    ) -> None:
        self.config = config
        self.prior = prior
        self.watch_prior = watch_prior
        self.session_watched: dict[str, list[str]] = {}

    @classmethod
    def from_workdir(cls, workdir: str | Path) -> PriorAgents:
        """The priors of a run folder whose train stage has run (no model is loaded).

        Raises:
            StageError: The train stage has not run.
        """
        from personasim.workspace import Workspace, resolve_config

        ws = Workspace(workdir)
        config = resolve_config(ws)
        folder = ws.stage_dir(ADAPTERS.stage)
        if ws.read_manifest(ADAPTERS.stage) is None:
            raise StageError(
                f"the agents' priors are not fitted in {ws.root}: run `personasim train`"
            )
        prior = None
        if not config.data.implicit and CFPrior.saved_in(folder):
            prior = CFPrior.load(folder)
        watch_prior = None
        if ADAPTERS.watch_prior.under(folder).is_file():
            watch_prior = WatchPrior.load(folder)
        return cls(config, prior, watch_prior)

    @property
    def rates(self) -> bool:
        """False for a run whose log has no ratings (the watch decision only)."""
        return not self.config.data.implicit

    @property
    def rating_scale(self) -> RatingScale:
        """The scale the ratings are on."""
        return self.config.data.scale

    def watch_probabilities(self, requests: Requests) -> list[np.ndarray]:
        """P(watch) of each item per ``(user_id, item_ids)``: sigmoid of the watch
        prior's log-odds (after the user's watches in the session under way)."""
        if self.watch_prior is None:
            raise ConfigError(
                "the agents have no watch prior (agents.watch_prior = 'none'): their "
                "watch answer needs the language model (agents.language_model = 'on')"
            )
        out = []
        for user, items in requests:
            items = [str(i) for i in items]
            if not items:
                out.append(np.zeros(0))
                continue
            recent = self.session_watched.get(str(user), ())
            odds = self.watch_prior.log_odds(str(user), items, None, recent)
            # the agents carry the log-odds in float32 (the model's precision)
            out.append(expit(odds.astype("float32").astype("float64")))
        return out

    def rating_distributions(self, requests: Requests) -> list[dict[str, np.ndarray]]:
        """Per ``(user_id, item_ids)``: ``probs`` over the scale's levels (the softmax of
        the rating prior's log-prior), ``expected`` and ``argmax``; ``digit_mass`` is
        NaN and ``greedy_is_digit`` True (no model was asked).

        Raises:
            ConfigError: The log has no ratings, or the rating prior is not on the
                answer's logits (``agents.prior`` without "logit": the prior alone is
                not an answer there).
        """
        if not self.rates:
            raise ConfigError("this run's log has no ratings: the agents answer only watches")
        if self.prior is None or "logit" not in self.config.agents.prior:
            raise ConfigError(
                "agents.prior has no logit prior: the agents' ratings need the language "
                "model (agents.language_model = 'on')"
            )
        requests = [(str(u), [str(i) for i in items]) for u, items in requests]
        sizes = [len(items) for _, items in requests]
        priors = np.concatenate(
            [self.prior.predict(u, items) for u, items in requests if items] or [np.zeros(0)]
        )
        probs = answers_from_prior(priors, self.config)
        levels = self.rating_scale.levels
        out, at = [], 0
        for n in sizes:
            part = probs[at : at + n]
            at += n
            out.append(
                {
                    "probs": part,
                    "expected": part @ levels,
                    "argmax": levels[part.argmax(axis=1)] if n else np.zeros(0),
                    "digit_mass": np.full(n, np.nan),
                    "greedy_is_digit": np.ones(n, dtype=bool),
                }
            )
        return out

    def remember(self, user_id: str, item_ids: Sequence[str]) -> None:
        """`user_id` watched `item_ids` in the session under way (oldest first)."""
        self.session_watched.setdefault(user_id, []).extend(item_ids)

    def forget_sessions(self) -> None:
        """End every session."""
        self.session_watched.clear()


def answers_from_prior(priors: np.ndarray, config: RunConfig) -> np.ndarray:
    """``[n, levels]`` the rating distributions of prior ratings `priors` at LM weight 0:
    the softmax of their Gaussian log-prior (computed as the agents compute it)."""
    import torch

    if not len(priors):
        return np.zeros((0, len(config.data.scale.levels)))
    agents = config.agents
    offsets = prior_logits(
        torch.tensor(priors, dtype=torch.float32),
        agents.prior_sigma,
        agents.prior_centre,
        config.data.scale,
    )
    return softmax(offsets.double().numpy(), axis=1)


@dataclass(frozen=True)
class Routing:
    """Which of a run's questions the language model answers: with ``agents.language_model
    = "auto"`` an adapter's ratings when its LM weight is not 0 and its watch decisions
    when its watch LM weight is not 0; every question with "on" (and for the zero-shot
    base model, `mode` "none"); none with "off".

    Attributes:
        personas: Each user's persona (whose adapter answers in "persona" mode).
        mode: "persona", "global" or "none".
        weights: Each adapter's rating LM weight (1 where absent).
        watch_weights: Each adapter's watch LM weight (1 where absent).
        language_model: "auto", "on" or "off".
    """

    personas: Mapping[str, str]
    mode: str
    weights: Mapping[str, float]
    watch_weights: Mapping[str, float]
    language_model: str = "auto"

    @classmethod
    def from_workdir(cls, workdir: str | Path, mode: str, language_model: str) -> Routing:
        """The routing of a run folder: its personas and the train stage's fitted weights."""
        from personasim.data.tables import read_parquet
        from personasim.workspace import Workspace

        ws = Workspace(workdir)
        personas: dict[str, str] = {}
        path = ws.path(PERSONAS.assignments)
        if path.is_file():
            frame = read_parquet(path)
            personas = dict(zip(frame["user_id"].astype(str), frame["persona"], strict=True))
        summary = (ws.read_manifest(ADAPTERS.stage) or {}).get("summary") or {}
        adapters = summary.get("adapters") or {}
        weights, watch_weights = fitted_lm_weights(adapters, list(adapters))
        return cls(personas, mode, weights, watch_weights, language_model)

    def adapter(self, user: str) -> str:
        """The adapter that answers for `user`."""
        return self.personas.get(user, "") if self.mode == "persona" else GLOBAL_ADAPTER

    def to_model(self, user: str, watch: bool) -> bool:
        """Whether the language model answers `user`'s watch (or rating) question."""
        if self.language_model == "on" or self.mode == "none":
            return True
        if self.language_model == "off":
            return False
        weights = self.watch_weights if watch else self.weights
        return weights.get(self.adapter(user), 1.0) != 0

    @property
    def uses_model(self) -> bool:
        """Whether any question of the run's users goes to the language model."""
        users = self.personas or {"": ""}
        return any(self.to_model(u, watch) for u in users for watch in (True, False))

    def decisions(self, events: pd.DataFrame, rates: bool) -> dict[str, int]:
        """How many decisions of the sessions `events` (``user_id, watched``) the model
        made and how many the priors did: each shown item is a watch decision, each
        watched item a rating when the agents rate."""
        users = events["user_id"].astype(str)
        watched = events["watched"].to_numpy(bool) if rates else np.zeros(len(events), bool)
        watch = users.map(lambda u: self.to_model(u, watch=True)).to_numpy(bool)
        rate = users.map(lambda u: self.to_model(u, watch=False)).to_numpy(bool)
        model = int(watch.sum() + (rate & watched).sum())
        return {"language_model": model, "prior": len(events) + int(watched.sum()) - model}


class RoutedAgents:
    """The agents of a run with each question sent to the priors or to the language
    model (loaded on first need) as their :class:`Routing` says."""

    def __init__(
        self,
        priors: PriorAgents,
        routing: Routing,
        load_model: Callable[[], Any] | None,
    ) -> None:
        self.priors = priors
        self.routing = routing
        self._load_model = load_model
        self._model: Any = None

    @classmethod
    def from_workdir(
        cls, workdir: str | Path, mode: str, load_model: Callable[[], Any] | None
    ) -> RoutedAgents:
        """The routed agents of a run folder in `mode` ("persona" or "global").

        Args:
            workdir: The run folder (train has run).
            mode: Whose adapter answers for a user: its persona's, or the global one.
            load_model: Loads the language-model agents (None: ``language_model =
                "off"``, every question goes to the priors).
        """
        language_model = "auto" if load_model is not None else "off"
        routing = Routing.from_workdir(workdir, mode, language_model)
        return cls(PriorAgents.from_workdir(workdir), routing, load_model)

    @property
    def rates(self) -> bool:
        """Whether the agents rate (a log with ratings)."""
        return self.priors.rates

    @property
    def watch_prior(self) -> WatchPrior | None:
        """The watch prior (setting it swaps it for the model's agents too)."""
        return self.priors.watch_prior

    @watch_prior.setter
    def watch_prior(self, prior: WatchPrior | None) -> None:
        self.priors.watch_prior = prior
        if self._model is not None:
            self._model.watch_prior = prior

    @property
    def uses_model(self) -> bool:
        """Whether any adapter's question goes to the language model."""
        return self._load_model is not None and self.routing.uses_model

    def model(self) -> Any:
        """The language-model agents (loaded on first call; they share the priors and the
        session's watches)."""
        if self._model is None:
            if self._load_model is None:
                raise ConfigError("agents.language_model is 'off'")
            self._model = self._load_model()
            # one copy of each prior (the model's agents read the same ones)
            self._model.prior = self.priors.prior
            self._model.watch_prior = self.priors.watch_prior
            self._model.session_watched = self.priors.session_watched
        return self._model

    def _route(self, requests: Requests, method: str, watch: bool) -> list[Any]:
        by_model = [self.routing.to_model(str(u), watch) for u, _ in requests]
        out: list[Any] = [None] * len(requests)
        for use_model in (False, True):
            chosen = [k for k, m in enumerate(by_model) if m == use_model]
            if chosen:
                agents = self.model() if use_model else self.priors
                answers = getattr(agents, method)([requests[k] for k in chosen])
                for k, answer in zip(chosen, answers, strict=True):
                    out[k] = answer
        return out

    def watch_probabilities(self, requests: Requests) -> list[np.ndarray]:
        """P(watch) per request, from the priors or the model by the watch weight."""
        return self._route(requests, "watch_probabilities", watch=True)

    def rating_distributions(self, requests: Requests) -> list[dict[str, np.ndarray]]:
        """Rating distributions per request, from the priors or the model by the weight."""
        return self._route(requests, "rating_distributions", watch=False)

    def remember(self, user_id: str, item_ids: Sequence[str]) -> None:
        """`user_id` watched `item_ids` in the session (shared with the model's agents)."""
        self.priors.remember(user_id, item_ids)

    def forget_sessions(self) -> None:
        """End every session."""
        self.priors.forget_sessions()
