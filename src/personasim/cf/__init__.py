"""Collaborative models fitted with LensKit, shared by the agents' priors, the
evaluation's baselines and the simulation."""

from __future__ import annotations

from personasim.cf.dataset import training_dataset, training_log
from personasim.cf.implicit import IMPLICIT_SCORERS, ImplicitScorer, ImplicitSettings, fit_implicit

__all__ = [
    "IMPLICIT_SCORERS",
    "ImplicitScorer",
    "ImplicitSettings",
    "fit_implicit",
    "training_dataset",
    "training_log",
]
