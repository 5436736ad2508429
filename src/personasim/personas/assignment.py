"""Assigning users to personas: nearest centroid and soft membership."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from personasim.data.tables import read_parquet
from personasim.errors import StageError
from personasim.personas.embedding import embed_texts
from personasim.personas.features import TRAIT_COLUMNS, FeatureScaler

__all__ = ["Assignment", "PersonaModel", "soft_membership"]


def soft_membership(distances: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax over minus the distances divided by `temperature`, row by row."""
    logits = -np.asarray(distances, dtype="float64") / temperature
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)


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
    """Centroids plus the feature pipeline that places any user among them.

    Args:
        names: Persona names, in centroid order.
        centroids: One row per persona.
        scaler: The feature pipeline fitted on the clustered users.
        embedding_model: The sentence embedding model of the profiles.
        temperature: Of the soft membership.
    """

    def __init__(
        self,
        names: list[str],
        centroids: np.ndarray,
        scaler: FeatureScaler,
        embedding_model: str,
        temperature: float,
    ) -> None:
        self.names = names
        self.centroids = np.asarray(centroids, dtype="float64")
        self.scaler = scaler
        self.embedding_model = embedding_model
        self.temperature = temperature

    @classmethod
    def from_workdir(cls, workdir: str | Path) -> PersonaModel:
        """Load the personas of a run folder.

        Raises:
            StageError: The personas stage has not run there.
        """
        folder = Path(workdir) / "personas"
        if not (folder / "manifest.json").exists():
            raise StageError(
                f"{folder} is missing: run `personasim personas --workdir {workdir}` first"
            )
        meta = json.loads((folder / "model.json").read_text())
        centroids = read_parquet(folder / "centroids.parquet")
        return cls(
            names=centroids["persona"].tolist(),
            centroids=np.stack(centroids["centroid"].to_numpy()),
            scaler=FeatureScaler(**meta["scaler"]),
            embedding_model=meta["embedding_model"],
            temperature=meta["temperature"],
        )

    def features(self, profile_texts: list[str], traits: np.ndarray | None = None) -> np.ndarray:
        """The feature vectors of users from their profile texts (and raw traits)."""
        return self.scaler.transform(embed_texts(profile_texts, self.embedding_model), traits)

    def assign_features(self, features: np.ndarray) -> Assignment:
        """Nearest persona and soft membership of feature vectors."""
        distances = np.linalg.norm(features[:, None, :] - self.centroids[None], axis=2)
        nearest = distances.argmin(axis=1)
        return Assignment(
            personas=[self.names[i] for i in nearest],
            membership=soft_membership(distances, self.temperature),
            distances=distances,
        )

    def assign(self, profile_texts: list[str], traits: pd.DataFrame | None = None) -> Assignment:
        """Assign users who were not clustered (cold start).

        Args:
            profile_texts: Their profile texts (Ms), as the profile stage writes them.
            traits: Their raw trait values (columns ``activity_count, conformity_gap,
                diversity_genres``); needed when the personas used traits.
        """
        raw = None if traits is None else traits[list(TRAIT_COLUMNS)].to_numpy()
        return self.assign_features(self.features(profile_texts, raw))
