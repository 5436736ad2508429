"""The run's fitted collaborative models: each fitted once, kept, and shared by the stages.

The agents' rating prior (train), the rating baselines and the shown lists' recommenders
(evaluate) and the recommenders (simulate) are the same LensKit models fitted on the same
training log with the same seed. A :class:`FittedModels` keeps each fitted model in one
file of the run folder's ``cf/`` folder, named after what it depends on: the model, its
`[cf]` settings, the seed and the content of the training rows. A stage that asks for a
model another stage already fitted reads it instead of fitting it again; a model whose
settings or data changed is fitted anew under another name, so nothing stale is reused.
"""

from __future__ import annotations

import functools
import logging
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from personasim.cf.dataset import rows_digest
from personasim.config import config_hash
from personasim.workspace import atomic_write_bytes

__all__ = ["FittedModels", "training_fingerprint"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

COLUMNS = ["user_id", "item_id", "rating", "timestamp"]
"""The training rows' columns a fitted model depends on."""


def training_fingerprint(training: pd.DataFrame) -> str:
    """A digest of the training rows' content, in their order (what a fit reads)."""
    columns = [c for c in COLUMNS if c in training]
    digest = rows_digest(training[columns])
    digest.update(",".join(columns).encode())
    return str(digest.hexdigest())


class FittedModels:
    """The models fitted on one training log, kept in `folder` (None: fitted, not kept).

    Args:
        folder: Where the fitted models are kept (the run folder's ``cf/``).
        training: The training rows every model asked of this object is fitted on.
    """

    def __init__(self, folder: Path | None, training: pd.DataFrame) -> None:
        self.folder = folder
        self.training = training

    @functools.cached_property
    def fingerprint(self) -> str:
        """The training rows' digest (computed when a model is first asked for)."""
        return training_fingerprint(self.training)

    def get(self, kind: str, settings: Mapping[str, Any], seed: int, fit: Callable[[], T]) -> T:
        """The model `kind` fitted with `settings` and `seed`: read if it was kept, else
        fitted by `fit()` and kept."""
        if self.folder is None:
            return fit()
        key = config_hash(kind, dict(settings), seed, self.fingerprint)[:24]
        path = self.folder / f"{kind}-{key}.pkl"
        if path.is_file():
            try:
                with path.open("rb") as f:
                    model: T = pickle.load(f)
                logger.debug("%s: read the fitted model %s", kind, path.name)
                return model
            except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as e:
                logger.warning("%s is unreadable (%s); fitting %s again", path, e, kind)
        model = fit()
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
        return model
