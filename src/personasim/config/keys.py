"""Which cache keys a setting enters, declared on the field, and the keys derived from it.

A stage's results are cached under a key made of the settings they depend on. Instead of
lists of field names kept by hand beside each stage (a new field left off such a list
reused stale results), a field says in its annotation which keys it enters:

- no marker: the field enters its stage's hash and every part's key (the safe default,
  so a new field always invalidates what it may change);
- ``in_keys("ratings", ...)``: the stage's hash and only the named parts' keys (a part is
  a group of results a stage caches apart, e.g. evaluate's rating predictions);
- ``in_keys()``: the stage's hash only (what is reported, not the cached parts);
- ``NOT_IN_KEYS``: no key at all (speed, memory, or what to do when something is missing:
  it changes no result).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

__all__ = ["NOT_IN_KEYS", "CacheKeys", "in_keys", "part_settings", "stage_settings"]


@dataclass(frozen=True)
class CacheKeys:
    """Field metadata: the cached parts a setting enters, and whether it enters the stage's
    hash at all."""

    parts: tuple[str, ...] = ()
    stage: bool = True


NOT_IN_KEYS = CacheKeys(stage=False)
"""A setting that changes no result (speed, memory, failure handling)."""


def in_keys(*parts: str) -> CacheKeys:
    """Field metadata: the setting enters the stage's hash and the keys of `parts` only."""
    return CacheKeys(tuple(parts))


def _marker(section: type[BaseModel], name: str) -> CacheKeys | None:
    """The field's `CacheKeys` marker (None: unmarked, it enters every key)."""
    found = [m for m in section.model_fields[name].metadata if isinstance(m, CacheKeys)]
    return found[0] if found else None


def _values(section: BaseModel, names: list[str]) -> dict[str, Any]:
    """The named settings as JSON-ready values (None left out, as in the stage hashes)."""
    dumped = json.loads(section.model_dump_json(include=set(names), exclude_none=True))
    return {name: dumped[name] for name in names if name in dumped}


def stage_settings(section: BaseModel) -> dict[str, Any]:
    """The section's settings that enter its stage's hash: all but those `NOT_IN_KEYS`."""
    kind = type(section)
    names = [n for n in kind.model_fields if (m := _marker(kind, n)) is None or m.stage]
    return _values(section, names)


def part_settings(section: BaseModel, part: str) -> dict[str, Any]:
    """The section's settings that enter the key of cached part `part`: the unmarked ones
    and those marked with `part`."""
    kind = type(section)
    names = [n for n in kind.model_fields if (m := _marker(kind, n)) is None or part in m.parts]
    return _values(section, names)
