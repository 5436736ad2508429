"""The agent service: answers equal the agents', batching, keys, errors, cold start."""

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import pytest

from personasim.agents import UserAgent
from personasim.errors import ConfigError
from personasim.serve import AgentService, ServeSettings, create_app
from personasim.serve.service import COLD_PREFIX

pytestmark = pytest.mark.slow


@pytest.fixture
def agent(trained_run):
    # float32: a batch's answers equal the agent's own to 1e-4 (bf16 rounds differently
    # with the batch around a row). One per test: the service adds cold-start users and
    # described items to its agents.
    return UserAgent.from_workdir(trained_run, mode="persona", dtype="float32")


def _call(app, requests, headers=None):
    """Send (method, path, body) requests concurrently; return the responses."""

    async def main():
        app.state.batcher.start()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            try:
                return await asyncio.gather(
                    *(client.request(m, p, json=b, headers=headers or {}) for m, p, b in requests)
                )
            finally:
                await app.state.batcher.stop()

    return asyncio.run(main())


def _app(agent, trained_run, **settings):
    service = AgentService(agent, trained_run)
    service.load_activity()
    return create_app(service, ServeSettings(**settings))


def _items(agent, n):
    return [i for i, it in agent.items.items() if it["count"] > 0][:n]


def test_concurrent_requests_share_model_calls_and_answer_as_the_agent(agent, trained_run):
    app = _app(agent, trained_run, batch_window_ms=200, max_batch=64)
    users = sorted(agent.profiles)[:6]
    items = _items(agent, 3)
    responses = _call(app, [("POST", "/v1/rate", {"user_id": u, "item_ids": items}) for u in users])
    assert [r.status_code for r in responses] == [200] * len(users)
    stats = app.state.batcher.stats
    assert stats.requests == len(users) and stats.batches < len(users)
    for user, response in zip(users, responses, strict=True):
        body = response.json()
        assert body["persona"] == agent.personas[user]
        np.testing.assert_allclose(body["ratings"], agent.rate(user, items), atol=1e-4)
    watch = _call(app, [("POST", "/v1/watch", {"user_id": users[0], "item_ids": items})])[0]
    np.testing.assert_allclose(
        watch.json()["probabilities"], agent.watch_probability(users[0], items), atol=1e-4
    )


def test_new_items_are_rated_and_watched_from_their_descriptions(agent, trained_run):
    app = _app(agent, trained_run)
    user = sorted(agent.profiles)[0]
    known = _items(agent, 1)
    new = {"title": "Tomorrow's Film", "year": 2030, "genres": ["Comedy"]}
    rate, watch, bad = _call(
        app,
        [
            ("POST", "/v1/rate", {"user_id": user, "item_ids": known, "items": [new]}),
            ("POST", "/v1/watch", {"user_id": user, "items": [new]}),
            ("POST", "/v1/rate", {"user_id": user, "items": [{"title": "x", "rating": 5}]}),
        ],
    )
    assert rate.status_code == 200 and watch.status_code == 200
    np.testing.assert_allclose(rate.json()["ratings"], agent.rate(user, [*known, new]), atol=1e-4)
    new_id = agent.describe_items([new])[0]
    np.testing.assert_allclose(
        watch.json()["probabilities"], agent.watch_probability(user, [new_id]), atol=1e-4
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"


def test_described_items_are_kept_per_key_up_to_the_cap(agent, trained_run):
    app = _app(agent, trained_run, api_keys=["a", "b"], max_described_items=3)
    user = sorted(agent.profiles)[0]
    catalogue = len(agent.items)

    def describe(key, title):
        body = {"user_id": user, "items": [{"title": title, "genres": ["Drama"]}]}
        (answer,) = _call(app, [("POST", "/v1/watch", body)], {"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200

    for k in range(5):
        describe("a", f"Film {k}")
    describe("b", "Film 0")  # gone from a's five, kept by b
    described = {i for i, it in agent.items.items() if it.get("described")}
    assert described == {"new:Film 2", "new:Film 3", "new:Film 4", "new:Film 0"}
    assert len(agent.items) == catalogue + 4
    if agent.index is not None:
        assert "new:Film 1" not in agent.index._item_vectors


def test_the_token_cache_is_bounded_by_bytes(agent):
    lm = agent.lm
    saved = lm.token_cache
    try:
        from cachetools import LRUCache

        from personasim.agents.lm import _token_entry_bytes

        lm.token_cache = LRUCache(maxsize=20_000, getsizeof=_token_entry_bytes)
        reference = lm._encode_prefix("profile 0 " * 50)
        for k in range(200):
            lm.encode_prefix(f"profile {k} " * 50)
        assert lm.token_cache.currsize <= 20_000 < 200 * (500 + 36 * 100)
        assert lm.encode_prefix("profile 0 " * 50) == reference  # evicted, encoded again
    finally:
        lm.token_cache = saved


def test_api_keys_are_required_and_compared(agent, trained_run):
    app = _app(agent, trained_run, api_keys=["first-key", "second-key"])
    body = {"user_id": sorted(agent.profiles)[0], "item_ids": _items(agent, 1)}
    rate = [("POST", "/v1/rate", body)]
    (none,) = _call(app, rate)
    (wrong,) = _call(app, rate, {"Authorization": "Bearer first-key-but-longer"})
    (right,) = _call(app, rate, {"Authorization": "Bearer second-key"})
    (health,) = _call(app, [("GET", "/healthz", None)])
    (ready,) = _call(app, [("GET", "/readyz", None)])
    (detail,) = _call(app, [("GET", "/readyz", None)], {"Authorization": "Bearer first-key"})
    assert none.status_code == 401 and none.json()["error"]["code"] == "unauthorized"
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert ready.json() == {"status": "ready"}  # the details take a key
    assert detail.json()["requests"] >= 1 and detail.json()["mode"] == "persona"


def test_bad_requests_get_json_errors(agent, trained_run):
    app = _app(agent, trained_run, max_body_bytes=2048)
    user = sorted(agent.profiles)[0]
    unknown_user, unknown_item, both, empty, big = _call(
        app,
        [
            ("POST", "/v1/rate", {"user_id": "nobody", "item_ids": _items(agent, 1)}),
            ("POST", "/v1/rate", {"user_id": user, "item_ids": ["no-such-item"]}),
            ("POST", "/v1/watch", {"user_id": user, "profile": "x", "item_ids": ["a"]}),
            ("POST", "/v1/rate", {"user_id": user, "item_ids": []}),
            ("POST", "/v1/rate", {"user_id": user, "item_ids": ["i"] * 1000}),
        ],
    )
    assert (unknown_user.status_code, unknown_user.json()["error"]["code"]) == (404, "unknown_user")
    assert (unknown_item.status_code, unknown_item.json()["error"]["code"]) == (
        404,
        "unknown_items",
    )
    assert both.status_code == 422 and "exactly one" in both.json()["error"]["message"]
    assert empty.status_code == 422 and empty.json()["error"]["code"] == "invalid_request"
    assert big.status_code == 413 and big.json()["error"]["code"] == "body_too_large"


def test_cold_start_sessions_personas_and_openapi(agent, trained_run):
    app = _app(agent, trained_run)
    user = sorted(agent.profiles)[0]
    text = agent.profiles[user]
    ranked = _items(agent, 8)
    cold, again, session, personas, spec = _call(
        app,
        [
            ("POST", "/v1/rate", {"profile": text, "item_ids": ranked[:2]}),
            ("POST", "/v1/watch", {"profile": text, "item_ids": ranked[:2]}),
            ("POST", "/v1/sessions", {"user_id": user, "ranked_item_ids": ranked, "max_pages": 2}),
            ("GET", "/v1/personas", None),
            ("GET", "/openapi.json", None),
        ],
    )
    assert cold.status_code == 200 and cold.json()["user_id"].startswith("cold:")
    assert again.json()["user_id"] == cold.json()["user_id"]
    names = {p["name"] for p in personas.json()["personas"]}
    assert cold.json()["persona"] in names
    run_users = {u for u in agent.personas if not u.startswith("cold:")}
    assert sum(p["users"] for p in personas.json()["personas"]) == len(run_users)
    body = session.json()
    assert session.status_code == 200 and 1 <= len(body["events"]) <= 8
    assert body["session"]["user_id"] == user
    paths = json.loads(spec.text)["paths"]
    assert {"/v1/rate", "/v1/watch", "/v1/sessions", "/v1/personas", "/healthz"} <= set(paths)


def test_corrupted_or_pickled_adapters_are_refused(trained_run, tmp_path):
    import shutil

    from personasim.errors import StageError

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    weights = next((run / "adapters").glob("*/adapter_model.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-100])  # truncated
    with pytest.raises(StageError, match="corrupted or truncated"):
        UserAgent.from_workdir(run, mode="persona")
    shutil.copytree(trained_run / "adapters", run / "adapters", dirs_exist_ok=True)
    UserAgent.from_workdir(run, mode="persona")  # restored: loads
    weights.rename(weights.with_name("adapter_model.bin"))  # a pickle is never read
    with pytest.raises(StageError):
        UserAgent.from_workdir(run, mode="persona")


def test_blended_adapter_is_the_membership_weighted_sum_of_the_personas(agent):
    first, second = sorted(set(agent.personas.values()))[:2]
    saved = dict(agent.lm_weights)
    agent.lm_weights.update({first: 0.2, second: 1.2})
    try:
        name = agent.blended_adapter({first: 0.56, second: 0.24, "unused": 0.0})
    finally:
        agent.lm_weights.update({k: saved.get(k, 1.0) for k in (first, second)})
    assert name == f"blend-{first}_70-{second}_30"
    # the blend trusts its answer over its prior as its personas do, by membership
    assert agent.lm_weights[name] == pytest.approx(0.7 * 0.2 + 0.3 * 1.2)
    assert agent.blended_adapter({first: 0.7, second: 0.3}) == name  # reused
    layer = next(m for m in agent.lm.model.modules() if hasattr(m, "lora_A") and name in m.lora_A)

    def delta(adapter):
        a, b = layer.lora_A[adapter].weight, layer.lora_B[adapter].weight
        return (b @ a * layer.scaling[adapter]).detach().numpy()

    np.testing.assert_allclose(
        delta(name), 0.7 * delta(first) + 0.3 * delta(second), rtol=1e-4, atol=1e-6
    )
    assert agent.blended_adapter({first: 1.0, second: 0.0}) == first


def test_cold_start_with_blending_answers_through_the_blend(agent, trained_run):
    service = AgentService(agent, trained_run, blend=True)
    service.load_activity()
    app = create_app(service, ServeSettings())
    user = sorted(agent.profiles)[1]
    text = agent.profiles[user] + " Also likes documentaries."
    (cold,) = _call(app, [("POST", "/v1/rate", {"profile": text, "item_ids": _items(agent, 2)})])
    body = cold.json()
    assert cold.status_code == 200, body
    assert body["persona"] in set(agent.lm.model.peft_config)
    assert all(1.0 <= r <= 5.0 for r in body["ratings"])


def test_forgotten_cold_users_take_their_blended_adapters_with_them(trained_run):
    """More cold-start users than the cache holds: the oldest are forgotten, and so are
    the blends nobody else answers through, so the model's adapters stay bounded."""
    agent = UserAgent.from_workdir(trained_run, mode="persona", dtype="float32")
    service = AgentService(agent, trained_run, blend=True, cold_cache=2)
    service.load_activity()
    app = create_app(service, ServeSettings())
    before = set(agent.lm.model.peft_config)
    items = _items(agent, 1)
    answered = set()
    for user in sorted(agent.profiles)[:8]:
        text = agent.profiles[user] + " Watches on weekends."
        (cold,) = _call(app, [("POST", "/v1/rate", {"profile": text, "item_ids": items})])
        assert cold.status_code == 200, cold.json()
        answered.add(cold.json()["persona"])
    blends = {a for a in answered if a.startswith("blend-")}
    assert len(blends) > 2  # more blends were made than the cache keeps
    alive = set(agent.lm.model.peft_config) - before
    assert len(service.cold) == 2 and len(alive) <= 2
    # a forgotten blend's LM weight goes with it
    assert {a for a in agent.lm_weights if a.startswith("blend-")} <= alive
    assert alive == {agent.persona_of(u) for u in service.cold} & alive
    assert agent.run_users == sum(agent.persona_sizes().values()) == len(agent.profiles) - 2
    # nor do their prefix states stay cached (only the 2 kept cold users' were scored)
    live = {agent.lm.encode_prefix(agent.profiles[u]) for u in service.cold}
    assert {k[2] for k in agent.lm.prefix_states_cache} == live
    run_user = min(u for u in agent.profiles if not agent.is_added(u))
    with pytest.raises(ConfigError, match="not added"):
        agent.remove_user(run_user)


def test_the_service_is_live_at_once_and_ready_when_the_agents_are(agent, trained_run):
    import threading

    release = threading.Event()

    def slow_loader():
        release.wait(30)
        return agent

    service = AgentService(None, trained_run)
    loading = service.load_in_background(slow_loader)
    app = create_app(service, ServeSettings())
    run_user = min(u for u in agent.profiles if not u.startswith(COLD_PREFIX))
    body = {"user_id": run_user, "item_ids": _items(agent, 2)}
    health, ready, rate = _call(
        app, [("GET", "/healthz", None), ("GET", "/readyz", None), ("POST", "/v1/rate", body)]
    )
    assert health.status_code == 200 and health.json()["status"] == "loading"
    assert ready.status_code == 503 and ready.json()["error"]["code"] == "loading"
    assert rate.status_code == 503 and rate.json()["error"]["code"] == "loading"
    release.set()
    loading.join(30)
    health, ready, rate = _call(
        app, [("GET", "/healthz", None), ("GET", "/readyz", None), ("POST", "/v1/rate", body)]
    )
    assert health.json()["status"] == "ok" and ready.status_code == 200
    assert rate.status_code == 200 and len(rate.json()["ratings"]) == 2


def test_agents_that_fail_to_load_are_reported_not_hidden(trained_run):
    def broken():
        raise FileNotFoundError("adapters/p0 is gone")

    service = AgentService(None, trained_run)
    service.load_in_background(broken).join(30)
    app = create_app(service, ServeSettings())
    health, ready, rate = _call(
        app,
        [
            ("GET", "/healthz", None),
            ("GET", "/readyz", None),
            ("POST", "/v1/rate", {"user_id": "1", "item_ids": ["1"]}),
        ],
    )
    assert health.json() == {"status": "error"}  # no paths, no exception text
    assert ready.status_code == 503
    assert ready.json()["error"]["message"].endswith("FileNotFoundError: adapters/p0 is gone")
    assert rate.status_code == 503 and rate.json()["error"]["code"] == "load_failed"
    keyed = create_app(service, ServeSettings(api_keys=["k"]))
    (ready,) = _call(keyed, [("GET", "/readyz", None)])
    assert "adapters/p0" not in ready.text  # without the key, no detail


def test_the_cold_user_asked_for_last_is_forgotten_last():
    from personasim.serve.service import _ForgettingLRU

    forgotten: list[str] = []
    cold = _ForgettingLRU(2, forgotten.append)
    cold["a"], cold["b"] = "p0", "p1"
    cold.get("a")  # asked for again
    cold["c"] = "p2"
    assert forgotten == ["b"] and set(cold) == {"a", "c"}
