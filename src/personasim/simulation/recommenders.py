"""Recommenders under test, registered by name; a team's own joins as a plug-in.

A recommender is fitted on a training log (``user_id, item_id, rating, timestamp``) and
asked for a user's ranked item ids given the user's history. The built-in ones wrap
LensKit components:

- ``random``: a random order of the unrated training items, seeded per user
  (``RandomSelector``);
- ``popular``: most-rated first (``PopScorer``);
- ``itemknn``: item-item k-nearest neighbours on the ratings (``ItemKNNScorer``);
- ``userknn``: user-user k-nearest neighbours over implicit feedback (``UserKNNScorer``);
- ``mf``: implicit-feedback matrix factorisation trained by ALS (``ImplicitMFScorer``);
- ``bpr``: matrix factorisation trained on pairwise (BPR) loss (``FlexMFImplicitScorer``);
- ``sasrec``: the sequential model SASRec: what follows the user's latest items
  (:class:`~personasim.cf.sequential.SASRecScorer`);
- ``unpopular``: least-rated first: a deliberately poor recommender, so the comparison
  has a clear loser beside ``random``.

A team's own recommender is given as ``"module:object"`` (in ``[simulate] plugins``) or
registered under the entry-point group ``personasim.recommenders``. The object is a
class (instantiated without arguments), an instance, or a plain function:

- with a ``fit(training: pandas.DataFrame)`` method, it is fitted on the training log
  (and refitted in each feedback round);
- ``recommend(user_id: str, history: list[str], n: int) -> list[str]`` (or the object
  itself, if callable) returns up to `n` item ids, best first.

Items of the user's history and items the recommender repeats are dropped by the
session, so a plug-in need not filter them.

:func:`recommend_many` asks for many users' lists at once: the LensKit recommenders whose
scorer has a batched form (:mod:`personasim.cf.batch_scores`: MF, BPR, popular, SASRec)
score a batch of users in one product and cut each row's top N; ``random`` draws each
user's list as its pipeline does, without running the pipeline; the others are asked
user by user.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import warnings
import zlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from personasim.cf.batch_scores import BATCH_USERS
from personasim.config import BUILTIN_RECOMMENDERS, SimulateConfig
from personasim.errors import ConfigError

__all__ = [
    "BUILTIN_RECOMMENDERS",
    "LensKitRecommender",
    "PluginRecommender",
    "Recommender",
    "UnpopularRecommender",
    "create_recommender",
    "load_object",
    "recommend_many",
    "stable_seed",
    "top_positions",
]

logger = logging.getLogger(__name__)


_ENTRY_POINT_GROUP = "personasim.recommenders"


@runtime_checkable
class Recommender(Protocol):
    """What a session needs from a recommender."""

    name: str

    def fit(self, training: pd.DataFrame, *, seed: int) -> None:
        """Train on ``user_id, item_id, rating, timestamp`` rows."""

    def recommend(self, user_id: str, history: Sequence[str], n: int) -> list[str]:
        """Up to `n` item ids for the user, best first, none of `history`."""


def top_positions(scores: np.ndarray, n: int) -> np.ndarray:
    """Positions of the `n` highest scores, best first (NaN never; ties: first position
    first)."""
    valid = np.flatnonzero(~np.isnan(scores))
    if n < len(valid):
        valid = valid[np.argpartition(-scores[valid], n - 1)[:n]] if n > 0 else valid[:0]
    return valid[np.lexsort((valid, -scores[valid]))]


def recommend_many(
    recommender: Recommender, users: Sequence[str], histories: Sequence[Sequence[str]], n: int
) -> list[list[str]]:
    """Up to `n` new items for each user (none of their history), best first: batched
    where the recommender has ``recommend_many``, else one ``recommend`` per user."""
    many = getattr(recommender, "recommend_many", None)
    if callable(many):
        lists = many(list(users), [list(h) for h in histories], n)
    else:
        lists = [
            recommender.recommend(u, h, n + len(h)) for u, h in zip(users, histories, strict=True)
        ]
    out = []
    for ranking, history in zip(lists, histories, strict=True):
        seen = set(history)
        out.append([i for i in ranking if i not in seen][:n])
    return out


def stable_seed(*parts: object) -> int:
    """A seed derived from `parts` that is the same in every process and run."""
    return zlib.crc32("\x1f".join(str(p) for p in parts).encode())


class LensKitRecommender:
    """A LensKit top-N pipeline over the unrated training items of a user."""

    def __init__(self, name: str, kind: str, config: SimulateConfig) -> None:
        self.name = name
        self.kind = kind
        self.config = config
        self._pipeline: Any = None
        self._batch: Any = None
        self._candidates: list[str] = []
        self._seed = 0

    def _build(self, seed: int) -> Any:
        from lenskit.als import ImplicitMFScorer
        from lenskit.basic import PopScorer
        from lenskit.flexmf import FlexMFImplicitScorer
        from lenskit.knn import ItemKNNScorer, UserKNNScorer

        from personasim.cf.pipelines import topn_pipeline

        if self.kind == "random":
            return _random_pipeline(self.name, seed)
        if self.kind == "popular":
            scorer: Any = PopScorer(score="quantile")
        elif self.kind == "itemknn":
            scorer = ItemKNNScorer(max_nbrs=self.config.itemknn_neighbors, feedback="implicit")
        elif self.kind == "userknn":
            scorer = UserKNNScorer(max_nbrs=self.config.itemknn_neighbors, feedback="implicit")
        elif self.kind == "mf":
            scorer = ImplicitMFScorer(
                embedding_size=self.config.mf_embedding_size,
                epochs=self.config.mf_epochs,
                use_ratings=False,
            )
        elif self.kind == "bpr":
            scorer = FlexMFImplicitScorer(
                embedding_size=self.config.mf_embedding_size,
                epochs=self.config.mf_epochs,
                loss="pairwise",
            )
        elif self.kind == "sasrec":
            from personasim.cf.sequential import SASRecScorer

            scorer = SASRecScorer()
        else:  # pragma: no cover - guarded by create_recommender
            raise ValueError(self.kind)
        return topn_pipeline(scorer, name=self.name)

    def fit(self, training: pd.DataFrame, *, seed: int) -> None:
        """Train the LensKit pipeline on `training`, deterministically for `seed`."""
        from personasim.cf.dataset import training_dataset, training_options

        self._seed = seed
        pipeline = self._build(seed)
        with warnings.catch_warnings():
            # LensKit's item statistics trip a pandas FutureWarning (NaT into int64)
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"lenskit\..*")
            pipeline.train(training_dataset(training), training_options(seed, len(training)))
        self._pipeline = pipeline
        self._batch, self._candidates = None, []
        if self.kind != "random":
            from personasim.cf.batch_scores import batch_scorer

            scorer = pipeline.component("scorer")
            self._batch = batch_scorer(scorer)
            vocabulary = getattr(scorer, "items", None)
            if vocabulary is None:
                vocabulary = getattr(scorer, "items_", None)
            if self._batch is not None and vocabulary is not None:
                # LensKit's candidates: every training item the user has not rated
                self._candidates = [str(i) for i in vocabulary.ids()]
            else:
                self._batch = None

    def recommend(self, user_id: str, history: Sequence[str], n: int) -> list[str]:
        """The top `n` unrated training items for the user (history excluded)."""
        from lenskit import recommend
        from lenskit.data import ItemList, RecQuery

        if self._pipeline is None:
            raise RuntimeError(f"recommender {self.name!r} used before fit()")
        # an empty ItemList gets integer ids, which LensKit cannot match with string
        # ids: give the query no items instead (the user's training history is empty too)
        items_seen = ItemList(item_ids=np.array(list(history), dtype=object)) if history else None
        query = RecQuery(user_id=user_id, user_items=items_seen)
        items = recommend(self._pipeline, query, n)
        return [str(i) for i in items.ids()]

    def recommend_many(
        self, users: Sequence[str], histories: Sequence[Sequence[str]], n: int
    ) -> list[list[str]]:
        """Each user's top `n` unrated training items: one batched scoring per chunk of
        users where the scorer has a batched form, else :meth:`recommend` per user."""
        if self.kind == "random":
            return self._random_lists(users, histories, n)
        if self._batch is None:
            return [self.recommend(u, h, n) for u, h in zip(users, histories, strict=True)]
        column = {item: c for c, item in enumerate(self._candidates)}
        out: list[list[str]] = []
        for start in range(0, len(users), BATCH_USERS):
            part = slice(start, start + BATCH_USERS)
            scores = self._batch(users[part], histories[part], self._candidates)
            for row, history in zip(scores, histories[part], strict=True):
                seen = [column[i] for i in history if i in column]
                row[seen] = np.nan  # LensKit's candidates leave the history out
                out.append([self._candidates[c] for c in top_positions(row, n)])
        return out

    def _random_lists(
        self, users: Sequence[str], histories: Sequence[Sequence[str]], n: int
    ) -> list[list[str]]:
        """The random pipeline's lists without running the pipeline per user: the same
        candidates (the training items not in the history, in the vocabulary's order),
        the same generator per user (LensKit's derivation from the seed and the user id)
        and the same draw."""
        from lenskit.data import RecQuery
        from lenskit.random import derivable_rng

        if self._pipeline is None:
            raise RuntimeError(f"recommender {self.name!r} used before fit()")
        vocabulary = self._pipeline.component("candidate-selector").items_
        ids = np.asarray(vocabulary.ids(), dtype=object)
        generator_of = derivable_rng((self._seed, "user"))
        out = []
        for user, history in zip(users, histories, strict=True):
            keep = np.ones(len(ids), dtype=bool)
            if len(history):
                taken = vocabulary.numbers(np.asarray(history, dtype=object), missing="negative")
                keep[taken[taken >= 0]] = False
            candidates = ids[keep]
            size = min(n, len(candidates)) if n >= 0 else len(candidates)
            if size <= 0:
                out.append([])
                continue
            rng = generator_of(RecQuery(user_id=user))
            out.append(
                [str(i) for i in candidates[rng.choice(len(candidates), size, replace=False)]]
            )
        return out


class UnpopularRecommender:
    """Least-rated training items first (ties by item id): a deliberately poor list."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._order: list[str] = []

    def fit(self, training: pd.DataFrame, *, seed: int) -> None:
        """Count each item's training ratings."""
        counts = training["item_id"].astype(str).value_counts()
        frame = pd.DataFrame({"item_id": counts.index, "n": counts.to_numpy()})
        self._order = frame.sort_values(["n", "item_id"])["item_id"].tolist()

    def recommend(self, user_id: str, history: Sequence[str], n: int) -> list[str]:
        """The `n` least-rated items the user has not rated."""
        seen = set(history)
        out = []
        for item in self._order:
            if item not in seen:
                out.append(item)
                if len(out) == n:
                    break
        return out


def _random_pipeline(name: str, seed: int) -> Any:
    """Query -> the user's unrated training items -> a random order.

    The seed is ``(seed, "user")``: each user gets their own seeded order, whatever
    the order in which users are asked.
    """
    from lenskit.basic import RandomSelector, UnratedTrainingItemsCandidateSelector
    from lenskit.data import ID, ItemList, RecQuery
    from lenskit.pipeline import PipelineBuilder

    from personasim.cf.pipelines import HistoryLookup

    pipe = PipelineBuilder(name=name)
    query = pipe.create_input("query", RecQuery, ID, ItemList)
    n = pipe.create_input("n", int, None)
    lookup = pipe.add_component("history-lookup", HistoryLookup(), query=query)
    candidates = pipe.add_component(
        "candidate-selector", UnratedTrainingItemsCandidateSelector(), query=lookup
    )
    ranker = pipe.add_component(
        "ranker", RandomSelector(n=-1, rng=(seed, "user")), items=candidates, query=lookup, n=n
    )
    pipe.alias("recommender", ranker)
    pipe.default_component("recommender")
    return pipe.build()


class PluginRecommender:
    """A team's recommender given as an object (see the module docstring)."""

    def __init__(self, name: str, target: Any, spec: str) -> None:
        self.name = name
        self.spec = spec
        self.target = target() if isinstance(target, type) else target
        method = getattr(self.target, "recommend", None)
        self._recommend: Callable[..., Any] | None = method if callable(method) else None
        if self._recommend is None and callable(self.target):
            self._recommend = self.target
        if self._recommend is None:
            raise ConfigError(
                f"recommender plug-in {name!r} ({spec}): the object has no recommend() "
                "and is not callable; give recommend(user_id, history, n) -> item ids"
            )

    def fit(self, training: pd.DataFrame, *, seed: int) -> None:
        """Call the plug-in's ``fit(training)`` when it has one."""
        fit = getattr(self.target, "fit", None)
        if callable(fit):
            fit(training.copy())

    def recommend(self, user_id: str, history: Sequence[str], n: int) -> list[str]:
        """The plug-in's ranked item ids (as strings).

        Raises:
            ConfigError: The plug-in failed or returned something that is not a list of
                item ids.
        """
        assert self._recommend is not None
        try:
            items = self._recommend(user_id, list(history), n)
        except Exception as e:
            raise ConfigError(
                f"recommender plug-in {self.name!r} ({self.spec}) failed for user "
                f"{user_id!r}: {type(e).__name__}: {e}"
            ) from e
        if isinstance(items, (str, bytes)) or not isinstance(items, (Sequence, np.ndarray)):
            raise ConfigError(
                f"recommender plug-in {self.name!r} ({self.spec}) returned "
                f"{type(items).__name__} for user {user_id!r}; expected a list of item ids"
            )
        return [str(i) for i in items]


def load_object(spec: str) -> Any:
    """Import ``"package.module:attribute"`` (the attribute may be dotted).

    Raises:
        ConfigError: The spec is malformed, the module cannot be imported or the
            attribute does not exist.
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"recommender plug-in {spec!r}: expected 'module:object'")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"recommender plug-in {spec!r}: cannot import {module_name}: {e}") from e
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigError(
                f"recommender plug-in {spec!r}: {module_name} has no {attribute!r}"
            ) from None
    return target


def _entry_points() -> dict[str, str]:
    return {e.name: e.value for e in importlib.metadata.entry_points(group=_ENTRY_POINT_GROUP)}


def create_recommender(name: str, config: SimulateConfig) -> Recommender:
    """The recommender called `name`: built-in, from ``[simulate] plugins`` or from an
    installed package's ``personasim.recommenders`` entry point.

    Raises:
        ConfigError: No recommender has that name, or its plug-in cannot be loaded.
    """
    if name in config.rankings:
        from personasim.simulation.rankings import RankingsRecommender

        return RankingsRecommender(name, config.rankings[name])
    if name in config.plugins:
        spec = config.plugins[name]
        return PluginRecommender(name, load_object(spec), spec)
    if name == "unpopular":
        return UnpopularRecommender(name)
    if name in BUILTIN_RECOMMENDERS:
        return LensKitRecommender(name, name, config)
    installed = _entry_points()
    if name in installed:
        return PluginRecommender(name, load_object(installed[name]), installed[name])
    known = sorted({*BUILTIN_RECOMMENDERS, *config.plugins, *config.rankings, *installed})
    raise ConfigError(
        f"simulate.recommenders: no recommender named {name!r} (available: {', '.join(known)}; "
        "add your own as plugins = {name = 'module:object'})"
    )
