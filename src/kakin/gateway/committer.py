"""Group commit: many concurrent requests' ledger operations share one transaction.

The event loop must never wait on the database, and a commit per request would cap the
gateway at the database's commit rate. So operations are queued; one writer thread takes
everything queued so far (up to ``max_batch``), runs it through ``Ledger.batch`` in ONE
transaction, and resolves each request's future with its own result. Under light load a
batch holds one operation and the wait is a single commit; under heavy load the commit
cost is shared by the whole batch. A request's future resolves only after the commit, so
a response is durable before its last byte is sent.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Sequence
from typing import Any

from kakin.errors import KakinError

log = logging.getLogger("kakin.gateway")

_STOP = object()


class GroupCommitter:
    def __init__(self, ledger: Any, *, max_batch: int = 256) -> None:
        self.ledger = ledger
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="kakin-commit", daemon=True)
        self.batches = 0
        self.operations = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Commit what is queued, then stop the writer thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    async def submit(self, op: object) -> Any:
        """Queue one operation; return its result once committed, or raise its KakinError."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((op, future, loop))
        result = await future
        if isinstance(result, KakinError):
            raise result
        return result

    async def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on the writer thread between two batches (a consistent read)."""
        return await self.submit(_Call(fn, args))

    def enqueue(self, op: object) -> None:
        """Queue an operation without waiting for it (releasing a hold on the way out)."""
        self._queue.put((op, None, None))

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is _STOP:
                break
            batch = [item]
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stopping = True
                    break
                batch.append(nxt)
            self._commit(batch)

    def _commit(self, batch: Sequence[tuple[object, Any, Any]]) -> None:
        calls = [item for item in batch if isinstance(item[0], _Call)]
        if calls:
            batch = [item for item in batch if not isinstance(item[0], _Call)]
            if batch:
                self._commit(batch)
            for call, future, loop in calls:
                loop.call_soon_threadsafe(_resolve, future, call.run())
            return
        ops = [op for op, _, _ in batch]
        try:
            results: list[Any] = self.ledger.batch(ops)
        except Exception as exc:  # the database failed: retry one by one so one bad op can't sink others
            log.warning("batch of %d ledger operations failed (%s); retrying one by one", len(ops), exc)
            results = []
            for op in ops:
                try:
                    results.append(self.ledger.batch([op])[0])
                except Exception as single:
                    results.append(single)
        self.batches += 1
        self.operations += len(ops)
        waiting: dict[Any, list[tuple[asyncio.Future, Any]]] = {}
        for (op, future, loop), result in zip(batch, results, strict=True):
            if future is None:
                if isinstance(result, BaseException):
                    log.warning("%s was not applied: %s", type(op).__name__, result)
                continue
            waiting.setdefault(loop, []).append((future, result))
        for loop, resolved in waiting.items():  # one wake-up of the event loop per batch
            loop.call_soon_threadsafe(_resolve_all, resolved)


class _Call:
    __slots__ = ("args", "fn")

    def __init__(self, fn: Any, args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args

    def run(self) -> Any:
        try:
            return self.fn(*self.args)
        except Exception as exc:  # handed to the awaiting request, raised there
            return exc


def _resolve_all(resolved: list[tuple[asyncio.Future, Any]]) -> None:
    for future, result in resolved:
        _resolve(future, result)


def _resolve(future: asyncio.Future, result: Any) -> None:
    if future.done():
        return
    if isinstance(result, BaseException) and not isinstance(result, KakinError):
        future.set_exception(result)
    else:
        future.set_result(result)
