"""Every stage's artifacts by name: the one module that spells the run folder's files.

A stage writes its artifacts into its folder (``DATA.interactions.under(out)`` while it
builds) and every other module reads them through these constants
(``workspace.require(DATA.interactions)``, ``workspace.path(EVAL.metrics)``),
so a file is renamed in one place and no module reaches into another stage's folder by a
name of its own (tests/test_run_folder.py checks that no other module spells them).

Layout: ``DIR/<folder>/<artifact>`` plus each folder's ``manifest.json`` (DESIGN.md,
section 3); run-folder-wide files are in `RUN`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ADAPTERS",
    "DATA",
    "EVAL",
    "MANIFEST",
    "PERSONAS",
    "PROFILES",
    "REPORT",
    "RUN",
    "SIMULATE",
    "Artifact",
    "StageFolder",
    "artifact_names",
]

MANIFEST = "manifest.json"
"""Each finished stage folder's manifest (written last: a folder with it is complete)."""


@dataclass(frozen=True)
class StageFolder:
    """A stage's folder in the run folder and the command that writes it."""

    folder: str
    command: str


@dataclass(frozen=True)
class Artifact:
    """One file of a stage's folder."""

    stage: StageFolder
    name: str

    def under(self, folder: Path) -> Path:
        """This artifact's path inside `folder` (a staging folder while a stage builds)."""
        return folder / self.name


class RUN:
    """Files of the run folder itself."""

    config = "config.toml"
    """The configuration of the last command (what later commands default to)."""
    fitted_models = "cf"
    """The run's fitted collaborative models, one file per model, settings, seed and
    training data (personasim.cf.fitted): fitted by the first stage that needs one."""


class DATA:
    """``data/``: the ingested log, split (`personasim ingest`)."""

    stage = StageFolder("data", "ingest")
    interactions = Artifact(stage, "interactions.parquet")
    """The sampled users' ratings, with their train/test split."""
    items = Artifact(stage, "items.parquet")
    """The catalogue: titles, years, genres."""
    users = Artifact(stage, "users.parquet")
    """The sampled users' attributes."""
    others = Artifact(stage, "others.parquet")
    """The other users' ratings (training data of the models only)."""


class PROFILES:
    """``profiles/``: each user's profile and rationales (`personasim profile`)."""

    stage = StageFolder("profiles", "profile")
    profiles = Artifact(stage, "profiles.parquet")
    rationales = Artifact(stage, "rationales.parquet")


class PERSONAS:
    """``personas/``: users grouped into personas (`personasim personas`)."""

    stage = StageFolder("personas", "personas")
    assignments = Artifact(stage, "assignments.parquet")
    centroids = Artifact(stage, "centroids.parquet")
    model = Artifact(stage, "model.json")
    """The feature space the centroids live in (to place a new user)."""
    cards = Artifact(stage, "cards.json")
    map = Artifact(stage, "map.png")
    k_selection = Artifact(stage, "k_selection.json")


class ADAPTERS:
    """``adapters/``: the agents' priors, examples and LoRA adapters (`personasim train`)."""

    stage = StageFolder("adapters", "train")
    examples = Artifact(stage, "examples.parquet")
    prior_dense = Artifact(stage, "prior.npy")
    """The rating prior as a users x items table."""
    prior_factors = Artifact(stage, "prior_factors.npz")
    """The rating prior as factors (low-rank models)."""
    prior_meta = Artifact(stage, "prior.json")
    prior_fallback = Artifact(stage, "prior_fallback.parquet")
    watch_prior = Artifact(stage, "watch_prior.npz")
    rationale_index = Artifact(stage, "rationale_index.npz")
    training = "training.json"
    """Inside each adapter's folder: how it was trained (beside PEFT's own files)."""


class EVAL:
    """``eval/``: fidelity of every model (`personasim evaluate`)."""

    stage = StageFolder("eval", "evaluate")
    metrics = Artifact(stage, "metrics.json")
    predictions = Artifact(stage, "predictions.parquet")
    groups = Artifact(stage, "groups.parquet")
    new_items = Artifact(stage, "new_items.json")
    free_generation = Artifact(stage, "free_generation.parquet")
    taste = Artifact(stage, "taste.json")
    taste_per_user = Artifact(stage, "taste.parquet")
    taste_scores = Artifact(stage, "taste_scores.parquet")
    taste_lists = Artifact(stage, "taste_lists.parquet")


class SIMULATE:
    """``simulate/``: recommenders evaluated by simulated sessions (`personasim simulate`)."""

    stage = StageFolder("simulate", "simulate")
    metrics = Artifact(stage, "metrics.json")
    events = Artifact(stage, "events.parquet")
    sessions = Artifact(stage, "sessions.parquet")
    offline = Artifact(stage, "offline.parquet")
    user_agreement = Artifact(stage, "user_agreement.parquet")
    feedback = Artifact(stage, "feedback.parquet")


class REPORT:
    """``report/``: the fidelity report (`personasim report`)."""

    stage = StageFolder("report", "report")
    html = Artifact(stage, "report.html")
    markdown = Artifact(stage, "summary.md")


STAGE_FILES = (DATA, PROFILES, PERSONAS, ADAPTERS, EVAL, SIMULATE, REPORT)


def artifact_names() -> set[str]:
    """Every file name this module spells (what no other module may spell)."""
    names = {MANIFEST, RUN.config, ADAPTERS.training}
    for files in STAGE_FILES:
        names |= {v.name for v in vars(files).values() if isinstance(v, Artifact)}
    return names
