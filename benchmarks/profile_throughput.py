"""Throughput of profile writing: generation batched across users against one user at a
time, same model, same prompts, same run.

Profiles of N users (first `--ratings` train ratings each, refined every 10) and one
rationale per rating, with the `hf` backend (SmolLM2-135M-Instruct by default). The naive
path runs each user alone with batch size 1; the fast path runs every user's round
together in batches of `--batch-size`. Caches are fresh for both.

    .venv/bin/python benchmarks/profile_throughput.py [--users 8] [--ratings 20]
        [--batch-size 16] [--backend hf] [--model smollm2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from personasim.config import DataConfig, LLMConfig, ProfileConfig
from personasim.data.log import load_log
from personasim.data.sources import log_spec
from personasim.data.splitting import select_users, split_temporal
from personasim.data.tables import item_statistics
from personasim.llm import create_generator
from personasim.profiles.cache import GenerationCache
from personasim.profiles.distill import distil_summaries, user_histories, write_rationales

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Row, isolated, peak_mib, print_rows  # noqa: E402


def _run(histories, generator, batch_size: int, per_user: bool, profile: ProfileConfig):
    generator.config = generator.config.model_copy(update={"batch_size": batch_size})
    groups = [{u: h} for u, h in histories.items()] if per_user else [histories]
    generated = 0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        cache = GenerationCache(Path(tmp) / "c.sqlite")
        for group in groups:
            _, counts = distil_summaries(
                group, generator, cache, profile, seed=0, chunk_size=max(batch_size, 1)
            )
            _, r_counts = write_rationales(
                group, generator, cache, profile, seed=0, chunk_size=max(batch_size, 1)
            )
            generated += counts.generated + r_counts.generated
        cache.close()
    return time.perf_counter() - t0, generated


def measure(
    users: int = 8,
    ratings: int = 20,
    batch_size: int = 16,
    backend: str = "hf",
    model: str = "smollm2",
    dataset: str = "ml-1m",
) -> list[Row]:
    """Generations/s one user at a time (batch 1) and across users (batched)."""
    return isolated(_measure, users, ratings, batch_size, backend, model, dataset)[0]


def _measure(
    users: int, ratings: int, batch_size: int, backend: str, model: str, dataset: str
) -> list[Row]:
    log = load_log(log_spec(DataConfig(dataset=dataset)))
    chosen, _ = select_users(
        log.interactions,
        n_users=users,
        min_ratings=100,
        max_ratings=200,
        rng=np.random.default_rng(0),
    )
    split = split_temporal(log.interactions, chosen, train_fraction=0.6, include_others=True)
    items = item_statistics(log.items, split.training_data())
    histories = {u: h.iloc[:ratings] for u, h in user_histories(split.train, items).items()}
    profile = ProfileConfig(batch_interactions=10)
    generator = create_generator(LLMConfig(backend=backend, model=model))
    note = f"{users} {dataset} users x {ratings} ratings, {backend} ({model}); one process"
    rows = []
    for name, size, per_user, naive in (
        ("one user at a time, batch 1", 1, True, True),
        (f"across users, batch {batch_size}", batch_size, False, False),
    ):
        seconds, n = _run(histories, generator, size, per_user, profile)
        rows.append(Row("profile", name, n, "generations", seconds, peak_mib(), naive, note))
    return rows


def main() -> None:
    """Print generations/s of both paths and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--ratings", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--backend", default="hf")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--dataset", default="ml-1m")
    a = parser.parse_args()
    rows = measure(a.users, a.ratings, a.batch_size, a.backend, a.model, a.dataset)
    print_rows(rows, "profiles + rationales")


if __name__ == "__main__":
    main()
