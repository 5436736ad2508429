"""Cold-start users: profile them as the clustered users were, then place them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from personasim.config import RunConfig
from personasim.data.raw_table import RawTable
from personasim.data.tables import read_parquet
from personasim.data.validation import parse_ids, parse_ratings, parse_timestamps
from personasim.errors import DataError
from personasim.personas.assignment import Assignment, PersonaModel
from personasim.personas.features import taste_features
from personasim.profiles.builder import build_profiles
from personasim.run_folder import DATA, PROFILES
from personasim.workspace import Workspace

__all__ = ["assign_new_users", "profile_new_users", "read_new_ratings"]


def read_new_ratings(workspace: Workspace, config: RunConfig, raw: RawTable) -> pd.DataFrame:
    """The ratings of users who were not clustered, checked as the run's log was.

    Args:
        workspace: The run folder (ingest must have run).
        config: Its configuration.
        raw: The ratings file, with the run's user, item, rating (and time) columns.

    Returns:
        ``user_id, item_id, rating, timestamp`` (the file's order when it has no time).

    Raises:
        DataError: A rating is invalid or names an item the run does not know.
    """
    cols = config.data.columns
    needed = [("user", cols.user), ("item", cols.item), ("rating", cols.rating)]
    if cols.timestamp and cols.timestamp in raw.columns:
        needed.append(("timestamp", cols.timestamp))
    raw.require_columns(needed)
    items = read_parquet(workspace.require(DATA.items))
    frame = pd.DataFrame(
        {
            "user_id": parse_ids(raw, cols.user).to_numpy(zero_copy_only=False),
            "item_id": parse_ids(raw, cols.item).to_numpy(zero_copy_only=False),
            "rating": parse_ratings(raw, cols.rating, config.data.scale),
        }
    )
    frame["timestamp"] = (
        parse_timestamps(raw, cols.timestamp)
        if len(needed) == 4
        else np.arange(len(frame), dtype="int64")
    )
    unknown = ~frame["item_id"].isin(set(items["item_id"])).to_numpy()
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise DataError(
            f"item {frame['item_id'].iloc[i]!r} is not an item of this run",
            file=raw.file,
            row=raw.row_number(i),
            column=cols.item,
        )
    return frame


def profile_new_users(
    workspace: Workspace, config: RunConfig, ratings: pd.DataFrame
) -> pd.DataFrame:
    """Profiles of users given by their ratings, written exactly as the run's profiles.

    Their whole history plays the part of a train history; trait levels are cut at the
    percentiles of the run's profiled users, and the profile text comes from the run's
    `[llm]` and `[profile]` settings (and reuses its generation cache).

    Args:
        workspace: The run folder (ingest and profile must have run).
        config: Its configuration.
        ratings: Their ratings, from :func:`read_new_ratings`.
    """
    result = build_profiles(
        ratings,
        read_parquet(workspace.require(DATA.items)),
        llm=config.llm,
        config=config.profile,
        cache_path=workspace.root / ".cache" / "generations.sqlite",
        seed=config.seed,
        reference_traits=read_parquet(workspace.require(PROFILES.profiles)),
        rationales=False,
        scale=config.data.scale,
    )
    return result.profiles


def assign_new_users(
    workspace: Workspace, config: RunConfig, raw: RawTable
) -> tuple[pd.DataFrame, Assignment, PersonaModel]:
    """Profile users from their ratings and assign them to the run's personas, by their
    taste (from those ratings), traits and profile text as the personas were clustered."""
    model = PersonaModel.from_workdir(workspace.root)
    ratings = read_new_ratings(workspace, config, raw)
    profiles = profile_new_users(workspace, config, ratings)
    items = read_parquet(workspace.require(DATA.items))
    users = pd.Index(profiles["user_id"].astype(str), name="user_id")
    placed = model.assign(
        profiles["profile_text"].tolist(),
        traits=profiles,
        taste=taste_features(ratings, items).reindex(users),
    )
    return profiles, placed, model
