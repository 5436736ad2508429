"""Out-of-core ingestion: logs too big for memory, streamed and joined by DuckDB.

The log is staged in batches (:func:`~personasim.data.staging.stage_log`) and each
batch is validated by the same functions as the in-memory path, so a bad value is refused
with the same message, file, row and column. The typed rows go to a staging Parquet file;
DuckDB then checks duplicates, counts, samples, splits and aggregates over it in bounded
memory (`scale.memory_limit`, spilling to the run folder's scratch space past it).

The artifacts are those of :class:`~personasim.pipeline.ingest.IngestStage` on the
in-memory path, row for row (tests check it on logs both can read).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from personasim.config import ScaleConfig, SplitConfig
from personasim.data.items import item_meta_columns, item_table, read_items_file
from personasim.data.raw_table import RawTable
from personasim.data.sources import LogSpec
from personasim.data.splitting import n_train, select_from_counts, too_few_to_split
from personasim.data.sql import copy_to_parquet, duckdb_connection, fetch_one, sql_literal
from personasim.data.staging import stage_log
from personasim.data.tables import INTERACTIONS_SCHEMA, ITEMS_SCHEMA, OTHERS_SCHEMA, write_parquet
from personasim.data.users import read_users_file
from personasim.errors import ConfigError, DataError
from personasim.progress import progress
from personasim.run_folder import DATA
from personasim.workspace import atomic_path

__all__ = ["ingest_out_of_core"]

logger = logging.getLogger(__name__)


def _check_duplicates(con: Any, spec: LogSpec) -> int:
    """Refuse repeated (user, item) ratings, or keep the latest; return how many went."""
    first = fetch_one(
        con,
        "SELECT user_id, item_id, min(row) AS first_row, count(*) AS n FROM log "
        "GROUP BY user_id, item_id HAVING count(*) > 1 ORDER BY min(row) LIMIT 1",
    )
    if first is None:
        return 0
    if spec.duplicates == "keep_last":
        before = fetch_one(con, "SELECT count(*) FROM log")[0]
        fetch_one(
            con,
            "CREATE OR REPLACE VIEW log AS SELECT * FROM staged QUALIFY row_number() OVER "
            "(PARTITION BY user_id, item_id ORDER BY timestamp DESC, row DESC) = 1",
        )
        dropped = before - fetch_one(con, "SELECT count(*) FROM log")[0]
        logger.warning(
            "%s: %d repeated ratings of the same item by the same user; kept the latest of each",
            spec.path,
            dropped,
        )
        return int(dropped)
    # The first repeat in file order, as the in-memory path reports it.
    user, item, row = fetch_one(
        con,
        "SELECT user_id, item_id, row FROM (SELECT user_id, item_id, row, row_number() OVER "
        "(PARTITION BY user_id, item_id ORDER BY row) AS k FROM log) WHERE k = 2 "
        "ORDER BY row LIMIT 1",
    )
    first_row = fetch_one(
        con, "SELECT min(row) FROM log WHERE user_id = ? AND item_id = ?", [user, item]
    )[0]
    raise DataError(
        f"user {user!r} rated item {item!r} again (first in row {first_row}); remove the "
        'duplicate or set data.duplicates = "keep_last"',
        file=spec.path,
        row=int(row),
        column=spec.columns.item,
    )


def _require_known(con: Any, key: str, table: str, spec: LogSpec, mapping: Path) -> None:
    """Every id of the log's `key` column is in the registered `table` (of `mapping`)."""
    found = fetch_one(
        con,
        f"SELECT {key}, min(row) FROM log ANTI JOIN {table} USING ({key}) "
        f"GROUP BY {key} ORDER BY min(row) LIMIT 1",
    )
    if found is None:
        return
    what = key.removesuffix("_id")
    n = fetch_one(con, f"SELECT count(*) FROM log ANTI JOIN {table} USING ({key})")[0]
    column = spec.columns.user if what == "user" else spec.columns.item
    raise DataError(
        f"{what} {found[0]!r} is not in {mapping} ({int(n)} rating(s) name {what}s missing "
        "there); check that both files use the same ids",
        file=spec.path,
        row=int(found[1]),
        column=column,
    )


def _items(con: Any, spec: LogSpec, staged: Path) -> pd.DataFrame:
    """The item table (items file, else the first row of each item in the log)."""
    if spec.items_path is not None:
        items = read_items_file(spec)
        con.register("known_items", pa.table({"item_id": items["item_id"].to_numpy(str)}))
        _require_known(con, "item_id", "known_items", spec, spec.items_path)
        return items
    meta_path = staged.with_suffix(".meta.parquet")
    if not meta_path.exists():
        first = con.sql(
            "SELECT item_id, min(row) AS row FROM log GROUP BY item_id ORDER BY row"
        ).to_arrow_table()
        ids = first.column("item_id").to_numpy(zero_copy_only=False)
        raw = RawTable(pa.table({"item_id": ids}), spec.path, 1, first.column("row").to_numpy())
        return item_table(raw, ids, spec)
    meta = item_meta_columns(spec)
    picks = ", ".join(f'arg_min(m_{name}, row) AS "{column}"' for name, column in meta)
    source = f"read_parquet({sql_literal(meta_path)})"
    first = con.sql(
        f"SELECT m.item_id, min(m.row) AS row, {picks} FROM {source} m "
        "SEMI JOIN log USING (row) GROUP BY m.item_id ORDER BY row"
    ).to_arrow_table()
    ids = first.column("item_id").to_numpy(zero_copy_only=False)
    raw = RawTable(first, spec.path, 1, first.column("row").to_numpy())
    return item_table(raw, ids, spec)


def ingest_out_of_core(
    spec: LogSpec,
    out: Path,
    *,
    split: SplitConfig,
    seed: int,
    scale: ScaleConfig,
    scratch: Path,
) -> dict[str, Any]:
    """Write ``interactions``, ``items``, ``users`` and ``others`` Parquet tables into
    `out`, reading the log out of core.

    Args:
        spec: A custom CSV/TSV/Parquet log (MovieLens folders fit in memory: use the
            in-memory path).
        out: The stage's output folder.
        split: The `[split]` section.
        seed: The run's seed (the user sample is the in-memory path's).
        scale: Memory limit of DuckDB.
        scratch: Scratch folder (staging file, DuckDB spill); removed by the caller.

    Returns:
        The stage summary (same keys as the in-memory path).

    Raises:
        DataError: Bad values, duplicates, unknown ids, users too small to split.
        ConfigError: A source the out-of-core path does not read.
    """
    if spec.movielens_dir:
        raise ConfigError(
            'scale.tables = "duckdb" reads custom CSV/Parquet logs; a MovieLens folder fits '
            'in memory: use scale.tables = "pandas"'
        )
    staged = scratch / "log.parquet"
    spec, n_rows = stage_log(spec, staged)
    with duckdb_connection(scale, scratch / "duckdb") as con:
        fetch_one(con, f"CREATE VIEW staged AS SELECT * FROM read_parquet({sql_literal(staged)})")
        fetch_one(con, "CREATE VIEW log AS SELECT * FROM staged")
        with progress("checking duplicates", total=None):
            _check_duplicates(con, spec)
        items = _items(con, spec, staged)
        attributes = None
        if spec.users_path is not None:
            attributes = read_users_file(spec)
            con.register("known_users", pa.table({"user_id": attributes["user_id"].to_numpy(str)}))
            _require_known(con, "user_id", "known_users", spec, spec.users_path)

        counts_table = con.sql(
            "SELECT user_id, count(*) AS n FROM log GROUP BY user_id ORDER BY user_id"
        ).to_arrow_table()
        counts = pd.Series(
            counts_table.column("n").to_numpy(),
            index=counts_table.column("user_id").to_numpy(zero_copy_only=False),
        )
        users, n_eligible = select_from_counts(
            counts,
            n_users=split.users,
            min_ratings=split.min_ratings,
            max_ratings=split.max_ratings,
            rng=np.random.default_rng(seed),
        )
        n = counts.loc[users].to_numpy()
        if not 0.0 < split.train_fraction < 1.0:
            raise ConfigError(f"train_fraction must be in (0, 1), got {split.train_fraction}")
        cut = n_train(n, split.train_fraction)
        bad = np.flatnonzero((cut == 0) | (cut == n))
        if len(bad):
            user = str(users[bad[0]])
            row = fetch_one(con, "SELECT min(row) FROM log WHERE user_id = ?", [user])[0]
            raise too_few_to_split(
                user,
                int(n[bad[0]]),
                split.train_fraction,
                file=spec.path,
                row=int(row),
                column=spec.columns.user,
            )
        con.register("sampled", pa.table({"user_id": users.astype(str), "cut": cut}))
        with progress("splitting in time", total=None):
            copy_to_parquet(
                con,
                "SELECT user_id, item_id, rating, timestamp, CASE WHEN row_number() OVER "
                "(PARTITION BY user_id ORDER BY timestamp, item_id) <= cut THEN 'train' "
                "ELSE 'test' END AS split FROM log JOIN sampled USING (user_id) "
                "ORDER BY user_id, timestamp, item_id",
                DATA.interactions.under(out),
            )
            others = (
                "SELECT user_id, item_id, rating, timestamp FROM log "
                "ANTI JOIN sampled USING (user_id) ORDER BY row"
            )
            if not split.include_other_users:
                others += " LIMIT 0"
            copy_to_parquet(con, others, DATA.others.under(out))
        interactions = sql_literal(DATA.interactions.under(out))
        others_path = sql_literal(DATA.others.under(out))
        stats = con.execute(
            "SELECT item_id, avg(rating) AS mean, count(*) AS n FROM ("
            f"SELECT item_id, rating FROM read_parquet({interactions}) WHERE split = 'train' "
            f"UNION ALL SELECT item_id, rating FROM read_parquet({others_path})) "
            "GROUP BY item_id"
        ).df()
        stats = stats.set_index("item_id")
        items = items.copy()
        items["train_mean_rating"] = items["item_id"].map(stats["mean"]).astype("float64")
        items["train_count"] = items["item_id"].map(stats["n"]).fillna(0).astype("int64")
        write_parquet(items, DATA.items.under(out), ITEMS_SCHEMA)
        user_rows = con.execute(
            "SELECT user_id, count(*) AS n_ratings, count(*) FILTER (split = 'train') AS "
            "n_train, count(*) FILTER (split = 'test') AS n_test "
            f"FROM read_parquet({interactions}) GROUP BY user_id ORDER BY user_id"
        ).df()
        user_rows = user_rows.astype({"n_ratings": "int64", "n_train": "int64", "n_test": "int64"})
        if attributes is not None:
            user_rows = user_rows.merge(attributes, on="user_id", how="left")
        write_parquet(user_rows, DATA.users.under(out))
        totals = fetch_one(
            con, "SELECT count(*), count(DISTINCT user_id), count(DISTINCT item_id) FROM log"
        )
        split_counts = dict(
            con.execute(
                f"SELECT split, count(*) FROM read_parquet({interactions}) GROUP BY split"
            ).fetchall()
        )
        other = fetch_one(
            con, f"SELECT count(*), count(DISTINCT user_id) FROM read_parquet({others_path})"
        )
    _check_schema(out)
    logger.info("ingest (out of core): %d rows staged", n_rows)
    return {
        "source": spec.name,
        "tables": "duckdb",
        "log_ratings": int(totals[0]),
        "log_users": int(totals[1]),
        "log_items": int(totals[2]),
        "catalogue_items": int(len(items)),
        "eligible_users": int(n_eligible),
        "users": int(len(users)),
        "train_ratings": int(split_counts.get("train", 0)),
        "test_ratings": int(split_counts.get("test", 0)),
        "other_users": int(other[1]),
        "other_ratings": int(other[0]),
        "time_order": "timestamp" if spec.columns.timestamp else "row order",
    }


def _check_schema(out: Path) -> None:
    """Cast DuckDB's output to the contracted schemas when a column's type differs.

    Only names and types are compared: DuckDB marks some columns "not null", which no
    reader minds, and rewriting 100M rows for that alone cost a full pass."""
    for artifact, schema in (
        (DATA.interactions, INTERACTIONS_SCHEMA),
        (DATA.others, OTHERS_SCHEMA),
    ):
        path = artifact.under(out)
        written = pq.read_schema(path)
        if [(f.name, f.type) for f in written] == [(f.name, f.type) for f in schema]:
            continue
        with atomic_path(path) as tmp:
            source = pq.ParquetFile(path)
            with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
                for batch in source.iter_batches():
                    writer.write_table(pa.Table.from_batches([batch]).cast(schema))
