"""The dynamic batcher: requests share calls, and a failing request fails only itself."""

from __future__ import annotations

import asyncio

import pytest

from personasim.serve import ServeSettings
from personasim.serve.batching import DynamicBatcher


def _answer(items: list[str]) -> list[str]:
    if "bad" in items:
        raise ValueError("a bad request")
    return [item.upper() for item in items]


def test_one_failing_request_fails_only_its_caller():
    calls: list[list[str]] = []

    def fn(items):
        calls.append(list(items))
        return _answer(items)

    async def main():
        batcher = DynamicBatcher(fn, window_s=0.2, max_batch=8)
        batcher.start()
        try:
            return await asyncio.gather(
                *(batcher.submit(x) for x in ("a", "bad", "c")), return_exceptions=True
            )
        finally:
            await batcher.stop()

    a, bad, c = asyncio.run(main())
    assert (a, c) == ("A", "C")
    assert isinstance(bad, ValueError)
    assert calls[0] == ["a", "bad", "c"]  # one call first, then each alone
    assert sorted(map(tuple, calls[1:])) == [("a",), ("bad",), ("c",)]


def test_batching_is_off_on_a_cpu_unless_asked_for(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert ServeSettings().batch_limit() == 1
    assert ServeSettings(max_batch=16).batch_limit() == 16
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert ServeSettings().batch_limit() == 64


@pytest.mark.parametrize("size", [1, 2])
def test_a_lone_failure_is_its_callers(size):
    async def main():
        batcher = DynamicBatcher(_answer, window_s=0.05, max_batch=size)
        batcher.start()
        try:
            return await asyncio.gather(batcher.submit("bad"), return_exceptions=True)
        finally:
            await batcher.stop()

    (result,) = asyncio.run(main())
    assert isinstance(result, ValueError)
