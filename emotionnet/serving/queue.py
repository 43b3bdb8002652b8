"""A bounded queue in front of the model: inference runs off the event loop, never an unbounded backlog.

Requests wait in an `asyncio.Queue` of fixed size; when it is full the caller
is told at once (`asyncio.QueueFull`, answered 503 with Retry-After). Each of `threads`
consumers takes the first waiting job plus whatever else is already waiting
(up to `max_batch`) and hands them together to `work` in a worker thread, so
concurrent requests share one pass through the model (micro-batching).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

Work = Callable[[Sequence[Any]], list[Any]]  # payloads -> one result (or exception) per payload


class InferenceQueue:
    def __init__(self, work: Work, executor: ThreadPoolExecutor, size: int = 64, threads: int = 1,
                 max_batch: int = 8):
        if size < 1 or threads < 1 or max_batch < 1:
            raise ValueError("size, threads and max_batch must be at least 1")
        self.work, self.executor = work, executor
        self.size, self.threads, self.max_batch = size, threads, max_batch
        self._queue: asyncio.Queue | None = None
        self._consumers: list[asyncio.Task] = []
        self.running = 0  # jobs handed to a worker thread and not yet answered

    @property
    def waiting(self) -> int:
        return self._queue.qsize() if self._queue else 0

    async def start(self) -> None:
        self._queue = asyncio.Queue(self.size)
        self._consumers = [asyncio.create_task(self._consume()) for _ in range(self.threads)]

    async def stop(self) -> None:
        for task in self._consumers:
            task.cancel()
        await asyncio.gather(*self._consumers, return_exceptions=True)
        self._consumers = []

    async def submit(self, payload: Any, timeout: float) -> Any:
        """The result of `work` for this payload.

        Raises `asyncio.QueueFull` (no room), `TimeoutError` (no answer in time), or
        the exception `work` returned for this payload.
        """
        if self._queue is None:
            raise asyncio.QueueFull("the service is not running")
        future = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((payload, future))
        except asyncio.QueueFull:
            raise asyncio.QueueFull(f"{self.size} requests are already waiting") from None
        try:
            result = await asyncio.wait_for(future, timeout)  # cancels the future on timeout: the job is dropped
        except asyncio.TimeoutError:
            raise TimeoutError(f"no answer within {timeout:g} s") from None
        if isinstance(result, BaseException):
            raise result
        return result

    async def _consume(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self._queue.get()]
            while len(jobs) < self.max_batch and not self._queue.empty():
                jobs.append(self._queue.get_nowait())
            jobs = [(payload, future) for payload, future in jobs if not future.done()]  # timed-out ones
            if not jobs:
                continue
            self.running += len(jobs)
            try:
                results = await loop.run_in_executor(self.executor, self.work, [p for p, _ in jobs])
            except Exception as exc:  # a bug in `work`: every job of the batch gets it
                results = [exc] * len(jobs)
            finally:
                self.running -= len(jobs)
            for (_, future), result in zip(jobs, results):
                if not future.done():
                    future.set_result(result)
