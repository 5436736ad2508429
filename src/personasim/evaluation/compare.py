"""Comparing models across run folders, paired on the test pairs both rated.

An ablation is two run folders that differ in one setting (template against
LLM-written profiles, random against gradient selection, one LM weight against
another): each evaluated its models on the same held-out ratings, so the fair
comparison is the RMSE difference on the pairs both rated, with the user-bootstrap
interval of :func:`~personasim.evaluation.bootstrap.paired_rmse_difference`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from personasim.errors import ConfigError, StageError
from personasim.evaluation.bootstrap import paired_rmse_difference
from personasim.evaluation.metrics import rmse
from personasim.run_folder import EVAL

__all__ = ["RunModel", "compare_runs", "parse_run_model"]

PAIR_KEYS = ["user_id", "item_id", "rating"]


@dataclass(frozen=True)
class RunModel:
    """A run folder and, optionally, one model of its evaluation."""

    folder: Path
    model: str | None = None

    def label(self, model: str) -> str:
        """``folder:model``, as the command line writes it."""
        return f"{self.folder}:{model}"


def parse_run_model(spec: str) -> RunModel:
    """``FOLDER`` or ``FOLDER:MODEL`` (a folder whose own name holds a colon is read
    whole when it exists)."""
    folder, sep, model = spec.rpartition(":")
    if not sep or not folder or Path(spec).is_dir():
        return RunModel(Path(spec))
    return RunModel(Path(folder), model or None)


def _predictions(folder: Path) -> pd.DataFrame:
    path = EVAL.predictions.under(folder / EVAL.stage.folder)
    if not path.is_file():
        raise StageError(
            f"{folder}: no {EVAL.stage.folder}/{EVAL.predictions.name}; run "
            f"`personasim {EVAL.stage.command}` there"
        )
    frame = pd.read_parquet(path, columns=[*PAIR_KEYS, "predicted", "model", "valid"])
    return frame[frame["valid"]]  # the predictions the evaluation's errors are over


def _of(frame: pd.DataFrame, run: RunModel, model: str) -> pd.DataFrame:
    mine = frame[frame["model"] == model]
    if mine.empty:
        known = ", ".join(sorted(frame["model"].unique()))
        raise ConfigError(f"{run.folder} has no model {model!r} (it evaluated: {known})")
    return mine


def _pairs(
    ref: RunModel, other: RunModel, ref_models: Sequence[str], other_models: set[str]
) -> list[tuple[str, str]]:
    """(reference model, candidate model) pairs to compare."""
    if ref.model is not None:
        return [(ref.model, other.model or ref.model)]
    if other.model is not None:
        raise ConfigError(
            f"{other.label(other.model)}: name the reference's model too (FOLDER:MODEL)"
        )
    shared = [m for m in ref_models if m in other_models]
    if not shared:
        raise ConfigError(f"{ref.folder} and {other.folder} evaluated no model of the same name")
    return [(m, m) for m in shared]


def compare_runs(
    reference: RunModel, others: Sequence[RunModel], *, rounds: int = 2000, seed: int = 0
) -> list[dict[str, Any]]:
    """Each model of `others` against the reference, paired on the test pairs both rated.

    With a model named in `reference`, every other run's model (its own, or the same
    name) is compared with it; without one, every model both runs evaluated is
    compared with its namesake.

    Returns:
        One row per comparison: ``reference``, ``candidate`` (``folder:model``),
        ``pairs`` (shared), ``users``, ``rmse_reference`` and ``rmse_candidate`` on those
        pairs, and ``difference`` (candidate minus reference) with its 95% ``ci``.

    Raises:
        StageError: A folder has no evaluation.
        ConfigError: A named model is not in its run, or two runs share no pair.
    """
    ref_frame = _predictions(reference.folder)
    ref_models = list(dict.fromkeys(ref_frame["model"]))
    rows = []
    for other in others:
        frame = _predictions(other.folder)
        for ref_model, model in _pairs(reference, other, ref_models, set(frame["model"])):
            a = _of(ref_frame, reference, ref_model)
            b = _of(frame, other, model)
            diff, pairs = paired_rmse_difference(b, a, rounds=rounds, seed=seed)
            if pairs == 0:
                raise ConfigError(
                    f"{reference.label(ref_model)} and {other.label(model)} rated no test "
                    "pair in common (were they ingested alike?)"
                )
            shared = a.merge(b, on=PAIR_KEYS, suffixes=("_a", "_b"))
            rows.append(
                {
                    "reference": reference.label(ref_model),
                    "candidate": other.label(model),
                    "pairs": pairs,
                    "users": int(shared["user_id"].nunique()),
                    "rmse_reference": round(rmse(shared["rating"], shared["predicted_a"]), 6),
                    "rmse_candidate": round(rmse(shared["rating"], shared["predicted_b"]), 6),
                    "difference": round(diff.estimate, 6),
                    "ci": diff.as_list(),
                }
            )
    return rows
