"""Ablations of the agents' training recipe: loss, collaborative prior, rationales.

Each variant trains one adapter (mode `global`, or `persona`) on the same sample and
scores the same test pairs; the table puts biased MF on those pairs beside them. The
template backend writes the profiles so that the variants differ in training only.

    .venv/bin/python benchmarks/agent_ablations.py [--dataset ml-100k] [--users 40]
        [--examples 300] [--epochs 2] [--pairs 10] [--mode global]
        [--variants ce,ce+mse,prompt,logit,logit-ms]

    Persona features: --mode persona --variants personas-embedding,personas-traits
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

VARIANTS = {
    "ce": ("cross-entropy, no prior", {"loss": "ce", "prior": "none"}),
    "ce+mse": (
        "cross-entropy + expected-rating MSE, no prior",
        {"loss": "ce+mse", "prior": "none"},
    ),
    "prompt": ("ce+mse, CF prior in the prompt", {"loss": "ce+mse", "prior": "prompt"}),
    "logit": ("ce+mse, CF prior as logit prior", {"loss": "ce+mse", "prior": "logit"}),
    "both": ("ce+mse, CF prior in prompt and logits", {"loss": "ce+mse", "prior": "prompt+logit"}),
    "logit-ms": (
        "ce+mse, logit prior, Ms only (no rationale)",
        {"loss": "ce+mse", "prior": "logit", "use_rationales": False},
    ),
    "logit-cf-error": (
        "ce+mse, logit prior, examples chosen by CF error",
        {"loss": "ce+mse", "prior": "logit", "selection": "cf_error"},
    ),
    # Persona features (run with --mode persona): which clustering makes better agents.
    "personas-embedding": (
        "ce+mse, logit prior, personas from the profile embedding",
        {"loss": "ce+mse", "prior": "logit", "personas": {"features": "embedding"}},
    ),
    "personas-traits": (
        "ce+mse, logit prior, personas from embedding + traits",
        {"loss": "ce+mse", "prior": "logit", "personas": {"features": "embedding+traits"}},
    ),
}


def main() -> None:
    """Train and score every variant; print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--examples", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--mode", default="global", choices=["global", "persona"])
    parser.add_argument("--variants", default="ce,ce+mse,prompt,logit,logit-ms")
    parser.add_argument("--workdir", default=None, help="Keep the run folders here.")
    args = parser.parse_args()

    from personasim import run_pipeline
    from personasim.config import load_config

    model = f"{args.mode}-lora"
    rows = []
    base = Path(args.workdir or tempfile.mkdtemp(prefix="ablations-"))
    for key in args.variants.split(","):
        label, changes = VARIANTS[key]
        changes = dict(changes)
        personas = changes.pop("personas", {})
        cfg = load_config(
            [
                (
                    "ablation",
                    {
                        "seed": 0,
                        "data": {"dataset": args.dataset},
                        "split": {"users": args.users},
                        "llm": {"backend": "template"},
                        "personas": personas,
                        "agents": {
                            "modes": [args.mode],
                            "max_examples_per_adapter": args.examples,
                            "epochs": args.epochs,
                            **changes,
                        },
                        "evaluate": {"agents": [model], "agent_pairs_per_user": args.pairs},
                    },
                )
            ]
        )
        t0 = time.perf_counter()
        results = run_pipeline(base / key, cfg)
        metrics = results[-1].summary["metrics"]
        rows.append((key, label, metrics[model], metrics["biased_mf"], time.perf_counter() - t0))
        print(json.dumps({"variant": key, **metrics[model]}), flush=True)

    mf = rows[0][3].get("on_agent_pairs", rows[0][3])
    print(
        f"\n{args.dataset}, {args.users} users, {model}, {args.examples} rating examples "
        f"per adapter x {args.epochs} epochs, {args.pairs} test pairs per user; biased MF "
        f"on the same pairs: RMSE {mf['rmse']:.4f}, MAE {mf['mae']:.4f}\n"
    )
    print("| variant | RMSE | MAE | URR | digit mass | predicted std | train s |")
    print("|---|---|---|---|---|---|---|")
    for _, label, m, _, _ in rows:
        print(
            f"| {label} | {m['rmse']:.4f} | {m['mae']:.4f} | {m['urr']:.3f} | "
            f"{m['digit_mass']:.3f} | {m['predicted_std']:.3f} | {m['training_seconds']:.0f} |"
        )


if __name__ == "__main__":
    main()
