"""The service's memory under requests that each bring something new: a described item
(a new title), or a cold-start user (a new profile, answered through an adapter blended
from their personas). Without caps the agents keep every described item (its record and
its embedding) and every cold user (profile, persona and blend) for ever; with them
(`--max-described-items`, `--max-cold-users`) both stay bounded.

Each kind runs in its own process over HTTP (the FastAPI app through httpx's ASGI
transport, one request at a time) on a run built here with the tiny test model (the
model's size does not change what is kept; a real blend is LoRA-sized, so the kept
blends are also reported as a count). Reported: resident memory every 1,000 requests,
the peak, and how many described items, cold users and adapters the agents hold at the
end. Run it on the code before and after the caps to compare (the script uses only the
API both have):

    .venv/bin/python benchmarks/serve_memory.py [--requests 10000] [--out results.json]
        [--max-described-items N] [--max-cold-users N]   (the caps; defaults otherwise)
        [--kinds described cold]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import isolated, peak_mib  # noqa: E402

SETTINGS = {
    "seed": 0,
    "split": {"users": 20, "min_ratings": 100, "max_ratings": 300},
    "llm": {"backend": "template"},
    "profile": {"rationales": False},
    "personas": {"k": 3},
    "agents": {
        "modes": ["persona"],
        "use_rationales": False,
        "max_examples_per_adapter": 8,
        "epochs": 1,
        "items_per_pack": 4,
        "prior_model": "user_item_bias",
        "watch_prior": "itemknn",
        "dtype": "float32",
    },
}


def build_run(folder: Path) -> Path:
    """A run of 20 ML-100K users with three persona adapters on the tiny model."""
    from personasim.config import load_config
    from personasim.pipeline import TrainStage, run_pipeline
    from personasim.testing import write_tiny_model

    model = write_tiny_model(folder / "tiny-model")
    settings = json.loads(json.dumps(SETTINGS))
    settings["agents"]["base_model"] = str(model)
    run = folder / "run"
    run_pipeline(run, load_config([("bench", settings)]), stages=(*TrainStage.upstream, TrainStage))
    return run


def _rss_mib() -> float:
    for line in open("/proc/self/status", encoding="ascii"):  # noqa: SIM115
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def serve(run: str, kind: str, requests: int, caps: dict[str, int]) -> dict[str, Any]:
    """Send `requests` requests of `kind` ("described" or "cold") one by one; return the
    memory curve and what the agents hold at the end (`caps`: the service's
    ``max_described_items`` and ``cold_cache`` when given; the defaults otherwise)."""
    import httpx

    from personasim.agents import UserAgent
    from personasim.serve import AgentService, ServeSettings, create_app

    agent = UserAgent.from_workdir(run, mode="persona")
    cold = {"cold_cache": caps["cold"]} if "cold" in caps else {}
    service = AgentService(agent, Path(run), blend=True, **cold)
    service.load_activity()
    described = {"max_described_items": caps["described"]} if "described" in caps else {}
    app = create_app(service, ServeSettings(**described))
    user = sorted(agent.profiles)[0]
    item = next(i for i, it in agent.items.items() if it["count"] > 0)
    genres = ["Drama", "Comedy", "Thriller", "Romance", "Action"]
    curve: list[tuple[int, float]] = [(0, _rss_mib())]

    def body(k: int) -> dict[str, Any]:
        if kind == "described":
            new = {"title": f"A film never seen number {k}", "year": 1950 + k % 70}
            return {"user_id": user, "items": [{**new, "genres": [genres[k % 5]]}]}
        profile = (
            f"Viewer {k}. Mostly watches {genres[k % 5]} and {genres[(k + 2) % 5]} movies "
            f"from the {1950 + 10 * (k % 7)}s; rates {1 + k % 5}/5 on average."
        )
        return {"profile": profile, "item_ids": [item]}

    async def main() -> None:
        app.state.batcher.start()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            try:
                for k in range(requests):
                    response = await client.post("/v1/watch", json=body(k))
                    response.raise_for_status()
                    if (k + 1) % 1000 == 0:
                        curve.append((k + 1, _rss_mib()))
            finally:
                await app.state.batcher.stop()

    asyncio.run(main())
    adapters = getattr(agent.lm.model, "peft_config", {})
    return {
        "kind": kind,
        "requests": requests,
        "rss_mib": curve,
        "peak_mib": peak_mib(),
        "described_items": sum(1 for it in agent.items.values() if it.get("described")),
        "users": len(agent.profiles),
        "adapters": len(adapters),
    }


def main() -> None:
    """Print and write the two kinds' curves."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--max-described-items", type=int, default=None)
    parser.add_argument("--max-cold-users", type=int, default=None)
    parser.add_argument("--kinds", nargs="+", default=["described", "cold"])
    args = parser.parse_args()
    caps = {
        k: v
        for k, v in (("described", args.max_described_items), ("cold", args.max_cold_users))
        if v is not None
    }
    with tempfile.TemporaryDirectory() as tmp:
        run = build_run(Path(tmp))
        results = []
        for kind in args.kinds:
            result, _ = isolated(serve, str(run), kind, args.requests, caps)
            results.append(result)
            curve = ", ".join(f"{n}: {mib:,.0f}" for n, mib in result["rss_mib"])
            print(
                f"{kind}: RSS MiB after n requests {{{curve}}}; peak {result['peak_mib']:,.0f}; "
                f"held: {result['described_items']} described items, {result['users']} users, "
                f"{result['adapters']} adapters",
                flush=True,
            )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
