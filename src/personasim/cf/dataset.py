"""The training log as a LensKit dataset."""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["training_dataset"]


def training_dataset(training: pd.DataFrame) -> Any:
    """A LensKit :class:`~lenskit.data.Dataset` of ``user_id, item_id, rating,
    timestamp`` rows."""
    from lenskit.data import from_interactions_df

    frame = training[["user_id", "item_id", "rating", "timestamp"]].copy()
    return from_interactions_df(
        frame,
        user_col="user_id",
        item_col="item_id",
        rating_col="rating",
        timestamp_col="timestamp",
    )
