"""Is one model's RMSE really lower than another's? A paired user-level bootstrap.

Both models' predictions are joined on the (user, item) pairs they share; users are
resampled with replacement (a user's pairs stay together, since they are not
independent) and the RMSE difference A - B is recomputed each time.

    .venv/bin/python benchmarks/compare_predictions.py \\
        runs/a/eval/predictions.parquet:global-lora runs/b/eval/predictions.parquet:biased_mf
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd


def shared_pairs(a: str, b: str) -> pd.DataFrame:
    """The pairs both `PATH:MODEL` specs predicted, with columns ``err_a`` and ``err_b``."""
    frames = []
    for spec in (a, b):
        path, _, model = spec.rpartition(":")
        table = pd.read_parquet(path)
        if model not in set(table["model"]):
            known = sorted(set(table["model"]))
            raise SystemExit(f"error: {path}: no model {model!r} (has: {known})")
        frames.append(table[table["model"] == model][["user_id", "item_id", "rating", "predicted"]])
    joined = frames[0].merge(frames[1], on=["user_id", "item_id", "rating"], suffixes=("_a", "_b"))
    if joined.empty:
        raise SystemExit("error: the two models share no (user, item) pair")
    joined["err_a"] = (joined["predicted_a"] - joined["rating"]) ** 2
    joined["err_b"] = (joined["predicted_b"] - joined["rating"]) ** 2
    return joined


def bootstrap_rmse_difference(
    pairs: pd.DataFrame, *, rounds: int = 2000, seed: int = 0
) -> np.ndarray:
    """RMSE(A) - RMSE(B) over `rounds` user-level resamples."""
    per_user = pairs.groupby("user_id")[["err_a", "err_b"]].agg(["sum", "count"])
    sums_a = per_user[("err_a", "sum")].to_numpy()
    sums_b = per_user[("err_b", "sum")].to_numpy()
    counts = per_user[("err_a", "count")].to_numpy()
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(counts), size=(rounds, len(counts)))
    n = counts[picks].sum(axis=1)
    return np.sqrt(sums_a[picks].sum(axis=1) / n) - np.sqrt(sums_b[picks].sum(axis=1) / n)


def main() -> None:
    """Print both RMSEs and the 95% interval of their difference."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="PREDICTIONS.parquet:MODEL")
    parser.add_argument("b", help="PREDICTIONS.parquet:MODEL")
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pairs = shared_pairs(args.a, args.b)
    diff = bootstrap_rmse_difference(pairs, rounds=args.rounds, seed=args.seed)
    low, high = np.percentile(diff, [2.5, 97.5])
    rmse_a = float(np.sqrt(pairs["err_a"].mean()))
    rmse_b = float(np.sqrt(pairs["err_b"].mean()))
    print(
        f"{pairs['user_id'].nunique()} users, {len(pairs)} pairs: RMSE A {rmse_a:.4f}, "
        f"B {rmse_b:.4f}; A - B {rmse_a - rmse_b:+.4f}, 95% interval {low:+.4f} .. {high:+.4f}"
        f" ({'A better' if high < 0 else 'B better' if low > 0 else 'no clear difference'})"
    )


if __name__ == "__main__":
    main()
