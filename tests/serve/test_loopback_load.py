"""A real uvicorn server on loopback under concurrent clients: every request is
answered, and with its own answer (dynamic batching puts several requests in one
call; scripted agents make each answer tell which user and items it was computed for).
Latency and throughput live in benchmarks/serve_load.py."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
import numpy as np
import pytest
import uvicorn

from personasim.serve import AgentService, ServeSettings, create_app

pytestmark = pytest.mark.slow

CLIENTS, REQUESTS, KEY = 6, 3, "loopback-key"


def test_concurrent_clients_on_loopback_get_their_own_answers(scripted_agents, trained_run):
    agents = scripted_agents
    service = AgentService(agents, trained_run)
    service.load_activity()
    app = create_app(service, ServeSettings(api_keys=[KEY], batch_window_ms=50, max_batch=64))
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
    users = sorted(agents.profiles)
    items = sorted(agents.items)

    async def client(k: int) -> list[tuple[dict, httpx.Response]]:
        answers = []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            for r in range(REQUESTS):
                # each request its own user and items
                body = {
                    "user_id": users[(k * REQUESTS + r) % len(users)],
                    "item_ids": items[k + r : k + r + 3],
                }
                kind = "rate" if (k + r) % 2 else "watch"
                answer = await http.post(
                    f"/v1/{kind}", json=body, headers={"Authorization": f"Bearer {KEY}"}
                )
                answers.append((body, answer))
        return answers

    async def load() -> list[list[tuple[dict, httpx.Response]]]:
        return await asyncio.gather(*(client(k) for k in range(CLIENTS)))

    try:
        answered = [a for per_client in asyncio.run(load()) for a in per_client]
        health = httpx.get(
            f"http://127.0.0.1:{port}/readyz", headers={"Authorization": f"Bearer {KEY}"}
        ).json()
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert [response.status_code for _, response in answered] == [200] * (CLIENTS * REQUESTS)
    for body, response in answered:
        user, asked = body["user_id"], body["item_ids"]
        got = response.json()
        assert got["user_id"] == user and got["persona"] == agents.personas[user]
        if "ratings" in got:
            expected = [agents.expected_rating(user, i) for i in asked]
            np.testing.assert_allclose(got["ratings"], expected, rtol=1e-12)
        else:
            expected = [agents.watch_chance(user, i) for i in asked]
            np.testing.assert_allclose(got["probabilities"], expected, rtol=1e-12)
    assert health["requests"] == CLIENTS * REQUESTS
    # concurrent requests shared model calls: a batch asks each question once
    assert health["batches"] < CLIENTS * REQUESTS
    assert health["batches"] <= len(agents.calls) <= 2 * health["batches"]
    assert max(len(asked) for _, asked in agents.calls) > 1
