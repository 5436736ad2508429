"""The whole run's configuration: every section, the seed, and the execution settings."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from personasim.config.agents import AgentConfig
from personasim.config.base import Section
from personasim.config.cf import CFConfig, migrate_cf_settings
from personasim.config.data import DataConfig, SplitConfig
from personasim.config.evaluation import EvaluateConfig, ReportConfig, SimulateConfig
from personasim.config.language import LLMConfig, PersonaConfig, ProfileConfig

__all__ = [
    "RunConfig",
    "ScaleConfig",
]


class ScaleConfig(Section):
    """How the heavy stages run: in this process or on Ray, in memory or out of core.

    None of these settings changes a result (same seed, same artifacts), so none enters
    a stage's config hash: a run folder made in-process resumes on Ray and back.
    """

    executor: Literal["in-process", "ray"] = "in-process"
    """"ray" runs profile writing (chunks of users), adapter training (one task per
    persona, with a GPU each when the cluster has them) and agent scoring (Ray Data over
    partitions of users) as Ray work; "in-process" runs everything here."""
    ray_address: str | None = None
    """Ray cluster to join (e.g. "ray://head:10001" or "auto"); unset starts a local Ray
    with `ray_cpus` CPUs."""
    ray_cpus: int | None = Field(None, ge=1)
    """CPUs of the local Ray started when `ray_address` is unset (all when unset)."""
    ray_workers: int = Field(0, ge=0)
    """Scoring workers (Ray Data actors); 0 takes one per 2 CPUs (one per GPU on GPUs)."""
    tables: Literal["pandas", "duckdb"] = "pandas"
    """"duckdb" ingests, splits and profiles (template backend) out of core: the log is
    streamed in batches, validated, and joined/sorted by DuckDB in bounded memory, for
    logs too big for pandas. Reads custom CSV/Parquet logs."""
    memory_limit: str = "4GB"
    """DuckDB's memory limit with `tables = "duckdb"`; it spills to disk past it."""
    batch_users: int = Field(50_000, ge=1)
    """Users per batch when out-of-core profiles are rendered."""


class RunConfig(Section):
    """The whole run: one section per stage plus the seed."""

    seed: int = 42
    """Seed of every random choice (user sampling, model initialisation, ...)."""
    data: DataConfig = DataConfig()
    """Input log (`[data]`)."""
    split: SplitConfig = SplitConfig()
    """User selection and temporal split (`[split]`)."""
    llm: LLMConfig = LLMConfig()
    """Frozen language model (`[llm]`)."""
    profile: ProfileConfig = ProfileConfig()
    """Profiles and rationales (`[profile]`)."""
    personas: PersonaConfig = PersonaConfig()
    """Personas (`[personas]`)."""
    agents: AgentConfig = AgentConfig()
    """User agents (`[agents]`)."""
    cf: CFConfig = CFConfig()
    """Collaborative models (`[cf]`)."""
    evaluate: EvaluateConfig = EvaluateConfig()
    """Baselines and metrics (`[evaluate]`)."""
    simulate: SimulateConfig = SimulateConfig()
    """Simulated sessions against recommenders (`[simulate]`)."""
    report: ReportConfig = ReportConfig()
    """The HTML and Markdown report (`[report]`)."""
    scale: ScaleConfig = ScaleConfig()
    """Execution on Ray and out-of-core tables (`[scale]`)."""

    @model_validator(mode="before")
    @classmethod
    def _cf_settings_of_older_configs(cls, data: Any) -> Any:
        return migrate_cf_settings(data) if isinstance(data, dict) else data
