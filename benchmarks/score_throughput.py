"""Scoring throughput of the user agents: the fast path against a naive one, same run.

Rating decisions of N users x M candidate items with persona adapters (SmolLM2-135M):

- naive: one full prompt per item through ``model(...)`` (logits at every position),
  the user's persona adapter switched in before each user;
- fast (``UserAgent``): one profile prefix per pack of items (block mask), packs of
  users of *different* personas in one forward pass (PEFT mixed-adapter batch), LM head
  on the answer positions only.

Each path runs in its own process, so each peak memory is its own.

    .venv/bin/python benchmarks/score_throughput.py [--users 8] [--items 32]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Row, isolated, print_rows  # noqa: E402


def _setup(workdir: str, users: int) -> Any:
    from personasim import run_pipeline
    from personasim.config import load_config
    from personasim.pipeline import IngestStage, PersonasStage, ProfileStage, TrainStage

    cfg = load_config(
        [
            (
                "benchmark",
                {
                    "seed": 0,
                    "data": {"dataset": "ml-100k"},
                    "split": {"users": users},
                    "llm": {"backend": "template"},
                    "personas": {"k": 2, "min_size": 1},
                    "agents": {"modes": ["persona"], "max_examples_per_adapter": 8, "epochs": 1},
                },
            )
        ]
    )
    run_pipeline(workdir, cfg, stages=(IngestStage, ProfileStage, PersonasStage, TrainStage))
    return cfg


def _requests(agent: Any, n_items: int) -> list[tuple[str, list[str]]]:
    items = [i for i, it in agent.items.items() if it["count"] > 0][:n_items]
    return [(u, items) for u in sorted(agent.profiles)]


def _fast(workdir: str, n_items: int) -> tuple[float, int]:
    from personasim import UserAgent

    agent = UserAgent.from_workdir(workdir, mode="persona")
    requests = _requests(agent, n_items)
    agent.rating_distributions(requests[:1])  # warm caches (embeddings of items)
    t0 = time.perf_counter()
    agent.rating_distributions(requests)
    seconds = time.perf_counter() - t0
    lm = agent.lm
    tokens = sum(len(lm.encode_prefix(agent.profiles[u])) for u, _ in requests) + sum(
        len(lm.encode_suffix(q))
        for u, items in requests
        for q in agent._questions(u, items, "rate")
    )
    params = sum(p.numel() for p in lm.model.parameters())
    return seconds, sum(len(i) for _, i in requests), 2.0 * params * tokens


def _naive(workdir: str, n_items: int) -> tuple[float, int]:
    import torch

    from personasim import UserAgent

    agent = UserAgent.from_workdir(workdir, mode="persona")
    requests = _requests(agent, n_items)
    lm = agent.lm
    agent.rating_distributions(requests[:1])
    t0 = time.perf_counter()
    with torch.inference_mode():
        for user, items in requests:
            lm.model.set_adapter(agent.personas[user])
            prefix = lm.encode_prefix(agent.profiles[user])
            for question in agent._questions(user, items, "rate"):
                ids = torch.tensor([list(prefix + lm.encode_suffix(question))])
                logits = lm.model(input_ids=ids).logits[0, -1]
                torch.softmax(logits[lm.digit_ids], dim=-1)
    return time.perf_counter() - t0, sum(len(i) for _, i in requests)


def measure(users: int = 8, items: int = 32) -> list[Row]:
    """Rating decisions/s of the naive and the fast path, each in its own process."""
    rows = []
    note = f"{users} ml-100k users x {items} items, persona adapters"
    with tempfile.TemporaryDirectory() as workdir:
        _setup(workdir, users)
        for name, fn, naive in (
            ("naive: full prompt per item, adapter switched per user", _naive, True),
            ("fast: shared prefix, mixed-persona batches, answer logits only", _fast, False),
        ):
            (seconds, n, *flops), peak = isolated(fn, workdir, items)
            rows.append(Row("score", name, n, "decisions", seconds, peak, naive, note, sum(flops)))
    return rows


def main() -> None:
    """Print decisions/s of both paths, their ratio and peak memory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--items", type=int, default=32)
    args = parser.parse_args()
    print_rows(measure(args.users, args.items), "agent scoring (SmolLM2-135M, CPU)")


if __name__ == "__main__":
    main()
