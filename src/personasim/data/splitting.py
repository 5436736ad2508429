"""User selection and the per-user temporal train/test split of the paper's protocol."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from personasim.errors import ConfigError, DataError

__all__ = [
    "TemporalSplit",
    "global_cut_time",
    "split_global_time",
    "n_train",
    "select_from_counts",
    "select_users",
    "split_temporal",
    "too_few_to_split",
    "validation_split",
    "withhold_items",
]

# floor(f * n) computed in floating point can land just under a whole number
# (0.29 * 100 = 28.999999999999996); this tolerance keeps it on the integer.
_FLOOR_TOLERANCE = 1e-9


def n_train(n: int | np.ndarray, train_fraction: float) -> int | np.ndarray:
    """How many of a user's `n` ratings go to train: ``floor(train_fraction * n)``."""
    return np.floor(np.asarray(n) * train_fraction + _FLOOR_TOLERANCE).astype("int64")


def select_users(
    interactions: pd.DataFrame,
    *,
    n_users: int,
    min_ratings: int,
    max_ratings: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, int]:
    """Sample the users to simulate.

    A user is eligible with ``min_ratings <= n <= max_ratings`` ratings (no upper bound
    when `max_ratings` is 0); `n_users` of them are drawn without replacement (all of
    them when `n_users` is 0). Eligible ids are sorted before drawing, so the sample
    depends only on the log's content and the generator, not on row order.

    Returns:
        The sampled user ids (sorted) and the number of eligible users.

    Raises:
        ConfigError: Fewer eligible users than requested.
    """
    counts = interactions.groupby("user_id", sort=True).size()
    return select_from_counts(
        counts, n_users=n_users, min_ratings=min_ratings, max_ratings=max_ratings, rng=rng
    )


def select_from_counts(
    counts: pd.Series,
    *,
    n_users: int,
    min_ratings: int,
    max_ratings: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, int]:
    """:func:`select_users` from each user's number of ratings (`counts`, indexed by
    user id and sorted by it), for logs that are counted out of core."""
    keep = counts >= min_ratings
    if max_ratings:
        keep &= counts <= max_ratings
    eligible = np.asarray(counts.index[keep.to_numpy()], dtype=object)
    bounds = (
        f"between {min_ratings} and {max_ratings}" if max_ratings else f"at least {min_ratings}"
    )
    if len(eligible) == 0:
        raise ConfigError(
            f"no user has {bounds} ratings ({len(counts)} users, {int(counts.min())} to "
            f"{int(counts.max())} ratings each); adjust --min-ratings/--max-ratings"
        )
    if n_users == 0 or n_users == len(eligible):
        return np.sort(eligible), len(eligible)
    if n_users > len(eligible):
        raise ConfigError(
            f"--users {n_users} asked, but only {len(eligible)} users have {bounds} ratings; "
            "lower --users (0 takes all) or widen --min-ratings/--max-ratings"
        )
    chosen = rng.choice(len(eligible), size=n_users, replace=False)
    return np.sort(eligible[chosen]), len(eligible)


@dataclass
class TemporalSplit:
    """The sampled users' ratings with their split, and everybody else's ratings.

    Attributes:
        interactions: Sampled users: ``user_id, item_id, rating, timestamp, split``,
            sorted by user then time (ties by item id); `split` is "train" or "test".
        others: Ratings of users outside the sample (empty when not included).
    """

    interactions: pd.DataFrame
    others: pd.DataFrame

    @property
    def train(self) -> pd.DataFrame:
        """The sampled users' train ratings."""
        return self.interactions[self.interactions["split"] == "train"]

    @property
    def test(self) -> pd.DataFrame:
        """The sampled users' test ratings."""
        return self.interactions[self.interactions["split"] == "test"]

    def training_data(self) -> pd.DataFrame:
        """Every rating a model may learn from: the sampled train part plus the others."""
        cols = ["user_id", "item_id", "rating", "timestamp"]
        if self.others.empty:
            return self.train[cols].reset_index(drop=True)
        return pd.concat([self.train[cols], self.others[cols]], ignore_index=True)


def too_few_to_split(
    user: str, n: int, train_fraction: float, *, file: object, row: int | None, column: str
) -> DataError:
    """The error of a sampled user whose split would leave no train or no test rating."""
    cut = int(n_train(n, train_fraction))
    # floor(f * n) >= 1 from n = ceil(1 / f) on; test is never empty since f < 1.
    need = math.ceil((1 - _FLOOR_TOLERANCE) / train_fraction)
    return DataError(
        f"user {user!r} has {n} rating(s): too few for a {train_fraction:g} train split "
        f"(it leaves no {'train' if cut == 0 else 'test'} rating); raise "
        f"--min-ratings to at least {need}",
        file=file,
        row=row,
        column=column,
    )


def split_temporal(
    interactions: pd.DataFrame,
    users: np.ndarray,
    *,
    train_fraction: float,
    include_others: bool,
    file: object = None,
    user_column: str = "user_id",
) -> TemporalSplit:
    """Split each sampled user's ratings in time: the first ``floor(f * n)`` go to train.

    Ratings are ordered by timestamp; ratings with the same timestamp are ordered by
    item id, so the split does not depend on the order of rows in the file.

    Args:
        interactions: ``user_id, item_id, rating, timestamp`` (and optionally ``row``).
        users: The sampled user ids.
        train_fraction: The train share f, in (0, 1).
        include_others: Keep the other users' ratings as training context.
        file: The log file, for error messages.
        user_column: The user column in `file`, for error messages.

    Raises:
        DataError: A sampled user would have no train or no test rating.
    """
    if not 0.0 < train_fraction < 1.0:
        raise ConfigError(f"train_fraction must be in (0, 1), got {train_fraction}")
    sampled_mask = interactions["user_id"].isin(set(users)).to_numpy()
    sampled = interactions[sampled_mask]
    sampled = sampled.sort_values(["user_id", "timestamp", "item_id"], kind="stable")
    counts = sampled.groupby("user_id", sort=False)["item_id"].transform("size").to_numpy()
    rank = sampled.groupby("user_id", sort=False).cumcount().to_numpy()
    cut = n_train(counts, train_fraction)
    bad = (cut == 0) | (cut == counts)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        user, n = sampled["user_id"].iloc[i], int(counts[i])
        first_row = int(sampled[sampled.user_id == user]["row"].min()) if "row" in sampled else None
        raise too_few_to_split(
            user, n, train_fraction, file=file, row=first_row, column=user_column
        )
    out = sampled[["user_id", "item_id", "rating", "timestamp"]].copy()
    out["split"] = np.where(rank < cut, "train", "test")
    others = (
        interactions.loc[~sampled_mask, ["user_id", "item_id", "rating", "timestamp"]]
        if include_others
        else interactions.iloc[0:0][["user_id", "item_id", "rating", "timestamp"]]
    )
    return TemporalSplit(
        interactions=out.reset_index(drop=True), others=others.reset_index(drop=True)
    )


def global_cut_time(interactions: pd.DataFrame, train_fraction: float) -> int:
    """The time by which `train_fraction` of the log's ratings were made: ratings
    before it are train, the rest test (the global temporal split)."""
    times = np.sort(interactions["timestamp"].to_numpy())
    return int(times[min(len(times) - 1, int(n_train(len(times), train_fraction)))])


def split_global_time(
    interactions: pd.DataFrame,
    *,
    cut: int,
    n_users: int,
    min_ratings: int,
    max_ratings: int,
    include_others: bool,
    rng: np.random.Generator,
) -> tuple[TemporalSplit, int]:
    """The global temporal split: one `cut` time for everyone.

    A user is eligible with ratings on both sides of the cut and ``min_ratings`` to
    ``max_ratings`` ratings in all; `n_users` of them are sampled as
    :func:`select_from_counts` does. Their ratings before the cut are train, the rest
    test; the other users' ratings before the cut are the models' context (none after
    it: nothing from the test period reaches a model).

    Returns:
        The split and the number of eligible users.

    Raises:
        ConfigError: Too few eligible users.
    """
    before = interactions["timestamp"].to_numpy() < cut
    sides = pd.DataFrame({"user_id": interactions["user_id"].to_numpy(), "before": before})
    per_user = sides.groupby("user_id", sort=True)["before"].agg(["size", "sum"])
    both = (per_user["sum"] > 0) & (per_user["sum"] < per_user["size"])
    if not both.any():
        raise ConfigError(
            f"no user has ratings on both sides of the cut time {cut} (the time by which "
            "split.train_fraction of the ratings were made); choose another train_fraction"
        )
    users, eligible = select_from_counts(
        per_user.loc[both, "size"],
        n_users=n_users,
        min_ratings=min_ratings,
        max_ratings=max_ratings,
        rng=rng,
    )
    sampled_mask = interactions["user_id"].isin(set(users)).to_numpy()
    cols = ["user_id", "item_id", "rating", "timestamp"]
    sampled = interactions.loc[sampled_mask, cols]
    sampled = sampled.sort_values(["user_id", "timestamp", "item_id"], kind="stable")
    sampled["split"] = np.where(sampled["timestamp"].to_numpy() < cut, "train", "test")
    others = interactions.loc[~sampled_mask & before, cols] if include_others else None
    return (
        TemporalSplit(
            interactions=sampled.reset_index(drop=True),
            others=(others if others is not None else sampled.iloc[0:0][cols]).reset_index(
                drop=True
            ),
        ),
        eligible,
    )


def withhold_items(split: TemporalSplit, share: float, rng: np.random.Generator) -> list[str]:
    """Withhold a share of the items from training (the new-items protocol), in place.

    `share` of the items rated in the log (sorted ids, drawn without replacement) lose
    every training rating: the sampled users' train ratings of them and the other
    users' ratings; the sampled users' test ratings of them stay.

    Returns:
        The withheld item ids, sorted.

    Raises:
        ConfigError: A sampled user would be left with no train rating.
    """
    rated = pd.concat([split.interactions["item_id"], split.others["item_id"]]).unique()
    catalogue = np.sort(rated.astype(str))
    n = int(round(share * len(catalogue)))
    if n == 0:
        return []
    withheld = set(catalogue[rng.choice(len(catalogue), size=n, replace=False)])
    inter = split.interactions
    drop = (inter["split"] == "train").to_numpy() & inter["item_id"].isin(withheld).to_numpy()
    left = inter[~drop]
    orphans = sorted(set(inter["user_id"]) - set(left.loc[left["split"] == "train", "user_id"]))
    if orphans:
        raise ConfigError(
            f"withholding {n} items ({share:g} of the catalogue) leaves user {orphans[0]!r} "
            "with no train rating; lower split.new_items"
        )
    split.interactions = left.reset_index(drop=True)
    split.others = split.others[~split.others["item_id"].isin(withheld)].reset_index(drop=True)
    return sorted(withheld)


def validation_split(split: TemporalSplit, share: float) -> None:
    """Turn the split into a tuning split, in place: the last `share` of each sampled
    user's train ratings by time (at least one) become its test part; the real test
    ratings are dropped, so nothing tuned on it has seen them.

    Raises:
        ConfigError: A user's train part is too small to give up a validation rating.
    """
    if share <= 0:
        return
    train = split.train
    counts = train.groupby("user_id", sort=False)["item_id"].transform("size").to_numpy()
    rank = train.groupby("user_id", sort=False).cumcount().to_numpy()
    n_valid = np.maximum(1, np.floor(counts * share + _FLOOR_TOLERANCE)).astype("int64")
    if (counts - n_valid < 1).any():
        user = train["user_id"].to_numpy()[np.flatnonzero(counts - n_valid < 1)[0]]
        raise ConfigError(
            f"user {user!r} has too few train ratings to hold some out for validation; "
            "raise split.min_ratings or lower split.validation_share"
        )
    out = train.copy()  # sorted by user then time, as split_temporal leaves it
    out["split"] = np.where(rank >= counts - n_valid, "test", "train")
    split.interactions = out.reset_index(drop=True)
