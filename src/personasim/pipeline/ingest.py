"""Stage `ingest`: read the log, sample users, split them in time, write ``data/``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from personasim.data.log import load_log
from personasim.data.outofcore import ingest_out_of_core
from personasim.data.sources import LogSpec, log_spec
from personasim.data.splitting import (
    global_cut_time,
    select_users,
    split_global_time,
    split_temporal,
    validation_split,
    withhold_items,
)
from personasim.data.tables import (
    INTERACTIONS_SCHEMA,
    ITEMS_SCHEMA,
    OTHERS_SCHEMA,
    item_statistics,
    user_table,
    write_parquet,
)
from personasim.errors import ConfigError
from personasim.pipeline.stage import Stage
from personasim.progress import progress
from personasim.run_folder import DATA

__all__ = ["IngestStage"]

logger = logging.getLogger(__name__)


class IngestStage(Stage):
    """Read and validate the log, select and split users, compute train-only item stats."""

    name = "ingest"
    folder = DATA.stage.folder

    def settings(self) -> list[Any]:
        """The `[data]` and `[split]` sections and the seed."""
        data = self.config.data
        whole_steps = {"rating_step"} if data.rating_step == 1.0 else set()
        # older runs (whole steps, before the setting) keep their hash
        split = self.config.split
        per_user = {"protocol"} if split.protocol == "per_user" else set()
        return [
            data.model_dump(mode="json", exclude_none=True, exclude=whole_steps),
            split.model_dump(mode="json", exclude_none=True, exclude=per_user),
            self.config.seed,
        ]

    def _spec(self) -> LogSpec:
        if not hasattr(self, "_cached_spec"):
            self._cached_spec = log_spec(self.config.data)
        return self._cached_spec

    def external_inputs(self) -> list[Path]:
        """The log and its item/user files (for a MovieLens folder, every file in it)."""
        spec = self._spec()
        if spec.movielens_dir and spec.path.is_dir():
            return sorted(p for p in spec.path.rglob("*") if p.is_file())
        return [p for p in (spec.path, spec.items_path, spec.users_path) if p is not None]

    def build(self, out: Path) -> dict[str, Any]:
        """Write interactions, items, users and others tables into `out`."""
        split_cfg = self.config.split
        if self.config.scale.tables == "duckdb":
            if (
                split_cfg.new_items
                or split_cfg.validation_share
                or (split_cfg.protocol != "per_user")
                or self.config.data.implicit
            ):
                raise ConfigError(
                    "split.new_items, split.validation_share, split.protocol = "
                    "'global_time' and logs without ratings (data.columns.rating = '') are "
                    "not supported with scale.tables = 'duckdb' yet; use scale.tables = "
                    "'pandas'"
                )
            with self.scratch() as scratch:
                summary = ingest_out_of_core(
                    self._spec(),
                    out,
                    split=split_cfg,
                    seed=self.config.seed,
                    scale=self.config.scale,
                    scratch=scratch,
                )
            logger.info(
                "ingest: %d of %d eligible users, %d train / %d test ratings (out of core)",
                summary["users"],
                summary["eligible_users"],
                summary["train_ratings"],
                summary["test_ratings"],
            )
            return summary
        with progress(f"reading {self._spec().path.name}") as _:
            log = load_log(self._spec())
        seed = self.config.seed
        rng = np.random.default_rng(seed)
        cut = None
        if split_cfg.protocol == "global_time" and split_cfg.validation_share:
            raise ConfigError(
                "split.validation_share (a tuning split) is not supported with "
                "split.protocol = 'global_time' yet"
            )
        if split_cfg.protocol == "global_time":
            cut = global_cut_time(log.interactions, split_cfg.train_fraction)
            split, n_eligible = split_global_time(
                log.interactions,
                cut=cut,
                n_users=split_cfg.users,
                min_ratings=split_cfg.min_ratings,
                max_ratings=split_cfg.max_ratings,
                include_others=split_cfg.include_other_users,
                rng=rng,
            )
            users = split.interactions["user_id"].unique()
        else:
            users, n_eligible = select_users(
                log.interactions,
                n_users=split_cfg.users,
                min_ratings=split_cfg.min_ratings,
                max_ratings=split_cfg.max_ratings,
                rng=rng,
            )
            split = split_temporal(
                log.interactions,
                users,
                train_fraction=split_cfg.train_fraction,
                include_others=split_cfg.include_other_users,
                file=log.file,
                user_column=log.user_column,
            )
        validation_split(split, split_cfg.validation_share)
        withheld = withhold_items(split, split_cfg.new_items, np.random.default_rng([seed, 1]))
        items = item_statistics(log.items, split.training_data())
        write_parquet(split.interactions, DATA.interactions.under(out), INTERACTIONS_SCHEMA)
        write_parquet(items, DATA.items.under(out), ITEMS_SCHEMA)
        write_parquet(user_table(split.interactions, log.users), DATA.users.under(out))
        write_parquet(split.others, DATA.others.under(out), OTHERS_SCHEMA)
        summary = {
            "source": self._spec().name,
            "log_ratings": int(len(log.interactions)),
            "log_users": int(log.interactions.user_id.nunique()),
            "log_items": int(log.interactions.item_id.nunique()),
            "catalogue_items": int(len(items)),
            "eligible_users": n_eligible,
            "users": int(len(users)),
            "train_ratings": int(len(split.train)),
            "test_ratings": int(len(split.test)),
            "other_users": int(split.others.user_id.nunique()),
            "other_ratings": int(len(split.others)),
            "time_order": "row order" if log.timestamps_from_order else "timestamp",
        }
        if self.config.data.implicit:
            summary["feedback"] = "implicit"
        if cut is not None:
            summary["protocol"] = "global_time"
            summary["cut_time"] = cut
        if split_cfg.validation_share:
            summary["validation_share"] = split_cfg.validation_share
            logger.info(
                "ingest: a tuning split: the test part is the last %g of each user's train "
                "ratings; the real test ratings are not in this run folder",
                split_cfg.validation_share,
            )
        if withheld:
            new = split.test["item_id"].isin(set(withheld))
            summary["new_items"] = len(withheld)
            summary["new_item_test_ratings"] = int(new.sum())
            logger.info(
                "ingest: %d items withheld from training (split.new_items = %g); %d test "
                "ratings of them",
                len(withheld),
                split_cfg.new_items,
                summary["new_item_test_ratings"],
            )
        logger.info(
            "ingest: %d of %d eligible users, %d train / %d test ratings",
            summary["users"],
            n_eligible,
            summary["train_ratings"],
            summary["test_ratings"],
        )
        return summary
