"""Rating-prediction metrics: RMSE, MAE and URR (unrelated response rate)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import mean_absolute_error, root_mean_squared_error

from personasim.rating_scale import RatingScale

__all__ = ["mae", "parse_rating", "rating_metrics", "rmse", "urr"]


def rmse(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Root mean squared error (scikit-learn's; NaN for no pairs)."""
    truth, predicted = np.asarray(truth, "float64"), np.asarray(predicted, "float64")
    if truth.size == 0:
        return float("nan")
    return float(root_mean_squared_error(truth, predicted))


def mae(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Mean absolute error (scikit-learn's; NaN for no pairs)."""
    truth, predicted = np.asarray(truth, "float64"), np.asarray(predicted, "float64")
    if truth.size == 0:
        return float("nan")
    return float(mean_absolute_error(truth, predicted))


def urr(valid: np.ndarray) -> float:
    """Unrelated response rate: the share of answers that are not a valid rating."""
    valid = np.asarray(valid, bool)
    return float(1.0 - valid.mean()) if valid.size else float("nan")


def rating_metrics(predictions: pd.DataFrame) -> dict[str, Any]:
    """RMSE and MAE over the valid predictions, URR over all of them.

    Args:
        predictions: Columns ``rating`` (truth), ``predicted`` and ``valid``.

    Returns:
        ``{"rmse", "mae", "urr", "n", "n_users"}`` where `n` counts all test pairs.
    """
    ok = predictions["valid"].to_numpy(bool)
    truth = predictions["rating"].to_numpy("float64")[ok]
    pred = predictions["predicted"].to_numpy("float64")[ok]
    out: dict[str, Any] = {
        "rmse": round(rmse(truth, pred), 6),
        "mae": round(mae(truth, pred), 6),
        "urr": round(urr(predictions["valid"].to_numpy(bool)), 6),
        "n": int(len(predictions)),
    }
    if "user_id" in predictions:
        out["n_users"] = int(predictions["user_id"].nunique())
    return out


_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)")
_WORDS = {"one": 1.0, "two": 2.0, "three": 3.0, "four": 4.0, "five": 5.0}
_WORD = re.compile(r"\b(" + "|".join(_WORDS) + r")\b", re.IGNORECASE)


def parse_rating(text: str, scale: RatingScale | None = None) -> float | None:
    """The rating a free-text answer gives, or None when it gives none on the scale
    (1-5 when None).

    The first number in the text counts ("4", "I'd give it 4/5", "3.5 stars"; a title's
    year such as "(1995)" is skipped), else the first number word ("four"); a number off
    the scale ("10/10") is not a rating. On a scale answered with digits that are not
    the ratings (half stars, 1-10), the number is the answer digit and gives its rating.
    """
    scale = scale or RatingScale()
    numbers = [
        m
        for m in _NUMBER.finditer(text)
        # "(1995" is a title's year, not an answer
        if not (len(m.group(1)) == 4 and text[max(0, m.start() - 1) : m.start()] == "(")
    ]
    if numbers:
        value = float(numbers[0].group(1))
    else:
        word = _WORD.search(text)
        if word is None:
            return None
        value = _WORDS[word.group(1).lower()]
    if not scale.answers_in_units:
        label = str(int(value)) if value == int(value) else None
        return float(scale.levels[scale.labels.index(label)]) if label in scale.labels else None
    return value if scale.low <= value <= scale.high else None
