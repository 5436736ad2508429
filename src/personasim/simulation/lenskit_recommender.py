"""The built-in recommenders that wrap LensKit components, as one :class:`LensKitRecommender`.

Each kind is a LensKit top-N pipeline over the user's unrated training items:

- ``random``: a random order of the unrated training items, seeded per user
  (``RandomSelector``);
- ``popular``: most-rated first (``PopScorer``);
- ``itemknn``: item-item k-nearest neighbours on the ratings (``ItemKNNScorer``);
- ``userknn``: user-user k-nearest neighbours over implicit feedback (``UserKNNScorer``);
- ``mf``: implicit-feedback matrix factorisation trained by ALS (``ImplicitMFScorer``);
- ``bpr``: matrix factorisation trained on pairwise (BPR) loss (``FlexMFImplicitScorer``);
- ``sasrec``: the sequential model SASRec: what follows the user's latest items
  (:class:`~personasim.cf.sequential.SASRecScorer`).

:meth:`LensKitRecommender.recommend_many` asks for many users' lists at once: the kinds
whose scorer has a batched form (:mod:`personasim.cf.batch_scores`: MF, BPR, popular,
SASRec) score a batch of users in one product and cut each row's top N; ``random`` draws
each user's list as its pipeline does, without running the pipeline; the others are
asked user by user.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from personasim.cf.batch_scores import BATCH_USERS
from personasim.cf.fitted import FittedModels
from personasim.config import CFConfig, part_settings
from personasim.simulation.batched_lists import top_positions

__all__ = ["LensKitRecommender"]


class LensKitRecommender:
    """A LensKit top-N pipeline over the unrated training items of a user."""

    def __init__(self, name: str, kind: str, config: CFConfig) -> None:
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
                embedding_size=self.config.implicit_mf_embedding_size,
                epochs=self.config.implicit_mf_epochs,
                use_ratings=False,
            )
        elif self.kind == "bpr":
            scorer = FlexMFImplicitScorer(
                embedding_size=self.config.implicit_mf_embedding_size,
                epochs=self.config.implicit_mf_epochs,
                loss="pairwise",
            )
        elif self.kind == "sasrec":
            from personasim.cf.sequential import SASRecScorer

            scorer = SASRecScorer()
        else:  # pragma: no cover - guarded by create_recommender
            raise ValueError(self.kind)
        return topn_pipeline(scorer, name=self.name)

    def fit(self, training: pd.DataFrame, *, seed: int, models: FittedModels | None = None) -> None:
        """Train the LensKit pipeline on `training`, deterministically for `seed` (read
        from `models`, the run's fitted models on `training`, when a stage fitted it)."""
        from personasim.cf.dataset import training_dataset, training_options

        def train() -> Any:
            pipeline = self._build(seed)
            with warnings.catch_warnings():
                # LensKit's item statistics trip a pandas FutureWarning (NaT into int64)
                warnings.filterwarnings("ignore", category=FutureWarning, module=r"lenskit\..*")
                pipeline.train(training_dataset(training), training_options(seed, len(training)))
            return pipeline

        self._seed = seed
        if models is None:
            pipeline = train()
        else:
            settings = {"name": self.name, **part_settings(self.config, "recommenders")}
            pipeline = models.get(f"recommender-{self.kind}", settings, seed, train)
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
