"""The shared vocabulary of the configuration: named kinds, built-in names, the section base.

Every section is a frozen pydantic model that rejects unknown keys and documents each field
with the docstring under it (what `personasim config reference` prints).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "AGENT_ADAPTERS",
    "BUILTIN_DATASETS",
    "BUILTIN_RECOMMENDERS",
    "NO_RATINGS",
    "AgentKind",
    "BaselineName",
    "ChoiceFamily",
    "ImplicitKind",
    "SamplerName",
    "Section",
]

AgentKind = Literal["zero-shot", "global-lora", "persona-lora"]
"""The agent kinds, one name each in the configuration, the CLI, the artifacts and the
report: the base model alone (zero-shot), one adapter for every user (global-lora), one
adapter per persona (persona-lora)."""
ImplicitKind = Literal["popularity", "itemknn", "implicit_mf", "bpr", "userknn", "sasrec"]
"""The implicit-feedback scorers (personasim.cf.implicit): the taste baselines, the
single-scorer watch priors and the stacked choice model's scorer families."""
ChoiceFamily = Literal[ImplicitKind, "genre", "time", "activity"]
"""The feature families of the stacked choice model (personasim.cf.choice_features)."""
BUILTIN_RECOMMENDERS = (
    "random",
    "popular",
    "itemknn",
    "userknn",
    "mf",
    "bpr",
    "sasrec",
    "unpopular",
)
"""The recommenders every simulation can compare (personasim.simulation.recommenders)."""

AGENT_ADAPTERS: dict[str, str] = {
    "zero-shot": "none",
    "global-lora": "global",
    "persona-lora": "persona",
}
"""Agent kind -> the adapters it answers through (`agents.modes` trains "global" and
"persona"; "none" is the base model)."""

BUILTIN_DATASETS = ("ml-100k", "ml-1m")
"""MovieLens datasets that ship inside Python packages and load offline."""

BaselineName = Literal[
    "global_mean", "item_bias", "user_item_bias", "user_genre", "biased_mf", "item_knn"
]


SamplerName = Literal["uniform", "popularity", "ambiguous", "hard"]
"""The built-in negative samplers of the watch task."""


class Section(BaseModel):
    """A configuration section: frozen, unknown keys refused, fields documented in place."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


NO_RATINGS = "the log has no ratings (data.columns.rating = '')"
"""Why a rating measure was not taken, for the notes of every stage."""
