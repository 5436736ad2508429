"""Dynamic batching: requests that arrive within a short window share one model call.

The agents' scoring is batched across users (mixed personas in one forward pass), so a
server that gathers concurrent requests into one call gets more throughput the more load
it has. One batch runs at a time (the model is not thread-safe); requests that arrive
while it runs form the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["BatchStats", "DynamicBatcher"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class BatchStats:
    """What the batcher did: calls of the batch function and requests served."""

    batches: int = 0
    requests: int = 0
    largest: int = 0


class DynamicBatcher(Generic[T, R]):
    """Gathers submitted items for `window_s` (or until `max_batch`), then calls
    ``fn(items)`` once in a worker thread and hands each caller its own result.

    Args:
        fn: Maps a list of items to a list of results of the same length, in order.
        window_s: How long the first request of a batch waits for company.
        max_batch: Most items per call.
    """

    def __init__(
        self, fn: Callable[[Sequence[T]], Sequence[R]], *, window_s: float, max_batch: int
    ) -> None:
        self.fn = fn
        self.window_s = window_s
        self.max_batch = max_batch
        self.stats = BatchStats()
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Start the batching loop on the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._worker = self._loop.create_task(self._run())

    async def stop(self) -> None:
        """Stop the loop (pending callers get a cancellation)."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    async def submit(self, item: T) -> R:
        """Queue `item` and wait for its result (the batch function's exception if it
        failed for the whole batch)."""
        if self._queue is None or self._loop is not asyncio.get_running_loop():
            self.start()  # first use, or a new event loop (test clients make one per call)
        assert self._queue is not None
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.window_s
            while len(batch) < self.max_batch:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), timeout))
                except TimeoutError:
                    break
            live = [(item, fut) for item, fut in batch if not fut.done()]
            if not live:
                continue
            self.stats.batches += 1
            self.stats.requests += len(live)
            self.stats.largest = max(self.stats.largest, len(live))
            try:
                results = await asyncio.to_thread(self.fn, [item for item, _ in live])
            except Exception as e:  # noqa: BLE001 - the batch failed: which request did?
                if len(live) == 1:
                    if not live[0][1].done():
                        live[0][1].set_exception(e)
                    continue
                # each request alone: only the ones that fail by themselves fail
                for item, fut in live:
                    await self._run_alone(item, fut)
                continue
            for (_, fut), result in zip(live, results, strict=True):
                if not fut.done():
                    fut.set_result(result)

    async def _run_alone(self, item: T, fut: asyncio.Future[R]) -> None:
        """Answer one request by itself (after its batch failed)."""
        self.stats.batches += 1
        try:
            (result,) = await asyncio.to_thread(self.fn, [item])
        except Exception as e:  # noqa: BLE001 - its own failure, for its caller
            if not fut.done():
                fut.set_exception(e)
            return
        if not fut.done():
            fut.set_result(result)
