"""How sure the simulation's verdict is: each recommender's watch rate and likes per
session with 95% intervals, and each one's difference from the simulated best, paired
over users (the same bootstrap resamples of users for every recommender).

The watch rate is pooled (items watched over items shown, as the simulation table
reports it), so each resample recomputes the ratio of sums; likes are per session.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["session_intervals"]

_MEASURES = ("watch_rate", "likes")


def _values(sums: np.ndarray, shown: np.ndarray, users: int, measure: str) -> np.ndarray:
    if measure == "watch_rate":
        with np.errstate(invalid="ignore", divide="ignore"):
            return sums / shown
    return sums / users


def session_intervals(
    sessions: pd.DataFrame,
    *,
    rounds: int = 1000,
    seed: int = 0,
    reference: str | None = None,
    measures: tuple[str, ...] = _MEASURES,
) -> dict[str, Any]:
    """Intervals of the simulated verdict.

    Args:
        sessions: One row per (recommender, user): ``recommender, user_id, shown,
            watched, liked``; every recommender with the same users.
        rounds: Bootstrap resamples of the users.
        seed: Their seed.
        reference: Compare every recommender with this one instead of the best.
        measures: "watch_rate" and/or "likes" (a log without ratings has no likes).

    Returns:
        ``{"recommenders": {name: {watch_rate, watch_rate_ci, likes, likes_ci}},
        "best": {measure: name}, "vs_best": {measure: {name: {difference, ci,
        verdict}}}}``; the best by each measure is the highest estimate (or
        `reference`).
    """
    table = sessions.pivot_table(
        index="user_id", columns="recommender", values=["shown", "watched", "liked"], aggfunc="sum"
    ).fillna(0.0)
    names = list(dict.fromkeys(sessions["recommender"]))
    users = len(table)
    picks = np.random.default_rng(seed).integers(0, users, size=(rounds, users))
    out: dict[str, Any] = {"recommenders": {n: {} for n in names}, "best": {}, "vs_best": {}}
    for measure in measures:
        column = "watched" if measure == "watch_rate" else "liked"
        point, samples = {}, {}
        for name in names:
            top = table[(column, name)].to_numpy(float)
            shown = table[("shown", name)].to_numpy(float)
            point[name] = float(_values(top.sum(), shown.sum(), users, measure))
            samples[name] = _values(
                top[picks].sum(axis=1), shown[picks].sum(axis=1), users, measure
            )
            low, high = np.nanpercentile(samples[name], [2.5, 97.5])
            out["recommenders"][name][measure] = round(point[name], 6)
            out["recommenders"][name][f"{measure}_ci"] = [round(low, 6), round(high, 6)]
        best = reference or max(names, key=lambda n: point[n])
        out["best"][measure] = best
        out["vs_best"][measure] = {}
        for name in names:
            if name == best:
                continue
            diff = samples[name] - samples[best]
            low, high = np.nanpercentile(diff, [2.5, 97.5])
            out["vs_best"][measure][name] = {
                "difference": round(point[name] - point[best], 6),
                "ci": [round(low, 6), round(high, 6)],
                "verdict": "worse" if high < 0 else "better" if low > 0 else "no clear difference",
            }
    return out
