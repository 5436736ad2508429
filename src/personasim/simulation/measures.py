"""What the sessions and the held-out log say about each recommender, and whether the
two agree.

- :func:`session_metrics`: the simulated metrics of Agent4Rec and the usual beyond-
  accuracy ones (watch rate, likes, mean rating, exit page, coverage, novelty).
- :func:`offline_metrics`: nDCG@k (discount 1/log2(rank+1)) and Recall@k (LensKit:
  hits over min(k, held-out items)) of top-k lists against each user's held-out items
  (LensKit's ``RunAnalysis``).
- :func:`rank_agreement`: Kendall's tau and Spearman's rho between two orderings of the
  recommenders (SciPy); :func:`per_user_agreement` does the same per user.
- :func:`list_drift`: genre diversity and popularity of what was shown (feedback loop).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.stats import entropy

__all__ = [
    "SIMULATED_METRICS",
    "item_novelty",
    "list_drift",
    "offline_metrics",
    "per_user_agreement",
    "rank_agreement",
    "session_metrics",
    "user_genre_entropy",
    "user_session_metrics",
]

SIMULATED_METRICS = (
    "watch_rate",
    "likes",
    "like_rate",
    "mean_rating",
    "exit_page",
    "coverage",
    "novelty",
)
"""Simulated metrics per recommender, in the order they are reported."""


def item_novelty(item_counts: Mapping[str, int], n_users: int) -> dict[str, float]:
    """Self-information of each item, ``-log2(share of training users who rated it)``
    (an item nobody rated gets the share of one user)."""
    n = max(n_users, 1)
    return {item: -math.log2(max(count, 1) / n) for item, count in item_counts.items()}


def user_session_metrics(events: pd.DataFrame, sessions: pd.DataFrame) -> pd.DataFrame:
    """Per-user figures of one recommender's sessions: shown, watched, likes, exit page,
    watch rate, like rate, mean rating (NaN when nothing was watched)."""
    per_user = sessions.set_index("user_id")[["pages", "shown", "watched", "liked"]].copy()
    per_user = per_user.rename(columns={"liked": "likes", "pages": "exit_page"})
    shown = per_user["shown"].where(per_user["shown"] > 0)
    per_user["watch_rate"] = per_user["watched"] / shown
    per_user["like_rate"] = per_user["likes"] / shown
    rated = events[events["watched"]].groupby("user_id")["rating"].mean()
    per_user["mean_rating"] = rated.reindex(per_user.index)
    return per_user.reset_index()


def session_metrics(
    events: pd.DataFrame,
    sessions: pd.DataFrame,
    *,
    catalogue: int,
    novelty: Mapping[str, float],
) -> dict[str, float]:
    """Simulated metrics of one recommender (or one persona's share of its sessions).

    Args:
        events: The items shown (:data:`~personasim.simulation.sessions.EVENT_COLUMNS`).
        sessions: One row per session.
        catalogue: Number of items the recommender could show (for coverage).
        novelty: Self-information per item (:func:`item_novelty`).

    Returns:
        ``users``, ``shown``; ``watch_rate`` and ``like_rate`` (watched / liked items
        over items shown, pooled); ``likes`` (liked items per user); ``mean_rating`` (of
        watched items); ``exit_page`` (pages seen per session, mean); ``coverage``
        (distinct items shown / catalogue); ``novelty`` (mean self-information of the
        items shown, bits).
    """
    shown = len(events)
    watched = int(events["watched"].sum())
    ratings = events.loc[events["watched"], "rating"]
    return {
        "users": int(len(sessions)),
        "shown": int(shown),
        "watch_rate": watched / shown if shown else math.nan,
        "likes": float(sessions["liked"].mean()) if shown else math.nan,
        "like_rate": float(events["liked"].sum()) / shown if shown else math.nan,
        "mean_rating": float(ratings.mean()) if len(ratings) else math.nan,
        "exit_page": float(sessions["pages"].mean()) if shown else math.nan,
        "coverage": events["item_id"].nunique() / catalogue if catalogue else math.nan,
        "novelty": float(events["item_id"].map(novelty).mean()) if shown else math.nan,
    }


def offline_metrics(
    recommended: Mapping[str, list[str]], test: pd.DataFrame, k: int
) -> pd.DataFrame:
    """nDCG@k and Recall@k of each user's top-k list against the user's held-out items.

    Args:
        recommended: Per user, the ranked item ids (only the first `k` count).
        test: Held-out ``user_id, item_id`` rows (every held-out item is relevant).
        k: List length.

    Returns:
        One row per user of `recommended`: ``user_id``, ``ndcg``, ``recall``, ``hits``.
    """
    # LensKit's NDCG (with LogRankWeight(offset=1)) and Recall, for every list at once:
    # the discount 1 / log2(rank + 1), the common definition (scikit-learn's too); the
    # ideal DCG and Recall's denominator count min(k, relevant items)
    relevant = test[["user_id", "item_id"]].astype(str).drop_duplicates()
    n_relevant = relevant.groupby("user_id").size()
    users = [u for u in recommended if u in n_relevant.index]
    lengths = [min(len(recommended[u]), k) for u in users]
    shown = pd.DataFrame(
        {
            "user_id": np.repeat(np.asarray(users, dtype=object), lengths),
            "item_id": [i for u in users for i in recommended[u][:k]],
            "rank": np.concatenate([np.arange(1, n + 1) for n in lengths] or [np.zeros(0)]),
        }
    )
    hit = shown.merge(relevant.assign(hit=1.0), on=["user_id", "item_id"], how="left")["hit"]
    shown["gain"] = hit.fillna(0.0).to_numpy() / np.log2(shown["rank"].to_numpy() + 1.0)
    shown["hit"] = hit.notna().to_numpy()
    per_user = shown.groupby("user_id", sort=False).agg(dcg=("gain", "sum"), hits=("hit", "sum"))
    per_user = per_user.reindex(users, fill_value=0)
    wanted = np.minimum(n_relevant.reindex(users).to_numpy(), k)
    ideal = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(1, k + 1) + 1.0))])
    return pd.DataFrame(
        {
            "user_id": users,
            "ndcg": per_user["dcg"].to_numpy() / ideal[wanted],
            "recall": per_user["hits"].to_numpy() / wanted,
            "hits": per_user["hits"].to_numpy().astype(int),
        }
    )


def rank_agreement(first: Mapping[str, float], second: Mapping[str, float]) -> dict[str, float]:
    """Kendall's tau (b, ties handled) and Spearman's rho between two scorings of the
    same recommenders; NaN when fewer than 2 are comparable or one side is constant."""
    from scipy.stats import kendalltau, spearmanr

    names = [n for n in first if n in second and np.isfinite(first[n]) and np.isfinite(second[n])]
    a = np.array([first[n] for n in names], dtype=float)
    b = np.array([second[n] for n in names], dtype=float)
    if len(names) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return {"kendall_tau": math.nan, "spearman": math.nan, "n": len(names)}
    return {
        "kendall_tau": float(kendalltau(a, b).statistic),
        "spearman": float(spearmanr(a, b).statistic),
        "n": len(names),
    }


def per_user_agreement(simulated: pd.DataFrame, offline: pd.DataFrame) -> pd.DataFrame:
    """Per user, Kendall's tau and Spearman's rho between the recommenders' simulated
    and offline scores of that user.

    Args:
        simulated: Users x recommenders (e.g. likes per session).
        offline: Users x recommenders (e.g. nDCG@k).

    Returns:
        ``user_id, kendall_tau, spearman``; NaN where a side is constant for that user
        (e.g. nDCG 0 for every recommender).
    """
    from scipy.stats import rankdata

    columns = [c for c in simulated.columns if c in offline.columns]
    users = simulated.index.intersection(offline.index)
    a = simulated.loc[users, columns].to_numpy(dtype="float64")
    b = offline.loc[users, columns].to_numpy(dtype="float64")
    tau = np.full(len(users), np.nan)
    rho = np.full(len(users), np.nan)
    # users with every recommender scored on both sides, all at once (as rank_agreement)
    whole = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
    if len(columns) >= 2:
        defined = whole & (np.ptp(a, axis=1) > 0) & (np.ptp(b, axis=1) > 0)
        x, y = a[defined], b[defined]
        first, second = np.triu_indices(len(columns), k=1)
        sx = np.sign(x[:, first] - x[:, second])
        sy = np.sign(y[:, first] - y[:, second])
        pairs = len(first)  # Kendall's tau-b: ties on one side leave a pair out of its side
        tau[defined] = (sx * sy).sum(axis=1) / np.sqrt(
            (pairs - (sx == 0).sum(axis=1)) * (pairs - (sy == 0).sum(axis=1))
        )
        rx = rankdata(x, axis=1) - (len(columns) + 1) / 2
        ry = rankdata(y, axis=1) - (len(columns) + 1) / 2
        rho[defined] = (rx * ry).sum(axis=1) / np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))
    for row in np.flatnonzero(~whole):  # some recommender unscored: its pairs left out
        result = rank_agreement(
            dict(zip(columns, a[row], strict=True)), dict(zip(columns, b[row], strict=True))
        )
        tau[row], rho[row] = result["kendall_tau"], result["spearman"]
    return pd.DataFrame({"user_id": [str(u) for u in users], "kendall_tau": tau, "spearman": rho})


def user_genre_entropy(events: pd.DataFrame, genres: Mapping[str, list[str]]) -> pd.DataFrame:
    """Per user, the Shannon entropy (bits) of the genres of their items (``user_id,
    item_id``), and the number of distinct genres; users whose items have no genre are
    left out.

    Returns:
        A frame indexed by user: ``entropy``, ``genres``.
    """
    rows = {}
    for user, items in events.groupby("user_id")["item_id"]:
        counts = Counter(g for item in items for g in genres.get(item, []))
        if counts:
            rows[user] = (float(entropy(list(counts.values()), base=2)), len(counts))
    return pd.DataFrame.from_dict(rows, orient="index", columns=["entropy", "genres"])


def list_drift(
    events: pd.DataFrame, genres: Mapping[str, list[str]], popularity: Mapping[str, float]
) -> dict[str, float]:
    """Genre diversity and popularity of recommendation lists.

    Args:
        events: Items recommended or shown (``user_id, item_id``).
        genres: Genres of each item.
        popularity: Popularity percentile of each item in the original training data
            (0: least rated, 1: most rated).

    Returns:
        ``genre_entropy`` (Shannon entropy in bits of the genres of a user's items, mean
        over users), ``genres_per_user`` (distinct genres in a user's items, mean),
        ``popularity`` (mean percentile of the items) and ``coverage_items`` (distinct
        items over all users).
    """
    per_user = user_genre_entropy(events, genres)
    return {
        "genre_entropy": float(per_user["entropy"].mean()) if len(per_user) else math.nan,
        "genres_per_user": float(per_user["genres"].mean()) if len(per_user) else math.nan,
        "popularity": float(events["item_id"].map(popularity).mean()) if len(events) else math.nan,
        "coverage_items": int(events["item_id"].nunique()),
    }
