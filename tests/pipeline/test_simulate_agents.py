"""Sessions split into chunks of users (as workers run them) merge into one run's."""

from __future__ import annotations

import pandas as pd

from personasim.config import SimulateConfig
from personasim.pipeline.simulate_agents import merge_session_logs
from personasim.simulation import pages_of, run_sessions
from personasim.testing.recommenders import ScriptedAgents


def test_chunks_of_users_merge_into_the_sessions_of_one_run():
    cfg = SimulateConfig(decisions="sample", max_pages=4)
    users = [f"u{k}" for k in range(9)]
    pages = {
        u: pages_of([f"{u}-i{k}" for k in range(6 + 3 * n)], set(), 4, 4)
        for n, u in enumerate(users)
    }
    activity = {u: 1 + n % 3 for n, u in enumerate(users)}
    agents = ScriptedAgents(default_watch=0.55)
    whole = run_sessions(agents, pages, activity, cfg, seed=5, label="round0")
    chunks = [users[:2], users[2:3], users[3:]]
    parts = [
        run_sessions(
            agents,
            {u: pages[u] for u in c},
            {u: activity[u] for u in c},
            cfg,
            seed=5,
            label="round0",
        )
        for c in reversed(chunks)  # the order chunks come back in does not matter
    ]
    merged = merge_session_logs(parts, users)
    assert whole.events["page"].max() > 1  # several pages: the events' order is tested
    pd.testing.assert_frame_equal(merged.events, whole.events)
    pd.testing.assert_frame_equal(merged.sessions, whole.sessions)
