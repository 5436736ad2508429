"""Scaling of ingestion, template profiles and personas: DuckDB out of core against pandas.

Synthetic logs with latent personas (`personasim.testing.write_large_log`: 50-150
ratings per user, 100 on average, 3,000 items) of each size in `--users` go through the
`ingest` and `profile` stages (template backend, every user sampled, 60/40 temporal
split) twice: with `[scale] tables = "duckdb"` (out of core) and with the in-memory
pandas path (the naive one, up to `--naive-up-to` users: past that it needs more memory
than the machine has). The out-of-core run then goes through `personas` (taste features
from DuckDB, the defaults; its wall time, peak RSS, K and adjusted Rand index against the
latent personas). Each run is its own process: its peak RSS is its own.

Optionally (`--cluster-users N`), the first N users' template profiles are embedded
(MiniLM) and clustered with K = the true number of personas; the adjusted Rand index
against the latent personas says whether the profiles carry the structure.

    .venv/bin/python benchmarks/scale_tables.py [--users 10000 100000 1000000]
        [--naive-up-to 100000] [--work /tmp/personasim-scale] [--memory-limit 4GB]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Row, isolated, print_rows  # noqa: E402


def _log(folder: Path, users: int) -> tuple[Path, Path, Path, float]:
    from personasim.testing import write_large_log

    done = folder / "done"
    if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        t0 = time.perf_counter()
        isolated(write_large_log, folder, users)  # keeps this process small
        done.write_text(f"{time.perf_counter() - t0:.1f}")
    return (
        folder / "ratings.parquet",
        folder / "items.csv",
        folder / "personas.parquet",
        float(done.read_text()),
    )


def _stages(ratings: str, items: str, workdir: str, tables: str, memory: str) -> dict[str, Any]:
    """Ingest and profile one log in this process; seconds of each stage."""
    from personasim.config import load_config
    from personasim.pipeline.ingest import IngestStage
    from personasim.pipeline.profile import ProfileStage
    from personasim.workspace import Workspace

    shutil.rmtree(workdir, ignore_errors=True)
    config = load_config(
        [
            (
                "bench",
                {
                    "data": {"dataset": "custom", "path": ratings, "items_path": items},
                    "split": {"users": 0, "min_ratings": 1, "max_ratings": 0},
                    "llm": {"backend": "template"},
                    "profile": {"rationales": False},
                    "scale": {"tables": tables, "memory_limit": memory},
                },
            )
        ]
    )
    ws = Workspace(workdir)
    out = {}
    for stage in (IngestStage, ProfileStage):
        t0 = time.perf_counter()
        result = stage(ws, config).run()
        out[stage.name] = time.perf_counter() - t0
        if stage is IngestStage:
            out["rows"] = result.summary["log_ratings"]
            out["users"] = result.summary["users"]
    return out


def _cluster(profiles: str, truth: str, interactions: str, items: str, n: int) -> dict[str, Any]:
    import pandas as pd
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    from personasim.personas.embedding import embed_texts

    frame = pd.read_parquet(profiles, columns=["user_id", "profile_text", "taste_facts"]).head(n)
    labels = pd.read_parquet(truth).set_index("user_id").loc[frame["user_id"], "persona"]
    t0 = time.perf_counter()
    vectors = embed_texts(frame["profile_text"].tolist())
    seconds = time.perf_counter() - t0
    k = int(labels.nunique())
    truth = labels.astype(str).to_numpy()

    def ari(features: Any) -> float:
        found = KMeans(n_clusters=k, n_init=4, random_state=0).fit_predict(features)
        return round(float(adjusted_rand_score(truth, found)), 3)

    # The ceiling: the same users clustered on what the data says directly, each genre's
    # mean rating minus the user's mean rating (train ratings).
    inter = pd.read_parquet(interactions, columns=["user_id", "item_id", "rating", "split"])
    inter = inter[(inter["split"] == "train") & inter["user_id"].isin(set(frame["user_id"]))]
    genres = pd.read_csv(items)[["item_id", "genres"]].assign(g=lambda f: f.genres.str.split("|"))
    rated = inter.merge(genres[["item_id", "g"]], on="item_id").explode("g")
    rated["lift"] = rated["rating"] - rated.groupby("user_id")["rating"].transform("mean")
    lifts = rated.pivot_table(index="user_id", columns="g", values="lift", aggfunc="mean")
    return {
        "ari_profile_text": ari(vectors),
        "ari_taste_facts": ari(embed_texts(frame["taste_facts"].tolist())),
        "ari_genre_lifts": ari(lifts.fillna(0.0).loc[frame["user_id"]].to_numpy()),
        "users": len(frame),
        "k": k,
        "embed_s": round(seconds, 1),
    }


def _personas(workdir: str, truth: str) -> dict[str, Any]:
    """The personas stage on a profiled out-of-core run, with the run's settings (taste
    features from DuckDB, K by the elbow); its seconds, K and ARI against the latent
    personas."""
    import pandas as pd
    from sklearn.metrics import adjusted_rand_score

    from personasim.pipeline.personas import PersonasStage
    from personasim.pipeline.runner import resolve_config
    from personasim.workspace import Workspace

    ws = Workspace(workdir)
    t0 = time.perf_counter()
    result = PersonasStage(ws, resolve_config(ws)).run()
    seconds = time.perf_counter() - t0
    found = pd.read_parquet(Path(workdir) / "personas" / "assignments.parquet")
    latent = pd.read_parquet(truth).set_index("user_id").loc[found["user_id"], "persona"]
    return {
        "seconds": seconds,
        "k": result.summary["k"],
        "ari": round(float(adjusted_rand_score(latent, found["persona"])), 3),
    }


def measure(
    sizes: list[int], naive_up_to: int, work: Path, memory: str, cluster_users: int = 0
) -> tuple[list[Row], dict[str, Any]]:
    """Rows of the scaling table (one per size and path) and the clustering check."""
    rows: list[Row] = []
    extra: dict[str, Any] = {}
    for users in sizes:
        ratings, items, truth, gen_s = _log(work / f"log-{users}", users)
        paths = [("duckdb", False)]
        if users <= naive_up_to:
            paths.append(("pandas", True))
        for tables, naive in paths:
            workdir = work / f"run-{users}-{tables}"
            result, peak = isolated(_stages, str(ratings), str(items), str(workdir), tables, memory)
            seconds = result["ingest"] + result["profile"]
            note = (
                f"{users:,} users; ingest {result['ingest']:.1f} s, "
                f"profile {result['profile']:.1f} s; log written in {gen_s:.0f} s"
            )
            rows.append(
                Row(
                    f"ingest+profile {users:,}",
                    tables,
                    result["rows"],
                    "rows",
                    seconds,
                    peak,
                    naive=naive,
                    note=note,
                )  # fmt: skip
            )
            if tables == "duckdb":
                done, peak = isolated(_personas, str(workdir), str(truth))
                rows.append(
                    Row(
                        f"personas {users:,}",
                        "duckdb",
                        users,
                        "users",
                        done["seconds"],
                        peak,
                        note=f"taste features out of core, K {done['k']} by the elbow, "
                        f"ARI {done['ari']} against the latent personas",
                    )  # fmt: skip
                )
            if cluster_users and tables == "duckdb" and "cluster" not in extra:
                profiles = workdir / "profiles" / "profiles.parquet"
                interactions = workdir / "data" / "interactions.parquet"
                extra["cluster"] = isolated(
                    _cluster,
                    str(profiles),
                    str(truth),
                    str(interactions),
                    str(items),
                    cluster_users,
                )[0]
            if users != min(sizes):
                shutil.rmtree(workdir, ignore_errors=True)
    return rows, extra


def main() -> None:
    """Print the scaling table (and the clustering check)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--naive-up-to", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/personasim-scale"))
    parser.add_argument("--memory-limit", default="4GB")
    parser.add_argument("--cluster-users", type=int, default=2000)
    parser.add_argument("--json", type=Path, help="Also write the rows here.")
    args = parser.parse_args()
    rows, extra = measure(
        args.users, args.naive_up_to, args.work, args.memory_limit, args.cluster_users
    )
    print_rows(rows, "ingest + template profiles, out of core (duckdb) vs in memory (pandas)")
    if "cluster" in extra:
        c = extra["cluster"]
        print(
            f"\nclustering check, {c['users']} users, k-means with K = {c['k']}, adjusted Rand "
            f"index against the latent personas: MiniLM of the profile text "
            f"{c['ari_profile_text']}, of the taste sentences only {c['ari_taste_facts']}, "
            f"per-genre rating lifts from the data (ceiling) {c['ari_genre_lifts']}"
        )
    if args.json:
        args.json.write_text(json.dumps({"rows": [r.as_dict() for r in rows], **extra}, indent=1))


if __name__ == "__main__":
    main()
