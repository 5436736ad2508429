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

from personasim.agents.adapters import (
    GLOBAL_ADAPTER,
    adapter_base,
    adapter_folders,
    fitted_lm_weights,
)
from personasim.agents.answers import (
    AnswerScores,
    answer_distribution,
    with_prior,
    with_watch_prior,
)
from personasim.agents.calibration import weighted_digit_probs, weighted_watch_probs
from personasim.agents.examples import described_item, item_records
from personasim.agents.lm import AgentLM
from personasim.agents.packing import BASE_ADAPTER
from personasim.agents.prior import CFPrior, prior_logits
from personasim.agents.prompts import (
    agent_profiles,
    rating_question,
    recent_items,
    watch_question,
)
from personasim.agents.retrieval import RationaleIndex
from personasim.agents.watch_prior import WATCH_PRIOR_FILE, WatchPrior
from personasim.config import RunConfig
from personasim.data.tables import read_parquet
from personasim.errors import ConfigError, StageError
from personasim.llm.device import fitting_batch
from personasim.rating_scale import RatingScale

__all__ = ["AgentMode", "UserAgent", "pair_scorer"]

logger = logging.getLogger(__name__)

AgentMode = Literal["persona", "global", "none"]


BLEND_PREFIX = "blend-"
"""Name prefix of the adapters :meth:`UserAgent.blended_adapter` makes."""


class UserAgent:
    """Persona LoRA agents over a run folder.

    Build it with :meth:`from_workdir`.
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
        from personasim.workspace import Workspace, resolve_config

        ws = Workspace(workdir)
        config = resolve_config(ws)
        if dtype is not None:
            agents = config.agents.model_copy(update={"dtype": dtype})
            config = config.model_copy(update={"agents": agents})
        modes = list(dict.fromkeys([mode, *also]))
        stages = ["profiles"] + (["personas"] if "persona" in modes else [])
        stages += ["adapters"] if modes != ["none"] else []
        verify_artifacts(ws, stages)
        profiles = read_parquet(ws.require("profiles", "profiles.parquet"))
        items = item_records(read_parquet(ws.require("data", "items.parquet")))
        personas: dict[str, str] = {}
        if "persona" in modes:
            assignments = read_parquet(ws.require("personas", "assignments.parquet"))
            personas = dict(
                zip(assignments["user_id"].astype(str), assignments["persona"], strict=True)
            )
        chosen: dict[str, Path] = {}
        for m in modes:
            if m == "none":
                continue
            folders = adapter_folders(ws.root)
            wanted = sorted(set(personas.values())) if m == "persona" else [GLOBAL_ADAPTER]
            missing = [name for name in wanted if name not in folders]
            if missing and config.agents.language_model == "off":
                raise ConfigError(
                    f"agents.language_model is 'off' in {ws.root}: no adapter was trained; "
                    "the agents answer from their priors (personasim.agents.prior_agents."
                    "PriorAgents), or set it to 'auto' and rerun `personasim train`"
                )
            if missing:
                raise ConfigError(
                    f"no trained adapter {', '.join(missing)} in {ws.root / 'adapters'}: "
                    f"train mode {m!r} (agents.modes) and rerun `personasim train`"
                )
            chosen.update({name: folders[name] for name in wanted})
        if chosen:
            _check_adapters(chosen, base=AgentLM.portable_base(config.agents))
        lm = AgentLM.load(config.agents, config.data.scale)
        prior = None
        watch_prior = None
        if chosen:
            lm.model = _load_adapters(lm.model, chosen)
            if config.agents.prior != "none" and not config.data.implicit:
                prior = CFPrior.load(ws.stage_dir("adapters"))
            if (ws.stage_dir("adapters") / WATCH_PRIOR_FILE).is_file():
                watch_prior = WatchPrior.load(ws.stage_dir("adapters"))
        elif config.agents.prior != "none" and "prompt" in config.agents.prior:
            try:
                prior = CFPrior.load(ws.stage_dir("adapters"))
            except FileNotFoundError:
                raise StageError(
                    "the prompt shows the CF prior: run `personasim train` first"
                ) from None
        index = None
        if config.agents.use_rationales:
            rationales = read_parquet(ws.require("profiles", "rationales.parquet"))
            index = RationaleIndex.load(
                ws.stage_dir("adapters"), rationales, items, scale=config.data.scale
            )
        recent = {}
        if config.agents.recent_titles:
            log = read_parquet(ws.require("data", "interactions.parquet"))
            recent = recent_items(log[log["split"] == "train"], config.agents.recent_titles)
        texts = agent_profiles(profiles, recent, items)
        trained = ((ws.read_manifest("adapters") or {}).get("summary") or {}).get("adapters", {})
        weights, watch_weights = fitted_lm_weights(trained, chosen)
        agent = cls(
            lm,
            config,
            mode,
            texts,
            personas,
            items,
            prior,
            index,
            watch_prior,
            weights,
            watch_weights,
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

    def _require_ratings(self) -> None:
        if not self.rates:
            raise ConfigError(
                "this run's log has no ratings (data.columns.rating = ''): its agents "
                "answer only the watch decision (watch_probabilities)"
            )

    def as_mode(self, mode: AgentMode) -> UserAgent:
        """The agent of another loaded mode (:meth:`from_workdir`'s `also`), sharing this
        one's model, users and caches."""
        if mode not in self.modes:
            raise ConfigError(f"mode {mode!r} is not loaded (loaded: {', '.join(self.modes)})")
        other = copy.copy(self)
        other.mode = mode
        return other

    # --- building prompts ----------------------------------------------------------------

    def _adapter(self, user: str, mode: AgentMode | None = None) -> str:
        mode = mode or self.mode
        if mode == "none":
            return BASE_ADAPTER
        if mode == "global":
            return GLOBAL_ADAPTER
        try:
            return self.personas[user]
        except KeyError:
            raise ConfigError(f"user {user!r} has no persona in this run") from None

    def _check(self, user: str, item_ids: Sequence[str]) -> None:
        if user not in self.profiles:
            raise ConfigError(f"user {user!r} is not a simulated user of this run")
        unknown = [i for i in item_ids if i not in self.items]
        if unknown:
            raise ConfigError(f"unknown item id(s) {unknown[:5]} for user {user!r}")

    def _priors(self, user: str, item_ids: list[str]) -> np.ndarray | None:
        return None if self.prior is None else self.prior.predict(user, item_ids)

    def _questions(self, user: str, item_ids: list[str], task: str) -> list[str]:
        if task == "watch+rate":
            return self._questions(user, item_ids, "watch") + self._questions(
                user, item_ids, "rate"
            )
        contexts = (
            self.index.most_similar(user, item_ids)
            if self.index is not None
            else [None] * len(item_ids)
        )
        if task == "watch":
            return [
                watch_question(self.items[i], c) for i, c in zip(item_ids, contexts, strict=True)
            ]
        priors = self._priors(user, item_ids) if "prompt" in self.config.agents.prior else None
        return [
            rating_question(
                self.items[i], c, None if priors is None else float(priors[k]), self.lm.scale
            )
            for k, (i, c) in enumerate(zip(item_ids, contexts, strict=True))
        ]

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

    def _clean(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[tuple[str, list[str]]]:
        clean = [(str(u), [str(i) for i in items]) for u, items in requests]
        for user, items in clean:
            self._check(user, items)
        return clean

    def _loaded(self, modes: Sequence[AgentMode]) -> list[AgentMode]:
        missing = [m for m in modes if m not in self.modes]
        if missing:
            raise ConfigError(
                f"mode(s) {', '.join(missing)} not loaded (loaded: {', '.join(self.modes)}); "
                "pass them to from_workdir(also=...)"
            )
        return list(dict.fromkeys(modes))

    def _rating_distribution(
        self, user: str, items: list[str], lp: Any, mode: AgentMode | None = None
    ) -> dict[str, np.ndarray]:
        """The rating distribution from the answer log-probabilities of `items`."""
        import torch

        offsets = None
        mode = mode or self.mode
        use_prior = mode != "none" and "logit" in self.config.agents.prior
        if use_prior and self.prior is not None and len(items):
            priors = torch.tensor(self.prior.predict(user, items), dtype=torch.float32)
            offsets = prior_logits(
                priors,
                self.config.agents.prior_sigma,
                self.config.agents.prior_centre,
                self.lm.scale,
            )
        levels = self.lm.scale.levels
        digits = list(range(len(levels)))  # the digits' columns of the kept answers
        adjusted = with_prior(lp.log_probs, digits, offsets)
        weight = self.lm_weights.get(self._adapter(user, mode), 1.0) if use_prior else 1.0
        if weight == 1.0:
            probs, _ = answer_distribution(adjusted, [[c] for c in digits])
        else:
            probs = torch.from_numpy(
                weighted_digit_probs(
                    lp.log_probs[:, digits].double().numpy(),
                    None if offsets is None else offsets.double().numpy(),
                    weight,
                )
            )
        # the language model's own mass on the digits, before the prior moves it
        mass = lp.log_probs[:, digits].exp().sum(dim=-1)
        probs_np = probs.double().numpy()
        # greedy decoding says a digit when one beats every other token, prior included
        shift = adjusted[:, -1] - lp.log_probs[:, -1]  # the renormalisation
        others = torch.maximum(adjusted[:, len(levels) : -1].amax(dim=-1), lp.rest_max + shift)
        return {
            "probs": probs_np,
            "expected": probs_np @ levels,
            "argmax": levels[probs_np.argmax(axis=1)],
            "digit_mass": mass.double().numpy(),
            "greedy_is_digit": (adjusted[:, digits].amax(dim=-1) >= others).numpy(),
        }

    def _watch_probability(
        self, user: str, items: list[str], lp: Any, mode: AgentMode | None = None
    ) -> np.ndarray:
        """P("yes") from the answer log-probabilities of `items`, the watch prior's
        log-odds added (not for the zero-shot base model)."""
        import torch

        odds = None
        if (mode or self.mode) != "none" and self.watch_prior is not None and len(items):
            like = self._prior_stand_ins(user) if user in self._added else None
            recent = self.session_watched.get(user, ())
            odds = self.watch_prior.log_odds(user, items, like, recent)
            odds = torch.tensor(odds, dtype=torch.float32)
        first = len(self.lm.digit_ids)  # the kept answers: digits, yes, no
        yes = list(range(first, first + len(self.lm.yes_ids)))
        no = list(range(yes[-1] + 1, yes[-1] + 1 + len(self.lm.no_ids)))
        weight = 1.0
        if odds is not None:
            weight = self.watch_lm_weights.get(self._adapter(user, mode), 1.0)
        if weight != 1.0:
            margin = torch.logsumexp(lp.log_probs[:, yes], dim=-1) - torch.logsumexp(
                lp.log_probs[:, no], dim=-1
            )
            return weighted_watch_probs(margin.double().numpy(), odds.double().numpy(), weight)
        adjusted = with_watch_prior(lp.log_probs, yes, no, odds)
        probs, _ = answer_distribution(adjusted, [yes, no])
        return probs[:, 0].double().numpy()

    # --- sessions ----------------------------------------------------------------------

    def remember(self, user_id: str, item_ids: Sequence[str]) -> None:
        """`user_id` watched `item_ids` in the session under way (oldest first)."""
        self.session_watched.setdefault(user_id, []).extend(item_ids)

    def forget_sessions(self) -> None:
        """End every session: the users' latest history is their log again."""
        self.session_watched.clear()

    # --- cold-start users --------------------------------------------------------------

    def _prior_stand_ins(self, user: str) -> list[str]:
        """The run users whose watch prior stands for a cold user's: the members of its
        persona (in persona mode), else every run user."""
        persona = self.personas.get(user)
        return [
            u
            for u, p in self.personas.items()
            if u not in self._added and (persona is None or p == persona)
        ] or [u for u in self.profiles if u not in self._added]

    def add_user(
        self,
        user_id: str,
        profile_text: str,
        *,
        persona: str | None = None,
        membership: dict[str, float] | None = None,
        blend: bool = False,
        top: int = 3,
    ) -> str:
        """Register a user who was not simulated in the run (cold start).

        Args:
            user_id: The id to score it by (must not be a run user's).
            profile_text: Its profile (as the profile stage writes them).
            persona: Its nearest persona (persona mode).
            membership: Its soft membership of the personas (persona -> weight).
            blend: Answer with an adapter blended from the `top` personas of
                `membership` (:meth:`blended_adapter`) instead of the nearest one.
            top: Personas in a blend.

        Returns:
            The adapter that answers for the user.
        """
        if user_id in self.profiles and user_id not in self._added:
            raise ConfigError(f"user {user_id!r} is a simulated user of the run")
        self.profiles[user_id] = profile_text
        self._added.add(user_id)
        if self.mode != "persona":
            return self._adapter(user_id)
        if blend and membership:
            adapter = self.blended_adapter(membership, top=top)
        elif persona is not None:
            adapter = persona
        else:
            raise ConfigError(f"user {user_id!r}: give its persona or its membership")
        self.personas[user_id] = adapter
        return adapter

    def remove_user(self, user_id: str) -> None:
        """Forget a user added by :meth:`add_user`, with its profile's tokens and prefix
        states; a blended adapter no other user answers through is deleted from the
        model (and its cached prefix states).

        Raises:
            ConfigError: `user_id` is a run user, or unknown.
        """
        if user_id not in self._added:
            raise ConfigError(f"user {user_id!r} was not added with add_user")
        self._added.discard(user_id)
        profile = self.profiles.pop(user_id, None)
        if profile is not None:  # its tokens and prefix states (recomputed if shared)
            self.lm.forget_prefix(profile)
        adapter = self.personas.pop(user_id, None)
        if adapter is None or not adapter.startswith(BLEND_PREFIX):
            return
        if adapter in set(self.personas.values()):
            return  # another user answers through it
        self.lm.model.delete_adapter(adapter)
        self.lm_weights.pop(adapter, None)
        self.watch_lm_weights.pop(adapter, None)
        for key in [k for k in self.lm.prefix_states_cache if k[0] == adapter]:
            self.lm.prefix_states_cache.pop(key, None)

    def knows_user(self, user_id: str) -> bool:
        """Whether `user_id` can be scored (a run user, or one added with add_user)."""
        return user_id in self.profiles

    def is_added(self, user_id: str) -> bool:
        """Whether `user_id` was added with :meth:`add_user` (not a run user)."""
        return user_id in self._added

    def knows_item(self, item_id: str) -> bool:
        """Whether `item_id` is in the catalogue (or was described)."""
        return item_id in self.items

    def persona_of(self, user_id: str) -> str | None:
        """The adapter answering for `user_id` in persona mode (its persona, or a blend);
        None in the other modes or for an unknown user."""
        return self.personas.get(user_id) if self.mode == "persona" else None

    def persona_sizes(self) -> dict[str, int]:
        """How many of the run's own users each persona holds."""
        sizes: dict[str, int] = {}
        for user, persona in self.personas.items():
            if user not in self._added:
                sizes[persona] = sizes.get(persona, 0) + 1
        return dict(sorted(sizes.items()))

    @property
    def run_users(self) -> int:
        """How many of the run's own users the agents know."""
        return len(self.profiles) - len(self._added)

    def blended_adapter(self, membership: dict[str, float], top: int = 3) -> str:
        """An adapter whose weight update is the membership-weighted sum of the `top`
        personas' updates (PEFT's "cat" combination: exact, rank = the sum of ranks).

        Weights are renormalised over the kept personas and rounded to whole percents,
        so users of similar membership share one blended adapter.
        """
        kept = sorted(membership.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        total = sum(w for _, w in kept) or 1.0
        percents = [(p, round(100 * w / total)) for p, w in kept]
        percents = [(p, w) for p, w in percents if w > 0]
        if len(percents) == 1:
            return percents[0][0]
        name = BLEND_PREFIX + "-".join(f"{p}_{w}" for p, w in percents)
        model = self.lm.model
        if name not in model.peft_config:
            norm = sum(w for _, w in percents)
            model.add_weighted_adapter(
                adapters=[p for p, _ in percents],
                weights=[w / norm for _, w in percents],
                adapter_name=name,
                combination_type="cat",
            )
            for weights in (self.lm_weights, self.watch_lm_weights):
                weights[name] = sum(w * weights.get(p, 1.0) for p, w in percents) / norm
        return name

    def rate(self, user_id: str, items: Sequence[str | Mapping[str, Any]]) -> list[float]:
        """Predicted ratings (expectations over 1..5) of `items` by `user_id`.

        Args:
            user_id: A simulated user (or one added with :meth:`add_user`).
            items: Catalogue item ids, or descriptions of items the catalogue lacks
                (see :meth:`describe_items`), or both mixed.
        """
        ids = [i if isinstance(i, str) else self.describe_items([i])[0] for i in items]
        return self.rating_distributions([(user_id, ids)])[0]["expected"].tolist()

    def describe_items(self, descriptions: Sequence[Mapping[str, Any]]) -> list[str]:
        """Make items the catalogue lacks known to the agents, from their descriptions.

        Each description has a ``title`` and optionally a ``year``, ``genres`` (a list)
        and an ``item_id``; the agents read them as they read a catalogue item nobody
        has rated, and the CF prior gives the user's mean. The same description gets
        the same id again.

        Returns:
            The items' ids (``item_id``, else ``"new:<title> (<year>)"``), usable
            wherever item ids are.

        Raises:
            ConfigError: A description without a title, with a malformed year or
                genres, or whose ``item_id`` is a catalogue item.
        """
        ids = []
        for k, d in enumerate(descriptions):
            record = described_item(d, where=f"item description {k}")
            item_id = record["item_id"]
            known = self.items.get(item_id)
            if known is not None and known.get("described") is not True:
                raise ConfigError(
                    f"item description {k}: item_id {item_id!r} is a catalogue item; "
                    "give its id instead of a description"
                )
            self.items[item_id] = record
            ids.append(item_id)
        return ids

    def forget_items(self, item_ids: Sequence[str]) -> None:
        """Forget described items (:meth:`describe_items`; catalogue items stay)."""
        for item_id in item_ids:
            if (self.items.get(item_id) or {}).get("described") is True:
                del self.items[item_id]
                if self.index is not None:
                    self.index.forget_item(item_id)

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
        groups = list(pairs.groupby("user_id", sort=False).indices.items())
        results = self.rating_distributions_by_mode(
            modes, [(u, pairs["item_id"].to_numpy()[idx].tolist()) for u, idx in groups]
        )
        out = {}
        for mode, per_user in results.items():
            frame = pairs.copy()
            for column in ("predicted", "argmax", "digit_mass"):
                frame[column] = np.nan
            greedy = np.zeros(len(frame), dtype=bool)
            for (_, idx), result in zip(groups, per_user, strict=True):
                frame.iloc[idx, frame.columns.get_loc("predicted")] = result["expected"]
                frame.iloc[idx, frame.columns.get_loc("argmax")] = result["argmax"]
                frame.iloc[idx, frame.columns.get_loc("digit_mass")] = result["digit_mass"]
                greedy[idx] = result["greedy_is_digit"]
            frame["greedy_is_digit"] = greedy
            out[mode] = frame
        return out


def verify_artifacts(workspace: Any, stages: list[str]) -> None:
    """Refuse artifacts that no longer match their manifest (corrupted or truncated).

    Raises:
        StageError: Names the altered files and the command that rebuilds them.
    """
    commands = {"profiles": "profile", "personas": "personas", "adapters": "train"}
    for stage in stages:
        manifest = workspace.read_manifest(stage)
        if manifest is None:
            continue  # a missing stage is reported where its artifacts are read
        bad = workspace.verify_outputs(stage, manifest)
        if bad:
            shown = ", ".join(f"{stage}/{name}" for name in bad[:3])
            raise StageError(
                f"{shown} {'does' if len(bad) == 1 else 'do'} not match the manifest's "
                f"hash (corrupted or truncated): rerun `personasim {commands[stage]} "
                f"--workdir {workspace.root}` to rebuild"
            )


def _check_adapters(folders: dict[str, Path], base: str) -> None:
    """Refuse adapter folders that are not safetensors or name another base than `base`
    (the portable name of the base weights to load; an adapter that names a local folder,
    as runs before portable names did, is taken as it is)."""
    for name in folders:  # safetensors only: a pickled adapter_model.bin is never read
        if not (folders[name] / "adapter_model.safetensors").is_file():
            raise StageError(
                f"{folders[name]} has no adapter_model.safetensors (only safetensors adapters "
                "are loaded): rerun `personasim train --force`"
            )
        recorded = adapter_base(folders[name])
        if recorded and recorded != base and not Path(recorded).is_absolute():
            raise ConfigError(
                f"the adapter {folders[name]} was trained on {recorded}, but agents.base_model "
                f"loads {base} here: install those weights or rerun `personasim train --force`"
            )


def _load_adapters(model: Any, folders: dict[str, Path]) -> Any:
    """Attach every adapter folder to the base model under its name."""
    from peft import PeftModel

    names = list(folders)
    peft_model = PeftModel.from_pretrained(
        model,
        str(folders[names[0]]),
        adapter_name=names[0],
        is_trainable=False,
    )
    for name in names[1:]:
        peft_model.load_adapter(str(folders[name]), adapter_name=name, is_trainable=False)
    peft_model.eval()
    return peft_model


def pair_scorer(workdir: str, mode: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """The rating scorer of a run's agents: ``UserAgent.from_workdir(workdir, mode)``'s
    :meth:`~UserAgent.predict_pairs` (module-level, so that a ``partial`` of it travels
    to Ray workers, which build the agents once each)."""
    return UserAgent.from_workdir(workdir, mode=mode).predict_pairs  # type: ignore[arg-type]
