"""Implicit-feedback scorers, fitted with LensKit: how likely a user is to watch an item.

- ``popularity``: the item's number of training ratings (``PopScorer``, counts);
- ``itemknn``: item-item k-nearest neighbours over implicit feedback (``ItemKNNScorer``):
  the summed similarity of the item to the user's rated items;
- ``implicit_mf``: matrix factorisation of implicit feedback by ALS (``ImplicitMFScorer``);
- ``bpr``: matrix factorisation trained on the pairwise BPR loss (``FlexMFImplicitScorer``);
- ``userknn``: user-user k-nearest neighbours over implicit feedback (``UserKNNScorer``);
- ``sasrec``: the sequential model SASRec over each user's items in time order
  (:class:`~personasim.cf.sequential.SASRecScorer`): what follows what they just took.

They score (user, item) pairs given each user's history (the training items), are the
taste baselines of the evaluation and give the agents' watch prior. A pair the model
cannot score (no neighbour, an unknown item) scores 0. The scorers with a batched form
(:mod:`personasim.cf.batch_scores`: implicit MF, BPR, popularity, SASRec) score many
users at once (:meth:`ImplicitScorer.score_many`, and the pairs of many users).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, get_args

import numpy as np
import pandas as pd

from personasim.cf.batch_scores import BATCH_USERS
from personasim.cf.dataset import training_dataset, training_options
from personasim.cf.factors import ScoreFactors
from personasim.config import ImplicitKind

__all__ = [
    "IMPLICIT_SCORERS",
    "ImplicitScorer",
    "ImplicitSettings",
    "fit_implicit",
    "implicit_pipeline",
]

IMPLICIT_SCORERS: tuple[str, ...] = get_args(ImplicitKind)


@dataclass(frozen=True)
class ImplicitSettings:
    """Hyper-parameters of the implicit scorers (LensKit's defaults otherwise)."""

    neighbors: int = 20
    """Neighbours of item-kNN."""
    embedding_size: int = 50
    """Latent factors of implicit MF and BPR."""
    epochs: int = 10
    """Epochs of implicit MF (ALS) and BPR."""
    sequential_epochs: int = 10
    """Epochs of SASRec."""


@dataclass
class ImplicitScorer:
    """A fitted implicit scorer: a LensKit pipeline whose history lookup gives each user
    its training items."""

    kind: str
    pipeline: Any

    def __post_init__(self) -> None:
        from personasim.cf.batch_scores import batch_scorer

        self._batch = batch_scorer(self.pipeline.component("scorer"))
        self._rows: Any = None

    def _histories(self, users: Sequence[str]) -> list[list[str]]:
        """Each user's training items: the rows of the history lookup's interaction
        matrix, read at once (the lookup itself lists its whole user vocabulary on every
        call: quadratic in users)."""
        matrix = getattr(self.pipeline.component("history-lookup"), "interactions", None)
        if matrix is None:
            return [[] for _ in users]
        if self._rows is None:
            items = np.asarray(matrix.col_vocabulary.ids(), dtype=object).astype(str)
            self._rows = matrix.scipy(layout="csr"), items
        csr, items = self._rows
        numbers = matrix.row_vocabulary.numbers(np.asarray(users, dtype=object), missing="negative")
        return [
            items[csr.indices[csr.indptr[r] : csr.indptr[r + 1]]].tolist() if r >= 0 else []
            for r in numbers
        ]

    def scores(self, user: str, items: Sequence[str]) -> np.ndarray:
        """Scores of `items` for `user` (0 where the model has none)."""
        from lenskit import score
        from lenskit.data import ItemList

        if not len(items):
            return np.zeros(0)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"lenskit\..*")
            out = score(self.pipeline, user, ItemList(item_ids=np.array(items, dtype=object)))
        scores = out.scores()
        if scores is None:
            return np.zeros(len(items))
        return np.nan_to_num(np.asarray(scores, dtype="float64"), nan=0.0)

    def factors(self, users: Sequence[str], items: Sequence[str]) -> ScoreFactors | None:
        """The ``[users, items]`` table as the model's factors (0 where the model has no
        score), for the low-rank scorers (implicit MF, BPR, popularity); else None."""
        from personasim.cf.batch_scores import score_factors

        histories = self._histories(users)
        table = score_factors(self.pipeline.component("scorer"), users, histories, items)
        if table is not None:
            table.missing = 0.0
        return table

    def score_many(self, users: Sequence[str], items: Sequence[str]) -> np.ndarray:
        """``[users, items]`` scores (0 where the model has none), batched when the scorer
        has a batched form, else :meth:`scores` per user."""
        if self._batch is None:
            return np.stack([self.scores(u, items) for u in users]).reshape(len(users), -1)
        out = np.zeros((len(users), len(items)))
        for start in range(0, len(users), BATCH_USERS):
            part = list(users[start : start + BATCH_USERS])
            scores = self._batch(part, self._histories(part), items)
            out[start : start + len(part)] = np.nan_to_num(scores.astype("float64"), nan=0.0)
        return out

    def score_pairs(self, pairs: pd.DataFrame) -> np.ndarray:
        """Scores of ``user_id, item_id`` pairs, in their order: every pair at once from
        the model's factors where it has them, else user by user."""
        users = pairs["user_id"].astype(str).to_numpy()
        items = pairs["item_id"].astype(str).to_numpy()
        user_codes, unique_users = pd.factorize(users)
        item_codes, unique_items = pd.factorize(items)
        table = self.factors(list(unique_users), list(unique_items)) if len(pairs) else None
        if table is not None:
            return table.cells(user_codes, item_codes)
        out = np.zeros(len(pairs))
        for user, idx in pd.Series(users).groupby(users).indices.items():
            out[idx] = self.scores(str(user), items[idx].tolist())
        return out


def implicit_pipeline(kind: str, settings: ImplicitSettings = ImplicitSettings()) -> Any:
    """The untrained LensKit top-N pipeline of the implicit scorer `kind`.

    Raises:
        ValueError: `kind` is not one of :data:`IMPLICIT_SCORERS`.
    """
    from lenskit.als import ImplicitMFScorer
    from lenskit.basic import PopScorer
    from lenskit.flexmf import FlexMFImplicitScorer
    from lenskit.knn import ItemKNNScorer, UserKNNScorer

    from personasim.cf.pipelines import topn_pipeline

    if kind == "popularity":
        scorer: Any = PopScorer(score="count")
    elif kind == "itemknn":
        scorer = ItemKNNScorer(max_nbrs=settings.neighbors, feedback="implicit")
    elif kind == "implicit_mf":
        scorer = ImplicitMFScorer(
            embedding_size=settings.embedding_size, epochs=settings.epochs, use_ratings=False
        )
    elif kind == "bpr":
        scorer = FlexMFImplicitScorer(
            embedding_size=settings.embedding_size, epochs=settings.epochs, loss="pairwise"
        )
    elif kind == "userknn":
        scorer = UserKNNScorer(max_nbrs=settings.neighbors, feedback="implicit")
    elif kind == "sasrec":
        from personasim.cf.sequential import SASRecScorer

        scorer = SASRecScorer(epochs=settings.sequential_epochs)
    else:
        raise ValueError(f"unknown implicit scorer {kind!r}; use one of {IMPLICIT_SCORERS}")
    return topn_pipeline(scorer, name=kind)


def fit_implicit(
    kind: str,
    training: pd.DataFrame,
    *,
    seed: int,
    settings: ImplicitSettings = ImplicitSettings(),
) -> ImplicitScorer:
    """Fit an implicit scorer on ``user_id, item_id, rating, timestamp`` rows (every
    rating counts as one interaction).

    Raises:
        ValueError: `kind` is not one of :data:`IMPLICIT_SCORERS`.
    """
    pipeline = implicit_pipeline(kind, settings)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"lenskit\..*")
        pipeline.train(training_dataset(training), training_options(seed, len(training)))
    return ImplicitScorer(kind, pipeline)
