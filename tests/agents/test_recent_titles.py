"""`agents.recent_titles`: the user's last watched titles in the agent's prompt."""

from __future__ import annotations

import pandas as pd

from personasim import run_pipeline
from personasim.agents.agent import UserAgent
from personasim.agents.examples import item_records
from personasim.agents.prompts import agent_profiles, recent_items
from personasim.pipeline import TrainStage
from personasim.profiles.prompts import item_line
from personasim.workspace import Workspace

AGENT_STAGES = TrainStage.upstream + (TrainStage,)


def test_recent_items_are_the_last_in_time_oldest_first_ties_in_log_order():
    train = pd.DataFrame(
        {
            "user_id": ["u", "u", "u", "u", "v"],
            "item_id": ["a", "b", "c", "d", "e"],
            "timestamp": [5, 1, 9, 9, 3],
        }
    )
    assert recent_items(train, 3) == {"u": ["a", "c", "d"], "v": ["e"]}
    assert recent_items(train, 0) == {}


def test_the_profile_prefix_names_the_recent_titles_and_others_keep_theirs():
    profiles = pd.DataFrame({"user_id": ["u", "v"], "profile_text": ["Likes noir.", "Kids."]})
    items = {"a": {"item_id": "a", "title": "Heat", "year": 1995, "genres": ["Crime"]}}
    texts = agent_profiles(profiles, {"u": ["a"]}, items)
    assert texts == {
        "u": "Likes noir.\nRecently watched, oldest first: Heat (1995), Crime.",
        "v": "Kids.",
    }


def test_training_leaves_the_named_items_out_and_the_agents_see_them(
    trained_run, agent_log_files, make_agent_config, copy_run
):
    run = copy_run(trained_run)
    config = make_agent_config(agent_log_files, modes=["global"], recent_titles=2)
    assert TrainStage(Workspace(run), config).status() == "configuration changed"
    run_pipeline(run, config, stages=AGENT_STAGES)

    log = pd.read_parquet(run / "data" / "interactions.parquet")
    recent = recent_items(log[log["split"] == "train"], 2)
    assert recent and all(len(items) == 2 for items in recent.values())
    examples = pd.read_parquet(run / "adapters" / "examples.parquet")
    used = set(zip(examples["user_id"].astype(str), examples["item_id"].astype(str), strict=True))
    named = {(user, item) for user, items in recent.items() for item in items}
    assert not used & named
    assert len(used) > len(named)  # the other items stay

    agent = UserAgent.from_workdir(run, mode="global")
    records = item_records(pd.read_parquet(run / "data" / "items.parquet"))
    user, items = next(iter(recent.items()))
    titles = "; ".join(item_line(records[i]) for i in items)
    assert agent.profiles[user].endswith(f"\nRecently watched, oldest first: {titles}.")
    assert len(agent.rate(user, [items[0]])) == 1  # answered with that prefix
