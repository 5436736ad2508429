"""The stages' hashes and cached parts follow the schema: a new setting enters the keys
of the stage (and of the parts) it belongs to, and no other stage's."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest

from personasim.config import AgentConfig, CFConfig, EvaluateConfig, RunConfig, SimulateConfig
from personasim.config.keys import in_keys
from personasim.pipeline.evaluate import EvaluateStage
from personasim.pipeline.simulate import SimulateStage
from personasim.pipeline.train import TrainStage
from personasim.workspace import Workspace


class NewEvaluate(EvaluateConfig):
    brand_new: int = 0
    taste_only: Annotated[int, in_keys("taste")] = 0


class NewAgents(AgentConfig):
    brand_new: int = 0


class NewSimulate(SimulateConfig):
    brand_new: int = 0


class NewCF(CFConfig):
    recommenders_only: Annotated[int, in_keys("recommenders")] = 0


def _stage(kind: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **sections: Any) -> Any:
    config = RunConfig().model_copy(update=sections)
    stage = kind(Workspace(tmp_path), config)
    monkeypatch.setattr(stage, "input_hashes", dict)
    return stage


def _keys(stage: Any) -> dict[str, Any]:
    """The stage's hash and the keys of its cached parts."""
    keys = {"stage": stage.config_hash()}
    if isinstance(stage, EvaluateStage):
        keys |= {part: store.folder for part, store in stage._stores().items()}
    if isinstance(stage, TrainStage):
        keys["adapters"] = stage.adapter_settings()
    if isinstance(stage, SimulateStage):
        keys["sessions"] = stage._checkpoints()
    return keys


def test_a_new_evaluate_setting_changes_evaluate_and_all_its_parts(tmp_path, monkeypatch):
    before = _keys(_stage(EvaluateStage, tmp_path, monkeypatch, evaluate=NewEvaluate()))
    after = _keys(_stage(EvaluateStage, tmp_path, monkeypatch, evaluate=NewEvaluate(brand_new=1)))
    assert all(before[k] != after[k] for k in before), (before, after)
    taste = _keys(_stage(EvaluateStage, tmp_path, monkeypatch, evaluate=NewEvaluate(taste_only=1)))
    changed = {k for k in before if before[k] != taste[k]}
    assert changed == {"stage", "taste"}
    # and no other stage's
    for kind in (TrainStage, SimulateStage):
        a = _keys(_stage(kind, tmp_path, monkeypatch, evaluate=NewEvaluate()))
        b = _keys(_stage(kind, tmp_path, monkeypatch, evaluate=NewEvaluate(brand_new=1)))
        assert a == b, kind


def test_a_new_agents_setting_retrains_the_adapters(tmp_path, monkeypatch):
    before = _keys(_stage(TrainStage, tmp_path, monkeypatch, agents=NewAgents()))
    after = _keys(_stage(TrainStage, tmp_path, monkeypatch, agents=NewAgents(brand_new=1)))
    assert before["stage"] != after["stage"] and before["adapters"] != after["adapters"]
    weight = _keys(_stage(TrainStage, tmp_path, monkeypatch, agents=NewAgents(lm_weight=0.5)))
    assert weight["stage"] != before["stage"] and weight["adapters"] == before["adapters"]


def test_a_new_simulate_setting_redoes_the_sessions(tmp_path, monkeypatch):
    before = _keys(_stage(SimulateStage, tmp_path, monkeypatch, simulate=NewSimulate()))
    after = _keys(_stage(SimulateStage, tmp_path, monkeypatch, simulate=NewSimulate(brand_new=1)))
    assert all(before[k] != after[k] for k in before)


def test_a_recommenders_setting_of_cf_retrains_no_adapter(tmp_path, monkeypatch):
    def keys(kind: type, value: int) -> dict[str, Any]:
        return _keys(_stage(kind, tmp_path, monkeypatch, cf=NewCF(recommenders_only=value)))

    assert keys(TrainStage, 0) == keys(TrainStage, 1)
    assert keys(SimulateStage, 0) != keys(SimulateStage, 1)
    evaluate = keys(EvaluateStage, 0), keys(EvaluateStage, 1)
    assert {k for k in evaluate[0] if evaluate[0][k] != evaluate[1][k]} == {"stage", "taste"}
    rating = _keys(_stage(TrainStage, tmp_path, monkeypatch, cf=NewCF(mf_epochs=3)))
    assert rating["adapters"] != keys(TrainStage, 0)["adapters"]
