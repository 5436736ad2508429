"""The evaluation's one reuse mechanism: per-model results in a folder named after
exactly the settings they depend on.

The evaluate stage keeps its checkpoints (under the key of its inputs and seed); each
part of it (ratings, taste scores, free answers) stores one table per model in a
folder whose name hashes the settings that part depends on. A killed evaluation
resumes at the next model, and a later evaluation that changes only some settings
(the taste lists, the bootstrap rounds) finds the parts it did not change where the
first one left them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from personasim.config import config_hash
from personasim.data.tables import read_parquet, write_parquet
from personasim.workspace import atomic_write_text

__all__ = ["UnitStore"]

Unit = tuple[pd.DataFrame, dict[str, Any]]
"""A model's table and its note (what produced it)."""


class UnitStore:
    """One table (and note) per model under ``base/<part>-<hash of settings>``."""

    def __init__(self, base: Path, part: str, *settings: Any) -> None:
        self.folder = base / f"{part}-{config_hash(*settings)[:16]}"
        self.folder.mkdir(parents=True, exist_ok=True)

    def restore(self, name: str) -> Unit | None:
        """Model `name`'s stored table and note, or None."""
        table, note = self.folder / f"{name}.parquet", self.folder / f"{name}.json"
        if not (table.exists() and note.exists()):
            return None
        return read_parquet(table), json.loads(note.read_text())

    def save(self, name: str, frame: pd.DataFrame, note: dict[str, Any] | None = None) -> None:
        """Store model `name`'s table, then its note (a table without its note is not
        restored, so a kill between the two only redoes that model)."""
        write_parquet(frame, self.folder / f"{name}.parquet")
        atomic_write_text(self.folder / f"{name}.json", json.dumps(note or {}))

    def get(self, name: str, compute: Callable[[], Unit]) -> Unit:
        """Model `name`'s stored unit, else ``compute()`` (stored)."""
        found = self.restore(name)
        if found is None:
            found = compute()
            self.save(name, *found)
        return found
