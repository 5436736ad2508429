"""The configurations shipped in configs/ stay valid as the settings evolve."""

import tomllib
from pathlib import Path

import pytest

from personasim.config import dump_config, load_config, read_toml

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.toml"))


def _contained(part: dict, whole: dict, where: str = "") -> None:
    for key, value in part.items():
        assert key in whole, f"{where}{key} is not in the effective configuration"
        if isinstance(value, dict):
            _contained(value, whole[key], f"{where}{key}.")
        else:
            assert whole[key] == value, f"{where}{key}: {whole[key]!r} instead of {value!r}"


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_config_loads_with_its_values(path):
    """Every key of a shipped file is known, valid, and reaches the effective config."""
    settings = read_toml(path)
    config = load_config([(str(path), settings)])
    _contained(settings, tomllib.loads(dump_config(config)))


def test_there_are_shipped_configs():
    """The demo's configuration is among them (make demo runs it)."""
    assert "demo.toml" in {p.name for p in CONFIGS}
