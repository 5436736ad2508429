"""Taste alignment (Agent4Rec's protocol): can a model tell a user's items from others?

Each user gets candidate lists of up to `candidates` items: held-out positives (items
the user rated in the test part) and negatives (items the user never rated anywhere) at
1:r for each ratio r. Negatives come from a sampler: "uniform" over the catalogue
(Agent4Rec's), or "popularity" (each negative drawn from the same train-popularity
decile as one of the user's positives, so the negatives are as popular as the
positives and popularity alone cannot separate them).

The lists are nested to keep scoring cheap: the 1:9 list's positives are the first of
the 1:1 list's, and each list's negatives are the first of one per-user ordering, so a
model scores each (user, item) once whatever the ratios.

"Shown" lists are what recommenders show: each user's top `candidates` unrated items of
a recommender fitted on the training data, labelled by the held-out log (sampler
``shown:NAME``, ratio 0): where a simulator is used, the question is how well a model
orders the items inside such a list, not whether it tells them from random ones. They
are measured by AUC alone (no threshold is calibrated for them).

A model answers yes/no by thresholding its score. The threshold of every (model,
sampler, ratio) is calibrated on lists built the same way from the *train* part
(maximum pooled F1), never on test. Accuracy, precision, recall and F1 are computed
per list and averaged over users; AUC likewise (threshold-free).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve

__all__ = [
    "POPULARITY_BINS",
    "SHOWN",
    "TasteLists",
    "best_f1_threshold",
    "calibration",
    "candidate_lists",
    "list_metrics",
    "positives_in_list",
    "shown_lists",
]

POPULARITY_BINS = 10
"""Train-popularity quantile bins of the "popularity" negative sampler."""

TASTE_SAMPLERS = ("uniform", "popularity")

SHOWN = "shown:"
"""Prefix of the sampler of a recommender's shown lists (``shown:itemknn``)."""


def positives_in_list(candidates: int, ratio: int) -> int:
    """Positives in a list of `candidates` items at 1:`ratio` (at least one)."""
    return max(1, candidates // (1 + ratio))


@dataclass(frozen=True)
class TasteLists:
    """Candidate lists of many users.

    Attributes:
        lists: One row per (user, sampler, ratio, item): ``user_id, sampler, ratio,
            item_id, positive``.
        pairs: The unique ``user_id, item_id`` pairs a model must score.
    """

    lists: pd.DataFrame
    pairs: pd.DataFrame


def _popularity_bins(items: pd.DataFrame, bins: int) -> pd.Series:
    ranks = items["train_count"].rank(method="first")
    return pd.Series(
        pd.qcut(ranks, q=min(bins, len(items)), labels=False).to_numpy(),
        index=items["item_id"].astype(str).to_numpy(),
    )


def candidate_lists(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    users: Sequence[str],
    *,
    part: str,
    candidates: int,
    ratios: Sequence[int],
    samplers: Sequence[str],
    seed: int,
) -> TasteLists:
    """Build every user's candidate lists from the `part` ("test" or "train") split.

    Args:
        interactions: ``user_id, item_id, split`` of the sampled users.
        items: The catalogue, ``item_id, train_count``.
        users: The users to build lists for (users without an item in `part` are left
            out).
        part: Where the positives come from: "test" to evaluate, "train" to calibrate.
        candidates: Items per list (Agent4Rec: 20).
        ratios: Negatives per positive, one list per ratio (e.g. 1, 3, 9).
        samplers: Negative samplers, from "uniform" and "popularity".
        seed: Seed of every draw.

    Returns:
        The lists and the unique pairs to score.
    """
    unknown = [s for s in samplers if s not in TASTE_SAMPLERS]
    if unknown:
        raise ValueError(f"unknown taste sampler(s) {unknown}; known: {list(TASTE_SAMPLERS)}")
    rng = np.random.default_rng(seed)
    catalogue = items["item_id"].astype(str).to_numpy()
    bin_of = _popularity_bins(items, POPULARITY_BINS)
    members = {b: catalogue[bin_of.to_numpy() == b] for b in np.unique(bin_of.to_numpy())}
    by_user = interactions.assign(
        user_id=interactions["user_id"].astype(str), item_id=interactions["item_id"].astype(str)
    ).groupby("user_id")
    rows: list[tuple[str, str, int, str, bool]] = []
    for user in users:
        if user not in by_user.groups:
            continue
        mine = by_user.get_group(user)
        seen = set(mine["item_id"])
        pool = np.sort(mine.loc[mine["split"] == part, "item_id"].to_numpy())
        if len(pool) == 0:
            continue
        pool = rng.permutation(pool)
        n_pos = {r: min(positives_in_list(candidates, r), len(pool)) for r in ratios}
        n_neg = max(n_pos[r] * r for r in ratios)
        for sampler in samplers:
            if sampler == "uniform":
                negatives = _uniform(catalogue, seen, n_neg, rng)
            else:
                negatives = _popularity_matched(pool, bin_of, members, seen, n_neg, rng)
            for r in ratios:
                for item in pool[: n_pos[r]]:
                    rows.append((user, sampler, r, item, True))
                for item in negatives[: n_pos[r] * r]:
                    rows.append((user, sampler, r, item, False))
    lists = pd.DataFrame(rows, columns=["user_id", "sampler", "ratio", "item_id", "positive"])
    pairs = lists[["user_id", "item_id"]].drop_duplicates().reset_index(drop=True)
    return TasteLists(lists=lists, pairs=pairs)


def shown_lists(
    interactions: pd.DataFrame,
    recommenders: Mapping[str, Callable[[str, list[str], int], list[str]]],
    users: Sequence[str],
    *,
    candidates: int,
) -> pd.DataFrame:
    """Each user's top `candidates` items of each recommender, given the user's train
    items, labelled by the test part (``user_id, sampler, ratio, item_id, positive``;
    sampler ``shown:NAME``, ratio 0).

    Args:
        interactions: ``user_id, item_id, split`` of the sampled users.
        recommenders: Name -> ``recommend(user_id, train_items, n)`` (item ids, best
            first; items of the history and repeats are dropped here).
        users: The users to build lists for.
        candidates: Items per list.
    """
    frame = interactions.assign(
        user_id=interactions["user_id"].astype(str), item_id=interactions["item_id"].astype(str)
    )
    train = frame[frame["split"] == "train"].groupby("user_id")["item_id"].agg(list)
    test = frame[frame["split"] == "test"].groupby("user_id")["item_id"].agg(set)
    rows: list[tuple[str, str, int, str, bool]] = []
    for name, recommend in recommenders.items():
        for user in users:
            history = train.get(user, [])
            seen = set(history)
            taken = test.get(user, set())
            shown = list(dict.fromkeys(i for i in map(str, recommend(user, history, candidates))))
            shown = [i for i in shown if i not in seen][:candidates]
            rows += [(user, SHOWN + name, 0, item, item in taken) for item in shown]
    return pd.DataFrame(rows, columns=["user_id", "sampler", "ratio", "item_id", "positive"])


def _uniform(catalogue: np.ndarray, seen: set[str], n: int, rng: np.random.Generator) -> list[str]:
    out: list[str] = []
    for item in rng.permutation(catalogue):
        if item not in seen:
            out.append(str(item))
            if len(out) == n:
                break
    return out


def _popularity_matched(
    positives: np.ndarray,
    bin_of: pd.Series,
    members: dict[int, np.ndarray],
    seen: set[str],
    n: int,
    rng: np.random.Generator,
) -> list[str]:
    """`n` unseen items, the k-th from the popularity bin of positive k (cyclically);
    a bin with nothing left lends from the nearest bin."""
    shuffled = {b: list(rng.permutation(m)) for b, m in members.items()}
    taken = set(seen)
    order = sorted(members)
    out: list[str] = []
    for k in range(n):
        want = int(bin_of[positives[k % len(positives)]])
        for b in sorted(order, key=lambda b: (abs(b - want), b)):
            bucket = shuffled[b]
            while bucket and bucket[-1] in taken:
                bucket.pop()
            if bucket:
                item = str(bucket.pop())
                taken.add(item)
                out.append(item)
                break
    return out


def best_f1_threshold(scores: np.ndarray, positive: np.ndarray) -> float:
    """The score threshold (answer yes when ``score >= threshold``) with the highest
    pooled F1 on calibration lists; ties go to the higher threshold."""
    scores = np.asarray(scores, "float64")
    positive = np.asarray(positive, bool)
    if not positive.any():
        return float("inf")
    precision, recall, thresholds = precision_recall_curve(positive, scores)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0)
    f1 = f1[:-1]  # the last point has no threshold
    best = np.flatnonzero(f1 >= f1.max() - 1e-12)
    return float(thresholds[best[-1]])


def list_metrics(scored: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Accuracy, precision, recall, F1 and AUC of each candidate list, all lists at once
    (scikit-learn's definitions, tested against it: its per-list calls took 3 ms per
    list, minutes on the full protocol's lists).

    Args:
        scored: ``user_id, positive, score`` of one model's lists of one sampler and
            ratio (one list per user).
        threshold: Yes when ``score >= threshold``.

    Returns:
        One row per user: ``user_id, accuracy, precision, recall, f1, auc`` (precision,
        recall and F1 are 0 where their denominator is; AUC is the Mann-Whitney
        statistic with ties counted half, NaN for a list of one class).
    """
    columns = ["user_id", "accuracy", "precision", "recall", "f1", "auc"]
    if scored.empty:
        return pd.DataFrame(columns=columns)
    positive = scored["positive"].to_numpy(bool)
    score = scored["score"].to_numpy("float64")
    yes = score >= threshold
    frame = pd.DataFrame(
        {
            "user_id": scored["user_id"].to_numpy(),
            "n": 1,
            "p": positive,
            "tp": positive & yes,
            "fp": ~positive & yes,
            "fn": positive & ~yes,
            "right": positive == yes,
            # average ranks within the list: the AUC's sum of the positives' ranks
            "rank": pd.Series(score).groupby(scored["user_id"].to_numpy()).rank().to_numpy()
            * positive,
        }
    )
    sums = frame.groupby("user_id", sort=True).sum()
    n, p, tp, fp, fn = (sums[c].to_numpy("float64") for c in ("n", "p", "tp", "fp", "fn"))

    def ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
        return np.divide(top, bottom, out=np.zeros_like(top), where=bottom > 0)

    negatives = n - p
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (sums["rank"].to_numpy("float64") - p * (p + 1) / 2) / (p * negatives)
    auc[(p == 0) | (negatives == 0)] = np.nan
    return pd.DataFrame(
        {
            "user_id": sums.index.to_numpy(),
            "accuracy": sums["right"].to_numpy("float64") / n,
            "precision": ratio(tp, tp + fp),
            "recall": ratio(tp, tp + fn),
            "f1": ratio(2 * tp, 2 * tp + fp + fn),
            "auc": auc,
        },
        columns=columns,
    )


def calibration(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """How well P(watch) matches how often users watch: the reliability curve and the
    expected calibration error.

    The probabilities are cut into `bins` equal-width bins over [0, 1]; a bin's point is
    (mean probability, share of positives) with its count; the ECE is the count-weighted
    mean gap between the two (0: perfectly calibrated).
    """
    p = np.clip(np.asarray(probabilities, dtype="float64"), 0.0, 1.0)
    y = np.asarray(labels, dtype="float64")
    which = np.minimum((p * bins).astype(int), bins - 1)
    curve, gap = [], 0.0
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        if n:
            mean_p, share = float(p[inside].mean()), float(y[inside].mean())
            curve.append(
                {"bin": b, "predicted": round(mean_p, 4), "observed": round(share, 4), "n": n}
            )
            gap += n * abs(mean_p - share)
    return {"ece": round(gap / max(len(p), 1), 6), "curve": curve, "n": int(len(p))}
