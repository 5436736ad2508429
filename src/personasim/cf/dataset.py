"""What the collaborative models train on, and that log as a LensKit dataset."""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd

from personasim.data.tables import read_parquet
from personasim.run_folder import DATA
from personasim.workspace import Workspace

__all__ = ["rows_digest", "training_dataset", "training_log", "training_options"]

COMPILE_FROM_ROWS = 100_000
"""Logs from this many rows up train LensKit's FlexMF models (BPR) compiled by
``torch.compile``: compiling costs ~10 s a process, which a small log never earns back."""


def training_log(workspace: Workspace, interactions: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """What the baselines and recommenders train on: the sampled users' train part plus
    the other users' histories (when the split kept them), and a description of it."""
    train = interactions[interactions["split"] == "train"]
    others = read_parquet(workspace.require(DATA.others))
    n_users = interactions["user_id"].nunique()
    if others.empty:
        return train, f"train part of the {n_users} sampled users"
    training = pd.concat([train, others], ignore_index=True)
    described = (
        f"train part of the {n_users} sampled users + full histories of "
        f"{others['user_id'].nunique()} other users"
    )
    return training, described


def training_dataset(training: pd.DataFrame) -> Any:
    """A LensKit :class:`~lenskit.data.Dataset` of ``user_id, item_id, rating,
    timestamp`` rows."""
    from lenskit.data import from_interactions_df

    frame = training[["user_id", "item_id", "rating", "timestamp"]].copy()
    rated = bool(frame["rating"].notna().any())  # a log without ratings: interactions only
    return from_interactions_df(
        frame if rated else frame.drop(columns="rating"),
        user_col="user_id",
        item_col="item_id",
        rating_col="rating" if rated else None,
        timestamp_col="timestamp",
    )


def training_options(seed: int, rows: int) -> Any:
    """LensKit's training options for a log of `rows` rows: seeded, FlexMF compiled only
    from :data:`COMPILE_FROM_ROWS` rows up."""
    from lenskit.training import TrainingOptions

    compile_model = "1" if rows >= COMPILE_FROM_ROWS else "0"
    return TrainingOptions(rng=seed, environment={"LK_TORCH_COMPILE": compile_model})


def rows_digest(frame: pd.DataFrame) -> Any:
    """A BLAKE2b digest of a table's rows in their order (the index left out), which the
    caller may extend with what else a fitted model depends on."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest
