"""Features of a user's next choice: what the implicit scorers, the clock and the genres
say about a (user, item) pair, given a training log.

Every feature is computed from one log (``user_id, item_id, rating, timestamp``): the
scorers are fitted on it, each user's history is their rows of it in time order, and a
user's "now" is their last timestamp in it. Families (each can be left out by name):

- ``popularity``: log(1 + the item's ratings), and log(1 + its ratings in the
  `recent_days` before the user's now (what was being watched when they chose);
- ``itemknn``: item-kNN over the whole history, and over the last `recent_items` and
  last ``recent_items // 4`` items (what they just watched);
- ``implicit_mf``, ``bpr``, ``userknn``: the scores of those LensKit models;
- ``sasrec``: the sequential model's next-item logit after the user's history in time
  order (a session's watches last);
- ``genre``: the share of the user's history in the item's genres;
- ``time``: log(1 + days between the item's first rating and the user's now);
- ``activity``: log(1 + the user's history length).

A score a model cannot give (no neighbour, an item outside the log) is NaN, which the
combiner (:mod:`personasim.cf.choice`) learns to read. Each feature also comes as its
percentile among the user's reference items (up to `reference_items` items the user has
not taken, a sample fixed per user): where an item would stand in this user's own
ranking, comparable across users whose raw scores are on other scales.

:func:`~personasim.cf.choice_fitting.fit_choice_features` fits the families on a log;
:class:`ChoiceFeatures` computes the features of pairs from what it fitted.
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, get_args

import numpy as np
import pandas as pd
from cachetools import LRUCache

from personasim.config import ChoiceFamily

__all__ = [
    "CHOICE_FAMILIES",
    "SCORER_FAMILIES",
    "ChoiceFeatures",
    "ChoiceSettings",
    "genre_matrix",
    "item_genres",
]

CHOICE_FAMILIES: tuple[str, ...] = get_args(ChoiceFamily)
"""The feature families of the choice model, in feature order."""

SCORER_FAMILIES = ("itemknn", "implicit_mf", "bpr", "userknn", "sasrec")
"""The families whose features are a LensKit scorer's (trained by
:func:`~personasim.cf.choice_fitting.fit_choice_features`)."""
_SESSION_FAMILIES = ("itemknn", "sasrec", "genre", "activity")
"""The families whose features read a session's watches (the rest see the log only)."""
_REFERENCE_CACHE = 1024
"""Users whose reference features (without a session) are kept between calls."""
_DAY = 86_400.0


@dataclass(frozen=True)
class ChoiceSettings:
    """Hyper-parameters of the choice features."""

    neighbors: int = 20
    """Neighbours of item-kNN and user-kNN."""
    embedding_size: int = 50
    """Latent factors of implicit MF and BPR."""
    epochs: int = 10
    """Epochs of implicit MF (ALS) and BPR."""
    sequential_epochs: int = 10
    """Epochs of SASRec."""
    recent_items: int = 20
    """The user's last items that the recent item-kNN features look at (and a quarter
    of them for the most recent one)."""
    recent_days: float = 30.0
    """The window of the recent popularity, days before the user's last rating."""
    reference_items: int = 1000
    """Unseen items per user that the percentile features are taken among."""


def _family_columns(family: str) -> list[str]:
    return {
        "popularity": ["popularity", "recent_popularity"],
        "itemknn": ["itemknn", "itemknn_recent", "itemknn_last"],
    }.get(family, [family])


@dataclass
class ChoiceFeatures:
    """The fitted feature families of one log; :meth:`pairs` computes the features.

    Attributes:
        families: The families computed (in :data:`CHOICE_FAMILIES` order).
        columns: The feature columns, in order.
        settings: The hyper-parameters.
    """

    families: tuple[str, ...]
    settings: ChoiceSettings
    pipelines: dict[str, Any]
    histories: dict[str, np.ndarray]
    now: dict[str, float]
    item_code: dict[str, int]
    item_count: np.ndarray
    item_first: np.ndarray
    time_keys: np.ndarray
    time_span: float
    item_genres: np.ndarray
    _references: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._references = LRUCache(maxsize=_REFERENCE_CACHE)

    @property
    def raw_columns(self) -> list[str]:
        """The raw feature columns, in order."""
        return [c for f in self.families for c in _family_columns(f)]

    @property
    def columns(self) -> list[str]:
        """Every feature column: the raw ones, then their percentiles."""
        return self.raw_columns + [f"{c}_percentile" for c in self.raw_columns]

    def unseen(self, user: str) -> np.ndarray:
        """The log's items that `user` has not taken, in catalogue order."""
        taken = set(self.histories.get(user, ()))
        return np.array([i for i in self.item_code if i not in taken], dtype=object)

    def reference(self, user: str) -> list[str]:
        """The user's reference items: a sample of :meth:`unseen` fixed per user."""
        unseen = self.unseen(user)
        n = min(len(unseen), self.settings.reference_items)
        rng = np.random.default_rng(zlib.crc32(user.encode()))
        return sorted(rng.choice(unseen, n, replace=False).tolist()) if n else []

    def pairs(
        self,
        pairs: pd.DataFrame,
        recent: Mapping[str, Sequence[str]] | None = None,
    ) -> np.ndarray:
        """The ``[len(pairs), len(columns)]`` features of ``user_id, item_id`` pairs.

        Args:
            pairs: The pairs, in any order.
            recent: Items a user took after the log (a session's watches, oldest first):
                they count as the user's most recent history for the recency features.
        """
        out = np.full((len(pairs), len(self.columns)), np.nan)
        users = pairs["user_id"].astype(str).to_numpy()
        items = pairs["item_id"].astype(str).to_numpy()
        for user, idx in pd.Series(users).groupby(users).indices.items():
            extra = list(recent.get(str(user), ())) if recent else []
            out[idx] = self.user(str(user), items[idx].tolist(), extra)
        return out

    def user(self, user: str, items: Sequence[str], recent: Sequence[str] = ()) -> np.ndarray:
        """The ``[len(items), len(columns)]`` features of one user's `items`."""
        raw = self._raw(user, items, recent)
        reference = self._reference_raw(user, recent)
        percentiles = np.zeros_like(raw)
        for k in range(raw.shape[1]):
            finite = reference[:, k][np.isfinite(reference[:, k])]  # NaNs sort last
            if len(finite):
                rank = np.searchsorted(finite, raw[:, k], side="right") / len(finite)
                percentiles[:, k] = np.where(np.isnan(raw[:, k]), 0.0, rank)
        return np.hstack([raw, percentiles])

    def _reference_raw(self, user: str, recent: Sequence[str]) -> np.ndarray:
        """The raw features of the user's reference items, each column sorted; the
        items, and the features of the families that read no session, are computed once
        per user."""
        kept = self._references.get(user)
        if kept is None:
            items = self.reference(user)
            kept = items, np.sort(self._raw(user, items, ()), axis=0)
            self._references[user] = kept
        items, base = kept
        moved = [f for f in self.families if f in _SESSION_FAMILIES]
        if not len(recent) or not moved:
            return base
        out = base.copy()
        columns = [k for k, f in enumerate(self._column_families()) if f in moved]
        out[:, columns] = np.sort(self._raw(user, items, recent, moved), axis=0)
        return out

    def _column_families(self) -> list[str]:
        return [f for f in self.families for _ in _family_columns(f)]

    def _raw(
        self,
        user: str,
        items: Sequence[str],
        recent: Sequence[str],
        families: Sequence[str] | None = None,
    ) -> np.ndarray:
        codes = np.array([self.item_code.get(i, -1) for i in items], dtype=np.int64)
        known = codes >= 0
        history = self.histories.get(user, np.zeros(0, dtype=object))
        if len(recent):
            history = np.concatenate([history, np.asarray(recent, dtype=object)])
        now = self.now.get(user, np.nan)
        columns: list[np.ndarray] = []
        for family in self.families if families is None else families:
            if family == "popularity":
                columns.append(_masked(np.log1p(self.item_count), codes, known))
                columns.append(self._recent_popularity(codes, known, now))
            elif family == "itemknn":
                columns.append(self._score("itemknn", user, items, None))
                k = self.settings.recent_items
                for last in (k, max(1, k // 4)):
                    columns.append(self._score("itemknn", user, items, history[-last:]))
            elif family == "sasrec":
                columns.append(self._score(family, user, items, None, session=recent))
            elif family in SCORER_FAMILIES:
                columns.append(self._score(family, user, items, None))
            elif family == "genre":
                shares = self._genre_shares(user, history)
                genres = np.zeros((len(items), self.item_genres.shape[1]))
                genres[known] = self.item_genres[codes[known]]
                columns.append(
                    genres @ shares if shares is not None else np.full(len(items), np.nan)
                )
            elif family == "time":
                age = (now - self.item_first[np.maximum(codes, 0)]) / _DAY
                columns.append(np.where(known, np.log1p(np.maximum(age, 0.0)), np.nan))
            elif family == "activity":
                columns.append(np.full(len(items), np.log1p(len(history))))
        return np.stack(columns, axis=1) if columns else np.zeros((len(items), 0))

    def _recent_popularity(self, codes: np.ndarray, known: np.ndarray, now: float) -> np.ndarray:
        if not np.isfinite(now):
            return np.full(len(codes), np.nan)
        base = codes.astype("float64") * self.time_span
        high = np.searchsorted(self.time_keys, base + now, side="right")
        low = np.searchsorted(self.time_keys, base + now - self.settings.recent_days * _DAY)
        return np.where(known, np.log1p(high - low), np.nan)

    def _score(
        self,
        family: str,
        user: str,
        items: Sequence[str],
        history: np.ndarray | None,
        session: Sequence[str] = (),
    ) -> np.ndarray:
        from lenskit import score
        from lenskit.data import ItemList, RecQuery

        if not len(items):
            return np.zeros(0)
        if history is not None and not len(history):
            return np.full(len(items), np.nan)
        query: Any = user
        if history is not None:
            query = RecQuery(user_id=user, history_items=ItemList(item_ids=history))
        elif len(session):
            items_taken = ItemList(item_ids=np.asarray(session, dtype=object))
            query = RecQuery(user_id=user, session_items=items_taken)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"lenskit\..*")
            warnings.filterwarnings("ignore", message=".*history.*")
            scored = score(
                self.pipelines[family], query, ItemList(item_ids=np.array(items, dtype=object))
            )
        values = scored.scores()
        if values is None:
            return np.full(len(items), np.nan)
        return np.asarray(values, dtype="float64")

    def _genre_shares(self, user: str, history: np.ndarray) -> np.ndarray | None:
        codes = np.array([self.item_code.get(str(i), -1) for i in history], dtype=np.int64)
        codes = codes[codes >= 0]
        if not len(codes) or not self.item_genres.shape[1]:
            return None
        totals = self.item_genres[codes].sum(axis=0)
        return totals / max(len(codes), 1)


def item_genres(items: pd.DataFrame) -> dict[str, list[str]]:
    """Item id -> its genres, from a catalogue's ``item_id, genres`` (none without the
    column or where an item has none)."""
    if "genres" not in items:
        return {}
    out = {}
    for item, genres in zip(items["item_id"].astype(str), items["genres"], strict=True):
        if genres is not None and not isinstance(genres, float) and len(genres):
            out[item] = [str(g) for g in genres]
    return out


def _masked(values: np.ndarray, codes: np.ndarray, known: np.ndarray) -> np.ndarray:
    return np.where(known, values[np.maximum(codes, 0)], np.nan)


def genre_matrix(item_ids: np.ndarray, genres: Mapping[str, Iterable[str]]) -> np.ndarray:
    """One row per item: 1 / (its number of genres) on each of its genres."""
    names = sorted({g for i in item_ids for g in genres.get(str(i), ())})
    column = {g: k for k, g in enumerate(names)}
    matrix = np.zeros((len(item_ids), len(names)))
    for row, item in enumerate(item_ids):
        mine = [column[g] for g in genres.get(str(item), ())]
        if mine:
            matrix[row, mine] = 1.0 / len(mine)
    return matrix
