"""The run folder: atomic files, atomic stage folders, manifest verification."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from personasim.errors import ConfigError, StageError
from personasim.run_folder import ADAPTERS, DATA, MANIFEST
from personasim.workspace import Workspace, atomic_path, atomic_write_text


def test_atomic_path_keeps_old_file_on_failure(tmp_path: Path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_files_are_readable_by_others(tmp_path: Path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "x")
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_staging_commits_only_on_success(tmp_path: Path):
    ws = Workspace(tmp_path / "run")
    with ws.staging("data") as out:
        (out / "t.txt").write_text("v1")
    assert (ws.stage_dir("data") / "t.txt").read_text() == "v1"
    with pytest.raises(KeyboardInterrupt), ws.staging("data") as out:
        (out / "t.txt").write_text("v2-partial")
        raise KeyboardInterrupt
    assert (ws.stage_dir("data") / "t.txt").read_text() == "v1"
    assert sorted(p.name for p in ws.root.iterdir()) == ["data"]


def test_stale_staging_folders_are_removed(tmp_path: Path):
    ws = Workspace(tmp_path / "run")
    stale = ws.root / ".staging" / "data-deadbeef"
    stale.mkdir(parents=True)
    (stale / "junk").write_text("x")
    with ws.staging("data") as out:
        (out / "t.txt").write_text("v")
    assert not stale.exists()


def test_verify_outputs_detects_altered_and_missing(tmp_path: Path):
    ws = Workspace(tmp_path)
    d = ws.stage_dir("s")
    d.mkdir()
    (d / "a").write_text("aaaa")
    (d / "b").write_text("bbbb")
    from personasim.workspace import file_sha256

    manifest = {"outputs": {n: {"sha256": file_sha256(d / n), "bytes": 4} for n in "ab"}}
    assert ws.verify_outputs("s", manifest) == []
    (d / "a").write_text("aaab")  # same size, other content
    (d / "b").unlink()
    assert ws.verify_outputs("s", manifest) == ["a", "b"]


def test_require_names_the_command_that_writes_the_artifact(tmp_path: Path):
    ws = Workspace(tmp_path / "run")
    with pytest.raises(StageError, match="run `personasim ingest --workdir"):
        ws.require(DATA.interactions)
    with ws.staging(DATA.stage.folder) as out:
        DATA.interactions.under(out).write_text("x")
        (out / MANIFEST).write_text("{}")
    assert ws.require(DATA.interactions) == ws.root / "data" / "interactions.parquet"
    assert ws.path(ADAPTERS.watch_prior) == ws.stage_dir(ADAPTERS.stage) / "watch_prior.npz"
    with pytest.raises(StageError, match="run `personasim train --workdir"):
        ws.require(ADAPTERS.watch_prior)


def test_workdir_that_is_a_file_is_a_usage_error(tmp_path: Path):
    f = tmp_path / "f"
    f.write_text("")
    with pytest.raises(ConfigError, match="is not a folder"):
        Workspace(f)


def test_one_process_writes_a_run_folder_at_a_time(tmp_path: Path):
    import subprocess
    import sys

    from personasim.errors import StageError

    ws = Workspace(tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from personasim.workspace import Workspace\n"
            f"with Workspace({str(tmp_path)!r}).lock():\n"
            "    print('held', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StageError, match=r"is in use by personasim pid \d+"), ws.lock():
            pass
    finally:
        holder.kill()
        holder.wait()
    with ws.lock():  # released when the holder dies, even by kill -9
        pass
