"""The classical baselines on the paper's protocol, over several seeds.

ML-1M, 200 users with 100-200 ratings, per-user 60:40 temporal split; RMSE and MAE of
each LensKit baseline, per seed and as mean +- std, with wall time and peak memory.

    .venv/bin/python benchmarks/baseline_seeds.py [--seeds 0 1 2] [--dataset ml-1m]
        [--sampled-users-only]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time

from personasim import run_pipeline
from personasim.config import load_config


def main() -> None:
    """Run the protocol for each seed and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--sampled-users-only", action="store_true")
    args = parser.parse_args()

    rows: dict[str, list[tuple[float, float]]] = {}
    walls = []
    for seed in args.seeds:
        cfg = load_config(
            [
                (
                    "benchmark",
                    {
                        "seed": seed,
                        "data": {"dataset": args.dataset},
                        "split": {
                            "users": 200,
                            "min_ratings": 100,
                            "max_ratings": 200,
                            "include_other_users": not args.sampled_users_only,
                        },
                    },
                )
            ]
        )
        with tempfile.TemporaryDirectory() as workdir:
            t0 = time.perf_counter()
            results = run_pipeline(workdir, cfg)
            walls.append(time.perf_counter() - t0)
        metrics = results[-1].summary["metrics"]
        for name, m in metrics.items():
            rows.setdefault(name, []).append((m["rmse"], m["mae"]))
        fit = next(iter(metrics.values()))["fit_data"]

    header = "| model | " + " | ".join(f"seed {s} RMSE / MAE" for s in args.seeds)
    print(
        f"{args.dataset}, 200 users with 100-200 ratings, 60:40 temporal split; fitted on: {fit}\n"
    )
    print(header + " | mean RMSE (std) | mean MAE (std) |")
    print("|---" * (len(args.seeds) + 3) + "|")
    for name, values in sorted(rows.items(), key=lambda kv: -statistics.mean(v[0] for v in kv[1])):
        cells = " | ".join(f"{r:.4f} / {a:.4f}" for r, a in values)
        rm = [v[0] for v in values]
        ma = [v[1] for v in values]
        print(
            f"| {name} | {cells} | {statistics.mean(rm):.4f} ({statistics.pstdev(rm):.4f}) "
            f"| {statistics.mean(ma):.4f} ({statistics.pstdev(ma):.4f}) |"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\nwall time per seed (ingest + evaluate): {statistics.mean(walls):.1f} s; "
        f"peak memory {peak:.0f} MiB"
    )


if __name__ == "__main__":
    main()
