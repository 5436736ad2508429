"""The generation cache opens while other processes open and write it (Ray workers)."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

import personasim.profiles.cache as cache_module
from personasim.profiles.cache import GenerationCache


class _LockedAtFirst:
    """A connection whose first `fails` journal-mode switches answer "locked", as SQLite
    does (at once, without its busy timeout) while another connection switches it."""

    def __init__(self, real: sqlite3.Connection, fails: int, message: str) -> None:
        self.real, self.fails, self.message, self.asked = real, fails, message, 0

    def execute(self, sql: str, *args):
        if sql.startswith("PRAGMA journal_mode"):
            self.asked += 1
            if self.asked <= self.fails:
                raise sqlite3.OperationalError(self.message)
        return self.real.execute(sql, *args)

    def __enter__(self):
        return self.real.__enter__()

    def __exit__(self, *exc):
        return self.real.__exit__(*exc)

    def __getattr__(self, name: str):
        return getattr(self.real, name)


def test_a_locked_journal_switch_is_asked_again(tmp_path, monkeypatch):
    connections = []
    real_connect = sqlite3.connect

    def connect(path, **kwargs):
        connections.append(_LockedAtFirst(real_connect(path, **kwargs), 3, "database is locked"))
        return connections[-1]

    monkeypatch.setattr(cache_module.sqlite3, "connect", connect)
    cache = GenerationCache(tmp_path / "g.sqlite")
    cache.put_many({"k": "v"})
    assert cache.get_many(["k"]) == {"k": "v"} and connections[0].asked == 4
    cache.close()

    def broken(path, **kwargs):
        return _LockedAtFirst(real_connect(path, **kwargs), 1, "disk I/O error")

    monkeypatch.setattr(cache_module.sqlite3, "connect", broken)
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        GenerationCache(tmp_path / "other.sqlite")  # other errors are not waited out


def _open_and_write(path: str, barrier, results) -> None:
    barrier.wait()
    try:
        cache = GenerationCache(Path(path))
        cache.put_many({str(multiprocessing.current_process().pid): 1})
        cache.close()
        results.put(None)
    except Exception as e:  # reported to the test
        results.put(repr(e))


def test_processes_opening_a_new_cache_together_all_get_it(tmp_path):
    ctx = multiprocessing.get_context("fork")
    for round_ in range(8):
        path = str(tmp_path / f"round-{round_}.sqlite")
        barrier, results = ctx.Barrier(6), ctx.Queue()
        procs = [
            ctx.Process(target=_open_and_write, args=(path, barrier, results)) for _ in range(6)
        ]
        for p in procs:
            p.start()
        errors = [results.get(timeout=60) for _ in procs]
        for p in procs:
            p.join()
        assert errors == [None] * 6, errors
        assert len(GenerationCache(Path(path))) == 6
