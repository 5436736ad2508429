"""The configurations shipped in configs/ stay valid as the settings evolve."""

import tomllib
from pathlib import Path

import pytest

from personasim.config import load_config

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_config_loads(path):
    """Every key of a shipped file is known and every value valid."""
    config = load_config([(str(path), tomllib.loads(path.read_text()))])
    assert config.seed is not None


def test_there_are_shipped_configs():
    """The demo's configuration is among them (make demo runs it)."""
    assert "demo.toml" in {p.name for p in CONFIGS}
