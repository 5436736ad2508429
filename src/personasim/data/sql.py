"""DuckDB for the out-of-core paths: a connection bounded in memory, SQL literals,
one-row queries and query results copied to Parquet."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from personasim.config import ScaleConfig
from personasim.workspace import atomic_path

__all__ = ["copy_to_parquet", "duckdb_connection", "fetch_one", "sql_literal"]


@contextmanager
def duckdb_connection(scale: ScaleConfig, scratch: Path) -> Iterator[Any]:
    """An in-memory DuckDB bounded by `scale.memory_limit`, spilling into `scratch`."""
    import duckdb

    scratch.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(
        config={
            "memory_limit": scale.memory_limit,
            "temp_directory": str(scratch),
            "threads": os.cpu_count() or 1,
            # Order is restored with ORDER BY where it matters; not preserving it lets
            # DuckDB stream and spill more freely.
            "preserve_insertion_order": False,
        }
    )
    try:
        yield con
    finally:
        con.close()


def fetch_one(con: Any, query: str, params: list[Any] | None = None) -> Any:
    """The first row of a query (None without rows), the result consumed whole: DuckDB
    refuses new work on a connection with an unfinished result."""
    rows = con.execute(query, params).fetchall() if params else con.execute(query).fetchall()
    return rows[0] if rows else None


def sql_literal(path: Path | str) -> str:
    """A path (or any text) as an SQL string literal (for DuckDB's table functions)."""
    return "'" + str(path).replace("'", "''") + "'"


def copy_to_parquet(con: Any, query: str, path: Path) -> None:
    """Write a query's result to Parquet (zstd), atomically."""
    with atomic_path(path) as tmp:
        fetch_one(con, f"COPY ({query}) TO {sql_literal(tmp)} (FORMAT parquet, COMPRESSION zstd)")
