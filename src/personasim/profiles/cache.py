"""A persistent key-value cache of generations (SQLite), so killed runs resume.

One file per run folder (``DIR/.cache/generations.sqlite``). Writes are committed per
batch of generations; SQLite's journal keeps the file consistent if the process is
killed mid-write. Keys are hashes of everything that determines a generation (backend,
model, prompt version, the exact inputs), so a hit is always safe to reuse.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["GenerationCache", "cache_key"]

_LOCK_TIMEOUT_S = 120.0
"""How long a process waits for another one's lock on the cache file."""


def cache_key(*parts: Any) -> str:
    """SHA-256 of JSON-serialised parts (order matters, key order of dicts does not)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class GenerationCache:
    """Key -> JSON value store.

    Args:
        path: The SQLite file (created with its folder).
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Several processes (Ray workers) may write at once: wait for the lock.
        self._db = sqlite3.connect(path, timeout=_LOCK_TIMEOUT_S)
        self._wal()
        self._db.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT)")
        self._db.commit()

    def _wal(self) -> None:
        """Switch the file to write-ahead logging (once per file; later calls find it).

        SQLite answers "database is locked" at once, without its busy timeout, to a
        connection that asks while another one switches the mode: Ray workers that
        open a new cache together met it. Asked again until the timeout.
        """
        deadline = time.monotonic() + _LOCK_TIMEOUT_S
        pause = 0.01
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 0.5)

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The cached values of those `keys` that are present."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, Any] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(f"SELECT key, value FROM kv WHERE key IN ({marks})", chunk)
            found.update((k, json.loads(v)) for k, v in rows)
        return found

    def put_many(self, values: Mapping[str, Any]) -> None:
        """Store values in one transaction."""
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)",
                [(k, json.dumps(v)) for k, v in values.items()],
            )

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM kv").fetchone()[0])

    def close(self) -> None:
        """Close the database."""
        self._db.close()
