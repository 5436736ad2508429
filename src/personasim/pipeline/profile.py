"""Stage `profile`: traits, profiles (Ms) and rationales (Ml) of every sampled user."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd

from personasim.data.tables import read_parquet, write_parquet
from personasim.llm.registry import create_generator
from personasim.llm.template import TemplateGenerator
from personasim.pipeline.ingest import IngestStage
from personasim.pipeline.stage import Stage
from personasim.profiles.cache import GenerationCache
from personasim.profiles.distill import distil_summaries, user_histories, write_rationales
from personasim.profiles.prompts import PROMPT_VERSION, prompts_hash
from personasim.profiles.taste import render_taste, render_traits, taste_of
from personasim.profiles.traits import compute_traits

__all__ = ["PROFILE_COLUMNS", "ProfileStage", "compose_profile"]

logger = logging.getLogger(__name__)

PROFILE_COLUMNS = ["user_id", "activity", "conformity", "diversity", "profile_text"]
"""The contracted columns of ``profiles/profiles.parquet`` (more follow them)."""


def compose_profile(traits: dict[str, Any], taste: dict[str, Any], summary: str) -> str:
    """The profile text Ms: the traits, the taste in numbers, then the model's words.

    The first two lines come from the data, so the profile states the traits and the
    taste even when a small model's summary is vague; the summary is bounded by
    `profile.summary_max_tokens`.
    """
    facts = render_taste(taste)
    lines = [render_traits(traits), facts]
    if summary and summary != facts:
        lines.append(f"In short: {summary}")
    return "\n".join(lines)


class ProfileStage(Stage):
    """Distil every sampled user's train history with the frozen LLM."""

    name = "profile"
    folder = "profiles"
    upstream = (IngestStage,)

    def settings(self) -> list[Any]:
        """`[profile]`, the output-relevant `[llm]` settings, prompt version, seed."""
        return [
            self.config.profile,
            self.config.llm.identity_settings(),
            {"prompt_version": PROMPT_VERSION, "prompts": prompts_hash()},
            self.config.seed,
        ]

    def build(self, out: Path) -> dict[str, Any]:
        """Write ``profiles.parquet`` and ``rationales.parquet``."""
        cfg = self.config.profile
        interactions = read_parquet(self.workspace.require("data", "interactions.parquet"))
        items = read_parquet(self.workspace.require("data", "items.parquet"))
        train = interactions[interactions["split"] == "train"]
        traits = compute_traits(train, items)
        histories = user_histories(train, items)
        cache = GenerationCache(self.workspace.root / ".cache" / "generations.sqlite")
        generator = create_generator(self.config.llm)
        chunk = self._chunk_size()
        started = time.perf_counter()
        try:
            summaries, summary_counts = distil_summaries(
                histories, generator, cache, cfg, seed=self.config.seed, chunk_size=chunk
            )
            summaries_s = time.perf_counter() - started
            rationale_counts = None
            rationales = pd.DataFrame(columns=["user_id", "item_id", "rating", "rationale"])
            if cfg.rationales:
                rationale_generator = (
                    TemplateGenerator() if cfg.rationale_backend == "template" else generator
                )
                rationales, rationale_counts = write_rationales(
                    histories,
                    rationale_generator,
                    cache,
                    cfg,
                    seed=self.config.seed,
                    chunk_size=chunk,
                )
        finally:
            generator.close()
            cache.close()
        elapsed = time.perf_counter() - started

        rows = []
        for t in traits.to_dict("records"):
            taste = taste_of(histories[t["user_id"]])
            summary = summaries[t["user_id"]]
            rows.append(
                {**t, "taste_summary": summary, "profile_text": compose_profile(t, taste, summary)}
            )
        profiles = pd.DataFrame(rows)
        rest = [c for c in profiles.columns if c not in PROFILE_COLUMNS]
        write_parquet(profiles[PROFILE_COLUMNS + rest], out / "profiles.parquet")
        write_parquet(rationales, out / "rationales.parquet")
        n_users = len(profiles)
        generated = summary_counts.generated + (
            rationale_counts.generated if rationale_counts else 0
        )
        summary = {
            "users": n_users,
            "backend": generator.identity(),
            "rationale_backend": cfg.rationale_backend,
            "prompt_version": PROMPT_VERSION,
            "summaries": summary_counts.as_dict(),
            "rationales": rationale_counts.as_dict() if rationale_counts else None,
            "seconds": round(elapsed, 2),
            "summaries_seconds": round(summaries_s, 2),
            "users_per_s": round(n_users / elapsed, 3) if elapsed > 0 else None,
            "generations_per_s": round(generated / elapsed, 3)
            if elapsed > 0 and generated
            else None,
            "profile_chars_mean": round(float(profiles["profile_text"].str.len().mean()), 1),
        }
        logger.info(
            "profile: %d users in %.1f s (%s users/s)", n_users, elapsed, summary["users_per_s"]
        )
        return summary

    def _chunk_size(self) -> int:
        llm = self.config.llm
        if llm.backend == "openai":
            return llm.concurrency * 4
        return max(llm.batch_size * 2, 8)
