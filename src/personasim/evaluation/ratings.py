"""Rating fidelity: the baselines' and the prior's test predictions, and every model's
errors, intervals and paired comparisons on the pairs every model scored."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from personasim.agents.prior import CFPrior
from personasim.cf.dataset import training_dataset
from personasim.cf.explicit import PARTIAL_BASELINES, fit_baseline, predict_baseline
from personasim.cf.fitted import FittedModels
from personasim.config import AGENT_ADAPTERS, CFConfig, EvaluateConfig
from personasim.evaluation.bootstrap import paired_rmse_difference, rmse_mae_intervals
from personasim.evaluation.checkpoints import UnitStore
from personasim.evaluation.fidelity import distribution_distance, rating_histograms
from personasim.evaluation.metrics import mae, rating_metrics, rmse
from personasim.progress import progress

__all__ = [
    "PREDICTIONS_COLUMNS",
    "PRIOR_MODEL",
    "FittedBaselines",
    "RatingComparison",
    "agent_pairs",
    "baseline_ratings",
    "model_metrics",
    "prior_ratings",
]

PREDICTIONS_COLUMNS = ["user_id", "item_id", "rating", "predicted", "model", "persona", "valid"]
"""Columns of ``eval/predictions.parquet`` (contract); agents add ``argmax``,
``digit_mass`` and ``greedy_is_digit``."""

PRIOR_MODEL = "prior"
"""The agents' rating prior alone (no language model), as a rating model."""


def agent_pairs(test: pd.DataFrame, per_user: int, seed: int) -> pd.DataFrame:
    """The test pairs the agents score: all, or up to `per_user` per user (seeded)."""
    if not per_user:
        return test
    rng = np.random.default_rng(seed)
    keep = []
    for _, idx in test.groupby("user_id", sort=True).indices.items():
        keep.extend(idx if len(idx) <= per_user else np.sort(rng.choice(idx, per_user, False)))
    return test.iloc[np.sort(np.asarray(keep))].reset_index(drop=True)


class FittedBaselines:
    """The baselines, each fitted on first use (restored predictions need no fit)."""

    def __init__(
        self,
        training: pd.DataFrame,
        config: EvaluateConfig,
        cf: CFConfig,
        seed: int,
        genres: dict[str, list[str]],
        models: FittedModels | None = None,
    ) -> None:
        self.training, self.config, self.seed, self.genres = training, config, seed, genres
        self.cf, self.models = cf, models
        self.dataset: Any = None
        self.fitted: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        """The fitted scorer `name`."""
        if name not in self.fitted:
            if self.dataset is None:
                self.dataset = training_dataset(self.training)
            self.fitted[name] = fit_baseline(
                name, self.cf, self.dataset, self.seed, genres=self.genres, models=self.models
            )
        return self.fitted[name]

    def predict(self, name: str, pairs: pd.DataFrame, scale: tuple[float, ...] | None) -> Any:
        """Predictions of `name` for `pairs`; MF and item-kNN fall back on the user+item
        bias model where they cannot predict (an item never seen, no rated neighbour)."""
        scorer = self.get(name)
        fallback = self.get("user_item_bias") if name in PARTIAL_BASELINES else None
        return predict_baseline(scorer, pairs, fallback=fallback, scale=scale)


def _rating_frame(test: pd.DataFrame, predicted: np.ndarray, model: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": test["user_id"],
            "item_id": test["item_id"],
            "rating": test["rating"],
            "predicted": predicted,
            "model": model,
            "valid": ~np.isnan(predicted),
        }
    )


def baseline_ratings(
    fitted: FittedBaselines,
    test: pd.DataFrame,
    store: UnitStore,
    *,
    scale: tuple[float, ...] | None,
    fit_data: str,
) -> tuple[list[pd.DataFrame], dict[str, dict[str, Any]]]:
    """Every configured baseline's predictions of the `test` pairs (restored from
    `store` where they are there) and its note."""
    names = fitted.config.baselines
    frames: list[pd.DataFrame] = []
    notes: dict[str, dict[str, Any]] = {}

    def predict(name: str) -> tuple[pd.DataFrame, dict[str, Any]]:
        result = fitted.predict(name, test, scale)
        note = {
            "kind": "baseline",
            "fit_data": fit_data,
            "fit_ratings": int(len(fitted.training)),
            "fallbacks": result.fallbacks,
            "clipped_to_scale": scale is not None,
        }
        return _rating_frame(test, result.predicted, name), note

    with progress("fitting baselines", total=len(names), unit="models") as advance:
        for name in names:
            frame, notes[name] = store.get(name, lambda name=name: predict(name))
            frames.append(frame)
            advance(1)
    return frames, notes


def prior_ratings(prior: CFPrior, test: pd.DataFrame) -> pd.DataFrame:
    """The agents' rating prior alone (no language model) on every test pair: the
    expectation of the digit prior, which is the CF model's prediction."""
    predicted = np.empty(len(test))
    for user, rows in test.groupby("user_id", sort=False).indices.items():
        predicted[rows] = prior.predict(str(user), test["item_id"].iloc[rows].astype(str).tolist())
    return _rating_frame(test, predicted, PRIOR_MODEL)


def model_metrics(
    predictions: pd.DataFrame,
    pairs: pd.DataFrame,
    notes: dict[str, dict[str, Any]],
    baselines: list[str],
) -> dict[str, dict[str, Any]]:
    """Each model's RMSE, MAE and URR on the pairs it scored, with its note; a baseline
    (or the prior) that scored more than the agents' pairs also on those pairs."""
    metrics: dict[str, dict[str, Any]] = {}
    keys = set(zip(pairs["user_id"], pairs["item_id"], strict=True))
    for name in dict.fromkeys(predictions["model"]):
        mine = predictions[predictions["model"] == name]
        m = rating_metrics(mine)
        m.update(notes[name])
        if "greedy_is_digit" in mine and mine["greedy_is_digit"].notna().all():
            # Agents: the share of answers whose most likely token is not a digit.
            m["urr"] = round(float(1.0 - mine["greedy_is_digit"].astype(bool).mean()), 6)
        if (name in baselines or name == PRIOR_MODEL) and len(pairs) < len(mine):
            on = mine[[k in keys for k in zip(mine.user_id, mine.item_id, strict=True)]]
            truth, pred = _truth_pred(on)
            m["on_agent_pairs"] = {
                "rmse": round(rmse(truth, pred), 6),
                "mae": round(mae(truth, pred), 6),
                "n": int(len(on)),
            }
        metrics[name] = m
    return metrics


class RatingComparison:
    """Intervals and paired comparisons of the rating models (user bootstrap with
    `rounds` resamples and `seed`)."""

    def __init__(self, baselines: list[str], rounds: int, seed: int) -> None:
        self.baselines, self.rounds, self.seed = baselines, rounds, seed

    def best_baseline(self, by_model: dict[str, pd.DataFrame]) -> str | None:
        """The baseline of lowest RMSE among those in `by_model`."""
        present = [b for b in self.baselines if b in by_model]
        return min(present, key=lambda b: rmse(*_truth_pred(by_model[b])), default=None)

    def on_shared_pairs(
        self, on: pd.DataFrame, scale: tuple[float, float]
    ) -> tuple[dict[str, dict[str, Any]], str | None]:
        """Per model, on the pairs every model scored (`on`: the predictions on the
        agents' pairs): errors with intervals, histogram and its distance from the
        truth's, and the paired comparisons; and the best baseline there."""
        valid = on[on["valid"]]
        by_model = {str(m): part for m, part in valid.groupby("model", sort=False)}
        best = self.best_baseline(by_model)
        histograms = rating_histograms(on, scale)
        compared = {
            name: {
                **self.errors(part),
                "histogram": histograms.get(name),
                **distribution_distance(histograms[name]),
                **self.versus(name, part, by_model, best),
            }
            for name, part in by_model.items()
        }
        return compared, best

    def on_new_items(
        self, on: pd.DataFrame, unseen: set[str], kinds: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Every model on the scored test pairs (`on`: the predictions on the agents'
        pairs) of the `unseen` items (no training rating holds them): errors with
        intervals, paired against the best baseline there and, for the agents, against
        their prior alone. ``None`` when there are no such pairs."""
        on = on[on["valid"] & on["item_id"].astype(str).isin(unseen)]
        if on.empty:
            return None
        by_model = {str(name): part for name, part in on.groupby("model", sort=False)}
        best = self.best_baseline(by_model)
        models = {
            name: {
                "kind": kinds.get(name),
                **self.errors(part),
                **self.versus(name, part, by_model, best),
            }
            for name, part in by_model.items()
        }
        return {
            "definition": "test pairs whose item has no training rating",
            "items": int(on["item_id"].nunique()),
            "best_baseline": best,
            "models": models,
        }

    def errors(self, part: pd.DataFrame) -> dict[str, Any]:
        """RMSE and MAE of one model's pairs with their user-bootstrap intervals."""
        r, a = rmse_mae_intervals(part, rounds=self.rounds, seed=self.seed)
        return {
            "n": int(len(part)),
            "n_users": int(part["user_id"].nunique()),
            "rmse": round(r.estimate, 6),
            "rmse_ci": r.as_list(),
            "mae": round(a.estimate, 6),
            "mae_ci": a.as_list(),
        }

    def versus(
        self, name: str, part: pd.DataFrame, by_model: dict[str, pd.DataFrame], best: str | None
    ) -> dict[str, Any]:
        """A model's paired comparisons: with the best baseline (unless it is that one)
        and, for an agent, with its prior alone (when `by_model` holds them)."""
        out: dict[str, Any] = {}
        if best is not None and name != best:
            out["vs_best_baseline"] = {"baseline": best, **self.paired(part, by_model[best])}
        if name in AGENT_ADAPTERS and PRIOR_MODEL in by_model:
            out["vs_prior_alone"] = self.paired(part, by_model[PRIOR_MODEL])
        return out

    def paired(self, model: pd.DataFrame, other: pd.DataFrame) -> dict[str, Any]:
        """RMSE of `model` minus `other` on their shared pairs, with a paired user
        bootstrap interval and a verdict."""
        diff, shared = paired_rmse_difference(model, other, rounds=self.rounds, seed=self.seed)
        verdict = "better" if diff.high < 0 else "worse" if diff.low > 0 else "no clear difference"
        return {
            "rmse_difference": round(diff.estimate, 6),
            "ci": diff.as_list(),
            "pairs": shared,
            "verdict": verdict,
        }


def _truth_pred(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return frame["rating"].to_numpy("float64"), frame["predicted"].to_numpy("float64")
