"""Export a recommender's top-N lists as a rankings file personasim can simulate.

This is what a team does with its production model: write ``user_id, item_id, rank``
rows (rank 1 shown first) for the users of a personasim run, then simulate them with
``personasim simulate --rankings prod=FILE`` or ``[simulate] rankings``. Here the
"production model" is LensKit's explicit-feedback biased MF (ALS), ranking every item
the user has not rated by predicted rating: a rating predictor used as a recommender,
which none of personasim's built-in recommenders is.

    python examples/export_rankings.py runs/ml1m18 runs/ml1m18-biasedmf.parquet

It reads the run's ingested data (the sampled users' train part plus the other users'
histories, what the built-in recommenders are fitted on) and needs only LensKit.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from lenskit.als import BiasedMFScorer
from lenskit.batch import recommend
from lenskit.data import from_interactions_df
from lenskit.pipeline import topn_pipeline
from lenskit.training import TrainingOptions


def training_log(run: Path) -> pd.DataFrame:
    """The training interactions of a personasim run (train split plus other users)."""
    data = run / "data"
    log = pd.read_parquet(data / "interactions.parquet")
    train = log[log["split"] == "train"].drop(columns="split")
    others = data / "others.parquet"
    if others.exists():
        train = pd.concat([train, pd.read_parquet(others)[train.columns]], ignore_index=True)
    return train


def export(run: Path, out: Path, n: int, seed: int) -> pd.DataFrame:
    """Fit biased MF on the run's training log and write each sampled user's top `n`."""
    training = training_log(run)
    dataset = from_interactions_df(
        training, user_col="user_id", item_col="item_id", rating_col="rating"
    )
    pipeline = topn_pipeline(BiasedMFScorer(embedding_size=50, epochs=10))
    pipeline.train(dataset, TrainingOptions(rng=seed))
    users = sorted(pd.read_parquet(run / "data" / "interactions.parquet")["user_id"].unique())
    lists = recommend(pipeline, users, n)
    frame = lists.to_df()[["user_id", "item_id", "rank"]].sort_values(["user_id", "rank"])
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    return frame


def main() -> None:
    """Command line: the run folder, the output file, the list length and the seed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a personasim run folder (after ingest)")
    parser.add_argument("out", type=Path, help="the rankings file to write (.parquet)")
    parser.add_argument("-n", type=int, default=50, help="items per user (default 50)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    frame = export(args.run, args.out, args.n, args.seed)
    print(f"{args.out}: {frame['user_id'].nunique()} users, {len(frame)} ranked items")


if __name__ == "__main__":
    main()
