"""The run configuration: one TOML file, one section per stage.

Every field is documented by the docstring under it; ``personasim config reference``
prints them all as Markdown (docs/configuration.md is that output).
Unknown keys are rejected, so a misspelt option fails loudly instead of being ignored.

A run folder keeps the configuration it ran with in ``config.toml``. The effective
configuration of a command is built in layers, later ones winning: the defaults, the run
folder's ``config.toml``, the file given with ``--config``, then command-line options.

Modules: `base` (named kinds, the section base), `keys` (which cache keys a field
enters), one module per group of sections, `run` (the whole run), `loading` (TOML,
layers, hashing) and `reference` (the Markdown reference).
"""

from personasim.config.agents import AgentConfig
from personasim.config.base import (
    AGENT_ADAPTERS,
    BUILTIN_DATASETS,
    BUILTIN_RECOMMENDERS,
    NO_RATINGS,
    AgentKind,
    BaselineName,
    ChoiceFamily,
    ImplicitKind,
    SamplerName,
)
from personasim.config.cf import CFConfig
from personasim.config.data import ColumnMap, DataConfig, SplitConfig
from personasim.config.evaluation import EvaluateConfig, ReportConfig, SimulateConfig
from personasim.config.keys import part_settings, stage_settings
from personasim.config.language import LLMConfig, PersonaConfig, ProfileConfig
from personasim.config.loading import config_hash, deep_merge, dump_config, load_config, read_toml
from personasim.config.reference import config_reference
from personasim.config.run import RunConfig, ScaleConfig

__all__ = [
    "AGENT_ADAPTERS",
    "BUILTIN_DATASETS",
    "BUILTIN_RECOMMENDERS",
    "NO_RATINGS",
    "AgentConfig",
    "AgentKind",
    "BaselineName",
    "CFConfig",
    "ChoiceFamily",
    "ColumnMap",
    "DataConfig",
    "EvaluateConfig",
    "ImplicitKind",
    "LLMConfig",
    "PersonaConfig",
    "ProfileConfig",
    "ReportConfig",
    "RunConfig",
    "SamplerName",
    "ScaleConfig",
    "SimulateConfig",
    "SplitConfig",
    "config_hash",
    "config_reference",
    "deep_merge",
    "dump_config",
    "load_config",
    "part_settings",
    "read_toml",
    "stage_settings",
]
