"""The feedback loop as a study: what a recommender does to its users over rounds.

Each round, every recommender is retrained on the training log plus what the agents took
(watched) in its earlier rounds, ranks again, and the agents' sessions run again. Per
recommender and round the study records:

- ``watch_rate`` and ``likes`` (per session) of the sessions;
- ``coverage``: the share of the catalogue in the users' top-k lists;
- ``gini_exposure``: the Gini coefficient of how often each catalogue item is in a
  list (0: every item as often; 1: one item in every list);
- ``genre_entropy``: the Shannon entropy (bits) of the genres of a user's list, mean
  over users; ``popularity``: the mean popularity percentile of the listed items in the
  original training log;
- ``history_drift``: how far the users' own histories moved, the Jensen-Shannon
  divergence (bits, 0..1) between the genres of their training history and of their
  history now (training plus what they took), mean over users.

:func:`loop_trend` reads a recommender's rounds: it narrows (a filter bubble: fewer
genres per list, or a smaller share of the catalogue) or broadens, or stays; a change
counts only when it is beyond :data:`TREND_TOLERANCE` and its 95% interval over the users
(:func:`change_intervals`, paired) does not hold 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon

from personasim.cf.choice_features import genre_matrix
from personasim.simulation.measures import list_drift, user_genre_entropy

__all__ = [
    "FEEDBACK_MEASURES",
    "TREND_TOLERANCE",
    "change_intervals",
    "exposure_measures",
    "gini",
    "history_drift",
    "loop_trend",
]

FEEDBACK_MEASURES = (
    "watch_rate",
    "likes",
    "coverage",
    "gini_exposure",
    "genre_entropy",
    "popularity",
    "history_drift",
)
"""The measures of each round."""

TREND_TOLERANCE = {"genre_entropy": 0.02, "coverage": 0.05}
"""Relative changes from the first round to the last below which a recommender "stays":
2% of the lists' genre entropy, 5% of their coverage."""


def gini(counts: Sequence[float] | np.ndarray) -> float:
    """The Gini coefficient of non-negative counts (0: equal; near 1: concentrated)."""
    values = np.sort(np.asarray(counts, dtype="float64"))
    n, total = len(values), float(values.sum())
    if n == 0 or total == 0:
        return math.nan
    ranks = np.arange(1, n + 1)
    return float((2 * (ranks * values).sum()) / (n * total) - (n + 1) / n)


def exposure_measures(
    lists: pd.DataFrame,
    catalogue: Sequence[str],
    genres: Mapping[str, list[str]],
    popularity: Mapping[str, float],
) -> dict[str, float]:
    """Coverage, Gini of exposure, genre entropy and popularity of top-k lists.

    Args:
        lists: ``user_id, item_id``, one row per listed item.
        catalogue: The items that could be listed (the training items).
        genres: Genres of each item.
        popularity: Popularity percentile of each item (0: least rated, 1: most).
    """
    counts = lists["item_id"].astype(str).value_counts()
    exposure = counts.reindex(pd.Index([str(i) for i in catalogue]), fill_value=0)
    drift = list_drift(lists, genres, popularity)
    return {
        "coverage": float((exposure > 0).mean()) if len(exposure) else math.nan,
        "gini_exposure": gini(exposure.to_numpy()),
        "genre_entropy": drift["genre_entropy"],
        "popularity": drift["popularity"],
    }


def history_drift(
    start: Mapping[str, Sequence[str]],
    now: Mapping[str, Sequence[str]],
    genres: Mapping[str, list[str]],
) -> float:
    """Mean over users of the Jensen-Shannon divergence (base 2) between the genres of
    their `start` history and of their history `now` (users without genres skipped)."""
    items = sorted({str(i) for history in (*start.values(), *now.values()) for i in history})
    shares = genre_matrix(np.array(items, dtype=object), genres)  # an item's genres share 1
    if not shares.shape[1]:
        return math.nan
    row = {item: k for k, item in enumerate(items)}
    drifts = []
    for user, before in start.items():
        a = shares[[row[str(i)] for i in before]].sum(axis=0)
        b = shares[[row[str(i)] for i in now.get(user, before)]].sum(axis=0)
        if a.sum() > 0 and b.sum() > 0:
            drifts.append(float(jensenshannon(a, b, base=2)) ** 2)
    return float(np.mean(drifts)) if drifts else math.nan


def change_intervals(
    first: pd.DataFrame,
    last: pd.DataFrame,
    catalogue_size: int,
    genres: Mapping[str, list[str]],
    *,
    rounds: int = 1000,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """95% intervals (a percentile bootstrap over the users, paired: the same users'
    lists in both rounds) of the change from the `first` round's top-k lists to the
    `last` one's, in the mean genre entropy of a list (bits) and in catalogue coverage.

    Args:
        first: ``user_id, item_id`` of the first round's lists.
        last: The same of the last round's.
        catalogue_size: The items that could be listed (coverage's denominator).
        genres: Genres of each item.
        rounds: Bootstrap resamples.
        seed: Their seed.
    """
    from scipy.stats import bootstrap

    def interval(statistic: Any, n: int) -> tuple[float, float]:
        found = bootstrap(
            (np.arange(n),),
            statistic,
            vectorized=False,
            n_resamples=rounds,
            method="percentile",
            random_state=seed,
        ).confidence_interval
        return float(found.low), float(found.high)

    out: dict[str, tuple[float, float]] = {}
    before, after = user_genre_entropy(first, genres), user_genre_entropy(last, genres)
    both = before.index.intersection(after.index)
    delta = (after.loc[both, "entropy"] - before.loc[both, "entropy"]).to_numpy()
    if len(delta) > 1:
        out["genre_entropy"] = interval(lambda picked: delta[picked].mean(), len(delta))
    users = sorted(set(first["user_id"]) & set(last["user_id"]))
    if len(users) > 1 and catalogue_size:
        a, b = (frame.groupby("user_id")["item_id"].agg(list) for frame in (first, last))
        a, b = a.reindex(users).tolist(), b.reindex(users).tolist()

        def coverage_change(picked: np.ndarray) -> float:
            listed_a = {i for k in picked for i in a[k]}
            listed_b = {i for k in picked for i in b[k]}
            return (len(listed_b) - len(listed_a)) / catalogue_size

        out["coverage"] = interval(coverage_change, len(users))
    return out


def loop_trend(
    rounds: pd.DataFrame, intervals: Mapping[str, tuple[float, float]] | None = None
) -> dict[str, Any]:
    """Whether one recommender's lists narrow, broaden or stay over its rounds.

    Args:
        rounds: Its rows of the study, one per round (``round`` and the measures).
        intervals: The 95% intervals of the first-to-last changes
            (:func:`change_intervals`): a change whose interval holds 0 counts as none,
            whatever its size.

    Returns:
        ``trend`` ("narrows", "broadens", "stays" or "mixed": one sign says narrower
        and the other broader), the first and last values of the measures read, and
        ``sentence``: the trend in words, with the numbers.
    """
    ordered = rounds.sort_values("round")
    first, last = ordered.iloc[0], ordered.iloc[-1]
    signs = []
    for measure, tolerance in TREND_TOLERANCE.items():
        before, after = float(first[measure]), float(last[measure])
        if not (math.isfinite(before) and math.isfinite(after)) or before == 0:
            continue
        change = (after - before) / abs(before)
        low, high = (intervals or {}).get(measure, (-np.inf, np.inf))
        noise = low <= 0 <= high and (intervals or {}).get(measure) is not None
        signs.append(0 if abs(change) <= tolerance or noise else int(np.sign(change)))
    if not signs or all(s == 0 for s in signs):
        trend = "stays"
    elif all(s <= 0 for s in signs):
        trend = "narrows"
    elif all(s >= 0 for s in signs):
        trend = "broadens"
    else:
        trend = "mixed"
    name = str(first.get("recommender", "the recommender"))
    words = {
        "narrows": "narrows (a filter bubble)",
        "broadens": "broadens",
        "stays": "stays as it was",
        "mixed": "moves both ways",
    }[trend]
    rounds_run = int(last["round"])
    spread = {
        m: f" (95% {low:+.2f} .. {high:+.2f})"
        if m == "genre_entropy"
        else f" (95% {low:+.1%} .. {high:+.1%})"
        for m, (low, high) in (intervals or {}).items()
    }
    sentence = (
        f"{name} {words} over {rounds_run} rounds: genre entropy of its lists "
        f"{first['genre_entropy']:.2f} -> {last['genre_entropy']:.2f} bits"
        f"{spread.get('genre_entropy', '')}, catalogue coverage {first['coverage']:.1%} -> "
        f"{last['coverage']:.1%}{spread.get('coverage', '')}, Gini of exposure "
        f"{first['gini_exposure']:.3f} -> {last['gini_exposure']:.3f}, popularity "
        f"{first['popularity']:.2f} -> {last['popularity']:.2f}; the users' histories "
        f"drifted {last['history_drift']:.3f} bits from their training genres"
    )
    return {
        "trend": trend,
        "intervals": {m: [round(v, 6) for v in pair] for m, pair in (intervals or {}).items()},
        "first": {m: _number(first.get(m)) for m in FEEDBACK_MEASURES},
        "last": {m: _number(last.get(m)) for m in FEEDBACK_MEASURES},
        "sentence": sentence,
    }


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return round(value, 6) if math.isfinite(value) else None
