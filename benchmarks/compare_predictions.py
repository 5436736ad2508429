"""Is one model's RMSE really lower than another's? A paired user-level bootstrap.

Both models' predictions are joined on the (user, item) pairs they share; users are
resampled with replacement (a user's pairs stay together, since they are not
independent) and the RMSE difference A - B is recomputed each time.

    .venv/bin/python benchmarks/compare_predictions.py \\
        runs/a/eval/predictions.parquet:global-lora runs/b/eval/predictions.parquet:biased_mf
"""

from __future__ import annotations

import argparse

import pandas as pd

from personasim.evaluation.bootstrap import paired_rmse_difference


def model_predictions(spec: str) -> pd.DataFrame:
    """The predictions of one `PATH:MODEL` spec."""
    path, _, model = spec.rpartition(":")
    table = pd.read_parquet(path)
    if model not in set(table["model"]):
        raise SystemExit(f"error: {path}: no model {model!r} (has: {sorted(set(table['model']))})")
    return table[table["model"] == model]


def main() -> None:
    """Print both RMSEs and the 95% interval of their difference."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="PREDICTIONS.parquet:MODEL")
    parser.add_argument("b", help="PREDICTIONS.parquet:MODEL")
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    a, b = model_predictions(args.a), model_predictions(args.b)
    diff, shared = paired_rmse_difference(a, b, rounds=args.rounds, seed=args.seed)
    if not shared:
        raise SystemExit("error: the two models share no (user, item) pair")
    verdict = "A better" if diff.high < 0 else "B better" if diff.low > 0 else "no clear difference"
    print(
        f"{shared} shared pairs: A - B RMSE {diff.estimate:+.4f}, 95% interval "
        f"{diff.low:+.4f} .. {diff.high:+.4f} ({verdict})"
    )


if __name__ == "__main__":
    main()
