"""The run folder: where every stage reads and writes, atomically.

Layout (the contract of DESIGN.md, section 3)::

    DIR/config.toml            the effective configuration of the last command
    DIR/<stage>/               a finished stage's artifacts and its manifest.json
    DIR/.staging/<stage>-*/    a stage being written (moved into place when complete)
    DIR/.checkpoints/<stage>/  per-unit results of long stages, for resuming

A stage writes everything into a staging folder and renames it into place only when it
has finished, manifest last: a stage folder that exists is complete, and a killed run
leaves nothing half-written where later stages look.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import filelock

from personasim.config import RunConfig, load_config, read_toml
from personasim.errors import ConfigError, StageError
from personasim.run_folder import MANIFEST, RUN, Artifact, StageFolder

__all__ = [
    "Workspace",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "file_sha256",
    "resolve_config",
]

logger = logging.getLogger(__name__)

_UMASK = os.umask(0)
os.umask(_UMASK)


def _folder(stage: StageFolder | str) -> str:
    """The folder name of a stage, given as a `StageFolder` or as its folder's name."""
    return stage.folder if isinstance(stage, StageFolder) else stage


def file_sha256(path: Path, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`.

    Readers see the old file or the new one, never a torn one; on an exception the
    temporary file is removed and `path` is untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; artifacts are ordinary files
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: Path, text: str) -> None:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


class Workspace:
    """A run folder.

    Args:
        root: The folder; created if missing.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"--workdir {self.root} exists and is not a folder")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"cannot create the run folder {self.root}: {e.strerror}") from None
        if not os.access(self.root, os.W_OK):
            raise ConfigError(f"the run folder {self.root} is not writable")

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    @property
    def config_path(self) -> Path:
        """The configuration the run folder last ran with."""
        return self.root / RUN.config

    def stage_dir(self, stage: StageFolder | str) -> Path:
        """The folder of a stage's finished artifacts (a `StageFolder` or its name)."""
        return self.root / _folder(stage)

    def path(self, artifact: Artifact) -> Path:
        """The path of one artifact of a finished stage (which may not exist)."""
        return artifact.under(self.stage_dir(artifact.stage))

    def require(self, artifact: Artifact) -> Path:
        """The path of an artifact that a later stage needs.

        Raises:
            StageError: The stage that writes it has not finished in this run folder.
        """
        path = self.path(artifact)
        if self.read_manifest(artifact.stage) is None or not path.exists():
            raise StageError(
                f"{path} is missing: run `personasim {artifact.stage.command} --workdir "
                f"{self.root}` first (or `personasim run`)"
            )
        return path

    def read_manifest(self, stage: StageFolder | str) -> dict[str, Any] | None:
        """The manifest of a finished stage, or None if the stage has not finished."""
        path = self.stage_dir(stage) / MANIFEST
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, UnicodeDecodeError):
            logger.warning("%s is unreadable; the stage will be redone", path)
            return None

    def verify_outputs(self, stage: StageFolder | str, manifest: dict[str, Any]) -> list[str]:
        """Names of the outputs listed in a manifest that are missing or altered."""
        bad = []
        for name, meta in manifest.get("outputs", {}).items():
            path = self.stage_dir(stage) / name
            if (
                not path.is_file()
                or path.stat().st_size != meta["bytes"]
                or file_sha256(path) != meta["sha256"]
            ):
                bad.append(name)
        return bad

    @contextlib.contextmanager
    def staging(self, stage: str) -> Iterator[Path]:
        """A fresh folder to write a stage's artifacts into.

        On normal exit the folder replaces ``DIR/<stage>`` (the old one is removed); on
        an exception it is deleted. Either way nothing half-written is left in place.
        """
        staging_root = self.root / ".staging"
        staging_root.mkdir(exist_ok=True)
        self._clean_stale(staging_root, stage)
        tmp = staging_root / f"{stage}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            yield tmp
            self._commit(tmp, self.stage_dir(stage))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            with contextlib.suppress(OSError):
                staging_root.rmdir()  # only when empty

    def _clean_stale(self, staging_root: Path, stage: str) -> None:
        for old in staging_root.glob(f"{stage}-*"):
            logger.debug("removing %s left by an interrupted run", old)
            shutil.rmtree(old, ignore_errors=True)

    def _commit(self, tmp: Path, final: Path) -> None:
        trash = None
        if final.exists():
            trash = self.root / ".staging" / f"trash-{final.name}-{uuid.uuid4().hex[:8]}"
            os.replace(final, trash)
        os.replace(tmp, final)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)

    def invalidate(self, stage: str) -> None:
        """Remove a stage's artifacts (used when an upstream stage was redone)."""
        final = self.stage_dir(stage)
        if final.exists():
            trash = self.root / ".staging" / f"trash-{stage}-{uuid.uuid4().hex[:8]}"
            trash.parent.mkdir(exist_ok=True)
            os.replace(final, trash)
            shutil.rmtree(trash, ignore_errors=True)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run folder's lock: one personasim process writes to a folder at a time
        (a `filelock` lock on ``.lock``, released by the system when its holder dies; the
        holder names itself in ``.lock.owner`` for the error a second process gets).

        Raises:
            StageError: Another process holds it.
        """
        held = filelock.FileLock(self.root / ".lock", timeout=0)
        owner = self.root / ".lock.owner"
        try:
            held.acquire()
        except filelock.Timeout:
            holder = owner.read_text().strip() if owner.exists() else ""
            raise StageError(
                f"{self.root} is in use by {holder or 'another process'}; wait for it to "
                "finish (two runs writing one folder would mix their results)"
            ) from None
        try:
            atomic_write_text(owner, f"personasim pid {os.getpid()}")
            yield
        finally:
            owner.unlink(missing_ok=True)
            held.release()

    def checkpoint_dir(self, stage: str, key: str) -> Path:
        """A folder for per-unit results of a long stage, valid for one configuration.

        Results saved here survive a killed run; the stage reads them back when it is
        rerun with the same `key` (a hash of its configuration and inputs). Checkpoints
        of other keys are removed.
        """
        base = self.root / ".checkpoints" / stage
        if base.exists():
            for other in base.iterdir():
                if other.name != key:
                    shutil.rmtree(other, ignore_errors=True)
        path = base / key
        path.mkdir(parents=True, exist_ok=True)
        return path

    def clear_checkpoints(self, stage: str) -> None:
        """Remove a stage's checkpoints (after the stage has finished)."""
        base = self.root / ".checkpoints"
        shutil.rmtree(base / stage, ignore_errors=True)
        with contextlib.suppress(OSError):
            base.rmdir()  # only when no other stage has checkpoints

    def check_writable(self) -> None:
        """Fail early and clearly if the run folder cannot be written."""
        probe = self.root / f".write-probe-{uuid.uuid4().hex[:8]}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise StageError(f"cannot write in the run folder {self.root}: {e.strerror}") from None


CONFIG_ENV = "PERSONASIM_CONFIG"
"""The environment variable naming a TOML file of settings every command applies, above
the run folder's and below ``--config`` and the options."""


def resolve_config(
    workspace: Workspace,
    config_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> RunConfig:
    """The effective configuration of a command on a run folder.

    Layers, later ones winning: defaults, the run folder's ``config.toml``, the file
    named by the environment variable :data:`CONFIG_ENV` (settings of a machine or a
    test, e.g. a smaller budget), `config_file`, `overrides` (from command-line options).
    Each stage that succeeds saves it back to the run folder's ``config.toml``, so later
    commands on the folder use the same settings.

    Raises:
        ConfigError: A layer is unreadable or a setting invalid.
    """
    layers: list[tuple[str, dict[str, Any]]] = []
    if workspace.config_path.exists():
        layers.append((str(workspace.config_path), read_toml(workspace.config_path)))
    if os.environ.get(CONFIG_ENV):
        path = Path(os.environ[CONFIG_ENV])
        layers.append((f"{path} ({CONFIG_ENV})", read_toml(path)))
    if config_file is not None:
        layers.append((str(config_file), read_toml(Path(config_file))))
    if overrides:
        layers.append(("command-line options", overrides))
    return load_config(layers)
