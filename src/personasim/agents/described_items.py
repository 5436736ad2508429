"""Items the catalogue lacks, made known to the agents from their descriptions.

:class:`DescribedItems` is the part of :class:`~personasim.agents.agent.UserAgent` that
changes its catalogue: a described item (a title, optionally a year and genres) is read
as a catalogue item nobody has rated, until it is forgotten.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from personasim.agents.examples import described_item
from personasim.agents.retrieval import RationaleIndex
from personasim.errors import ConfigError

__all__ = ["DescribedItems"]


class DescribedItems:
    """The agents' catalogue with the items described to them (a mixin of
    :class:`~personasim.agents.agent.UserAgent`, whose attributes below it reads and
    changes).

    Attributes:
        items: The item records, by id (described ones have ``described`` True).
        index: The rationale index (None without rationales).
    """

    items: dict[str, dict[str, Any]]
    index: RationaleIndex | None

    def knows_item(self, item_id: str) -> bool:
        """Whether `item_id` is in the catalogue (or was described)."""
        return item_id in self.items

    def describe_items(self, descriptions: Sequence[Mapping[str, Any]]) -> list[str]:
        """Make items the catalogue lacks known to the agents, from their descriptions.

        Each description has a ``title`` and optionally a ``year``, ``genres`` (a list)
        and an ``item_id``; the agents read them as they read a catalogue item nobody
        has rated, and the CF prior gives the user's mean. The same description gets
        the same id again.

        Returns:
            The items' ids (``item_id``, else ``"new:<title> (<year>)"``), usable
            wherever item ids are.

        Raises:
            ConfigError: A description without a title, with a malformed year or
                genres, or whose ``item_id`` is a catalogue item.
        """
        ids = []
        for k, d in enumerate(descriptions):
            record = described_item(d, where=f"item description {k}")
            item_id = record["item_id"]
            known = self.items.get(item_id)
            if known is not None and known.get("described") is not True:
                raise ConfigError(
                    f"item description {k}: item_id {item_id!r} is a catalogue item; "
                    "give its id instead of a description"
                )
            self.items[item_id] = record
            ids.append(item_id)
        return ids

    def forget_items(self, item_ids: Sequence[str]) -> None:
        """Forget described items (:meth:`describe_items`; catalogue items stay)."""
        for item_id in item_ids:
            if (self.items.get(item_id) or {}).get("described") is True:
                del self.items[item_id]
                if self.index is not None:
                    self.index.forget_item(item_id)
