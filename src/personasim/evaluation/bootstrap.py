"""Confidence intervals by bootstrap over users.

A user's pairs are not independent of each other, so users (not pairs) are resampled
with replacement; every statistic is recomputed on each resample and the 2.5th and
97.5th percentiles give the 95% interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Interval", "mean_interval", "paired_rmse_difference", "rmse_mae_intervals"]


@dataclass(frozen=True)
class Interval:
    """A point estimate and its 95% bootstrap interval."""

    estimate: float
    low: float
    high: float

    def as_list(self, digits: int = 6) -> list[float]:
        """``[low, high]`` rounded, for JSON."""
        return [round(self.low, digits), round(self.high, digits)]


def _resamples(n_users: int, rounds: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n_users, size=(rounds, n_users))


def _interval(estimate: float, samples: np.ndarray) -> Interval:
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return Interval(estimate, float("nan"), float("nan"))
    low, high = np.percentile(samples, [2.5, 97.5])
    return Interval(float(estimate), float(low), float(high))


def rmse_mae_intervals(
    frame: pd.DataFrame, *, rounds: int = 1000, seed: int = 0
) -> tuple[Interval, Interval]:
    """RMSE and MAE of ``rating`` vs ``predicted`` with user-bootstrap intervals."""
    err = frame["predicted"].to_numpy("float64") - frame["rating"].to_numpy("float64")
    per_user = (
        pd.DataFrame({"user_id": frame["user_id"].to_numpy(), "se": err**2, "ae": np.abs(err)})
        .groupby("user_id")
        .agg(se=("se", "sum"), ae=("ae", "sum"), n=("se", "size"))
    )
    se, ae, n = (per_user[c].to_numpy() for c in ("se", "ae", "n"))
    picks = _resamples(len(n), rounds, seed)
    counts = n[picks].sum(axis=1)
    rmse = _interval(np.sqrt(se.sum() / n.sum()), np.sqrt(se[picks].sum(axis=1) / counts))
    mae = _interval(ae.sum() / n.sum(), ae[picks].sum(axis=1) / counts)
    return rmse, mae


def paired_rmse_difference(
    a: pd.DataFrame, b: pd.DataFrame, *, rounds: int = 1000, seed: int = 0
) -> tuple[Interval, int]:
    """RMSE(a) - RMSE(b) on the (user, item) pairs both predicted, with the paired
    user-bootstrap interval.

    Args:
        a, b: ``user_id, item_id, rating, predicted`` of two models.

    Returns:
        The difference with its interval, and the number of shared pairs.
    """
    cols = ["user_id", "item_id", "rating", "predicted"]
    joined = a[cols].merge(b[cols], on=["user_id", "item_id", "rating"], suffixes=("_a", "_b"))
    if joined.empty:
        return Interval(float("nan"), float("nan"), float("nan")), 0
    joined["err_a"] = (joined["predicted_a"] - joined["rating"]) ** 2
    joined["err_b"] = (joined["predicted_b"] - joined["rating"]) ** 2
    per_user = joined.groupby("user_id").agg(
        a=("err_a", "sum"), b=("err_b", "sum"), n=("err_a", "size")
    )
    sa, sb, n = (per_user[c].to_numpy() for c in ("a", "b", "n"))
    picks = _resamples(len(n), rounds, seed)
    counts = n[picks].sum(axis=1)
    samples = np.sqrt(sa[picks].sum(axis=1) / counts) - np.sqrt(sb[picks].sum(axis=1) / counts)
    estimate = np.sqrt(sa.sum() / n.sum()) - np.sqrt(sb.sum() / n.sum())
    return _interval(float(estimate), samples), int(len(joined))


def mean_interval(values: np.ndarray, *, rounds: int = 1000, seed: int = 0) -> Interval:
    """Mean of per-user values (NaNs left out) with its user-bootstrap interval."""
    values = np.asarray(values, "float64")
    values = values[np.isfinite(values)]
    if values.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    picks = _resamples(len(values), rounds, seed)
    return _interval(float(values.mean()), values[picks].mean(axis=1))
