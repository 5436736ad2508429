"""Rating fidelity beyond one number: per group, and the shape of the ratings.

- :func:`group_metrics`: RMSE, MAE and URR per persona and per trait level.
- :func:`rating_histograms` / :func:`distribution_distance`: the predicted vs true
  histogram of ratings (predictions rounded to the nearest scale point) and how far
  apart they are (Wasserstein-1 and KL(true || predicted)).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import entropy, wasserstein_distance

from personasim.evaluation.metrics import rating_metrics

__all__ = ["TRAITS", "distribution_distance", "group_metrics", "rating_histograms"]

TRAITS = ("activity", "conformity", "diversity")
"""Trait columns of ``profiles.parquet`` with levels 1-3."""

_KL_SMOOTHING = 1e-3


def group_metrics(predictions: pd.DataFrame, groups: pd.DataFrame) -> pd.DataFrame:
    """RMSE, MAE, URR and counts of every model per group.

    Args:
        predictions: ``user_id, rating, predicted, valid, model``.
        groups: ``user_id`` plus one column per grouping (e.g. ``persona``,
            ``activity``); each value is a group.

    Returns:
        ``model, grouping, group, rmse, mae, urr, n, n_users``.
    """
    overlap = [c for c in groups.columns if c != "user_id" and c in predictions]
    joined = predictions.drop(columns=overlap).merge(groups, on="user_id", how="left")
    rows: list[dict[str, Any]] = []
    for grouping in [c for c in groups.columns if c != "user_id"]:
        for (model, group), part in joined.groupby(["model", grouping], sort=True):
            rows.append({"model": model, "grouping": grouping, "group": str(group)})
            rows[-1].update(rating_metrics(part))
    return pd.DataFrame(rows)


def rating_histograms(
    predictions: pd.DataFrame, scale: tuple[float, float]
) -> dict[str, dict[str, list[float]]]:
    """Share of each rating value, true and predicted, per model (valid answers only).

    Returns:
        ``{model: {"values": [1..5], "true": [...], "predicted": [...]}}``.
    """
    low, high = int(round(scale[0])), int(round(scale[1]))
    values = np.arange(low, high + 1)
    out: dict[str, dict[str, list[float]]] = {}
    for model, part in predictions[predictions["valid"]].groupby("model", sort=False):
        truth = np.clip(np.rint(part["rating"].to_numpy("float64")), low, high)
        pred = np.clip(np.rint(part["predicted"].to_numpy("float64")), low, high)
        out[str(model)] = {
            "values": values.tolist(),
            "true": [round(float((truth == v).mean()), 6) for v in values],
            "predicted": [round(float((pred == v).mean()), 6) for v in values],
        }
    return out


def distribution_distance(histogram: dict[str, list[float]]) -> dict[str, float]:
    """Wasserstein-1 distance (in rating points) and KL(true || predicted) between a
    model's true and predicted rating histograms (KL smoothed by 1e-3 per bin)."""
    values = np.asarray(histogram["values"], "float64")
    true = np.asarray(histogram["true"], "float64")
    pred = np.asarray(histogram["predicted"], "float64")
    w1 = wasserstein_distance(values, values, true, pred) if true.sum() and pred.sum() else np.nan
    p = (true + _KL_SMOOTHING) / (true + _KL_SMOOTHING).sum()
    q = (pred + _KL_SMOOTHING) / (pred + _KL_SMOOTHING).sum()
    return {"wasserstein": round(float(w1), 6), "kl": round(float(entropy(p, q)), 6)}
