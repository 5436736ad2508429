"""Load test of `personasim serve` on loopback: concurrent clients, latency, throughput.

A small trained run (ml-100k users, persona adapters on SmolLM2-135M, CPU) is served by
a real `personasim serve` process; `--clients` concurrent clients each send `--requests`
`POST /v1/rate` requests (a random user of the run, `--items` items). The same load is
sent twice, to a server without batching (`--max-batch 1`, the naive path) and to one
with dynamic batching, each a fresh process (its peak memory is its own). Reports
requests, errors, p50/p99 latency, throughput and the ratio.

    .venv/bin/python benchmarks/serve_load.py [--clients 8] [--requests 6] [--items 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Row, peak_mib, print_rows  # noqa: E402
from score_throughput import _setup  # noqa: E402

KEY = "load-test-key"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _load(
    port: int, users: list[str], items: list[str], clients: int, requests: int, n_items: int
) -> tuple[list[float], int, float]:
    import httpx

    latencies: list[float] = []
    errors = 0
    headers = {"Authorization": f"Bearer {KEY}"}

    async def client(seed: int) -> None:
        nonlocal errors
        rng = random.Random(seed)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=600) as http:
            for _ in range(requests):
                body = {"user_id": rng.choice(users), "item_ids": rng.sample(items, n_items)}
                t0 = time.perf_counter()
                response = await http.post("/v1/rate", json=body, headers=headers)
                latencies.append(time.perf_counter() - t0)
                errors += response.status_code != 200

    t0 = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    return latencies, errors, time.perf_counter() - t0


def _serve_and_load(workdir: str, max_batch: int, args: argparse.Namespace) -> Row:
    import httpx
    import pandas as pd

    port = _free_port()
    env = {**os.environ, "PERSONASIM_API_KEYS": KEY, "PERSONASIM_PROGRESS": "0"}
    command = [sys.executable, "-m", "personasim", "serve", "--workdir", workdir, "--port",
               str(port), "--max-batch", str(max_batch), "--batch-window-ms", "20"]  # fmt: skip
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"the server did not start: {server.stderr.read().decode()}")
            time.sleep(0.5)
        users = sorted(pd.read_parquet(f"{workdir}/profiles/profiles.parquet")["user_id"])
        items = pd.read_parquet(f"{workdir}/data/items.parquet")
        items = items[items["train_count"] > 0]["item_id"].astype(str).tolist()[:200]
        latencies, errors, seconds = asyncio.run(
            _load(port, users, items, args.clients, args.requests, args.items)
        )
        stats = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
        peak = peak_mib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=60)
    ordered = sorted(latencies)
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    name = "no batching (max-batch 1)" if max_batch == 1 else f"dynamic batching (<= {max_batch})"
    note = (
        f"{args.clients} clients x {args.requests} requests x {args.items} items; "
        f"p50 {p50:.2f} s, p99 {p99:.2f} s; errors {errors}; "
        f"{stats['batches']} model calls for {stats['requests']} requests"
    )
    return Row("serve", name, len(latencies), "requests", seconds, peak, max_batch == 1, note)


def measure(clients: int = 8, requests: int = 6, items: int = 8, users: int = 8) -> list[Row]:
    """The same load against a server without and with dynamic batching."""
    args = argparse.Namespace(clients=clients, requests=requests, items=items)
    with tempfile.TemporaryDirectory() as workdir:
        _setup(workdir, users)
        return [_serve_and_load(workdir, size, args) for size in (1, 64)]


def main() -> None:
    """Print the load test's table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=6)
    parser.add_argument("--items", type=int, default=8)
    parser.add_argument("--users", type=int, default=8)
    a = parser.parse_args()
    print_rows(measure(a.clients, a.requests, a.items, a.users), "personasim serve on loopback")


if __name__ == "__main__":
    main()
