"""A users x items score table kept as the factors of a low-rank model, read cell by cell.

Biased MF's ratings and the scores of implicit MF, BPR and popularity are

    score[u, i] = offset + user_bias[u] + item_bias[i] + user_factors[u] . item_factors[i]

(a model without biases or factors has zeros there). Kept as those pieces, the table
costs (users + items) x factors numbers instead of users x items, and the cells of a
page or a list are computed when they are asked for: what lets the agents' priors
cover 100,000 users of a large catalogue. Users or items the model does not know read
``missing`` (when set) instead of the formula, as LensKit leaves them unscored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ScoreFactors"]

_ROWS_AT_ONCE = 4096
"""Rows computed at once by the whole-table reductions (minimum, row means)."""


@dataclass
class ScoreFactors:
    """The factors of a users x items score table (see the module docstring).

    Attributes:
        user_factors: ``[users, k]``.
        item_factors: ``[items, k]``.
        user_bias: ``[users]``.
        item_bias: ``[items]``.
        offset: Added to every cell.
        bounds: Cells are clipped to these (e.g. the rating scale); None: not clipped.
        user_known: ``[users]``: False where the model does not know the user (None: all).
        item_known: ``[items]``: likewise for the items.
        missing: What a cell of an unknown user or item reads; None: the formula (its
            factors and biases are those given, e.g. zeros).
    """

    user_factors: np.ndarray
    item_factors: np.ndarray
    user_bias: np.ndarray
    item_bias: np.ndarray
    offset: float = 0.0
    bounds: tuple[float, float] | None = None
    user_known: np.ndarray | None = None
    item_known: np.ndarray | None = None
    missing: float | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """``(users, items)``, as the dense table's."""
        return len(self.user_bias), len(self.item_bias)

    def _finish(self, values: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Clip, and put ``missing`` where the user or the item is unknown."""
        if self.bounds is not None:
            values = np.clip(values, *self.bounds)
        if self.missing is not None:
            unknown = np.zeros(values.shape, dtype=bool)
            if self.user_known is not None:
                unknown |= ~self.user_known[rows]
            if self.item_known is not None:
                unknown |= ~self.item_known[cols]
            values = np.where(unknown, self.missing, values)
        return values

    def cells(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The cells ``(rows[j], cols[j])``, one value per pair (float64)."""
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        dots = np.einsum(
            "jk,jk->j",
            self.user_factors[rows].astype("float64"),
            self.item_factors[cols].astype("float64"),
        )
        values = self.offset + self.user_bias[rows] + self.item_bias[cols] + dots
        return self._finish(values, rows, cols)

    def block(self, rows: np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
        """``[len(rows), len(cols)]``: the table's rows `rows` at the columns `cols`
        (every column when None), float64."""
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.arange(self.shape[1]) if cols is None else np.asarray(cols, dtype=np.int64)
        values = (
            self.user_factors[rows].astype("float64") @ self.item_factors[cols].astype("float64").T
        )
        values += self.offset + self.user_bias[rows][:, None] + self.item_bias[cols][None, :]
        return self._finish(values, rows[:, None], cols[None, :])

    def dense(self) -> np.ndarray:
        """The whole table (users x items, float64): for small tables and tests."""
        return self.block(np.arange(self.shape[0]))

    def _row_chunks(self, rows: np.ndarray) -> Any:
        for start in range(0, len(rows), _ROWS_AT_ONCE):
            yield self.block(rows[start : start + _ROWS_AT_ONCE])

    def mean_row(self, rows: np.ndarray) -> np.ndarray:
        """The mean of the table's rows `rows`, per item."""
        rows = np.asarray(rows, dtype=np.int64)
        total = np.zeros(self.shape[1])
        for chunk in self._row_chunks(rows):
            total += chunk.sum(axis=0)
        return total / max(len(rows), 1)

    def minimum(self) -> float:
        """The table's smallest cell."""
        if not all(self.shape):
            return 0.0
        return float(min(chunk.min() for chunk in self._row_chunks(np.arange(self.shape[0]))))

    def arrays(self) -> dict[str, np.ndarray]:
        """The pieces as named arrays, for :func:`numpy.savez` (no pickles)."""
        out = {
            "user_factors": self.user_factors.astype("float32"),
            "item_factors": self.item_factors.astype("float32"),
            "user_bias": self.user_bias.astype("float64"),
            "item_bias": self.item_bias.astype("float64"),
            "offset": np.array(self.offset),
        }
        if self.bounds is not None:
            out["bounds"] = np.array(self.bounds, dtype="float64")
        if self.user_known is not None:
            out["user_known"] = self.user_known
        if self.item_known is not None:
            out["item_known"] = self.item_known
        if self.missing is not None:
            out["missing"] = np.array(self.missing)
        return out

    @classmethod
    def from_arrays(cls, data: Any) -> ScoreFactors:
        """Read what :meth:`arrays` gave (a mapping or an ``np.load`` archive)."""
        names = set(data.files if hasattr(data, "files") else data)
        return cls(
            np.asarray(data["user_factors"]),
            np.asarray(data["item_factors"]),
            np.asarray(data["user_bias"]),
            np.asarray(data["item_bias"]),
            float(data["offset"]),
            tuple(map(float, data["bounds"])) if "bounds" in names else None,  # type: ignore[arg-type]
            np.asarray(data["user_known"]) if "user_known" in names else None,
            np.asarray(data["item_known"]) if "item_known" in names else None,
            float(data["missing"]) if "missing" in names else None,
        )
