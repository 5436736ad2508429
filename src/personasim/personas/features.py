"""The vectors that are clustered: profile embeddings, optionally with the traits."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["TRAIT_COLUMNS", "FeatureScaler"]

TRAIT_COLUMNS = ("activity_count", "conformity_gap", "diversity_genres")
"""Raw trait values used by "embedding+traits" (activity as log(1 + count))."""


@dataclass
class FeatureScaler:
    """How the trait block is standardised and weighted; fitted on the clustered users
    and reused for new users so that they land in the same space.

    Attributes:
        use_traits: Whether traits are appended to the embedding.
        means: Mean of each (transformed) trait.
        stds: Standard deviation of each (transformed) trait.
        scale: Multiplier of the standardised traits so that their total variance is
            `trait_weight` times the embedding block's.
    """

    use_traits: bool
    means: list[float]
    stds: list[float]
    scale: float

    @staticmethod
    def _raw(traits: np.ndarray) -> np.ndarray:
        raw = np.asarray(traits, dtype="float64").copy()
        raw[:, 0] = np.log1p(raw[:, 0])
        return raw

    @classmethod
    def fit(
        cls, embeddings: np.ndarray, traits: np.ndarray | None, trait_weight: float
    ) -> FeatureScaler:
        """Fit on the clustered users (`traits` None: embedding only)."""
        if traits is None:
            return cls(use_traits=False, means=[], stds=[], scale=0.0)
        raw = cls._raw(traits)
        means = raw.mean(axis=0)
        stds = raw.std(axis=0)
        stds[stds == 0] = 1.0
        embedding_variance = float(embeddings.var(axis=0).sum())
        scale = float(np.sqrt(trait_weight * embedding_variance / raw.shape[1]))
        return cls(use_traits=True, means=means.tolist(), stds=stds.tolist(), scale=scale)

    def transform(self, embeddings: np.ndarray, traits: np.ndarray | None) -> np.ndarray:
        """The feature matrix of users."""
        if not self.use_traits:
            return np.asarray(embeddings, dtype="float64")
        if traits is None:
            raise ValueError("these personas were clustered with traits; trait values are needed")
        z = (self._raw(traits) - np.asarray(self.means)) / np.asarray(self.stds)
        return np.hstack([np.asarray(embeddings, dtype="float64"), self.scale * z])

    def to_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return asdict(self)
