"""The ``data/`` tables of the run folder: schemas, item statistics, reading and writing.

Contract (DESIGN.md, section 3):

- ``interactions.parquet``: user_id, item_id, rating, timestamp, split ("train"/"test"),
  the sampled users only;
- ``items.parquet``: item_id, title, year, genres, train_mean_rating, train_count.

Also written: ``users.parquet`` (user_id, n_ratings, n_train, n_test and the user
attributes of the log) and ``others.parquet`` (the ratings of users outside the sample,
used as training data only).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from personasim.workspace import atomic_path

__all__ = [
    "INTERACTIONS_SCHEMA",
    "ITEMS_SCHEMA",
    "OTHERS_SCHEMA",
    "item_statistics",
    "read_parquet",
    "user_table",
    "write_parquet",
]

INTERACTIONS_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("rating", pa.float64()),
        ("timestamp", pa.int64()),
        ("split", pa.string()),
    ]
)
OTHERS_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("rating", pa.float64()),
        ("timestamp", pa.int64()),
    ]
)
ITEMS_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("title", pa.string()),
        ("year", pa.int32()),
        ("genres", pa.list_(pa.string())),
        ("train_mean_rating", pa.float64()),
        ("train_count", pa.int64()),
    ]
)


def write_parquet(frame: pd.DataFrame, path: Path, schema: pa.Schema | None = None) -> None:
    """Write a frame as zstd Parquet, atomically (temporary file, then rename).

    Columns are cast to `schema` when given; columns it does not name are kept after.
    """
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if schema is not None:
        fields = list(schema) + [f for f in table.schema if f.name not in schema.names]
        table = table.select([f.name for f in fields]).cast(pa.schema(fields))
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_parquet(path: Path) -> pd.DataFrame:
    """Read a Parquet table into pandas (list columns as Python lists)."""
    return pq.read_table(path).to_pandas()


def item_statistics(items: pd.DataFrame, training: pd.DataFrame) -> pd.DataFrame:
    """Add ``train_mean_rating`` and ``train_count`` to the items, from training data only.

    Args:
        items: ``item_id, title, year, genres``.
        training: The ratings models may learn from (never a test rating).

    Returns:
        The items with their statistics; items without training ratings have count 0
        and a missing mean.
    """
    stats = training.groupby("item_id")["rating"].agg(["mean", "size"])
    out = items.copy()
    out["train_mean_rating"] = out["item_id"].map(stats["mean"]).astype("float64")
    out["train_count"] = out["item_id"].map(stats["size"]).fillna(0).astype("int64")
    return out


def user_table(interactions: pd.DataFrame, attributes: pd.DataFrame) -> pd.DataFrame:
    """One row per sampled user: rating counts per split plus the log's attributes."""
    counts = (
        interactions.groupby("user_id")["split"]
        .value_counts()
        .unstack(fill_value=0)
        .reindex(columns=["train", "test"], fill_value=0)
    )
    out = pd.DataFrame(
        {
            "user_id": counts.index.astype(str),
            "n_ratings": (counts["train"] + counts["test"]).to_numpy("int64"),
            "n_train": counts["train"].to_numpy("int64"),
            "n_test": counts["test"].to_numpy("int64"),
        }
    )
    return out.merge(attributes, on="user_id", how="left")
