"""Recommenders under test, registered by name; a team's own joins as a plug-in.

A recommender is fitted on a training log (``user_id, item_id, rating, timestamp``) and
asked for a user's ranked item ids given the user's history. :func:`create_recommender`
makes one by name: the built-in ones wrap LensKit components
(:class:`~personasim.simulation.lenskit_recommender.LensKitRecommender`: ``random``,
``popular``, ``itemknn``, ``userknn``, ``mf``, ``bpr``, ``sasrec``), beside
``unpopular``: least-rated first, a deliberately poor recommender, so the comparison has
a clear loser beside ``random``; a ``[simulate] rankings`` file is one more
(:class:`~personasim.simulation.rankings.RankingsRecommender`).

A team's own recommender is given as ``"module:object"`` (in ``[simulate] plugins``) or
registered under the entry-point group ``personasim.recommenders``. The object is a
class (instantiated without arguments), an instance, or a plain function:

- with a ``fit(training: pandas.DataFrame)`` method, it is fitted on the training log
  (and refitted in each feedback round);
- ``recommend(user_id: str, history: list[str], n: int) -> list[str]`` (or the object
  itself, if callable) returns up to `n` item ids, best first.

Items of the user's history and items the recommender repeats are dropped by the
session, so a plug-in need not filter them. Many users' lists at once:
:func:`~personasim.simulation.batched_lists.recommend_many`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import zlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from personasim.cf.fitted import FittedModels
from personasim.config import BUILTIN_RECOMMENDERS, CFConfig, SimulateConfig
from personasim.errors import ConfigError
from personasim.simulation.lenskit_recommender import LensKitRecommender

__all__ = [
    "BUILTIN_RECOMMENDERS",
    "PluginRecommender",
    "Recommender",
    "UnpopularRecommender",
    "create_recommender",
    "fit_recommender",
    "load_object",
    "stable_seed",
]

logger = logging.getLogger(__name__)


_ENTRY_POINT_GROUP = "personasim.recommenders"


@runtime_checkable
class Recommender(Protocol):
    """What a session needs from a recommender."""

    name: str

    def fit(self, training: pd.DataFrame, *, seed: int) -> None:
        """Train on ``user_id, item_id, rating, timestamp`` rows."""

    def recommend(self, user_id: str, history: Sequence[str], n: int) -> list[str]:
        """Up to `n` item ids for the user, best first, none of `history`."""


def stable_seed(*parts: object) -> int:
    """A seed derived from `parts` that is the same in every process and run."""
    return zlib.crc32("\x1f".join(str(p) for p in parts).encode())


class UnpopularRecommender:
    """Least-rated training items first (ties by item id): a deliberately poor list."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._order: list[str] = []

    def fit(self, training: pd.DataFrame, *, seed: int) -> None:
        """Count each item's training ratings."""
        counts = training["item_id"].astype(str).value_counts()
        frame = pd.DataFrame({"item_id": counts.index, "n": counts.to_numpy()})
        self._order = frame.sort_values(["n", "item_id"])["item_id"].tolist()

    def recommend(self, user_id: str, history: Sequence[str], n: int) -> list[str]:
        """The `n` least-rated items the user has not rated."""
        seen = set(history)
        out = []
        for item in self._order:
            if item not in seen:
                out.append(item)
                if len(out) == n:
                    break
        return out


class PluginRecommender:
    """A team's recommender given as an object (see the module docstring)."""

    def __init__(self, name: str, target: Any, spec: str) -> None:
        self.name = name
        self.spec = spec
        self.target = target() if isinstance(target, type) else target
        method = getattr(self.target, "recommend", None)
        self._recommend: Callable[..., Any] | None = method if callable(method) else None
        if self._recommend is None and callable(self.target):
            self._recommend = self.target
        if self._recommend is None:
            raise ConfigError(
                f"recommender plug-in {name!r} ({spec}): the object has no recommend() "
                "and is not callable; give recommend(user_id, history, n) -> item ids"
            )

    def fit(self, training: pd.DataFrame, *, seed: int) -> None:
        """Call the plug-in's ``fit(training)`` when it has one."""
        fit = getattr(self.target, "fit", None)
        if callable(fit):
            fit(training.copy())

    def recommend(self, user_id: str, history: Sequence[str], n: int) -> list[str]:
        """The plug-in's ranked item ids (as strings).

        Raises:
            ConfigError: The plug-in failed or returned something that is not a list of
                item ids.
        """
        assert self._recommend is not None
        try:
            items = self._recommend(user_id, list(history), n)
        except Exception as e:
            raise ConfigError(
                f"recommender plug-in {self.name!r} ({self.spec}) failed for user "
                f"{user_id!r}: {type(e).__name__}: {e}"
            ) from e
        if isinstance(items, (str, bytes)) or not isinstance(items, (Sequence, np.ndarray)):
            raise ConfigError(
                f"recommender plug-in {self.name!r} ({self.spec}) returned "
                f"{type(items).__name__} for user {user_id!r}; expected a list of item ids"
            )
        return [str(i) for i in items]


def load_object(spec: str) -> Any:
    """Import ``"package.module:attribute"`` (the attribute may be dotted).

    Raises:
        ConfigError: The spec is malformed, the module cannot be imported or the
            attribute does not exist.
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"recommender plug-in {spec!r}: expected 'module:object'")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"recommender plug-in {spec!r}: cannot import {module_name}: {e}") from e
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigError(
                f"recommender plug-in {spec!r}: {module_name} has no {attribute!r}"
            ) from None
    return target


def _entry_points() -> dict[str, str]:
    return {e.name: e.value for e in importlib.metadata.entry_points(group=_ENTRY_POINT_GROUP)}


def fit_recommender(
    recommender: Recommender, training: pd.DataFrame, seed: int, models: FittedModels | None
) -> None:
    """Fit `recommender` on `training`; a built-in one is read from `models` (the run's
    fitted models on `training`) when a stage already fitted it."""
    if isinstance(recommender, LensKitRecommender):
        recommender.fit(training, seed=seed, models=models)
    else:
        recommender.fit(training, seed=seed)


def create_recommender(
    name: str, config: SimulateConfig, cf: CFConfig | None = None
) -> Recommender:
    """The recommender called `name`: built-in (with the `[cf]` models' settings), from
    ``[simulate] plugins`` or rankings, or from an installed package's
    ``personasim.recommenders`` entry point.

    Raises:
        ConfigError: No recommender has that name, or its plug-in cannot be loaded.
    """
    if name in config.rankings:
        from personasim.simulation.rankings import RankingsRecommender

        return RankingsRecommender(name, config.rankings[name])
    if name in config.plugins:
        spec = config.plugins[name]
        return PluginRecommender(name, load_object(spec), spec)
    if name == "unpopular":
        return UnpopularRecommender(name)
    if name in BUILTIN_RECOMMENDERS:
        return LensKitRecommender(name, name, cf or CFConfig())
    installed = _entry_points()
    if name in installed:
        return PluginRecommender(name, load_object(installed[name]), installed[name])
    known = sorted({*BUILTIN_RECOMMENDERS, *config.plugins, *config.rankings, *installed})
    raise ConfigError(
        f"simulate.recommenders: no recommender named {name!r} (available: {', '.join(known)}; "
        "add your own as plugins = {name = 'module:object'})"
    )
