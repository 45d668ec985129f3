"""The server's worker pool: a few threads that decode, a bounded queue before them, and each waiting
request's place in it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import threading


class Busy(Exception):
    pass


class Pool:
    """`workers` threads and at most `queue` requests waiting for one; `run` raises Busy when full.
    Each accepted request takes a ticket; `place(key)` says how many accepted before it still wait
    (the executor starts them in order), so a page that names its request can show its place."""

    def __init__(self, workers: int, queue: int):
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tangshi")
        self.slots = threading.BoundedSemaphore(workers + queue)
        self.workers, self.queue = workers, queue
        self.pending = 0  # requests accepted and not finished (running or waiting)
        self._count = threading.Lock()
        self._tickets = itertools.count()
        self._waiting: dict[int, str | None] = {}  # ticket → the request's key, for those not yet started

    def _done(self, ticket: int) -> None:
        with self._count:
            self.pending -= 1
            self._waiting.pop(ticket, None)  # a request cancelled before it started
        self.slots.release()

    def place(self, key: str) -> int | None:
        """For a waiting request: how many accepted before it still wait (0: it is next); None when it is
        not waiting (running, finished or unknown)."""
        with self._count:
            mine = next((t for t, k in self._waiting.items() if k == key), None)
            return None if mine is None else sum(t < mine for t in self._waiting)

    async def run(self, fn, timeout: float, key: str | None = None):
        if not self.slots.acquire(blocking=False):
            raise Busy(
                f"the server is busy ({self.workers} requests running and {self.queue} waiting); try again in a moment"
            )
        with self._count:
            self.pending += 1
            ticket = next(self._tickets)
            self._waiting[ticket] = key

        def started():
            with self._count:
                self._waiting.pop(ticket, None)
            return fn()

        try:
            fut = self.executor.submit(started)
        except BaseException:
            self._done(ticket)
            raise
        fut.add_done_callback(lambda _f: self._done(ticket))
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(fut)), timeout)
        except (TimeoutError, asyncio.CancelledError):
            fut.cancel()  # one still waiting for a worker never runs; a running one finishes (torch can't be stopped)
            raise

    def stop(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
