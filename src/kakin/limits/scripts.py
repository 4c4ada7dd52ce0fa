"""A pipelined Redis connection for the Lua scripts a gateway runs on every request.

Commands are encoded by hiredis as they are sent and their replies matched in order, parsed
by hiredis. Every command sent in one turn of the event loop goes out in one ``write`` at the
end of the turn (kakin.writes): under load the turns of a busy gateway carry several
requests' checks, holds and charges. A call costs a fraction
of the CPU of a general client's (connection pool, argument encoders), which matters on a path
taken on every request: the rate limiter's checks, and shared accounting's holds and charges.
Everything else kakin asks of Redis goes through redis-py.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from typing import Any

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from kakin.writes import OneWritePerTurn


class Script:
    """A Lua script and its SHA-1, by which Redis runs it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()


class ScriptConnection:
    """One connection, opened on first use and again after it is lost; errors are redis-py's
    (``ConnectionError``, ``ResponseError``), so callers handle both clients alike."""

    @classmethod
    def like(cls, client: Any) -> ScriptConnection:
        """A connection to the Redis a redis-py client (sync or asyncio) talks to."""
        options = client.connection_pool.connection_kwargs
        return cls(
            options.get("host", "127.0.0.1"),
            options.get("port", 6379),
            options.get("db", 0),
            options.get("username"),
            options.get("password"),
        )

    def __init__(
        self, host: str, port: int, db: int = 0, username: str | None = None, password: str | None = None
    ):
        self.address = (host, port)
        self.setup = [] if password is None else [("AUTH", *([username] if username else []), password)]
        if db:
            self.setup.append(("SELECT", db))
        self._protocol: _Replies | None = None
        self._connecting: asyncio.Future | None = None

    async def run(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA (loading the script once if Redis does not have it: after a restart)."""
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        protocol = self._protocol
        if protocol is None or protocol.lost:
            protocol = await self._connect()
        reply = await protocol.send(command)
        if isinstance(reply, ResponseError):
            if str(reply).startswith("NOSCRIPT"):
                await self._send(("SCRIPT", "LOAD", script.text))
                reply = await self._send(command)
            if isinstance(reply, ResponseError):
                raise reply
        return reply

    async def _send(self, command: tuple[Any, ...]) -> Any:
        protocol = self._protocol
        if protocol is None or protocol.lost:
            protocol = await self._connect()
        return await protocol.send(command)

    async def _connect(self) -> _Replies:
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
        try:
            return await asyncio.shield(self._connecting)
        finally:
            self._connecting = None

    async def _open(self) -> _Replies:
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await asyncio.wait_for(loop.create_connection(_Replies, *self.address), 5)
        except (OSError, TimeoutError) as exc:
            raise RedisConnectionError(
                f"cannot reach Redis at {self.address[0]}:{self.address[1]}: {exc}"
            ) from exc
        for command in self.setup:
            reply = await protocol.send(command)
            if isinstance(reply, ResponseError):
                protocol.transport.close()
                raise reply
        self._protocol = protocol
        return protocol

    def close(self) -> None:
        if self._protocol is not None:
            self._protocol.transport.close()
            self._protocol = None


class _Replies(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader(replyError=ResponseError)
        self.waiting: deque[asyncio.Future] = deque()
        self.transport: asyncio.Transport
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The commands sent in one turn of the loop go out in one write, at its end.
        self.transport = OneWritePerTurn(transport, asyncio.get_running_loop())  # type: ignore[assignment,arg-type]

    def send(self, command: tuple[Any, ...]) -> asyncio.Future:
        """Send ``command`` (str, bytes or int arguments) at the end of this turn of the loop;
        the future resolves to its reply."""
        future = asyncio.get_running_loop().create_future()
        if self.lost:
            future.set_exception(RedisConnectionError("the connection to Redis was lost"))
            return future
        self.transport.write(hiredis.pack_command(command))
        self.waiting.append(future)
        return future

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            future = self.waiting.popleft()
            if not future.done():
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(RedisConnectionError(f"the connection to Redis was lost: {exc}"))
