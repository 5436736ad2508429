"""k-means++ with K chosen by the elbow, and merging of too-small personas."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Clustering", "choose_k", "cluster", "merge_small_clusters", "silhouette_of"]

logger = logging.getLogger(__name__)


@dataclass
class Clustering:
    """The personas of a set of users.

    Attributes:
        labels: Persona index of each user (0 = the largest persona).
        centroids: One row per persona.
        k_chosen: K before small personas were merged.
        inertia: ``{K: inertia}`` of every K tried (one entry for a fixed K).
        silhouette: ``{K: silhouette}`` likewise (None where undefined).
        merged: Sizes of the personas merged away for being too small.
    """

    labels: np.ndarray
    centroids: np.ndarray
    k_chosen: int
    inertia: dict[int, float] = field(default_factory=dict)
    silhouette: dict[int, float | None] = field(default_factory=dict)
    merged: list[int] = field(default_factory=list)

    @property
    def k(self) -> int:
        """Number of personas after merging."""
        return int(len(self.centroids))

    @property
    def sizes(self) -> list[int]:
        """Users per persona."""
        return np.bincount(self.labels, minlength=self.k).tolist()


MINIBATCH_ABOVE = 50_000
"""Above this many users k-means runs in mini-batches (scikit-learn's MiniBatchKMeans:
bounded time and memory at a million users)."""

SILHOUETTE_SAMPLE = 10_000
"""Above this many users the silhouette is computed on a seeded sample of them (it is
quadratic in the number of users)."""


def _kmeans(features: np.ndarray, k: int, seed: int, n_init: int):  # noqa: ANN202
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if len(features) > MINIBATCH_ABOVE:
        return MiniBatchKMeans(
            n_clusters=k, init="k-means++", n_init=n_init, batch_size=4096, random_state=seed
        ).fit(features)
    return KMeans(n_clusters=k, init="k-means++", n_init=n_init, random_state=seed).fit(features)


def silhouette_of(features: np.ndarray, labels: np.ndarray) -> float | None:
    """Mean silhouette of a labelling (None with one cluster or one user per cluster); on
    a seeded sample of `SILHOUETTE_SAMPLE` users above that many."""
    from sklearn.metrics import silhouette_score

    distinct = len(np.unique(labels))
    if distinct < 2 or distinct >= len(labels):
        return None
    sample = SILHOUETTE_SAMPLE if len(labels) > SILHOUETTE_SAMPLE else None
    return float(silhouette_score(features, labels, sample_size=sample, random_state=0))


def choose_k(inertia: dict[int, float], silhouette: dict[int, float | None]) -> int:
    """The knee of the inertia curve (kneedle); the best silhouette when there is none."""
    from kneed import KneeLocator

    ks = sorted(inertia)
    if len(ks) >= 3:
        knee = KneeLocator(
            ks, [inertia[k] for k in ks], curve="convex", direction="decreasing"
        ).knee
        if knee is not None:
            return int(knee)
    scored = {k: s for k, s in silhouette.items() if s is not None}
    return max(scored, key=lambda k: (scored[k], -k)) if scored else ks[0]


def merge_small_clusters(
    features: np.ndarray, labels: np.ndarray, min_size: int
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Dissolve clusters smaller than `min_size`, smallest first, moving their users to
    the nearest remaining centroid; then relabel by size (largest = 0).

    Returns:
        New labels, centroids, and the sizes of the clusters dissolved.
    """
    labels = labels.copy()
    merged: list[int] = []
    while True:
        present = np.unique(labels)
        sizes = {c: int((labels == c).sum()) for c in present}
        small = [c for c in present if sizes[c] < min_size]
        if not small or len(present) == 1:
            break
        victim = min(small, key=lambda c: (sizes[c], c))
        merged.append(sizes[victim])
        keep = [c for c in present if c != victim]
        centroids = np.stack([features[labels == c].mean(axis=0) for c in keep])
        members = np.flatnonzero(labels == victim)
        distances = np.linalg.norm(features[members, None, :] - centroids[None], axis=2)
        labels[members] = np.asarray(keep)[distances.argmin(axis=1)]
    # Relabel: largest persona first; ties by the smallest member index (stable).
    present = np.unique(labels)
    order = sorted(present, key=lambda c: (-(labels == c).sum(), np.flatnonzero(labels == c)[0]))
    remap = {old: new for new, old in enumerate(order)}
    labels = np.asarray([remap[c] for c in labels])
    centroids = np.stack([features[labels == c].mean(axis=0) for c in range(len(order))])
    return labels, centroids, merged


def cluster(
    features: np.ndarray,
    *,
    k: int,
    k_min: int,
    k_max: int,
    min_size: int,
    n_init: int,
    seed: int,
) -> Clustering:
    """Cluster users into personas.

    Args:
        features: One row per user.
        k: Fixed K, or 0 to choose by the elbow over `k_min`..`k_max`.
        k_min: Smallest K tried.
        k_max: Largest K tried (capped at the number of users - 1).
        min_size: Smallest allowed persona.
        n_init: k-means++ restarts.
        seed: Seed of k-means++.
    """
    n = len(features)
    inertia: dict[int, float] = {}
    silhouette: dict[int, float | None] = {}
    fits = {}
    candidates = [k] if k else list(range(k_min, max(k_min, min(k_max, n - 1)) + 1))
    for candidate in candidates:
        candidate = min(candidate, n)
        model = _kmeans(features, candidate, seed, n_init)
        fits[candidate] = model
        inertia[candidate] = float(model.inertia_)
        silhouette[candidate] = silhouette_of(features, model.labels_)
    chosen = k if k else choose_k(inertia, silhouette)
    chosen = min(chosen, n)
    labels, centroids, merged = merge_small_clusters(features, fits[chosen].labels_, min_size)
    if merged:
        logger.info(
            "personas: merged %d persona(s) of sizes %s (min_size %d)",
            len(merged),
            merged,
            min_size,
        )
    return Clustering(
        labels=labels,
        centroids=centroids,
        k_chosen=chosen,
        inertia=inertia,
        silhouette=silhouette,
        merged=merged,
    )
