"""Reading logs, validating them, sampling users and splitting them in time."""

from __future__ import annotations

from personasim.data.log import Log, load_log
from personasim.data.sources import LogSpec, builtin_dataset_dir, log_spec
from personasim.data.splitting import TemporalSplit, n_train, select_users, split_temporal
from personasim.data.tables import item_statistics, read_parquet, write_parquet

__all__ = [
    "Log",
    "LogSpec",
    "TemporalSplit",
    "builtin_dataset_dir",
    "item_statistics",
    "load_log",
    "log_spec",
    "n_train",
    "read_parquet",
    "select_users",
    "split_temporal",
    "write_parquet",
]
