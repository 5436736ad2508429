"""The collaborative prior of the watch answer: what an implicit-feedback scorer says
about a user and an item, as log-odds added to logit("yes") - logit("no").

The scorer (:mod:`personasim.cf.implicit`: popularity, item-kNN or implicit MF; or the
stacked choice model of :mod:`personasim.cf.choice`, given as a function that fits it on
a log) is fitted on the training data. Its score is turned into a probability by a
monotone calibration fitted on training lists of positives (a user's train items) and
the watch task's negatives (isotonic; or logistic, which keeps every difference between
scores where isotonic steps make ties), then into log-odds. For the agents' own watch
examples the score must not come from a model that saw the item (a perfect hint in
training, an ordinary one at test time), so they are scored out of fold: the simulated
users' train ratings are split in K folds and each fold's positives are scored by a
model fitted without them. Every
other pair (test lists, sessions) is scored by the model fitted on all the training
data: kept as the model's factors for the low-rank scorers (implicit MF, BPR, popularity:
:class:`~personasim.cf.factors.ScoreFactors`, each pair computed when asked for), else a
dense user x item matrix of the simulated users. A prior fitted in this
process also keeps the stacked model (:attr:`WatchPrior.session`), which scores a user's
items again after what they watched in a session.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import pandas as pd

from personasim.cf.factors import ScoreFactors
from personasim.cf.implicit import fit_implicit
from personasim.run_folder import ADAPTERS
from personasim.workspace import atomic_path

__all__ = ["PairScorer", "SessionScorer", "WatchPrior", "fit_watch_prior"]

_EPS = 1e-3  # probabilities kept in [eps, 1 - eps]: log-odds within about +-6.9
_LOGISTIC_EPS = 1e-6
"""The floor of a logistic calibration: most of a catalogue is far below 1e-3 for a
given user, and a floor there ties it (inside a list of obscure items, AUC fell from
0.919 to 0.871 on the ML-1M protocol); log-odds within about +-13.8."""


class PairScorer(Protocol):
    """What the watch prior needs of a fitted scorer."""

    def scores(self, user: str, items: Sequence[str]) -> np.ndarray:
        """Scores of `items` for `user` (finite)."""

    def score_pairs(self, pairs: pd.DataFrame) -> np.ndarray:
        """Scores of ``user_id, item_id`` pairs, in their order (finite)."""


class SessionScorer(Protocol):
    """A scorer that reads what a user took after the training log."""

    def scores(self, user: str, items: Sequence[str], recent: Sequence[str] = ()) -> np.ndarray:
        """Raw scores of `items` for `user` after `recent` (oldest first)."""


@dataclass
class WatchPrior:
    """Implicit scores of the simulated users over the catalogue, and their calibration.

    Attributes:
        kind: The implicit scorer.
        users: User ids (rows).
        items: Item ids (columns).
        matrix: ``[users, items]`` scores of the model fitted on all training data: a
            dense matrix, or the factors of the model's table.
        knots: ``[2, k]`` the calibration: scores and their probabilities.
        eps: Probabilities are kept in ``[eps, 1 - eps]``.
        fallback: The raw score of an item outside the matrix (an item no training
            data holds): the matrix's lowest, never a score the scorer did not give (0
            is high on the stacked model's log-odds scale: the 177 ML-1M items without
            a training rating were ranked above the positives of uniform lists).
        session: The model behind the matrix, when it reads a session's watches (the
            stacked choice model: its recency features): :meth:`log_odds` asks it
            again for a user who watched something in the session. Not saved: a prior
            read from disk gets it back from :func:`~personasim.agents.choice_prior.
            fit_choice_prior` (unset: a session does not move the prior).
    """

    kind: str
    users: list[str]
    items: list[str]
    matrix: np.ndarray | ScoreFactors
    knots: np.ndarray
    eps: float = _EPS
    fallback: float = 0.0
    session: SessionScorer | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._u = {u: i for i, u in enumerate(self.users)}
        self._i = {it: i for i, it in enumerate(self.items)}

    def log_odds_of(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated log-odds of raw scores."""
        p = np.interp(np.asarray(scores, dtype="float64"), self.knots[0], self.knots[1])
        p = np.clip(p, self.eps, 1 - self.eps)
        return np.log(p) - np.log1p(-p)

    def scores(self, user: str, items: list[str]) -> np.ndarray:
        """Raw scores of `items` for `user` (0 outside the matrix: an unknown user or
        an item nobody rated)."""
        row = self._u.get(user)
        out = np.full(len(items), self.fallback)
        if row is None:
            return out
        columns = np.array([self._i.get(item, -1) for item in items], dtype=np.int64)
        inside = columns >= 0
        if isinstance(self.matrix, ScoreFactors):
            out[inside] = self.matrix.cells(np.full(int(inside.sum()), row), columns[inside])
        else:
            out[inside] = self.matrix[row, columns[inside]]
        return out

    def log_odds(
        self,
        user: str,
        items: list[str],
        like: Sequence[str] | None = None,
        recent: Sequence[str] = (),
    ) -> np.ndarray:
        """The prior's log-odds that `user` would watch each of `items`.

        Args:
            user: The user.
            items: The items.
            like: For a user the prior has no row for (a cold user): the users whose
                mean scores stand for theirs (e.g. their persona's members; those the
                prior has no row for are ignored); unset or none known: every row.
            recent: What the user watched in this session, oldest first: read by
                :attr:`session` when there is one (the matrix holds the scores before
                the session).
        """
        if len(recent) and self.session is not None and user in self._u and len(items):
            raw = self.session.scores(user, items, recent)
            outside = np.array([i not in self._i for i in items])
            return self.log_odds_of(np.where(outside, self.fallback, raw))
        if user in self._u or not len(self.users):
            return self.log_odds_of(self.scores(user, items))
        rows = [self._u[u] for u in (like or ()) if u in self._u] or list(range(len(self.users)))
        columns = np.array([self._i.get(i, -1) for i in items], dtype=int)
        if isinstance(self.matrix, ScoreFactors):
            mean = self.matrix.mean_row(np.asarray(rows))
        else:
            mean = self.matrix[rows].mean(axis=0)
        return self.log_odds_of(np.where(columns >= 0, mean[np.maximum(columns, 0)], self.fallback))

    def save(self, folder: Path) -> None:
        """Write ``ADAPTERS.watch_prior`` (no pickles): the dense matrix, or the
        factors' arrays named ``factors_*``."""
        if isinstance(self.matrix, ScoreFactors):
            table = {f"factors_{k}": v for k, v in self.matrix.arrays().items()}
        else:
            table = {"matrix": self.matrix.astype("float32")}
        with atomic_path(ADAPTERS.watch_prior.under(folder)) as tmp, tmp.open("wb") as f:
            np.savez(
                f,
                kind=np.array(self.kind),
                users=np.array(self.users, dtype=str),
                items=np.array(self.items, dtype=str),
                knots=self.knots.astype("float64"),
                eps=np.array(self.eps),
                fallback=np.array(self.fallback),
                **table,
            )

    @classmethod
    def load(cls, folder: Path) -> WatchPrior:
        """Read what :meth:`save` wrote."""
        data = np.load(ADAPTERS.watch_prior.under(folder), allow_pickle=False)
        matrix: np.ndarray | ScoreFactors
        if "matrix" in data.files:
            matrix = data["matrix"]
        else:
            prefix = "factors_"
            matrix = ScoreFactors.from_arrays(
                {k[len(prefix) :]: data[k] for k in data.files if k.startswith(prefix)}
            )
        return cls(
            str(data["kind"]),
            [str(u) for u in data["users"]],
            [str(i) for i in data["items"]],
            matrix,
            data["knots"],
            float(data["eps"]) if "eps" in data.files else _EPS,  # earlier files: 1e-3
            float(data["fallback"]) if "fallback" in data.files else 0.0,  # and 0
        )


def _calibrate(
    scores: np.ndarray, labels: np.ndarray, method: Literal["isotonic", "logistic"]
) -> np.ndarray:
    """P(label | score) as knots for :func:`numpy.interp`: isotonic, or logistic in
    the score (strictly monotone: knots on 512 points spanning the scores and beyond)."""
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    if method == "logistic" and len(set(labels)) > 1:
        fit = LogisticRegression(C=1e4).fit(scores[:, None], labels)
        low, high = float(scores.min()), float(scores.max())
        margin = max(high - low, 1.0)
        x = np.linspace(low - margin, high + margin, 512)
        return np.stack([x, fit.predict_proba(x[:, None])[:, 1]])

    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
    iso.fit(scores, labels)
    x, y = iso.X_thresholds_, iso.y_thresholds_
    if len(x) == 1:  # one distinct score: a constant
        x, y = np.array([x[0], x[0] + 1.0]), np.array([y[0], y[0]])
    return np.stack([x, y])


def fit_watch_prior(
    kind: str,
    train: pd.DataFrame,
    others: pd.DataFrame,
    users: list[str],
    items: list[str],
    watch: pd.DataFrame,
    *,
    seed: int,
    folds: int = 5,
    fit_scorer: Callable[[pd.DataFrame], PairScorer] | None = None,
    full_scorer: PairScorer | None = None,
    calibration: Literal["isotonic", "logistic"] = "isotonic",
) -> tuple[WatchPrior, np.ndarray]:
    """Fit the watch prior and score the agents' watch examples out of fold.

    Args:
        kind: The scorer's name: an implicit scorer ("popularity", "itemknn",
            "implicit_mf"), or the name of what `fit_scorer` fits.
        train: The simulated users' train ratings.
        others: The other users' ratings (always in the fit).
        users: The simulated users (the matrix rows).
        items: The catalogue's items with training ratings (the matrix columns).
        watch: The watch examples, ``user_id, item_id, target`` (1 watched, 0 not).
        seed: Folds and model seeds.
        folds: Folds of the out-of-fold scores.
        fit_scorer: Fits the scorer on a log (``user_id, item_id, rating,
            timestamp``); unset: :func:`~personasim.cf.implicit.fit_implicit` of `kind`.
        full_scorer: The scorer already fitted on all of `train` and `others`.
        calibration: How scores become probabilities.

    Returns:
        The prior, and the calibrated out-of-fold log-odds of each watch example.
    """
    cols = ["user_id", "item_id", "rating", "timestamp"]
    if fit_scorer is None:

        def fit_scorer(log: pd.DataFrame) -> PairScorer:
            return fit_implicit(kind, log, seed=seed)

    rng = np.random.default_rng(seed)
    fold_of_rating = rng.integers(0, folds, len(train))
    key = train["user_id"].astype(str) + "\x1f" + train["item_id"].astype(str)
    fold_of = dict(zip(key, fold_of_rating, strict=True))
    watch_key = watch["user_id"].astype(str) + "\x1f" + watch["item_id"].astype(str)
    example_fold = np.array(
        [fold_of.get(k, -1) for k in watch_key], dtype=int
    )  # a negative (not rated) gets a random fold
    unrated = example_fold < 0
    example_fold[unrated] = rng.integers(0, folds, int(unrated.sum()))
    oof = np.zeros(len(watch))
    for fold in range(folds):
        held = fold_of_rating == fold
        scorer = fit_scorer(pd.concat([train.loc[~held, cols], others[cols]], ignore_index=True))
        mine = example_fold == fold
        if mine.any():
            oof[mine] = scorer.score_pairs(watch.loc[mine, ["user_id", "item_id"]])
    knots = _calibrate(oof, watch["target"].to_numpy(dtype="float64"), calibration)
    full = full_scorer
    if full is None:
        full = fit_scorer(pd.concat([train[cols], others[cols]], ignore_index=True))
    eps = _LOGISTIC_EPS if calibration == "logistic" else _EPS
    matrix = _matrix(full, users, items)
    if isinstance(matrix, ScoreFactors):
        fallback = matrix.minimum()
    else:
        fallback = float(matrix.min()) if matrix.size else 0.0
    prior = WatchPrior(kind, users, items, matrix, knots, eps, fallback)
    return prior, prior.log_odds_of(oof)


def _matrix(scorer: PairScorer, users: list[str], items: list[str]) -> np.ndarray | ScoreFactors:
    """The users x items scores: the model's factors where the scorer gives them
    (:meth:`~personasim.cf.implicit.ImplicitScorer.factors`), else a dense matrix (in
    batches of users where the scorer has ``score_many``, else user by user)."""
    if not users:
        return np.zeros((0, 0))
    factors = getattr(scorer, "factors", None)
    table = factors(users, items) if callable(factors) else None
    if table is not None:
        return table
    many = getattr(scorer, "score_many", None)
    if callable(many):
        return many(users, items)
    return np.stack([scorer.scores(u, items) for u in users])
