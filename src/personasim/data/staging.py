"""Staging a log for out-of-core ingestion: streamed in batches, each validated as in
memory, into a typed Parquet file (and the item metadata columns beside it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from personasim.data.items import item_meta_columns, with_present_item_columns
from personasim.data.raw_table import RawTable
from personasim.data.reading import iter_table_file
from personasim.data.sources import LogSpec
from personasim.data.validation import parse_ids, parse_ratings, parse_timestamps
from personasim.errors import ConfigError
from personasim.progress import progress
from personasim.workspace import atomic_path

__all__ = ["STAGED_SCHEMA", "stage_log"]

STAGED_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("rating", pa.float64()),
        ("timestamp", pa.int64()),
        ("row", pa.int64()),
    ]
)
"""The staged rows: typed ids, ratings and timestamps, and each row's file row."""


def stage_log(spec: LogSpec, staged: Path) -> tuple[LogSpec, int]:
    """Stream, validate and type the log into `staged`; return the spec (item metadata
    columns present) and the number of rows."""
    cols = spec.columns
    if cols.user_attributes and spec.users_path is None:
        raise ConfigError(
            'scale.tables = "duckdb" reads user attributes from data.users_path only; '
            "set it, or empty data.columns.user_attributes"
        )
    writer: pq.ParquetWriter | None = None
    meta_writer: pq.ParquetWriter | None = None
    rows = 0
    meta: list[tuple[str, str]] = []
    with atomic_path(staged) as tmp, progress(f"reading {spec.path.name}", total=None) as advance:
        for raw in iter_table_file(
            spec.path, delimiter=spec.delimiter, encoding=spec.encoding, quoting=spec.quoting
        ):
            if writer is None:
                needed = [("user", cols.user), ("item", cols.item), ("rating", cols.rating)]
                if cols.timestamp:
                    needed.append(("timestamp", cols.timestamp))
                if spec.items_path is None:
                    spec = with_present_item_columns(spec, raw)
                    meta = item_meta_columns(spec)
                raw.require_columns(needed + meta)
                writer = pq.ParquetWriter(tmp, STAGED_SCHEMA, compression="zstd")
                if meta:
                    meta_writer = pq.ParquetWriter(tmp.with_suffix(".meta"), _meta_schema(meta))
            row = np.arange(raw.first_row, raw.first_row + raw.table.num_rows, dtype="int64")
            # Without a timestamp column, row order is time order (as in memory).
            timestamps = (
                parse_timestamps(raw, cols.timestamp)
                if cols.timestamp
                else np.arange(rows, rows + raw.table.num_rows)
            )
            batch = pa.table(
                [
                    parse_ids(raw, cols.user),
                    parse_ids(raw, cols.item),
                    pa.array(parse_ratings(raw, cols.rating, spec.scale)),
                    pa.array(np.asarray(timestamps, dtype="int64")),
                    pa.array(row),
                ],
                schema=STAGED_SCHEMA,
            )
            writer.write_table(batch)
            if meta_writer is not None:
                meta_writer.write_table(_meta_batch(raw, meta, batch))
            rows += raw.table.num_rows
            advance(raw.table.num_rows)
        assert writer is not None
        writer.close()
        if meta_writer is not None:
            meta_writer.close()
            tmp.with_suffix(".meta").replace(staged.with_suffix(".meta.parquet"))
    return spec, rows


def _meta_schema(meta: list[tuple[str, str]]) -> pa.Schema:
    return pa.schema(
        [("item_id", pa.string()), ("row", pa.int64())]
        + [(f"m_{name}", pa.string()) for name, _ in meta]
    )


def _meta_batch(raw: RawTable, meta: list[tuple[str, str]], batch: pa.Table) -> pa.Table:
    """The item metadata columns of a batch, as text, for the items seen in the log."""
    arrays = [batch.column("item_id"), batch.column("row")]
    for _, column in meta:
        arrays.append(raw.column(column).cast(pa.string()))
    return pa.table(arrays, schema=_meta_schema(meta))
