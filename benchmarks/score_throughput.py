"""Scoring throughput of the user agents: the fast path against a naive one, same run.

Rating decisions of N users x M candidate items with persona adapters (SmolLM2-135M):

- naive fp32: one full prompt per item through ``model(...)`` (logits at every
  position), the user's persona adapter switched in before each user;
- fast fp32 / fast bf16 (``UserAgent``): each user's profile prefix encoded once (its
  keys and values reused by every item), item suffixes batched by length, rows of users
  of *different* personas in one forward pass (PEFT mixed-adapter batch), the LM head
  on the answer positions only;
- fast bf16, prefixes cached: the same requests asked again (a session's next page, a
  service's next request): the prefixes come from the agent's prefix cache.

Each path runs in its own process, so each peak memory is its own. Every row carries the
tokens per decision (prefix share, item suffix) and the model FLOPs of its forward passes.

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


def _tokens(agent: Any, requests: list[tuple[str, list[str]]]) -> tuple[int, int]:
    """Prefix tokens (once per user) and suffix tokens (once per decision)."""
    lm = agent.lm
    prefix = sum(len(lm.encode_prefix(agent.profiles[u])) for u, _ in requests)
    suffix = sum(
        len(lm.encode_suffix(q))
        for u, items in requests
        for q in agent._questions(u, items, "rate")
    )
    return prefix, suffix


def _body_params(agent: Any) -> int:
    """Parameters a token goes through (the LM head runs on answer positions only)."""
    head = agent.lm.model.get_base_model().lm_head.weight.numel()
    embed = agent.lm.model.get_base_model().model.embed_tokens.weight.numel()
    return sum(p.numel() for p in agent.lm.model.parameters()) - head - embed


def _fast(workdir: str, n_items: int, dtype: str, again: bool) -> dict[str, Any]:
    from personasim import UserAgent

    agent = UserAgent.from_workdir(workdir, mode="persona", dtype=dtype)
    requests = _requests(agent, n_items)
    agent.rating_distributions(requests[:1])  # warm the item embeddings
    agent.lm.prefix_states_cache.clear()
    if again:
        agent.rating_distributions(requests)
    t0 = time.perf_counter()
    agent.rating_distributions(requests)
    seconds = time.perf_counter() - t0
    prefix, suffix = _tokens(agent, requests)
    decisions = sum(len(i) for _, i in requests)
    tokens = suffix + (0 if again else prefix)
    return {
        "seconds": seconds,
        "decisions": decisions,
        "tokens": (prefix / decisions, suffix / decisions),
        "flops": 2.0 * _body_params(agent) * tokens,
        "dtype": agent.lm.dtype_name,
    }


def _naive(workdir: str, n_items: int) -> dict[str, Any]:
    import torch

    from personasim import UserAgent

    agent = UserAgent.from_workdir(workdir, mode="persona", dtype="float32")
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
    seconds = time.perf_counter() - t0
    prefix, suffix = _tokens(agent, requests)
    decisions = sum(len(i) for _, i in requests)
    return {
        "seconds": seconds,
        "decisions": decisions,
        "tokens": (prefix / decisions, suffix / decisions),
        "flops": 2.0 * _body_params(agent) * (prefix * len(requests[0][1]) + suffix),
        "dtype": "float32",
    }


PATHS = (
    ("naive: full prompt per item, adapter switched per user", "naive", None, False),
    ("fast: prefix encoded once, mixed-persona batches", "fast", "float32", False),
    ("fast: prefix encoded once, mixed-persona batches", "fast", "bfloat16", False),
    ("fast, prefixes from the cache (next page / request)", "fast", "bfloat16", True),
)


def measure(users: int = 8, items: int = 32) -> list[Row]:
    """Rating decisions/s of each path, each in its own process."""
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        _setup(workdir, users)
        for name, kind, dtype, again in PATHS:
            if kind == "naive":
                result, peak = isolated(_naive, workdir, items)
            else:
                result, peak = isolated(_fast, workdir, items, dtype, again)
            prefix, suffix = result["tokens"]
            note = (
                f"{users} ml-100k users x {items} items, persona adapters; tokens per "
                f"decision: {suffix:.0f} item + {prefix:.1f} prefix share"
                + (" (prefix cached)" if again else "")
            )
            rows.append(
                Row(
                    "score",
                    name,
                    result["decisions"],
                    "decisions",
                    result["seconds"],
                    peak,
                    kind == "naive",
                    note,
                    result["flops"],
                    dtype=result["dtype"],
                    tokens_per_unit=suffix + (0 if again else prefix),
                )
            )
    return rows


def main() -> None:
    """Print decisions/s of every path, their ratio and peak memory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--items", type=int, default=32)
    args = parser.parse_args()
    print_rows(measure(args.users, args.items), "agent scoring (SmolLM2-135M, CPU)")


if __name__ == "__main__":
    main()
