"""Long loops show a bar on a terminal and log where they are otherwise."""

from __future__ import annotations

import logging

import personasim.progress as progress_module
from personasim.progress import progress


def test_without_a_terminal_a_long_loop_logs_where_it_is(monkeypatch, caplog):
    monkeypatch.setenv("PERSONASIM_PROGRESS", "1")
    monkeypatch.setattr(progress_module, "LOG_EVERY_S", 0.0)
    monkeypatch.setattr(type(progress_module.console), "is_terminal", property(lambda _: False))
    with (
        caplog.at_level(logging.INFO, logger="personasim.progress"),
        progress("scoring pairs", total=4, unit="pairs") as advance,
    ):
        for _ in range(4):
            advance(1)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "scoring pairs: started"
    assert any(line.startswith("scoring pairs: 2/4 pairs (50%)") for line in lines)
    assert lines[-1].startswith("scoring pairs: done in ")


def test_the_environment_silences_it(monkeypatch, caplog):
    monkeypatch.setenv("PERSONASIM_PROGRESS", "0")
    with (
        caplog.at_level(logging.INFO, logger="personasim.progress"),
        progress("quiet", total=2) as advance,
    ):
        advance(2)
    assert not caplog.records
