"""The Markdown reference of every section and field (docs/configuration.md)."""

from __future__ import annotations

import json

from pydantic import BaseModel

from personasim.config.run import RunConfig

__all__ = [
    "config_reference",
]


def config_reference() -> str:
    """Markdown documentation of every configuration section and field."""
    lines: list[str] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        nested: list[tuple[str, type[BaseModel]]] = []
        rows: list[str] = []
        for name, field in model.model_fields.items():
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                nested.append((f"{prefix}.{name}" if prefix else name, ann))
                continue
            default = field.get_default(call_default_factory=True)
            shown = "(none)" if default is None else json.dumps(default, default=str)
            doc = (field.description or "").replace("\n", " ").replace("|", "\\|")
            shown = shown.replace("|", "\\|")
            rows.append(f"| `{name}` | `{shown}` | {doc} |")
        if rows:
            title = f"[{prefix}]" if prefix else "top level"
            lines.append(f"### `{title}`\n")
            if model.__doc__:
                lines.append(model.__doc__.strip().splitlines()[0] + "\n")
            lines.append("| key | default | meaning |")
            lines.append("| --- | --- | --- |")
            lines.extend(rows)
            lines.append("")
        for sub_prefix, sub in nested:
            walk(sub, sub_prefix)

    walk(RunConfig, "")
    return "\n".join(lines)
