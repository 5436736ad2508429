"""The README's quick start, run as written: its commands in their order, with a small
budget from PERSONASIM_CONFIG (the tiny model, template profiles, few pairs and lists)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from personasim.workspace import CONFIG_ENV

ROOT = Path(__file__).resolve().parents[1]

BUDGET = """
[llm]
backend = "template"
[profile]
rationales = false
[agents]
use_rationales = false
prior_model = "user_item_bias"
base_model = "{model}"
max_examples_per_adapter = 12
lm_weight_examples = 10
epochs = 1
items_per_pack = 4
watch_prior = "itemknn"
[evaluate]
baselines = ["global_mean", "user_item_bias"]
agent_pairs_per_user = 2
free_generation_pairs = 0
taste_users = 4
taste_candidates = 4
taste_ratios = [1]
taste_samplers = ["uniform"]
taste_shown = []
taste_baselines = ["popularity"]
bootstrap_rounds = 100
[simulate]
users = 4
max_pages = 2
recommenders = ["random", "popular", "itemknn"]
ladder = []
leave_family_out = false
"""
"""What the test makes smaller; every command and its options are the README's."""


def quick_start_commands() -> list[list[str]]:
    """The first group of `personasim` commands of the README's quick start."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start\n\n```bash\n(.*?)```", text, re.S)
    assert block, "the README lost its quick start"
    commands, started = [], False
    for line in block.group(1).replace("\\\n", " ").splitlines():
        if line.startswith("personasim "):
            started = True
            commands.append(shlex.split(line, comments=True))
        elif started and not line.strip():
            break  # the next group (your own log) needs files the reader has
    return commands


def test_the_quick_start_runs_as_written(cli, tiny_model, tmp_path, monkeypatch):
    commands = quick_start_commands()
    assert [c[1] for c in commands] == [
        "ingest", "profile", "personas", "train", "evaluate", "simulate", "report", "status"
    ]  # fmt: skip
    budget = tmp_path / "budget.toml"
    budget.write_text(BUDGET.format(model=tiny_model))
    monkeypatch.setenv(CONFIG_ENV, str(budget))
    monkeypatch.chdir(tmp_path)
    for command in commands:
        result = cli(*command[1:])
        assert result.code == 0, f"`{shlex.join(command)}` failed: {result.output[-2000:]}"
    workdir = Path(commands[0][commands[0].index("--workdir") + 1])
    assert (workdir / "report" / "report.html").exists()
    assert result.output.count("up to date") == 7  # status: every stage
