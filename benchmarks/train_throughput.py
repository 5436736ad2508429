"""Training throughput of a LoRA adapter: the plain loop against the fast paths.

The same rating/watch examples (SmolLM2-135M, profiles as system prompts) are trained
three ways, each from a fresh adapter and in its own process (so each peak memory is its
own), one after the other in the same run:

- plain (float32): one example per sequence, batches of 8, LoRA on every layer;
- packed + top layers (float32, then bf16 under autocast): `items_per_pack` examples
  after one shared profile prefix (block attention mask), `users_per_step` packs per
  step, LoRA on the top 6 layers only; the frozen lower layers' outputs are computed
  once and reused every epoch.

The FLOPs of a path (2 x parameters x tokens per layer forward): the cached lower
layers' forward once, and per epoch a forward and a backward (2 x forward) pass of each
layer that carries LoRA.

The examples are built with the CF prior in their text (the train stage builds none
without an adapter to train otherwise); the three paths train on the same ones.

    .venv/bin/python benchmarks/train_throughput.py [--examples 96] [--epochs 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Row, isolated, print_rows  # noqa: E402

VARIANTS = [
    (
        "plain: 1 example per sequence, LoRA on all layers",
        {"fast_path": False, "top_layers": 0, "dtype": "float32"},
    ),
    (
        "packed, LoRA on the top 6 layers, lower layers cached",
        {"fast_path": True, "top_layers": 6, "dtype": "float32"},
    ),
    (
        "packed, LoRA on the top 6 layers, lower layers cached",
        {"fast_path": True, "top_layers": 6, "dtype": "bfloat16"},
    ),
]


def _config(epochs: int, users: int, setup: bool = False) -> Any:
    """The benchmark's configuration; `setup` only builds the examples (the train stage
    stops before them when no adapter is asked and the prior is not in the prompt)."""
    from personasim.config import load_config

    return load_config(
        [
            (
                "benchmark",
                {
                    "seed": 0,
                    "data": {"dataset": "ml-100k"},
                    "split": {"users": users},
                    "llm": {"backend": "template"},
                    "agents": {
                        "modes": [],
                        "epochs": epochs,
                        **({"prior": "prompt+logit"} if setup else {}),
                    },
                },
            )
        ]
    )


def _variant(workdir: str, changes: dict, examples_n: int, epochs: int, users: int) -> dict:
    from peft import get_peft_model

    from personasim.agents.adapters import lora_config
    from personasim.agents.lm import AgentLM
    from personasim.agents.objective import make_packs
    from personasim.agents.training import train_adapter
    from personasim.data.tables import read_parquet

    cfg = _config(epochs, users)
    examples = read_parquet(f"{workdir}/adapters/examples.parquet")
    examples = examples.groupby("user_id").head(examples_n // users)
    profiles = read_parquet(f"{workdir}/profiles/profiles.parquet")
    texts = dict(zip(profiles["user_id"], profiles["profile_text"], strict=True))
    agents = cfg.agents.model_copy(update=changes)
    lm = AgentLM.load(agents)
    lm.model = get_peft_model(lm.model, lora_config(agents, lm.n_layers))
    packs = make_packs(examples, texts, lm, items_per_pack=agents.items_per_pack, adapter="default")
    if not agents.fast_path:  # every example carries its own prefix
        tokens = sum(len(p.pack.prefix) * len(p.tasks) for p in packs)
    else:
        tokens = sum(len(p.pack.prefix) for p in packs)
    tokens += sum(len(s) for p in packs for s in p.pack.suffixes)
    base = lm.model.get_base_model()
    per_layer = sum(p.numel() for p in base.model.layers[0].parameters())
    forward = 2.0 * per_layer * tokens  # one layer's forward pass over every token
    if agents.fast_path and agents.top_layers:  # lower layers once, top ones every epoch
        top = agents.top_layers
        flops = forward * (lm.n_layers - top) + epochs * 3 * forward * top
    else:
        flops = epochs * 3 * forward * lm.n_layers
    result = train_adapter(lm, packs, agents, seed=0).as_dict()
    return {**result, "flops": flops, "tokens": tokens, "dtype": lm.dtype_name}


def measure(examples: int = 96, epochs: int = 2, users: int = 8) -> list[Row]:
    """Examples/s of each training path, each in its own process."""
    from personasim import run_pipeline
    from personasim.pipeline import IngestStage, PersonasStage, ProfileStage, TrainStage

    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        cfg = _config(epochs, users)
        setup = _config(epochs, users, setup=True)
        run_pipeline(workdir, setup, stages=(IngestStage, ProfileStage, PersonasStage, TrainStage))
        for number, (name, changes) in enumerate(VARIANTS):
            result, peak = isolated(_variant, workdir, changes, examples, epochs, users)
            note = (
                f"{result['examples']} examples x {epochs} epochs, rank {cfg.agents.lora_rank}; "
                f"final loss {result['curve'][-1][1]:.3f}, precompute "
                f"{result['precompute_seconds']:.1f} s"
            )
            work = result["examples"] * epochs
            rows.append(
                Row(
                    "train",
                    name,
                    work,
                    "examples",
                    result["seconds"],
                    peak,
                    number == 0,
                    note,
                    result["flops"],
                    dtype=result["dtype"],
                    tokens_per_unit=result["tokens"] / result["examples"],
                )
            )
    return rows


def main() -> None:
    """Print examples/s of each path, the speed-up over the plain loop, peak memory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--users", type=int, default=8)
    args = parser.parse_args()
    rows = measure(args.examples, args.epochs, args.users)
    print_rows(rows, "LoRA training of SmolLM2-135M (CPU)")


if __name__ == "__main__":
    main()
