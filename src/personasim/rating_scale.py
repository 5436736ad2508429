"""A log's rating scale: its levels, and the one-digit answers the agents give on it.

The agents answer a rating question with one token, so a scale has at most
:data:`MAX_LEVELS` levels, evenly spaced from the lowest to the highest rating
(``data.rating_scale``) in steps of ``data.rating_step``. A scale whose levels are the
digits themselves (1-5, 0-5, 1-7) is answered with those digits, as the question names
them; any other (half stars 0.5-5, 1-10) with the digits 0 or 1 upwards, one per level,
the question saying which digit is which rating. A rating off the levels is refused at
ingest, never rounded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = ["MAX_LEVELS", "RatingScale"]

MAX_LEVELS = 10
"""The most levels a scale may have: one digit token per level ("0".."9")."""

_TOLERANCE = 1e-6
"""How far (in the scale's units) a value may sit from a level and still be it."""


@dataclass(frozen=True)
class RatingScale:
    """Evenly spaced rating levels from `low` to `high` in steps of `step`.

    Raises:
        ValueError: The levels do not fit evenly, or there are more than
            :data:`MAX_LEVELS` of them (the message says what to do).
    """

    low: float = 1.0
    high: float = 5.0
    step: float = 1.0

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError("rating_scale must be [lowest, highest] with lowest < highest")
        if not self.step > 0:
            raise ValueError("rating_step must be above 0")
        count = (self.high - self.low) / self.step
        if abs(count - round(count)) > _TOLERANCE * max(1.0, count):
            raise ValueError(
                f"rating_step {self.step:g} does not divide the rating scale "
                f"[{self.low:g}, {self.high:g}] into whole steps"
            )
        if round(count) + 1 > MAX_LEVELS:
            raise ValueError(
                f"the rating scale [{self.low:g}, {self.high:g}] in steps of {self.step:g} "
                f"has {round(count) + 1} levels; the agents answer with one digit per "
                f"level, so at most {MAX_LEVELS}: map the ratings to a coarser scale "
                "(e.g. 1-5, or 1-10), or set a coarser data.rating_step"
            )

    @cached_property
    def levels(self) -> np.ndarray:
        """The ratings one may give, lowest first."""
        count = round((self.high - self.low) / self.step) + 1
        return np.round(self.low + self.step * np.arange(count), 9)

    @property
    def size(self) -> int:
        """The number of levels."""
        return len(self.levels)

    @cached_property
    def labels(self) -> tuple[str, ...]:
        """The digit that answers each level: the level itself when every level is a
        digit, else "1".."n" (or "0".."9" for ten levels)."""
        if all(v == int(v) and 0 <= v <= 9 for v in self.levels):
            return tuple(str(int(v)) for v in self.levels)
        first = 1 if self.size <= 9 else 0
        return tuple(str(first + k) for k in range(self.size))

    @property
    def answers_in_units(self) -> bool:
        """Whether the answer digits are the ratings themselves."""
        return all(float(label) == v for label, v in zip(self.labels, self.levels, strict=True))

    def question(self) -> str:
        """The rating question, naming the scale (and the digits, when they are not the
        ratings)."""
        if self.answers_in_units:
            return f"How would you rate it, from {self.labels[0]} to {self.labels[-1]}?"
        steps = f" in steps of {self.step:g}" if self.step != 1 else ""
        return (
            f"How would you rate it, from {self.low:g} to {self.high:g}{steps}? Answer with "
            f"one digit, from {self.labels[0]} for {self.low:g} to {self.labels[-1]} for "
            f"{self.high:g}."
        )

    def out_of(self, rating: float) -> str:
        """A rating as the prompts write it, e.g. "4/5" or "3.5/5"."""
        return f"{rating:g}/{self.high:g}"

    @property
    def high_from(self) -> float:
        """The lowest rating that counts as high (4 on 1-5: the top quarter of the range)."""
        return self.low + 0.75 * (self.high - self.low)

    @property
    def low_to(self) -> float:
        """The highest rating that counts as low (2 on 1-5: the bottom quarter)."""
        return self.low + 0.25 * (self.high - self.low)

    def stars(self, rating: float) -> float:
        """`rating` on a 1-5 scale (for words such as "loved" that name stars)."""
        return 1.0 + 4.0 * (rating - self.low) / (self.high - self.low)

    def levels_text(self, values: Sequence[float] | np.ndarray) -> str:
        """Levels as words: "4 or 5", "8-10", "3"."""
        values = [float(v) for v in values]
        if len(values) == 1:
            return f"{values[0]:g}"
        if len(values) == 2:
            return f"{values[0]:g} or {values[1]:g}"
        return f"{values[0]:g}-{values[-1]:g}"

    def as_list(self) -> list[float]:
        """``[low, high, step]`` (JSON-ready; ``RatingScale(*it)`` reads it back)."""
        return [self.low, self.high, self.step]

    @property
    def span(self) -> float:
        """The scale's range in units of a 1-5 scale's (1 for 1-5, 2.25 for 1-10):
        widths set in stars (the prior's sigma) are multiplied by it."""
        return (self.high - self.low) / 4.0

    def off_level(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
        """A mask of the values that are not on a level (NaN counts as off)."""
        values = np.asarray(values, dtype="float64")
        position = (values - self.low) / self.step
        with np.errstate(invalid="ignore"):
            near = np.abs(position - np.round(position)) <= _TOLERANCE
            inside = (position > -_TOLERANCE) & (position < self.size - 1 + _TOLERANCE)
        return ~(near & inside)

    def index(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
        """The level number (0 = lowest) of each value.

        Raises:
            ValueError: A value is not on a level.
        """
        values = np.asarray(values, dtype="float64")
        off = self.off_level(values)
        if off.any():
            bad = values[np.flatnonzero(off)[0]]
            raise ValueError(f"rating {bad:g} is not a level of {self}")
        return np.round((values - self.low) / self.step).astype("int64")

    def __str__(self) -> str:
        return f"the rating scale [{self.low:g}, {self.high:g}] in steps of {self.step:g}"
