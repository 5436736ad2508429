"""Decisions per second of agents answered by their priors alone against the language
model's path, same run.

One ML-100K run (template profiles, two persona adapters of SmolLM2-135M trained for a
few steps, the stacked watch prior); every simulated user is asked the watch question
and the rating question of the same `items` items:

- language model (the baseline): :class:`~personasim.agents.UserAgent` with its LM weights
  set to 0, so that its answers are the priors' (mixed-persona batches, the prefix
  cache; the model still runs);
- priors alone: :class:`~personasim.agents.prior_agents.PriorAgents`, what the agents of
  an adapter whose fitted weights are 0 run (``agents.language_model = "auto"``), and
  every agent with "off": no model loaded.

Each path runs in its own process (its peak memory is its own), after one warm-up
request; the priors' path repeats the requests for at least 2 s (one pass takes
milliseconds). The note gives the largest difference between the two paths' answers
(the same numbers to 1e-9).

    .venv/bin/python benchmarks/prior_agents.py [--users 40] [--items 50]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from common import Row, isolated, print_rows  # noqa: E402
from score_throughput import _setup  # noqa: E402


def _requests(workdir: str, n_items: int) -> list[tuple[str, list[str]]]:
    import pandas as pd

    data = Path(workdir) / "data"
    items = pd.read_parquet(data / "items.parquet")
    known = items.loc[items["train_count"] > 0, "item_id"].astype(str).tolist()[:n_items]
    users = pd.read_parquet(Path(workdir) / "profiles" / "profiles.parquet")["user_id"]
    return [(str(u), known) for u in sorted(users.astype(str))]


def _answer(workdir: str, n_items: int, path: str) -> tuple[float, int, Any]:
    """Seconds to answer both questions of every request, the decisions, the answers."""
    import numpy as np

    requests = _requests(workdir, n_items)
    if path == "language model":
        from personasim import UserAgent

        agents: Any = UserAgent.from_workdir(workdir, mode="persona")
        agents.lm_weights = dict.fromkeys(agents.lm_weights, 0.0)
        agents.watch_lm_weights = dict.fromkeys(agents.lm_weights, 0.0)
    else:
        from personasim.agents.prior_agents import PriorAgents

        agents = PriorAgents.from_workdir(workdir)
    agents.watch_probabilities(requests[:1])  # warm: imports, caches
    agents.rating_distributions(requests[:1])
    per_pass = 2 * sum(len(items) for _, items in requests)
    passes, t0 = 0, time.perf_counter()
    while True:  # the fast path is repeated for at least 2 s (one pass is milliseconds)
        watch = agents.watch_probabilities(requests)
        ratings = agents.rating_distributions(requests)
        passes += 1
        seconds = time.perf_counter() - t0
        if path == "language model" or seconds >= 2.0:
            break
    decisions = passes * per_pass
    answers = np.concatenate([*watch, *(r["probs"].ravel() for r in ratings)])
    return seconds, decisions, answers


def measure(users: int = 40, items: int = 50) -> list[Row]:
    """Decisions per second of the language model's path and of the priors alone."""
    import numpy as np

    rows, answers = [], {}
    with tempfile.TemporaryDirectory() as workdir:
        _setup(workdir, users)
        for path in ("language model", "priors alone"):
            (seconds, decisions, got), peak = isolated(_answer, workdir, items, path)
            answers[path] = got
            rows.append(
                Row("agents", path, decisions, "decisions", seconds, peak, path == "language model")
            )
    gap = float(np.abs(answers["language model"] - answers["priors alone"]).max())
    for row in rows:
        row.note = (
            f"{users} ml-100k users x {items} items, watch + rating each; the two paths' "
            f"answers differ by at most {gap:.1e}"
        )
    return rows


def main() -> None:
    """Print decisions per second of each path, the ratio and peak memory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--items", type=int, default=50)
    args = parser.parse_args()
    print_rows(measure(args.users, args.items), "agents at LM weight 0 (SmolLM2-135M, CPU)")


if __name__ == "__main__":
    main()
