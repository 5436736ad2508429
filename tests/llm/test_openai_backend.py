"""The OpenAI-compatible backend against a scripted HTTP transport: retries, errors,
concurrency and order."""

from __future__ import annotations

import json

import httpx
import pytest

from personasim.config import LLMConfig
from personasim.errors import BackendError
from personasim.llm.base import GenerationRequest
from personasim.llm.openai_compat import OpenAIGenerator


def _completion(text: str) -> dict:
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
        ],
    }


def _requests(n: int) -> list[GenerationRequest]:
    return [
        GenerationRequest(
            messages=({"role": "user", "content": f"prompt {i}"},), max_new_tokens=8, seed=i
        )
        for i in range(n)
    ]


def _generator(handler, **settings) -> OpenAIGenerator:
    config = LLMConfig(
        backend="openai", base_url="http://test.invalid/v1", model="m", timeout_s=5, **settings
    )
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return OpenAIGenerator(config, http_client=client)


def test_answers_come_back_in_request_order_with_the_settings_sent():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        prompt = body["messages"][0]["content"]
        return httpx.Response(200, json=_completion(f"answer to {prompt}"))

    texts = _generator(handler, concurrency=3).generate(_requests(7))
    assert texts == [f"answer to prompt {i}" for i in range(7)]
    assert {b["model"] for b in seen} == {"m"}
    assert all(b["max_tokens"] == 8 and b["temperature"] == 0 for b in seen)
    assert sorted(b["seed"] for b in seen) == list(range(7))


def test_server_errors_and_rate_limits_are_retried():
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(503, json={"error": {"message": "busy"}})
        if calls["n"] == 2:
            return httpx.Response(
                429, json={"error": {"message": "slow down"}}, headers={"retry-after": "0"}
            )
        return httpx.Response(200, json=_completion("fine"))

    assert _generator(handler, max_retries=3).generate(_requests(1)) == ["fine"]
    assert calls["n"] == 3


def test_bad_key_stops_with_the_servers_message_and_no_retry():
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        return httpx.Response(401, json={"error": {"message": "invalid api key"}})

    with pytest.raises(
        BackendError,
        match=r"answered 401: invalid api key; check the API key "
        r"in \$OPENAI_API_KEY",
    ):
        _generator(handler, max_retries=3).generate(_requests(2))
    assert calls["n"] <= 2  # one per request, never retried


def test_api_key_is_read_from_the_named_variable(monkeypatch):
    monkeypatch.setenv("MY_KEY", "sekrit")
    headers = []

    def handler(request: httpx.Request) -> httpx.Response:
        headers.append(request.headers["authorization"])
        return httpx.Response(200, json=_completion("ok"))

    _generator(handler, api_key_env="MY_KEY").generate(_requests(1))
    assert headers == ["Bearer sekrit"]


def test_unreachable_server_is_a_clear_error():
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(
        BackendError,
        match=r"cannot reach http://test.invalid/v1 .* is the "
        r"server running\?",
    ):
        _generator(handler, max_retries=1).generate(_requests(1))


def test_timeouts_name_the_setting():
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(BackendError, match=r"did not answer within 5 s .*raise llm.timeout_s"):
        _generator(handler, max_retries=0).generate(_requests(1))
