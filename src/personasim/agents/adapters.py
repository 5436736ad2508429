"""Creating, saving and loading LoRA adapters in PEFT's standard format."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from personasim.config import AgentConfig
from personasim.errors import StageError
from personasim.run_folder import ADAPTERS, MANIFEST

__all__ = [
    "adapter_base",
    "adapter_folders",
    "fitted_lm_weights",
    "lora_config",
    "save_adapter",
]

GLOBAL_ADAPTER = "global"


def lora_config(config: AgentConfig, n_layers: int) -> Any:
    """PEFT's LoRA settings from `[agents]` (top layers only when `top_layers` > 0)."""
    from peft import LoraConfig

    layers = None
    if config.top_layers and config.top_layers < n_layers:
        layers = list(range(n_layers - config.top_layers, n_layers))
    return LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules),
        layers_to_transform=layers,
        bias="none",
        task_type="CAUSAL_LM",
    )


def save_adapter(model: Any, folder: Path, meta: dict[str, Any], base_name: str) -> None:
    """Save the active adapter of a PEFT model into `folder` atomically, with a
    ``training.json`` beside PEFT's ``adapter_config.json`` and safetensors weights.

    `base_name` (:func:`personasim.llm.models.portable_name`) replaces the base model's
    local folder as ``base_model_name_or_path``, so the folder names its base the same way
    on every machine it is copied to.
    """
    tmp = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}")
    try:
        model.save_pretrained(str(tmp), safe_serialization=True)
        _normalise_config(tmp / "adapter_config.json", base_name)
        (tmp / ADAPTERS.training).write_text(json.dumps(meta, indent=2) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _normalise_config(path: Path, base_name: str) -> None:
    """Name the base portably, and sort `target_modules`: PEFT writes them from a set, in
    an order that changes with Python's string hashing from one process to the next;
    sorted, the file is the same bytes for the same adapter (same seed, same artifacts)."""
    config = json.loads(path.read_text())
    modules = config.get("target_modules")
    if isinstance(modules, list):
        config["target_modules"] = sorted(modules)
    config["base_model_name_or_path"] = base_name
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def adapter_base(folder: Path) -> str | None:
    """The base model an adapter folder names (``base_model_name_or_path``)."""
    config = json.loads((Path(folder) / "adapter_config.json").read_text())
    return config.get("base_model_name_or_path")


def adapter_folders(workdir: Path) -> dict[str, Path]:
    """The adapter folders of a run folder, by name.

    Raises:
        StageError: The train stage has not run there.
    """
    root = Path(workdir) / ADAPTERS.stage.folder
    if not (root / MANIFEST).exists():
        raise StageError(
            f"{root} is missing: run `personasim {ADAPTERS.stage.command} --workdir {workdir}` "
            "first"
        )
    return {
        p.name: p
        for p in sorted(root.iterdir())
        if p.is_dir() and (p / "adapter_config.json").exists()
    }


def fitted_lm_weights(
    adapters: Mapping[str, Any], names: Sequence[str]
) -> tuple[dict[str, float], dict[str, float]]:
    """Per adapter in `names`, its rating and watch LM weights from the train stage's
    summary of `adapters` (1 where a weight was not fitted)."""
    rating = {n: float((adapters.get(n) or {}).get("lm_weight", 1.0)) for n in names}
    watch = {n: float((adapters.get(n) or {}).get("watch_lm_weight", 1.0)) for n in names}
    return rating, watch
