"""Reading, merging, validating, dumping and hashing configurations."""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import BaseModel, ValidationError

from personasim.config.cf import migrate_cf_settings
from personasim.config.run import RunConfig
from personasim.errors import ConfigError

__all__ = [
    "config_hash",
    "deep_merge",
    "dump_config",
    "load_config",
    "read_toml",
]


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file, resolving relative paths of `[data]` against its directory.

    Raises:
        ConfigError: The file is missing or is not valid TOML.
    """
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None

    def resolve(section: str, key: str, only_explicit: bool = False) -> None:
        table = raw.get(section)
        value = table.get(key) if isinstance(table, dict) else None
        if not isinstance(value, str) or not value or Path(value).expanduser().is_absolute():
            return
        if only_explicit and not value.startswith(("./", "../")):
            return  # e.g. llm.model = "smollm2" or a server's model name
        table[key] = str((path.parent / value).resolve())

    for key in ("path", "items_path", "users_path"):
        resolve("data", key)
    resolve("llm", "cache_dir")
    resolve("llm", "model", only_explicit=True)
    return raw


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Return `base` updated by `override`, merging nested tables key by key.

    A None in `override` removes the key (TOML has no null; only code passes None).
    """
    out = dict(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _format_validation(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key (see `personasim config reference`)"
    more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{source}: {where}: {msg}{more}"


def load_config(layers: list[tuple[str, dict[str, Any]]]) -> RunConfig:
    """Build the effective configuration from layers of raw settings, later ones winning.

    Args:
        layers: `(source name, settings)` pairs, e.g. `("run.toml", {...})`; the source
            name only serves error messages.

    Raises:
        ConfigError: A key is unknown or a value is invalid; the message names the
            layer and the key.
    """
    try:  # each layer's CF keys of older configs move to [cf] before the layers merge
        layers = [(source, migrate_cf_settings(raw, source)) for source, raw in layers]
    except ValueError as e:
        raise ConfigError(str(e)) from None
    merged: dict[str, Any] = {}
    for _, raw in layers:
        merged = deep_merge(merged, raw)
    try:
        return RunConfig.model_validate(merged)
    except ValidationError as e:
        # Re-validate layer by layer to name the layer that brought the bad key.
        partial: dict[str, Any] = {}
        for source, raw in layers:
            partial = deep_merge(partial, raw)
            try:
                RunConfig.model_validate(partial)
            except ValidationError as layer_err:
                raise ConfigError(_format_validation(layer_err, source)) from None
        raise ConfigError(_format_validation(e, "config")) from None


def _plain(config: BaseModel) -> dict[str, Any]:
    """The config as TOML-ready plain data (paths as strings, no None)."""
    return json.loads(config.model_dump_json(exclude_none=True))


def dump_config(config: RunConfig) -> str:
    """Render a configuration as TOML text (every field, defaults included)."""
    return tomli_w.dumps(_plain(config))


def config_hash(*parts: BaseModel | dict[str, Any] | int | str) -> str:
    """A stable SHA-256 over configuration sections and values (key order ignored)."""
    payload = [_plain(p) if isinstance(p, BaseModel) else p for p in parts]
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
