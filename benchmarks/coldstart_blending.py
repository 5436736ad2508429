"""Cold-start users: nearest persona's adapter against an adapter blended by membership.

Held-out users of a trained run (users of the log outside its sample, so no adapter and
no persona saw them) are profiled from the first 60% of their ratings, exactly as the
run's users were (template or LLM profiles, trait levels against the run's users), and
placed among the run's personas by the blocks the personas were clustered on (taste
features of those ratings, traits, profile text). Their next ratings are then predicted
by the same agents: with the nearest persona's adapter, and with an adapter blended from their soft
membership (top 3 personas, PEFT "cat": the weighted sum of the personas' updates). The
item-mean prior (what the agents start from for an unknown user) is the reference, and
a third arm places the users by their profile text alone (what the service does with a
``profile``).
RMSE per arm, and the blended-minus-nearest difference with a paired bootstrap interval
over users.

    .venv/bin/python benchmarks/coldstart_blending.py --workdir runs/ml1m-tpl [--users 50]
        [--items 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    """Print the comparison."""
    from personasim.agents import UserAgent
    from personasim.data.tables import read_parquet
    from personasim.personas.assignment import PersonaModel
    from personasim.personas.features import taste_features
    from personasim.pipeline.runner import resolve_config
    from personasim.profiles.builder import build_profiles
    from personasim.run_folder import DATA, PROFILES
    from personasim.workspace import Workspace

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("runs/ml1m-tpl"))
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--items", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()

    ws = Workspace(args.workdir)
    config = resolve_config(ws)
    rng = np.random.default_rng(args.seed)
    others = read_parquet(ws.require(DATA.others))
    counts = others.groupby("user_id").size()
    low, high = config.split.min_ratings, config.split.max_ratings or 10**9
    pool = np.sort(counts[(counts >= low) & (counts <= high)].index.to_numpy())
    chosen = set(rng.choice(pool, size=min(args.users, len(pool)), replace=False))
    held = others[others["user_id"].isin(chosen)].sort_values(["user_id", "timestamp", "item_id"])
    rank = held.groupby("user_id").cumcount()
    size = held.groupby("user_id")["item_id"].transform("size")
    train = held[rank < np.floor(size * config.split.train_fraction)]
    test = held[rank >= np.floor(size * config.split.train_fraction)]
    test = test.groupby("user_id", group_keys=False).apply(
        lambda f: f.sample(n=min(args.items, len(f)), random_state=args.seed)
    )
    items = read_parquet(ws.require(DATA.items))
    reference = read_parquet(ws.require(PROFILES.profiles))

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        profiles = build_profiles(
            train, items, llm=config.llm, config=config.profile,
            cache_path=Path(tmp) / "cache.sqlite", seed=config.seed,
            reference_traits=reference, rationales=False,
        ).profiles  # fmt: skip
    personas = PersonaModel.from_workdir(ws.root)
    texts = profiles["profile_text"].tolist()
    users_index = pd.Index(profiles["user_id"].astype(str), name="user_id")
    # placed as `personasim personas assign` places users given by ratings: by every
    # block the personas were clustered on (taste from these ratings, traits, text)
    placed = personas.assign(
        texts, traits=profiles, taste=taste_features(train, items).reindex(users_index)
    )
    by_text = personas.assign(texts)  # what the service can do with a profile text alone
    agent = UserAgent.from_workdir(ws.root, mode="persona")
    requests: dict[str, list[tuple[str, list[str]]]] = {"nearest": [], "blended": [], "text": []}
    blends = set()
    for k, row in enumerate(profiles.itertuples(index=False)):
        user = str(row.user_id)
        membership = dict(zip(personas.names, placed.membership[k], strict=True))
        agent.add_user(f"n:{user}", row.profile_text, persona=placed.personas[k])
        agent.add_user(f"t:{user}", row.profile_text, persona=by_text.personas[k])
        blends.add(agent.add_user(f"b:{user}", row.profile_text, membership=membership, blend=True))
        wanted = test[test["user_id"] == row.user_id]["item_id"].astype(str).tolist()
        requests["nearest"].append((f"n:{user}", wanted))
        requests["blended"].append((f"b:{user}", wanted))
        requests["text"].append((f"t:{user}", wanted))
    truth = {str(u): f.set_index("item_id")["rating"] for u, f in test.groupby("user_id")}
    errors: dict[str, dict[str, np.ndarray]] = {}
    for arm, asked in requests.items():
        results = agent.rating_distributions(asked)
        errors[arm] = {
            user.split(":", 1)[1]: np.asarray(r["expected"])
            - truth[user.split(":", 1)[1]].loc[items_].to_numpy()
            for (user, items_), r in zip(asked, results, strict=True)
        }
    prior = (
        {u: agent.prior.predict("?", list(t.index)) - t.to_numpy() for u, t in truth.items()}
        if agent.prior is not None
        else None
    )
    seconds = time.perf_counter() - t0

    users = sorted(errors["nearest"])

    def rmse(arm: dict[str, np.ndarray], who: list[str]) -> float:
        return float(np.sqrt(np.mean(np.concatenate([arm[u] ** 2 for u in who]))))

    diffs = []
    for _ in range(args.rounds):
        who = list(rng.choice(users, size=len(users), replace=True))
        diffs.append(rmse(errors["blended"], who) - rmse(errors["nearest"], who))
    low_ci, high_ci = np.percentile(diffs, [2.5, 97.5])
    n = sum(len(e) for e in errors["nearest"].values())
    print(f"cold start on {args.workdir}: {len(users)} held-out users, {n} test ratings, "
          f"{len(personas.names)} personas, {len(blends)} distinct adapters used by the "
          f"blended arm; {seconds:.0f} s\n")  # fmt: skip
    print("| arm | RMSE |")
    print("|---|---|")
    if prior is not None:
        print(f"| item-mean prior (no agent) | {rmse(prior, users):.4f} |")
    print(f"| nearest persona's adapter | {rmse(errors['nearest'], users):.4f} |")
    print(f"| blended adapter (top 3 by membership) | {rmse(errors['blended'], users):.4f} |")
    print(f"| nearest persona by the profile text alone | {rmse(errors['text'], users):.4f} |")
    same = np.mean(np.array(placed.personas) == np.array(by_text.personas))
    diff = rmse(errors["blended"], users) - rmse(errors["nearest"], users)
    print(f"\nblended - nearest: {diff:+.4f} (95% bootstrap over users {low_ci:+.4f} to "
          f"{high_ci:+.4f})")  # fmt: skip
    top = placed.membership.max(axis=1)
    print(f"membership of the nearest persona: mean {top.mean():.2f}, median {np.median(top):.2f}")
    print(f"the profile text alone picks the same persona for {same:.0%} of the users")


if __name__ == "__main__":
    main()
