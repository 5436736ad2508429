"""Cache keys come from the schema: a new setting enters the keys of what it may change."""

from __future__ import annotations

from typing import Annotated

import pytest

from personasim.config import AgentConfig, EvaluateConfig, SimulateConfig
from personasim.config.keys import NOT_IN_KEYS, in_keys, part_settings, stage_settings

PARTS = {EvaluateConfig: ("ratings", "taste", "generation"), AgentConfig: ("adapters",)}


@pytest.mark.parametrize("section", [EvaluateConfig, SimulateConfig, AgentConfig])
def test_an_unmarked_new_field_enters_the_stage_hash_and_every_part(section: type) -> None:
    class WithNewField(section):  # type: ignore[misc, valid-type]
        brand_new: int = 0

    before, after = WithNewField(), WithNewField(brand_new=1)
    assert stage_settings(before) != stage_settings(after)
    for part in (*PARTS.get(section, ()), "sessions", "any-part"):
        assert part_settings(before, part) != part_settings(after, part), part


def test_a_marked_field_enters_only_its_parts() -> None:
    class WithNewFields(EvaluateConfig):
        taste_only: Annotated[int, in_keys("taste")] = 0
        reported_only: Annotated[int, in_keys()] = 0
        speed_only: Annotated[int, NOT_IN_KEYS] = 0

    base = WithNewFields()
    taste = WithNewFields(taste_only=1)
    assert part_settings(base, "taste") != part_settings(taste, "taste")
    assert part_settings(base, "ratings") == part_settings(taste, "ratings")
    assert stage_settings(base) != stage_settings(taste)
    reported = WithNewFields(reported_only=1)
    assert stage_settings(base) != stage_settings(reported)
    assert all(part_settings(base, p) == part_settings(reported, p) for p in PARTS[EvaluateConfig])
    speed = WithNewFields(speed_only=1)
    assert stage_settings(base) == stage_settings(speed)


def test_settings_that_change_no_result_enter_no_key() -> None:
    assert stage_settings(AgentConfig()) == stage_settings(
        AgentConfig(score_batch_items=7, prefix_cache_mib=1, token_cache_mib=1)
    )
    assert stage_settings(EvaluateConfig()) == stage_settings(EvaluateConfig(agents_optional=True))
    assert stage_settings(SimulateConfig()) == stage_settings(SimulateConfig(agent_optional=True))


def test_the_lm_weight_is_not_part_of_the_adapters() -> None:
    fixed = AgentConfig(lm_weight=0.5)
    assert part_settings(fixed, "adapters") == part_settings(AgentConfig(), "adapters")
    assert stage_settings(fixed) != stage_settings(AgentConfig())
