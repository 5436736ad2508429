"""The sections of the measuring stages: evaluate, simulate and the report."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, PositiveInt, field_validator, model_validator

from personasim.config.base import (
    BUILTIN_RECOMMENDERS,
    AgentKind,
    BaselineName,
    ImplicitKind,
    Section,
)
from personasim.config.keys import NOT_IN_KEYS, in_keys
from personasim.rating_scale import RatingScale

__all__ = [
    "EvaluateConfig",
    "ReportConfig",
    "SimulateConfig",
]


class EvaluateConfig(Section):
    """Fidelity of every model: ratings, their distribution, taste (stage `evaluate`)."""

    baselines: Annotated[list[BaselineName], in_keys("ratings")] = [
        "global_mean",
        "item_bias",
        "user_item_bias",
        "user_genre",
        "biased_mf",
        "item_knn",
    ]
    """Classical baselines to fit on the training data and score on test (LensKit;
    "item_knn": item-item kNN on explicit ratings, LensKit `ItemKNNScorer`;
    "user_genre": the user's damped offsets per genre of the item, which also predicts
    items nobody rated)."""
    clip_to_scale: Annotated[bool, in_keys("ratings")] = True
    """Clip predicted ratings to `data.rating_scale`."""
    agents: Annotated[list[AgentKind], in_keys()] = [
        "global-lora",
        "persona-lora",
    ]
    """LM agents to score on the test pairs beside the baselines: the adapters trained by
    `agents.modes`, and on request the base model asked zero-shot ("zero-shot": off by
    default, it answered no rating at all on the ML-1M protocol, URR 1.0, RMSE 1.63,
    for minutes of compute). Empty: baselines only (and `evaluate` does not need the
    train stage)."""
    agents_optional: Annotated[bool, NOT_IN_KEYS] = False
    """Without trained agents, score the baselines only (with a warning) instead of
    failing with the command that trains them."""
    agent_pairs_per_user: Annotated[int, in_keys("ratings", "generation")] = Field(0, ge=0)
    """Score at most this many test pairs per user with the LM agents (sampled with the
    seed; 0: all). The baselines are also reported on the same pairs."""
    without_rationales: Annotated[bool, in_keys()] = False
    """Also score each LoRA agent's test ratings with the rationale (Ml) left out of the
    prompt, as "<model>-ms": how much the retrieved rationale moves the same adapter
    (the training-time ablation is in benchmarks/agent_ablations.py)."""
    bootstrap_rounds: Annotated[int, in_keys()] = Field(1000, ge=100)
    """User-level bootstrap resamples behind every 95% interval and the paired comparison
    of each model with the best classical baseline."""
    taste: Annotated[bool, in_keys()] = True
    """Measure taste alignment (Agent4Rec's protocol): can each model tell a user's
    held-out items from items the user never rated? Popularity, the baselines and the
    agents' watch probabilities are compared."""
    taste_candidates: Annotated[int, in_keys("taste")] = Field(20, ge=2, le=200)
    """Items per candidate list (Agent4Rec: up to 20)."""
    taste_ratios: Annotated[list[PositiveInt], in_keys("taste")] = Field([1, 3, 9], min_length=1)
    """Negatives per held-out positive; one list per ratio (1:1, 1:3, 1:9)."""
    taste_samplers: Annotated[list[Literal["uniform", "popularity"]], in_keys("taste")] = Field(
        ["uniform", "popularity"], min_length=1
    )
    """How negatives are drawn: "uniform" over unrated items (Agent4Rec's), or
    "popularity" (as popular as the user's positives: same train-popularity decile), on
    which popularity alone cannot score well."""
    taste_baselines: Annotated[list[ImplicitKind], in_keys("taste")] = list(get_args(ImplicitKind))
    """Implicit-feedback scorers scored on every taste list as baselines (LensKit's, and
    the sequential SASRec), fitted on the training data."""
    taste_shown: Annotated[list[str], in_keys("taste")] = [
        "popular",
        "itemknn",
        "userknn",
        "mf",
        "bpr",
        "sasrec",
    ]
    """Recommenders whose top lists are taste lists too ("shown" lists: each user's top
    `taste_candidates` unrated items of the recommender fitted on the training data,
    labelled by the held-out log): how well each model orders what a recommender
    actually shows, where a simulator is used. AUC only (no threshold). Built-in
    recommender names (see [simulate] recommenders); empty: none."""
    taste_users: Annotated[int, in_keys("taste")] = Field(0, ge=0)
    """Users in the taste lists (a seeded sample; 0: all). The agents score each user's
    test lists and, to calibrate their thresholds, as many train lists: this bounds the
    cost on a CPU."""
    free_generation_pairs: Annotated[int, in_keys("generation")] = Field(30, ge=0)
    """Test pairs per agent model answered in free text (greedy, no prior) and parsed,
    to count the unrelated response rate as the papers do (0: skip). Scored ratings
    never need parsing; this only measures how often the model strays."""
    free_generation_tokens: Annotated[int, in_keys("generation")] = Field(24, ge=1, le=256)
    """Tokens generated per free-text answer."""


_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


class SimulateConfig(Section):
    """Recommenders evaluated by simulated sessions with the agents (stage `simulate`)."""

    recommenders: Annotated[list[str], in_keys()] = list(BUILTIN_RECOMMENDERS)
    """Recommenders to compare: the built-ins ("random", "popular", "itemknn", "userknn",
    "mf" (implicit ALS), "bpr", "sasrec" (sequential), and the deliberately poor
    "unpopular"), names of `plugins`, or names registered under the
    `personasim.recommenders` entry point. Empty: the stage does nothing."""
    plugins: Annotated[dict[str, str], in_keys()] = {}
    """Your own recommenders, name = "module:object" (see docs/simulation.md: a class with
    fit(training) and recommend(user_id, history, n), or a function)."""
    other_watch_priors: list[Literal["stacked", ImplicitKind]] = []
    """Simulate the sessions again with the agents' watch prior swapped for each of
    these implicit scorers (same adapters, same pages): if the ranking of the
    recommenders follows the prior rather than the held-out log, a simulator whose
    prior is item-kNN favours the item-kNN recommender. Reported under "watch_priors"."""
    rankings: Annotated[dict[str, str], in_keys()] = {}
    """Rankings exported from any system, name = "path/to/file" (CSV/TSV or Parquet of
    ``user_id, item_id, rank``; rank 1 first): each is simulated as one more recommender
    (list it in `recommenders`, or give it with ``simulate --rankings``)."""
    agent: AgentKind = "persona-lora"
    """Which agents play the users."""
    agent_optional: Annotated[bool, NOT_IN_KEYS] = False
    """Without that agent (`agents.modes` does not train it), measure the recommenders
    offline only (with a warning) instead of failing with what to change."""
    users: int = Field(0, ge=0)
    """Simulated users (a seeded sample of the run's users; 0: all)."""
    page_size: int = Field(4, ge=1, le=50)
    """Items per page (Agent4Rec: 4)."""
    max_pages: int = Field(5, ge=1, le=100)
    """A session ends after this many pages at the latest."""
    decisions: Literal["sample", "threshold"] = "sample"
    """"sample": watch with probability P(watch), rate by drawing from the agent's rating
    distribution, continue with probability P(continue), all from the seed.
    "threshold": watch when P(watch) >= `watch_threshold`, rate with the most likely
    rating, continue when P(continue) >= 0.5 (no randomness)."""
    watch_threshold: float = Field(0.5, ge=0.0, le=1.0)
    """P(watch) at or above which an agent watches, in "threshold" mode."""
    like_threshold: float | None = None
    """A watched item rated at or above this is liked; unset: the top quarter of the
    rating scale (4 on 1-5, 4 on 0.5-5 in half stars, 7.75 on 1-10, i.e. 8 and up)."""

    def likes_from(self, scale: RatingScale) -> float:
        """The rating from which a watched item is liked, on `scale`."""
        return scale.high_from if self.like_threshold is None else self.like_threshold

    patience: tuple[float, float, float] = (0.5, 0.7, 0.9)
    """P(continue) after a fully satisfying page for users of low, medium and high
    activity (the activity trait of the profile stage)."""
    satisfaction_weight: float = Field(0.5, ge=0.0, le=1.0)
    """How much the page's satisfaction (share of its items watched and liked) moves
    P(continue): P(continue) = patience x (1 - w + w x satisfaction)."""
    offline_k: int = Field(10, ge=1)
    """Length of the top-N lists scored against the held-out log (nDCG@k, Recall@k)."""
    feedback_rounds: Annotated[int, in_keys()] = Field(5, ge=0)
    """Feedback-loop rounds after the first sessions (0: off): each round adds the items
    the agents watched to every recommender's training data, retrains it, ranks and
    simulates again; per recommender and round the study records the watch rate, likes,
    catalogue coverage, Gini of exposure, genre entropy and popularity of the lists and
    the drift of the users' histories, and says whether the recommender narrows,
    broadens or stays (docs/simulation.md)."""
    feedback_users: Annotated[int, in_keys()] = Field(0, ge=0)
    """Users in the feedback loop (a seeded subset of the simulated users; 0: all)."""
    ladder: Annotated[list[Annotated[float, Field(gt=0.0, le=1.0)]], in_keys()] = [
        0.1,
        0.25,
        0.5,
        1.0,
    ]
    """The good-vs-degraded ladder: the best built-in recommender (by nDCG) again with
    these shares of each user's session items replaced by random unseen items. The
    simulated watch rate and likes must fall as the share grows; the smallest share
    whose drop has a paired interval excluding 0 is the simulator's resolution,
    reported beside nDCG's on the same lists. Empty: off."""
    leave_family_out: Annotated[bool, in_keys()] = True
    """With the stacked watch prior: simulate each built-in recommender again with its
    own family (item-kNN for "itemknn", implicit MF for "mf", ...) left out of the
    prior, and report whether its rank holds (a simulator must not favour the
    recommender it shares a model with)."""
    session_recency: bool = True
    """With the stacked watch prior: what a user watched earlier in a session is their
    latest history, which the prior's recency features (item-kNN over the last items,
    SASRec, genre shares, activity) read on the next pages; false: the prior is the
    one fitted on the log for the whole session."""

    @field_validator("patience")
    @classmethod
    def _probabilities(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(not 0.0 <= v <= 1.0 for v in value):
            raise ValueError(f"patience values must lie in [0, 1], got {list(value)}")
        return value

    @field_validator("recommenders", "plugins", "rankings")
    @classmethod
    def _safe_names(cls, value: Any) -> Any:
        # Names become file names in the run folder: they may not escape it.
        for name in value:
            if not _SAFE_NAME.fullmatch(name):
                raise ValueError(
                    f"recommender name {name!r}: use letters, digits, '_', '-' and '.' "
                    "(it names files in the run folder)"
                )
        return value

    @field_validator("recommenders")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        duplicated = sorted({v for v in value if value.count(v) > 1})
        if duplicated:
            raise ValueError(f"recommenders listed twice: {duplicated}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _with_rankings(cls, data: Any) -> Any:
        # a rankings file is simulated whether or not `recommenders` names it
        if not isinstance(data, dict) or not isinstance(data.get("rankings"), dict):
            return data
        listed = data.get("recommenders", list(BUILTIN_RECOMMENDERS))
        if not isinstance(listed, list):
            return data  # refused by the field's own validation
        missing = [name for name in data["rankings"] if name not in listed]
        return {**data, "recommenders": [*listed, *missing]} if missing else data


class ReportConfig(Section):
    """The fidelity report (stage `report`)."""

    title: str | None = None
    """Title of the report; default "personasim fidelity report: <run folder name>"."""
