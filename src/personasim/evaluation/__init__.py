"""Fidelity metrics and the classical baselines the agents are compared with."""

from __future__ import annotations

from personasim.cf.explicit import fit_baseline, predict_baseline, training_dataset
from personasim.evaluation.metrics import mae, rating_metrics, rmse, urr

__all__ = [
    "fit_baseline",
    "mae",
    "predict_baseline",
    "rating_metrics",
    "rmse",
    "training_dataset",
    "urr",
]
