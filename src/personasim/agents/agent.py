"""`UserAgent`: simulated users that rate items and decide what they would watch.

Ratings are scored, not parsed: one forward pass gives the distribution over the tokens
"1".."5" (renormalised over the digits; with the logit prior, combined with the CF
prediction), whose expectation is the predicted rating (the argmax is kept too). Watch
decisions are P("yes") against P("no").

Scoring is batched: a user's profile prefix is encoded once per pack of candidate items
(the items cannot see each other), packs of several users go through one forward pass
with each row routed to its user's persona adapter (PEFT's mixed-adapter batch), and
only the answer positions reach the LM head.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from personasim.agents.answers import AnswerScores
from personasim.agents.cold_start import ColdStartUsers
from personasim.agents.described_items import DescribedItems
from personasim.agents.lm import AgentLM
from personasim.agents.loading import load_agents
from personasim.agents.pair_predictions import pair_predictions
from personasim.agents.posterior import rating_answer, watch_answer
from personasim.agents.prior import CFPrior
from personasim.agents.questions import AgentQuestions
from personasim.agents.retrieval import RationaleIndex
from personasim.agents.watch_prior import WatchPrior
from personasim.config import RunConfig
from personasim.errors import ConfigError
from personasim.llm.device import fitting_batch
from personasim.rating_scale import RatingScale

__all__ = ["AgentMode", "UserAgent", "pair_scorer"]

logger = logging.getLogger(__name__)

AgentMode = Literal["persona", "global", "none"]


class UserAgent(AgentQuestions, ColdStartUsers, DescribedItems):
    """Persona LoRA agents over a run folder.

    Build it with :meth:`from_workdir`. Its requests are checked and put as questions by
    :class:`~personasim.agents.questions.AgentQuestions`, its cold-start users kept by
    :class:`~personasim.agents.cold_start.ColdStartUsers` and the items described to it
    by :class:`~personasim.agents.described_items.DescribedItems`.
    """

    def __init__(
        self,
        lm: AgentLM,
        config: RunConfig,
        mode: AgentMode,
        profiles: dict[str, str],
        personas: dict[str, str],
        items: dict[str, dict[str, Any]],
        prior: CFPrior | None,
        index: RationaleIndex | None,
        watch_prior: WatchPrior | None = None,
        lm_weights: Mapping[str, float] | None = None,
        watch_lm_weights: Mapping[str, float] | None = None,
    ) -> None:
        self.lm = lm
        self.config = config
        self.mode = mode
        self.profiles = profiles
        self.personas = personas
        self.items = items
        self.prior = prior
        self.index = index
        self.watch_prior = watch_prior
        self.lm_weights = dict(lm_weights or {})
        """Per adapter, how far its answer is trusted over the prior (1 when absent;
        ``agents.lm_weight``, :mod:`personasim.agents.calibration`)."""
        self.watch_lm_weights = dict(watch_lm_weights or {})
        """Per adapter, the same for the watch answer (1 when absent: runs trained
        before it was fitted)."""
        # the only tokens scoring reads: digits, then the yes and the no spellings
        self._answers = [*lm.digit_ids, *lm.yes_ids, *lm.no_ids]
        self.modes: tuple[AgentMode, ...] = (mode,)
        """The modes whose adapters are loaded (:meth:`as_mode`)."""
        self._added: set[str] = set()  # users added with add_user (cold start)
        self.session_watched: dict[str, list[str]] = {}
        """What each user watched in the session under way, oldest first
        (:meth:`remember`): the stacked watch prior reads it as their latest history."""

    @classmethod
    def from_workdir(
        cls,
        workdir: str | Path,
        mode: AgentMode = "persona",
        *,
        dtype: str | None = None,
        also: Sequence[AgentMode] = (),
    ) -> UserAgent:
        """Load the agents of a run folder.

        Args:
            workdir: The run folder (profile, personas and train must have run; "none"
                needs only profile).
            mode: "persona" (each user's persona adapter), "global" (the global
                adapter) or "none" (the base model zero-shot).
            dtype: "float32" or "bfloat16" instead of the run's `agents.dtype`.
            also: Other modes to load beside `mode` (one model holds every adapter):
                :meth:`as_mode` gives their agents, and the ``*_by_mode`` methods score
                several modes in one pass, sharing the layers below the adapters.

        Raises:
            StageError: A needed stage has not run.
            ConfigError: The mode's adapters were not trained.
        """
        modes = list(dict.fromkeys([mode, *also]))
        loaded = load_agents(workdir, modes, dtype=dtype)
        agent = cls(
            loaded.lm,
            loaded.config,
            mode,
            loaded.profiles,
            loaded.personas,
            loaded.items,
            loaded.prior,
            loaded.index,
            loaded.watch_prior,
            loaded.lm_weights,
            loaded.watch_lm_weights,
        )
        agent.modes = tuple(modes)
        return agent

    @property
    def rating_scale(self) -> RatingScale:
        """The rating scale the agents answer on (the run's ``data`` scale)."""
        return self.lm.scale

    @property
    def rates(self) -> bool:
        """False for a run whose log has no ratings: its agents answer only the watch
        decision, and the rating methods raise ConfigError."""
        return not self.config.data.implicit

    def as_mode(self, mode: AgentMode) -> UserAgent:
        """The agent of another loaded mode (:meth:`from_workdir`'s `also`), sharing this
        one's model, users and caches."""
        if mode not in self.modes:
            raise ConfigError(f"mode {mode!r} is not loaded (loaded: {', '.join(self.modes)})")
        other = copy.copy(self)
        other.mode = mode
        return other

    def _log_probs(
        self, requests: list[tuple[str, list[str], str]], modes: Sequence[AgentMode] = ()
    ) -> list[Any]:
        """Full-vocabulary log-probabilities of the answers of every request, per mode.

        Users are processed in groups: each group's profile prefixes run once per
        adapter (or come from the prefix cache), then every candidate item of the group
        attends to its own user's prefix, in mixed-persona batches; the same prompt
        asked of several modes shares the layers below the adapters.

        Returns:
            Per request, ``[len(modes) * n_items, vocab]`` (mode-major; one mode, this
            agent's, when `modes` is empty).
        """
        import torch

        modes = list(modes) or [self.mode]
        out: list[Any] = [None] * len(requests)
        group = max(1, self.config.agents.score_batch_items // (4 * len(modes)))
        for start in range(0, len(requests), group):
            chunk = list(range(start, min(start + group, len(requests))))
            prefixes, adapters, items, owners = [], [], [], []
            for r in chunk:
                user, item_ids, task = requests[r]
                suffixes = [self.lm.encode_suffix(q) for q in self._questions(user, item_ids, task)]
                for mode in modes:
                    slot = len(prefixes)
                    prefixes.append(self.lm.encode_prefix(self.profiles[user]))
                    adapters.append(self._adapter(user, mode))
                    items.extend((slot, suffix) for suffix in suffixes)
                    owners.extend([r] * len(suffixes))
            if not items:
                for r in chunk:
                    out[r] = AnswerScores(torch.empty(0, len(self._answers) + 1), torch.empty(0))
                continue
            chunk_items = fitting_batch(
                self.config.agents.score_batch_items,
                device=self.lm.device,
                model_config=self.lm.model.config,
                tokens=max(map(len, prefixes)) + max(len(s) for _, s in items),
                fraction=self.config.llm.gpu_memory_fraction,
            )
            scored = self.lm.score_cached(
                prefixes, adapters, items, chunk=chunk_items, keep=self._answers
            )
            owner = torch.tensor(owners)
            for r in chunk:
                out[r] = scored[owner == r]
        return out

    # --- the public API ------------------------------------------------------------------

    def rating_distributions(
        self, requests: Sequence[tuple[str, Sequence[str]]]
    ) -> list[dict[str, np.ndarray]]:
        """Rating distributions of many users at once (mixed-persona batches).

        Args:
            requests: ``(user_id, item_ids)`` pairs.

        Returns:
            Per request: ``probs`` [n, levels] over the scale's ratings (lowest first),
            ``expected`` [n], ``argmax`` [n] (the likeliest rating), ``digit_mass`` [n]
            (the language model's own full-vocabulary probability on the digits, before
            the prior) and
            ``greedy_is_digit`` [n] (whether free greedy decoding would start with a
            rating).
        """
        return self.rating_distributions_by_mode([self.mode], requests)[self.mode]

    def rating_distributions_by_mode(
        self, modes: Sequence[AgentMode], requests: Sequence[tuple[str, Sequence[str]]]
    ) -> dict[AgentMode, list[dict[str, np.ndarray]]]:
        """:meth:`rating_distributions` of several loaded modes in one pass (each prompt's
        layers below the adapters run once for all of them)."""
        self._require_ratings()
        clean = self._clean(requests)
        modes = self._loaded(modes)
        log_probs = self._log_probs([(u, items, "rate") for u, items in clean], modes)
        out: dict[AgentMode, list[dict[str, np.ndarray]]] = {m: [] for m in modes}
        for (user, items), lp in zip(clean, log_probs, strict=True):
            for k, mode in enumerate(modes):
                part = lp[k * len(items) : (k + 1) * len(items)]
                out[mode].append(self._rating_distribution(user, items, part, mode))
        return out

    def _rating_distribution(
        self, user: str, items: list[str], lp: Any, mode: AgentMode | None = None
    ) -> dict[str, np.ndarray]:
        """The rating distribution from the answer log-probabilities of `items`."""
        mode = mode or self.mode
        use_prior = mode != "none" and "logit" in self.config.agents.prior
        priors = None
        if use_prior and self.prior is not None and len(items):
            priors = self.prior.predict(user, items)
        weight = self.lm_weights.get(self._adapter(user, mode), 1.0) if use_prior else 1.0
        return rating_answer(lp, priors, weight, self.config.agents, self.lm.scale)

    def _watch_probability(
        self, user: str, items: list[str], lp: Any, mode: AgentMode | None = None
    ) -> np.ndarray:
        """P("yes") from the answer log-probabilities of `items`, the watch prior's
        log-odds added (not for the zero-shot base model)."""
        odds = None
        if (mode or self.mode) != "none" and self.watch_prior is not None and len(items):
            like = self.prior_stand_ins(user) if user in self._added else None
            recent = self.session_watched.get(user, ())
            odds = self.watch_prior.log_odds(user, items, like, recent)
        first = len(self.lm.digit_ids)  # the kept answers: digits, yes, no
        yes = list(range(first, first + len(self.lm.yes_ids)))
        no = list(range(yes[-1] + 1, yes[-1] + 1 + len(self.lm.no_ids)))
        weight = 1.0
        if odds is not None:
            weight = self.watch_lm_weights.get(self._adapter(user, mode), 1.0)
        return watch_answer(lp, yes, no, odds, weight)

    # --- sessions ----------------------------------------------------------------------

    def remember(self, user_id: str, item_ids: Sequence[str]) -> None:
        """`user_id` watched `item_ids` in the session under way (oldest first)."""
        self.session_watched.setdefault(user_id, []).extend(item_ids)

    def forget_sessions(self) -> None:
        """End every session: the users' latest history is their log again."""
        self.session_watched.clear()

    def rate(self, user_id: str, items: Sequence[str | Mapping[str, Any]]) -> list[float]:
        """Predicted ratings (expectations over 1..5) of `items` by `user_id`.

        Args:
            user_id: A simulated user (or one added with :meth:`add_user`).
            items: Catalogue item ids, or descriptions of items the catalogue lacks
                (see :meth:`describe_items`), or both mixed.
        """
        ids = [i if isinstance(i, str) else self.describe_items([i])[0] for i in items]
        return self.rating_distributions([(user_id, ids)])[0]["expected"].tolist()

    def watch_probabilities(
        self, requests: Sequence[tuple[str, Sequence[str]]]
    ) -> list[np.ndarray]:
        """P(yes) to "would you watch it?" for many users at once."""
        return self.watch_probabilities_by_mode([self.mode], requests)[self.mode]

    def watch_probabilities_by_mode(
        self, modes: Sequence[AgentMode], requests: Sequence[tuple[str, Sequence[str]]]
    ) -> dict[AgentMode, list[np.ndarray]]:
        """:meth:`watch_probabilities` of several loaded modes in one pass."""
        clean = self._clean(requests)
        modes = self._loaded(modes)
        log_probs = self._log_probs([(u, items, "watch") for u, items in clean], modes)
        return {
            mode: [
                self._watch_probability(
                    user, items, lp[k * len(items) : (k + 1) * len(items)], mode
                )
                for (user, items), lp in zip(clean, log_probs, strict=True)
            ]
            for k, mode in enumerate(modes)
        }

    def page_scores(
        self, requests: Sequence[tuple[str, Sequence[str]]]
    ) -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """P(watch) and the rating distribution of every item in one call (a session's
        page), both questions after the user's prefix encoded once (or cached).

        Returns:
            Per request, ``(p_watch [n], rating distribution as in
            rating_distributions)``.
        """
        self._require_ratings()
        clean = self._clean(requests)
        log_probs = self._log_probs([(u, items, "watch+rate") for u, items in clean])
        out = []
        for (user, items), lp in zip(clean, log_probs, strict=True):
            n = len(items)
            out.append(
                (
                    self._watch_probability(user, items, lp[:n]),
                    self._rating_distribution(user, items, lp[n:]),
                )
            )
        return out

    def watch_probability(self, user_id: str, item_ids: Sequence[str]) -> list[float]:
        """P(yes) to "would you watch it?" for each of `item_ids`."""
        return self.watch_probabilities([(user_id, item_ids)])[0].tolist()

    def answer_freely(
        self, requests: Sequence[tuple[str, Sequence[str]]], max_new_tokens: int = 12
    ) -> list[list[str]]:
        """The agents' own words to the rating question (greedy generation, no prior).

        Scoring reads the digit distribution and never sees an off-format answer; this
        lets the model answer in words, to measure how often it would not give a rating
        (the unrelated response rate of the papers, see :func:`parse_rating`).

        Args:
            requests: ``(user_id, item_ids)`` pairs.
            max_new_tokens: Tokens generated per answer.

        Returns:
            Per request, one answer per item.
        """
        self._require_ratings()
        clean = [(str(u), [str(i) for i in items]) for u, items in requests]
        prompts: list[tuple[tuple[int, ...], str]] = []
        for user, items in clean:
            self._check(user, items)
            prefix = self.lm.encode_prefix(self.profiles[user])
            adapter = self._adapter(user)
            for question in self._questions(user, items, "rate"):
                prompts.append((prefix + self.lm.encode_suffix(question), adapter))
        answers = self.lm.generate(prompts, max_new_tokens=max_new_tokens)
        out, at = [], 0
        for _, items in clean:
            out.append(answers[at : at + len(items)])
            at += len(items)
        return out

    def predict_pairs(self, pairs: pd.DataFrame) -> pd.DataFrame:
        """Ratings of ``user_id, item_id`` pairs, batched across users.

        Returns:
            The pairs with ``predicted`` (expectation), ``argmax``, ``digit_mass`` and
            ``greedy_is_digit``.
        """
        return self.predict_pairs_by_mode([self.mode], pairs)[self.mode]

    def predict_pairs_by_mode(
        self, modes: Sequence[AgentMode], pairs: pd.DataFrame
    ) -> dict[AgentMode, pd.DataFrame]:
        """:meth:`predict_pairs` of several loaded modes in one pass."""
        return pair_predictions(
            pairs, lambda asked: self.rating_distributions_by_mode(modes, asked)
        )


def pair_scorer(workdir: str, mode: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """The rating scorer of a run's agents: ``UserAgent.from_workdir(workdir, mode)``'s
    :meth:`~UserAgent.predict_pairs` (module-level, so that a ``partial`` of it travels
    to Ray workers, which build the agents once each)."""
    return UserAgent.from_workdir(workdir, mode=mode).predict_pairs  # type: ignore[arg-type]
