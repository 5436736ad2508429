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
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["GenerationCache", "cache_key"]


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
        self._db = sqlite3.connect(path, timeout=120)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT)")
        self._db.commit()

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
