"""Assigning users to personas: nearest centroid and soft membership."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import softmax

from personasim.data.tables import read_parquet
from personasim.errors import StageError
from personasim.personas.embedding import embed_texts
from personasim.personas.features import FeatureSpace, trait_features
from personasim.run_folder import MANIFEST, PERSONAS
from personasim.workspace import Workspace

__all__ = ["Assignment", "PersonaModel", "read_user_personas", "soft_membership"]


def soft_membership(distances: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax over minus the distances divided by `temperature`, row by row."""
    return softmax(-np.asarray(distances, dtype="float64") / temperature, axis=1)


def read_user_personas(workspace: Workspace) -> dict[str, str]:
    """Each user's persona, from the run folder's ``personas/assignments.parquet``
    (empty when the personas stage has not written it)."""
    path = workspace.path(PERSONAS.assignments)
    if not path.exists():
        return {}
    frame = read_parquet(path)
    return dict(zip(frame["user_id"].astype(str), frame["persona"], strict=True))


@dataclass
class Assignment:
    """Where users belong.

    Attributes:
        personas: The nearest persona of each user.
        membership: One row per user, one column per persona (rows sum to 1).
        distances: Distance of each user to each centroid.
    """

    personas: list[str]
    membership: np.ndarray
    distances: np.ndarray


class PersonaModel:
    """Centroids plus the feature space that places any user among them.

    A user is placed by whatever blocks of features it has: the distance to a persona
    is the weighted distance over the blocks the personas were clustered on that the
    user has (the clustering's own distance when it has them all); a user with none of
    them (a new user known only by a profile text, personas clustered on taste) is
    placed by the blocks it has, equally weighted.

    Args:
        names: Persona names, in centroid order.
        centroids: Per block, one row per persona: the members' mean unit features.
        space: The feature space fitted on the clustered users.
        embedding_model: The sentence embedding model of the profiles.
        temperature: Of the soft membership.
    """

    def __init__(
        self,
        names: list[str],
        centroids: dict[str, np.ndarray],
        space: FeatureSpace,
        embedding_model: str,
        temperature: float,
    ) -> None:
        self.names = names
        self.centroids = {b: np.asarray(c, dtype="float64") for b, c in centroids.items()}
        self.space = space
        self.embedding_model = embedding_model
        self.temperature = temperature

    @classmethod
    def from_workdir(cls, workdir: str | Path) -> PersonaModel:
        """Load the personas of a run folder.

        Raises:
            StageError: The personas stage has not run there (or ran with a version
                that did not record its feature space).
        """
        folder = Path(workdir) / PERSONAS.stage.folder
        if not (folder / MANIFEST).exists():
            raise StageError(
                f"{folder} is missing: run `personasim {PERSONAS.stage.command} --workdir "
                f"{workdir}` first"
            )
        meta = json.loads(PERSONAS.model.under(folder).read_text())
        if "space" not in meta:
            raise StageError(
                f"{folder} was written by an older personasim: run "
                f"`personasim personas --workdir {workdir} --force` to rebuild it"
            )
        frame = read_parquet(PERSONAS.centroids.under(folder))
        centroids = {
            column.removeprefix("centroid_"): np.stack(frame[column].to_numpy())
            for column in frame.columns
            if column.startswith("centroid_")
        }
        return cls(
            names=frame["persona"].tolist(),
            centroids=centroids,
            space=FeatureSpace.from_dict(meta["space"]),
            embedding_model=meta["embedding_model"],
            temperature=meta["temperature"],
        )

    @property
    def needs_embedding(self) -> bool:
        """Whether the profile text's embedding places users (the personas were
        clustered on it)."""
        return "embedding" in self.space.weights

    def distances(self, unit: dict[str, np.ndarray]) -> np.ndarray:
        """Distance of each user to each persona, from the unit features of its blocks.

        Raises:
            ValueError: The users have no block the personas know.
        """
        weights = {b: w for b, w in self.space.weights.items() if b in unit}
        if not weights:
            weights = {b: 1.0 for b in unit if b in self.centroids}
        if not weights:
            raise ValueError(
                f"these personas place users by {sorted(self.centroids)}; none was given"
            )
        n = len(next(iter(unit[b] for b in weights)))
        squared = np.zeros((n, len(self.names)))
        for b, w in weights.items():  # one persona at a time: n x d memory, not n x K x d
            for k, centre in enumerate(self.centroids[b]):
                squared[:, k] += w * ((unit[b] - centre) ** 2).sum(axis=1)
        # a persona without a centroid in a block (no sampled member) is never nearest
        return np.sqrt(np.nan_to_num(squared, nan=np.inf))

    def assign_unit(self, unit: dict[str, np.ndarray]) -> Assignment:
        """Nearest persona and soft membership of users given their unit features."""
        distances = self.distances(unit)
        nearest = distances.argmin(axis=1)
        return Assignment(
            personas=[self.names[i] for i in nearest],
            membership=soft_membership(distances, self.temperature),
            distances=distances,
        )

    def assign(
        self,
        profile_texts: list[str] | None = None,
        traits: pd.DataFrame | None = None,
        taste: pd.DataFrame | None = None,
    ) -> Assignment:
        """Assign users who were not clustered (cold start), by what is known of them.

        Args:
            profile_texts: Their profile texts (Ms), as the profile stage writes them.
            traits: Their raw trait values (columns ``activity_count, conformity_gap,
                diversity_genres``), in the same order.
            taste: Their taste features (:func:`~personasim.personas.features.taste_features`
                of their ratings), in the same order.

        Raises:
            ValueError: Nothing was given, or the inputs differ in length.
        """
        values: dict[str, Any] = {}
        if taste is not None:
            values["taste"] = taste
        if traits is not None:
            values["traits"] = trait_features(traits)
        if profile_texts is not None and (self.needs_embedding or not values):
            values["embedding"] = embed_texts(profile_texts, self.embedding_model)
        lengths = {len(v) for v in values.values()}
        if not values or len(lengths) != 1:
            raise ValueError("give the users' profile texts, traits or taste, one row each")
        return self.assign_unit(self.space.unit(values))
