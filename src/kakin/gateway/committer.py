"""Group commit: many concurrent requests' ledger operations share one transaction.

The event loop must never wait on the database, and a commit per request would cap the
gateway at the database's commit rate. So operations are queued; a writer takes everything
queued so far (up to ``max_batch``), runs it through ``Ledger.batch`` in ONE transaction, and
resolves each request's future with its own result. Under light load a batch holds one
operation and the wait is a single commit; under heavy load the commit cost is shared by the
whole batch. A request's future resolves only after the commit, so a response is durable
before its last byte is sent.

Two writers with the same interface:

- :class:`ProcessCommitter` (the default): the writer is a child process
  (:mod:`kakin.gateway.ledger_writer`) fed over a pipe. The ledger's Python work then runs
  beside the event loop instead of competing with it for the GIL, which is what lets one
  gateway process serve thousands of metered requests a second.
- :class:`ThreadCommitter`: the writer is a thread of this process. Used for ledgers a child
  cannot open the same way (an in-memory database, a ledger with its own clock) or when
  ``gateway.ledger_writer = "thread"``.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import queue
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, TypeVarTuple

from kakin.errors import KakinError
from kakin.ledger.db import unreachable

if TYPE_CHECKING:
    from kakin.gateway.journal import PostingListener
    from kakin.ledger import Ledger

log = logging.getLogger("kakin.gateway")

_STOP = object()

T = TypeVar("T")
Args = TypeVarTuple("Args")
# A ``Ledger`` method, passed unbound (``Ledger.verify_key``): a type checker sees each call's
# arguments and result, and it crosses to the writer process by its qualified name.
LedgerMethod = Callable[["Ledger", *Args], T]


class LedgerCall(Protocol):
    """Runs a ledger method off the event loop: ``await call(Ledger.verify_key, plaintext)``."""

    def __call__(self, fn: LedgerMethod[*Args, T], /, *args: *Args) -> Awaitable[T]: ...


def in_thread(ledger: Ledger) -> LedgerCall:
    """A :class:`LedgerCall` running each method in a worker thread, without a writer."""

    async def call(fn: LedgerMethod[*Args, T], /, *args: *Args) -> T:
        return await asyncio.to_thread(fn, ledger, *args)

    return call


class Committer(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def submit(self, op: object) -> Any: ...
    async def call(self, fn: LedgerMethod[*Args, T], *args: *Args) -> T: ...
    def enqueue(self, op: object) -> None: ...


class LedgerUnavailable(KakinError):
    status = 503
    code = "ledger_unavailable"


# What a client is told when the ledger database cannot be reached (its details go to the log).
_UNREACHABLE = (
    "kakin cannot reach its ledger database at the moment, so the request was not served "
    "and not billed; retry in a moment"
)


def run_batch(ledger: Any, ops: Sequence[object]) -> list[Any]:
    """``ledger.batch(ops)``; if the database fails, retry one by one so one bad op can't
    sink the others. Each result is the op's result or the exception it raised. A database
    that cannot be reached refuses every op with :class:`LedgerUnavailable` (503)."""
    try:
        return ledger.batch(ops)
    except Exception as exc:
        if unreachable(exc):
            log.error("ledger database unreachable; %d operations refused: %s", len(ops), exc)
            return [LedgerUnavailable(_UNREACHABLE) for _ in ops]
        log.warning("batch of %d ledger operations failed (%s); retrying one by one", len(ops), exc)
    results: list[Any] = []
    for op in ops:
        try:
            results.append(ledger.batch([op])[0])
        except Exception as single:
            results.append(LedgerUnavailable(_UNREACHABLE) if unreachable(single) else single)
    return results


def run_call(ledger: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """``fn(ledger, *args)``, run between two batches (a consistent snapshot); errors are returned."""
    try:
        return fn(ledger, *args)
    except Exception as exc:
        if unreachable(exc):
            log.error("ledger database unreachable; %s refused: %s", fn.__qualname__, exc)
            return LedgerUnavailable(_UNREACHABLE)
        return exc


def _resolve(future: asyncio.Future, result: Any) -> None:
    if future.done():
        return
    if isinstance(result, BaseException) and not isinstance(result, KakinError):
        future.set_exception(result)
    else:
        future.set_result(result)


def _raise_refusal(result: Any) -> Any:
    if isinstance(result, KakinError):
        raise result
    return result


# ---------------------------------------------------------------------------- in a thread


class ThreadCommitter:
    def __init__(self, ledger: Any, *, max_batch: int = 256) -> None:
        self.ledger = ledger
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="kakin-commit", daemon=True)

    async def start(self) -> None:
        self._thread.start()

    async def stop(self) -> None:
        """Commit what is queued, then stop the writer thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            await asyncio.to_thread(self._thread.join)

    async def submit(self, op: object) -> Any:
        """Queue one operation; return its result once committed, or raise its KakinError."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((op, future, loop))
        return _raise_refusal(await future)

    async def call(self, fn: LedgerMethod[*Args, T], *args: *Args) -> T:
        """Run ``fn(ledger, *args)`` on the writer between two batches."""
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

    def _commit(self, batch: list[tuple[Any, Any, Any]]) -> None:
        ops = [item for item in batch if not isinstance(item[0], _Call)]
        calls = [item for item in batch if isinstance(item[0], _Call)]
        results = run_batch(self.ledger, [op for op, _, _ in ops]) if ops else []
        resolved = list(zip(ops, results, strict=True))
        resolved += [(item, run_call(self.ledger, item[0].fn, item[0].args)) for item in calls]
        waiting: dict[Any, list[tuple[asyncio.Future, Any]]] = {}
        for (op, future, loop), result in resolved:
            if future is None:
                if isinstance(result, BaseException):
                    log.warning("%s was not applied: %s", type(op).__name__, result)
                continue
            waiting.setdefault(loop, []).append((future, result))
        for loop, done in waiting.items():  # one wake-up of the event loop per batch
            loop.call_soon_threadsafe(_resolve_all, done)


class _Call:
    __slots__ = ("args", "fn")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args


def _resolve_all(done: list[tuple[asyncio.Future, Any]]) -> None:
    for future, result in done:
        _resolve(future, result)


# --------------------------------------------------------------------------- in a process

# Frames on the pipes: a 4-byte big-endian length, then a pickle. Requests are
# ``(number, "op" | "call" | "journal", payload)``, a call's payload being ``(Ledger method,
# args, journal_upto)``, a journal wake-up's "now" or None; each answer frame is a list of
# ``(number, result)``, where number JOURNAL_APPLIED reports journal charges applied, and
# JOURNAL_READ that the journal was read after the last wake-up ("journal").
_LENGTH = 4
JOURNAL_APPLIED = 0
JOURNAL_READ = -1


def frame(payload: object) -> bytes:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(_LENGTH, "big") + data


def unframe(buffer: bytearray) -> list[Any]:
    """Take every complete frame off the front of ``buffer``."""
    out = []
    while len(buffer) >= _LENGTH:
        size = int.from_bytes(buffer[:_LENGTH], "big")
        end = _LENGTH + size
        if len(buffer) < end:
            break
        out.append(pickle.loads(buffer[_LENGTH:end]))
        del buffer[:end]
    return out


class ProcessCommitter:
    """The writer is a child process with its own connection to the same database.

    With a charge ``journal`` (see kakin.gateway.journal) it also applies the journal to the
    ledger whenever it is woken (:meth:`wake`), at start (what a crash left) and at the end,
    and reports each applied batch to ``posted`` (a :class:`~kakin.gateway.journal.PostingListener`).
    """

    def __init__(
        self,
        database_url: str,
        *,
        hold_seconds: int,
        max_batch: int = 256,
        journal: str | None = None,
        posted: PostingListener | None = None,
    ) -> None:
        self._config = {
            "url": database_url,
            "hold_seconds": hold_seconds,
            "max_batch": max_batch,
            "journal": journal,
        }
        self.posted = posted
        self._stopping = False
        self._process: subprocess.Popen | None = None
        self._writer: asyncio.WriteTransport | None = None
        self._pending: dict[int, asyncio.Future | None] = {}
        self._outbox: list[bytes] = []
        self._numbers = iter(range(1, sys.maxsize))
        self._closed: asyncio.Future | None = None
        self._failure: str | None = None
        self._waking = False  # a wake-up is on its way, not yet answered with JOURNAL_READ
        self._wake_again = False  # charges were journaled since it was sent

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "kakin.gateway.ledger_writer"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        self._closed = loop.create_future()
        self._writer, _ = await loop.connect_write_pipe(asyncio.Protocol, self._process.stdin)
        await loop.connect_read_pipe(lambda: _Answers(self), self._process.stdout)
        self._writer.write(frame(self._config))
        from kakin.ledger import Ledger

        ready = self._send("call", (Ledger.now, (), None), wait=True)  # answered once the writer is ready
        self._flush()
        _raise_refusal(await ready)

    async def stop(self) -> None:
        """Commit what is queued, then let the writer finish and exit."""
        if self._process is None:
            return
        self._stopping = True
        self._flush()
        if self._writer is not None and not self._writer.is_closing():
            self._writer.close()  # end of input: the writer commits what it has and exits
        assert self._closed is not None
        await self._closed
        await asyncio.to_thread(self._process.wait)
        self._process = None

    async def submit(self, op: object) -> Any:
        return _raise_refusal(await self._send("op", op, wait=True))

    async def call(self, fn: LedgerMethod[*Args, T], *args: *Args) -> T:
        return _raise_refusal(await self._send("call", (fn, args, None), wait=True))

    async def snapshot(self, fn: LedgerMethod[*Args, T], *args: *Args, journal_upto: int) -> tuple[T, int]:
        """``call`` once the journal is applied through ``journal_upto`` at least; returns the
        result and the last journal id it includes."""
        answer = await self._send("call", (fn, args, journal_upto), wait=True)
        result, applied = _raise_refusal(answer)  # the writer is gone: LedgerUnavailable
        return _raise_refusal(result), applied

    def enqueue(self, op: object) -> None:
        self._send("op", op, wait=False)

    def wake(self, *, now: bool = False) -> None:
        """New charges are in the journal: apply them (``now``: at once, someone waits). One
        wake-up is on its way at a time: charges journaled before the writer has read the
        journal after it get the next one, sent once the writer says it has (a wake-up per
        event-loop turn would cost the writer a wake-up per turn, for charges it posts
        together anyway)."""
        if self._waking and not now:
            self._wake_again = True
            return
        self._waking = True
        self._send("journal", "now" if now else None, wait=False)

    def _send(self, kind: str, payload: object, *, wait: bool) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if self._failure is not None:
            future.set_result(LedgerUnavailable(self._failure))
            return future
        number = next(self._numbers)
        if wait or kind == "op":
            self._pending[number] = future if wait else None
        if not self._outbox:  # one write to the pipe per turn of the event loop
            loop.call_soon(self._flush)
        self._outbox.append(frame((number, kind, payload)))
        return future

    def _flush(self) -> None:
        if self._outbox and self._writer is not None and not self._writer.is_closing():
            self._writer.write(b"".join(self._outbox))
        self._outbox.clear()

    def _answered(self, results: list[tuple[int, Any]]) -> None:
        for number, result in results:
            if number == JOURNAL_APPLIED:
                if self.posted is not None:
                    self.posted.applied(*result)
                continue
            if number == JOURNAL_READ:
                self._waking = False
                if self._wake_again:
                    self._wake_again = False
                    self.wake()
                continue
            future = self._pending.pop(number, None)
            if future is not None:
                _resolve(future, result)
            elif isinstance(result, BaseException):
                log.warning("a ledger operation was not applied: %s", result)

    def _lost(self, exc: Exception | None) -> None:
        """The writer's output ended: it exited (asked to, or it crashed)."""
        if not self._stopping or self._pending:
            self._failure = "the ledger writer process stopped; the request was not billed"
            log.error("ledger writer stopped with %d operations unanswered", len(self._pending))
        for future in self._pending.values():
            if future is not None:
                _resolve(future, LedgerUnavailable(self._failure or "ledger writer stopped"))
        self._pending.clear()
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)


class _Answers(asyncio.Protocol):
    def __init__(self, committer: ProcessCommitter) -> None:
        self.committer = committer
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        for results in unframe(self.buffer):
            self.committer._answered(results)

    def connection_lost(self, exc: Exception | None) -> None:
        self.committer._lost(exc)


def make_committer(
    ledger: Any,
    *,
    writer: str,
    max_batch: int,
    journal: str | None = None,
    posted: PostingListener | None = None,
) -> Committer:
    """A child-process writer when a child can open the same ledger (applying the charge
    ``journal`` if one is given, and telling ``posted`` of what it posted), else a thread."""
    url = url_for_a_child(ledger)
    if writer == "process" and url is not None:
        return ProcessCommitter(
            url,
            hold_seconds=ledger.context.hold_seconds,
            max_batch=max_batch,
            journal=journal,
            posted=posted,
        )
    return ThreadCommitter(ledger, max_batch=max_batch)


def url_for_a_child(ledger: Any) -> str | None:
    """The database URL (password included), or None when a child would not see the same
    ledger: one running on its own clock (as tests do)."""
    from kakin.ledger.ledger import system_clock

    if ledger.clock is not system_clock:
        return None
    return ledger.engine.url.render_as_string(hide_password=False)
