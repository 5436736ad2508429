"""Session throughput of the simulation: batched pages against a naive loop, same run.

Sessions of N users x P pages of 4 items (the most popular unrated items) with persona
adapters on SmolLM2-135M, threshold decisions and full patience, so every path does the
same work and must reach the same decisions:

- naive: one user at a time; per page, the watch question, then the rating question of
  the watched items (two passes over the user's profile prefix);
- batched (what `personasim simulate` does): every user's page in one call
  (mixed-persona batches), then the watched items rated;
- batched one-pass (``one_pass=True``): both questions of a page's items
  in one pass over each user's prefix (``UserAgent.page_scores``).

Each path runs in its own process, so each peak memory is its own. Every row also says
what 1,000 such sessions cost on this machine (wall minutes and CPU-seconds).

    .venv/bin/python benchmarks/simulate_sessions.py [--users 16] [--pages 3]
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


class _TwoPass:
    """Hides ``page_scores``: watch first, then rate what was watched."""

    def __init__(self, agent: Any) -> None:
        self.watch_probabilities = agent.watch_probabilities
        self.rating_distributions = agent.rating_distributions


def _pages(workdir: str, n_pages: int) -> dict[str, list[list[str]]]:
    import pandas as pd

    from personasim.simulation import pages_of

    data = Path(workdir) / "data"
    items = pd.read_parquet(data / "items.parquet").sort_values("train_count", ascending=False)
    ranking = items["item_id"].astype(str).tolist()
    log = pd.read_parquet(data / "interactions.parquet")
    history = log[log["split"] == "train"].groupby("user_id")["item_id"].agg(set).to_dict()
    return {u: pages_of(ranking, history[u], 4, n_pages) for u in sorted(history)}


def _run(workdir: str, n_pages: int, path: str) -> tuple[float, int, int, float]:
    from personasim import UserAgent
    from personasim.config import SimulateConfig
    from personasim.simulation import run_sessions

    agent = UserAgent.from_workdir(workdir, mode="persona")
    pages = _pages(workdir, n_pages)
    cfg = SimulateConfig(decisions="threshold", patience=(1.0, 1.0, 1.0), max_pages=n_pages)
    first = next(iter(pages))
    agent.page_scores([(first, pages[first][0])])  # warm caches (item embeddings)
    users = agent if path == "batched one-pass" else _TwoPass(agent)
    t0, cpu0 = time.perf_counter(), time.process_time()
    if path == "naive":
        logs = [run_sessions(users, {u: p}, {}, cfg, seed=0, label="b") for u, p in pages.items()]
        events = [log.events for log in logs]
    else:
        one_pass = path == "batched one-pass"
        events = [run_sessions(users, pages, {}, cfg, seed=0, label="b", one_pass=one_pass).events]
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    shown = sum(len(e) for e in events)
    watched = sum(int(e["watched"].sum()) for e in events)
    return seconds, shown, watched, cpu


def measure(users: int = 16, pages: int = 3) -> list[Row]:
    """Items decided per second of each session path, each in its own process."""
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        _setup(workdir, users)
        for path in ("naive", "batched", "batched one-pass"):
            (seconds, shown, watched, cpu), peak = isolated(_run, workdir, pages, path)
            per = 1000 / users  # sessions of full patience: every page is shown
            note = (
                f"{users} ml-100k users x {pages} pages of 4; {watched} watched (rated); "
                f"per 1,000 sessions: {seconds * per / 60:.0f} min, {cpu * per:,.0f} CPU-s"
            )
            rows.append(Row("simulate", path, shown, "items", seconds, peak, path == "naive", note))
    return rows


def main() -> None:
    """Print items decided per second of each path, the speed-ups and peak memory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--pages", type=int, default=3)
    args = parser.parse_args()
    print_rows(measure(args.users, args.pages), "simulated sessions (SmolLM2-135M, CPU)")


if __name__ == "__main__":
    main()
