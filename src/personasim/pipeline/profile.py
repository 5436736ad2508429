"""Stage `profile`: traits, profiles (Ms) and rationales (Ml) of every sampled user."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from personasim.data.tables import read_parquet, write_parquet
from personasim.pipeline.ingest import IngestStage
from personasim.pipeline.stage import Stage
from personasim.profiles.builder import build_profiles
from personasim.profiles.distill import GenerationCounts
from personasim.profiles.outofcore import template_profiles_out_of_core
from personasim.profiles.prompts import PROMPT_VERSION, prompts_hash
from personasim.run_folder import DATA, PROFILES
from personasim.scale.executor import get_executor

__all__ = ["ProfileStage"]

logger = logging.getLogger(__name__)


class ProfileStage(Stage):
    """Distil every sampled user's train history with the frozen LLM."""

    name = "profile"
    folder = PROFILES.stage.folder
    upstream = (IngestStage,)

    def settings(self) -> list[Any]:
        """`[profile]`, the output-relevant `[llm]` settings, prompt version, seed."""
        return [
            self.config.profile,
            self.config.llm.identity_settings(),
            {"prompt_version": PROMPT_VERSION, "prompts": prompts_hash(self.config.data.implicit)},
            self.config.seed,
        ]

    def build(self, out: Path) -> dict[str, Any]:
        """Write ``profiles.parquet`` and ``rationales.parquet``."""
        if self._out_of_core():
            return self._build_out_of_core(out)
        interactions = read_parquet(self.workspace.require(DATA.interactions))
        items = read_parquet(self.workspace.require(DATA.items))
        result = build_profiles(
            interactions[interactions["split"] == "train"],
            items,
            llm=self.config.llm,
            config=self.config.profile,
            cache_path=self.workspace.root / ".cache" / "generations.sqlite",
            seed=self.config.seed,
            executor=get_executor(self.config.scale),
            scale=self.config.data.scale,
        )
        write_parquet(result.profiles, PROFILES.profiles.under(out))
        write_parquet(result.rationales, PROFILES.rationales.under(out))
        n_users = len(result.profiles)
        generated = result.summary_counts.generated
        if result.rationale_counts is not None:
            generated += result.rationale_counts.generated
        elapsed = result.seconds
        summary = {
            "users": n_users,
            "backend": result.identity,
            "rationale_backend": self.config.profile.rationale_backend,
            "prompt_version": PROMPT_VERSION,
            "summaries": result.summary_counts.as_dict(),
            "rationales": result.rationale_counts.as_dict() if result.rationale_counts else None,
            "seconds": round(elapsed, 2),
            "summaries_seconds": round(result.summaries_seconds, 2),
            "users_per_s": round(n_users / elapsed, 3) if elapsed > 0 else None,
            "generations_per_s": round(generated / elapsed, 3) if elapsed > 0 else None,
            "profile_chars_mean": round(float(result.profiles["profile_text"].str.len().mean()), 1),
        }
        logger.info(
            "profile: %d users in %.1f s (%s users/s)", n_users, elapsed, summary["users_per_s"]
        )
        return summary

    def _out_of_core(self) -> bool:
        """Whether the profiles are rendered out of core (template backend, no rationales)."""
        if self.config.scale.tables != "duckdb":
            return False
        if self.config.llm.backend == "template" and not self.config.profile.rationales:
            return True
        logger.warning(
            'profile: scale.tables = "duckdb" renders template profiles out of core only '
            '(llm.backend = "template", profile.rationales = false); this run loads the '
            "sampled users' train ratings into memory"
        )
        return False

    def _build_out_of_core(self, out: Path) -> dict[str, Any]:
        with self.scratch() as scratch:
            done = template_profiles_out_of_core(
                self.workspace.require(DATA.interactions),
                self.workspace.require(DATA.items),
                PROFILES.profiles.under(out),
                scale=self.config.scale,
                scratch=scratch,
                ratings=self.config.data.scale,
            )
        write_parquet(
            pd.DataFrame(columns=["user_id", "item_id", "rating", "rationale"]),
            PROFILES.rationales.under(out),
        )
        return {
            **done,
            "backend": {"backend": "template"},
            "tables": "duckdb",
            "prompt_version": PROMPT_VERSION,
            "summaries": GenerationCounts(
                requested=done["users"], generated=done["users"]
            ).as_dict(),
            "rationales": None,
        }
