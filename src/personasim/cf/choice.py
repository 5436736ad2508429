"""The stacked choice model: which unseen item a user takes next, learned from the log's
own order.

A gradient-boosted combiner (scikit-learn's ``HistGradientBoostingClassifier``) reads
the choice features of :mod:`personasim.cf.choice_features` (the implicit scorers, recent
popularity, what the user just watched, genres, item age, activity). It is fitted
without leakage by splitting each user's training part again in time: the earlier
`1 - label_share` of their rows (with everyone else's rows) gives the features, the
later rows are the labels. Its rows are every item a labelled user had not taken by
then: the later ones positive, the others sampled at `negative_rate` and weighted by its
inverse, so it learns the catalogue as it is (a sample of recommenders' top lists beside
uniform negatives taught it that sample's selection instead). It then scores pairs from
features recomputed on the whole training log; :meth:`StackedChoice.on` recomputes them
on another log (the out-of-fold folds of the agents' watch examples) with the same
combiner.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from personasim.cf.choice_features import CHOICE_FAMILIES, ChoiceFeatures, ChoiceSettings
from personasim.cf.choice_fitting import fit_choice_features

__all__ = ["ChoiceScorer", "StackedChoice", "choice_families", "fit_stacked_choice"]

_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]


def choice_families(exclude: Iterable[str] = ()) -> tuple[str, ...]:
    """The feature families left when `exclude` leaves some out.

    Raises:
        ValueError: An unknown family, or nothing left.
    """
    exclude = set(exclude)
    unknown = sorted(exclude - set(CHOICE_FAMILIES))
    if unknown:
        raise ValueError(
            f"unknown choice families {unknown} to leave out; known: {list(CHOICE_FAMILIES)}"
        )
    left = tuple(f for f in CHOICE_FAMILIES if f not in exclude)
    if not left:
        raise ValueError("every choice family left out: nothing to score with")
    return left


@dataclass
class ChoiceScorer:
    """The combiner over the features of one log: scores (user, item) pairs as the
    combiner's log-odds that the user takes the item next."""

    features: ChoiceFeatures
    combiner: Any

    def score_pairs(
        self, pairs: pd.DataFrame, recent: Mapping[str, Sequence[str]] | None = None
    ) -> np.ndarray:
        """Log-odds of ``user_id, item_id`` pairs, in their order (`recent`: items each
        user took after the log, oldest first)."""
        if not len(pairs):
            return np.zeros(0)
        return self.combiner.decision_function(self.features.pairs(pairs, recent))

    def scores(self, user: str, items: Sequence[str], recent: Sequence[str] = ()) -> np.ndarray:
        """Log-odds of `items` for `user` (`recent`: items the user took after the log,
        oldest first, e.g. a session's watches)."""
        if not len(items):
            return np.zeros(0)
        return self.combiner.decision_function(self.features.user(user, list(items), recent))


@dataclass
class StackedChoice:
    """A fitted stacked choice model.

    Attributes:
        scorer: The combiner over features of the whole training log.
        families: The feature families it reads.
        report: What the fit saw: rows, positives, the combiner's training AUC.
    """

    scorer: ChoiceScorer
    families: tuple[str, ...]
    genres: Mapping[str, Iterable[str]]
    settings: ChoiceSettings
    seed: int
    report: dict[str, Any]

    def on(self, log: pd.DataFrame) -> ChoiceScorer:
        """The same combiner over features recomputed on `log`."""
        features = fit_choice_features(
            log, self.genres, seed=self.seed, families=self.families, settings=self.settings
        )
        return ChoiceScorer(features, self.scorer.combiner)


def _time_split(train: pd.DataFrame, label_share: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each user's rows in time order: the earlier ones and the last `label_share`
    (a user with fewer than 4 rows keeps them all early)."""
    ordered = train.sort_values(["user_id", "timestamp"], kind="stable")
    position = ordered.groupby("user_id").cumcount().to_numpy()
    size = ordered.groupby("user_id")["item_id"].transform("size").to_numpy()
    labels = (size >= 4) & (position >= np.ceil(size * (1 - label_share)))
    return ordered[~labels], ordered[labels]


def _training_rows(
    features: ChoiceFeatures,
    later: pd.DataFrame,
    *,
    negative_rate: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The combiner's rows: for each labelled user, every unseen item they took later
    (positive) and each other unseen item with probability `negative_rate`, weighted
    by the inverse of that probability, so the fit sees the whole catalogue as it is
    (a sample whose make-up depended on the scores, e.g. recommenders' top lists beside
    uniform negatives, teaches the combiner that sample's selection instead)."""
    blocks, labels, weights = [], [], []
    for user, took in later.groupby("user_id")["item_id"]:
        unseen = features.unseen(str(user))
        positive = np.isin(unseen, list({str(i) for i in took}))
        if not positive.any():
            continue
        keep = positive | (rng.random(len(unseen)) < negative_rate)
        blocks.append(features.user(str(user), unseen[keep].tolist()))
        labels.append(positive[keep])
        weights.append(np.where(positive[keep], 1.0, 1.0 / negative_rate))
    if not blocks:
        return np.zeros((0, len(features.columns))), np.zeros(0, bool), np.zeros(0)
    return np.vstack(blocks), np.concatenate(labels), np.concatenate(weights)


def fit_stacked_choice(
    train: pd.DataFrame,
    others: pd.DataFrame,
    genres: Mapping[str, Iterable[str]],
    *,
    seed: int,
    exclude: Iterable[str] = (),
    settings: ChoiceSettings | None = None,
    label_share: float = 0.4,
    negative_rate: float = 0.1,
    max_users: int = 500,
    other_users: int = 800,
) -> StackedChoice:
    """Fit the combiner on a time split of `train` and the features on all of it.

    Args:
        train: The simulated users' training rows (``user_id, item_id, rating,
            timestamp``): their own split gives the combiner's labels.
        others: Other users' rows (features only; may be empty).
        genres: Item id -> genres.
        seed: Seed of the sample, the models and the combiner.
        exclude: Feature families left out (:data:`CHOICE_FAMILIES`).
        settings: The features' hyper-parameters (unset: the defaults).
        label_share: The later share of each user's training rows that are labels.
        negative_rate: The share of the items a user did not take that the fit sees.
        max_users: Users whose later rows teach the combiner (a seeded sample).
        other_users: Other users (a seeded sample) whose histories are split in time
            the same way to teach the combiner too (their later rows leave the
            features' log); 0: the simulated users alone.

    Raises:
        ValueError: Unknown families, or no user with later items to learn from.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    families = choice_families(exclude)
    settings = settings or ChoiceSettings()
    train = train[_COLUMNS].astype({"user_id": str, "item_id": str})
    others = others[_COLUMNS].astype({"user_id": str, "item_id": str})
    rng = np.random.default_rng(seed)
    teaching, context = train, others
    if other_users:
        names = np.array(sorted(others["user_id"].unique()), dtype=object)
        chosen = set(rng.choice(names, min(other_users, len(names)), replace=False).tolist())
        taught = others["user_id"].isin(chosen)
        teaching = pd.concat([train, others[taught]], ignore_index=True)
        context = others[~taught]
    early, later = _time_split(teaching, label_share)
    if later.empty:
        raise ValueError("the stacked choice model needs users with 4 or more training rows")

    def features_on(*parts: pd.DataFrame) -> ChoiceFeatures:
        return fit_choice_features(
            pd.concat(parts, ignore_index=True),
            genres,
            seed=seed,
            families=families,
            settings=settings,
        )

    earlier = features_on(early, context)
    labelled = sorted(later["user_id"].unique())
    if len(labelled) > max_users + other_users:
        labelled = sorted(rng.choice(labelled, max_users + other_users, replace=False).tolist())
    x, y, weight = _training_rows(
        earlier,
        later[later["user_id"].isin(labelled)],
        negative_rate=negative_rate,
        rng=rng,
    )
    if not y.any():
        raise ValueError("no user took an unseen item later in their training rows")
    combiner = HistGradientBoostingClassifier(
        learning_rate=0.05,
        max_iter=300,
        max_leaf_nodes=15,
        min_samples_leaf=100,
        early_stopping=True,
        validation_fraction=0.15,
        n_iter_no_change=20,
        random_state=seed,
    )
    combiner.fit(x, y, sample_weight=weight / weight.mean())
    full = features_on(train, others)
    report = {
        "families": list(families),
        "features": earlier.columns,
        "rows": int(len(y)),
        "positives": int(y.sum()),
        "users": len(labelled),
        "iterations": int(combiner.n_iter_),
        "train_auc": round(
            float(roc_auc_score(y, combiner.decision_function(x), sample_weight=weight)), 4
        )
        if 0 < y.sum() < len(y)
        else None,
    }
    return StackedChoice(ChoiceScorer(full, combiner), families, genres, settings, seed, report)
