"""The `[cf]` section: the collaborative models' settings, shared by every stage that fits one.

The agents' rating prior, the rating baselines and the recommenders are the same LensKit
models wherever they are fitted; their hyper-parameters live here once. Older configs that
set them under `[evaluate]` (rating models) or `[simulate]` (recommenders) still load:
`migrate_cf_settings` moves those keys here.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from pydantic import Field

from personasim.config.base import Section
from personasim.config.keys import in_keys

__all__ = ["CFConfig", "LEGACY_CF_KEYS", "migrate_cf_settings"]

logger = logging.getLogger(__name__)

RATINGS = in_keys("ratings")
"""A setting of the explicit rating models (the agents' rating prior and the baselines)."""
RECOMMENDERS = in_keys("recommenders")
"""A setting of the implicit-feedback recommenders (simulate's, evaluate's shown lists)."""


class CFConfig(Section):
    """Collaborative models: the rating prior, the baselines and the recommenders (`[cf]`)."""

    bias_damping: Annotated[float, RATINGS] = Field(5.0, ge=0.0)
    """Damping of the user and item biases (LensKit `BiasScorer`): shrinks the biases
    of users and items with few ratings toward zero."""
    mf_embedding_size: Annotated[int, RATINGS] = Field(50, ge=1)
    """Latent factors of the biased matrix factorisation (LensKit `BiasedMFScorer`, ALS)."""
    mf_epochs: Annotated[int, RATINGS] = Field(20, ge=1)
    """ALS epochs of the biased MF."""
    mf_regularization: Annotated[float, RATINGS] = Field(0.1, gt=0.0)
    """L2 regularisation of the biased MF."""
    knn_neighbours: Annotated[int, RATINGS] = Field(20, ge=1)
    """Neighbours per prediction of the explicit item-kNN (LensKit `max_nbrs`)."""
    itemknn_neighbors: Annotated[int, RECOMMENDERS] = Field(20, ge=1)
    """Neighbours of the item-item (and user-user) kNN recommenders."""
    implicit_mf_embedding_size: Annotated[int, RECOMMENDERS] = Field(50, ge=1)
    """Latent factors of the implicit-feedback MF and BPR recommenders."""
    implicit_mf_epochs: Annotated[int, RECOMMENDERS] = Field(10, ge=1)
    """Epochs of the implicit-feedback MF (ALS) and BPR recommenders."""


LEGACY_CF_KEYS: dict[tuple[str, str], str] = {
    ("evaluate", "bias_damping"): "bias_damping",
    ("evaluate", "mf_embedding_size"): "mf_embedding_size",
    ("evaluate", "mf_epochs"): "mf_epochs",
    ("evaluate", "mf_regularization"): "mf_regularization",
    ("evaluate", "knn_neighbours"): "knn_neighbours",
    ("simulate", "itemknn_neighbors"): "itemknn_neighbors",
    ("simulate", "mf_embedding_size"): "implicit_mf_embedding_size",
    ("simulate", "mf_epochs"): "implicit_mf_epochs",
}
"""(old section, old key) -> the `[cf]` key that replaced it."""


def migrate_cf_settings(raw: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """`raw` (one layer of settings) with the CF keys of older configs moved to `[cf]`.

    Raises:
        ValueError: The same setting is given both in its old place and in `[cf]`.
    """
    moves = [
        (section, key, new)
        for (section, key), new in LEGACY_CF_KEYS.items()
        if isinstance(raw.get(section), dict) and key in raw[section]
    ]
    if not moves:
        return raw
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    cf = dict(out.get("cf") or {})
    for section, key, new in moves:
        if new in cf:
            raise ValueError(f"{source}: {section}.{key} and cf.{new} are the same setting")
        cf[new] = out[section].pop(key)
    moved = ", ".join(f"{section}.{key} is now cf.{new}" for section, key, new in moves)
    logger.warning("%s: %s (read from the old place)", source, moved)
    out["cf"] = cf
    return out
