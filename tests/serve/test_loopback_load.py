"""A bounded load test on loopback: a real uvicorn server, concurrent clients, every
request answered (no errors), p50/p99 reported; no timing is asserted (speed lives in
benchmarks/serve_load.py)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
import pytest
import uvicorn

from personasim.agents import UserAgent
from personasim.serve import AgentService, ServeSettings, create_app

pytestmark = pytest.mark.slow

CLIENTS, REQUESTS, KEY = 6, 3, "loopback-key"


def test_concurrent_clients_on_loopback_get_every_answer(trained_run):
    agent = UserAgent.from_workdir(trained_run, mode="persona")
    service = AgentService(agent, trained_run)
    service.load_activity()
    app = create_app(service, ServeSettings(api_keys=[KEY], batch_window_ms=50))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    users = sorted(agent.profiles)
    items = [i for i, it in agent.items.items() if it["count"] > 0][:4]
    latencies: list[float] = []

    async def client(k: int) -> list[int]:
        codes = []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=300) as http:
            for r in range(REQUESTS):
                body = {"user_id": users[(k + r) % len(users)], "item_ids": items}
                t0 = time.perf_counter()
                answer = await http.post(
                    "/v1/rate", json=body, headers={"Authorization": f"Bearer {KEY}"}
                )
                latencies.append(time.perf_counter() - t0)
                codes.append(answer.status_code)
        return codes

    async def load() -> list[list[int]]:
        return await asyncio.gather(*(client(k) for k in range(CLIENTS)))

    try:
        codes = [c for per_client in asyncio.run(load()) for c in per_client]
        health = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert codes == [200] * (CLIENTS * REQUESTS)
    assert health["requests"] == CLIENTS * REQUESTS
    assert health["batches"] < CLIENTS * REQUESTS  # concurrent requests shared calls
    ordered = sorted(latencies)
    print(
        f"{CLIENTS} clients x {REQUESTS} requests: p50 {ordered[len(ordered) // 2]:.2f} s, "
        f"p99 {ordered[-1]:.2f} s, {health['batches']} model calls"
    )
