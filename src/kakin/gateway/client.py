"""The gateway's HTTP/1.1 client for the providers: asyncio protocols, httptools' response
parser, and a keep-alive pool per origin.

Every metered request crosses this hop, so it does only what the hop needs: one write per
request (head and body together), a parser written in C, chunks handed to the caller as they
arrive, and read timeouts checked by one coarse watchdog instead of a timer per read. Measured
in bench/bench_upstream_client.py it costs about a third of aiohttp's client CPU per request.

    client = UpstreamClient(timeout_seconds=600)
    response = await client.request("POST", "https://api.openai.com/v1/chat/completions", body, headers)
    try:
        async for chunk in response:  # or: body = await response.read()
            ...
    finally:
        response.release()

``response.abort()`` (from any task) closes the connection at once and ends the iteration, so
the upstream stops producing an answer nobody will read.

Errors: ``UpstreamError`` when the upstream cannot be reached or breaks the exchange (refused,
TLS failure, closed mid-answer, not HTTP); ``TimeoutError`` when it sends nothing for
``timeout_seconds`` while the caller waits for the answer's head or its next chunk.
Nothing is added that the caller did not ask for beyond ``Host`` and ``Content-Length``: no
user agent, no ``Accept-Encoding`` and no decompression, no redirects, no proxies.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from urllib.parse import urlsplit

import httptools

CONNECT_TIMEOUT_SECONDS = 10.0
# A pooled connection idle for longer is closed rather than reused: load balancers drop idle
# connections silently, and a request sent on one would wait for the whole read timeout.
KEEPALIVE_SECONDS = 15.0
# Unread body bytes beyond which the socket is no longer read, until the caller catches up.
BUFFER_HIGH_WATER = 256 * 1024
# Bodies up to this size are sent in the same write as the head (one copy, one syscall).
_JOIN_BODY_BELOW = 64 * 1024

# Headers this client writes itself; a caller's own are dropped.
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_METHODS_WITHOUT_BODY = frozenset({"GET", "HEAD", "DELETE", "OPTIONS", "TRACE"})


class UpstreamError(Exception):
    """The upstream could not be reached or broke the HTTP exchange."""


class _StaleConnection(UpstreamError):
    """The connection closed before any byte of the answer: the request may be sent again."""


class Headers:
    """Response headers: case-insensitive ``get``, ``items`` in the order received.

    Kept as the raw bytes and indexed on first use: an answer carries a dozen or more
    headers, the gateway reads one or two of them."""

    __slots__ = ("_index", "_raw")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self._index: dict[bytes, bytes] | None = None

    def get(self, name: str, default: str | None = None) -> str | None:
        index = self._index
        if index is None:
            index = self._index = {key.lower(): value for key, value in reversed(self._raw)}
        value = index.get(name.lower().encode("latin-1"))
        return default if value is None else value.decode("latin-1")

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def items(self) -> list[tuple[str, str]]:
        return [(key.decode("latin-1"), value.decode("latin-1")) for key, value in self._raw]


_NO_HEADERS = Headers([])


class _Origin:
    """One (scheme, host, port) and its idle connections, most recently used last."""

    __slots__ = ("host", "host_header", "idle", "port", "tls")

    def __init__(self, host: str, port: int, tls: bool) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        bracketed = f"[{host}]" if ":" in host else host
        self.host_header = bracketed if port == (443 if tls else 80) else f"{bracketed}:{port}"
        self.idle: list[_Connection] = []

    def __str__(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host_header}"


class UpstreamClient:
    """Pooled HTTP/1.1 client; one per event loop. Connections are kept alive without limit."""

    def __init__(
        self,
        timeout_seconds: float,
        *,
        connect_timeout_seconds: float = CONNECT_TIMEOUT_SECONDS,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.timeout_seconds = timeout_seconds
        self.connect_timeout_seconds = connect_timeout_seconds
        self._ssl_context = ssl_context
        self._origins: dict[str, _Origin] = {}  # by the URL's text up to its path
        self._origins_by_key: dict[tuple[bool, str, int], _Origin] = {}
        self._connections: set[_Connection] = set()
        self._closed = False
        # Read timeouts: one coarse watchdog for every waiting caller rather than a timer
        # armed and cancelled per wait (which costs more than the rest of a small wait).
        self._waiting: set[UpstreamResponse] = set()
        self._watchdog: asyncio.TimerHandle | None = None
        self._watchdog_tick = min(1.0, timeout_seconds / 10)

    async def request(
        self,
        method: str,
        url: str,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> UpstreamResponse:
        """Send one request; return once the answer's status and headers have arrived.

        The caller must ``release()`` the response (after reading it, or to abandon it)."""
        origin, target = self._locate(url)
        head = _request_head(method, target, origin.host_header, headers, len(body))
        head_only = method == "HEAD"
        connection = self._idle_connection(origin)
        if connection is not None:
            try:
                return await connection.exchange(head, body, head_only)
            except _StaleConnection:
                pass  # closed by the server while idle, before answering: send it once more
        connection = await self._connect(origin)
        return await connection.exchange(head, body, head_only)

    async def close(self) -> None:
        """Close every connection, idle or busy; requests still running fail with UpstreamError."""
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for origin in self._origins_by_key.values():
            origin.idle.clear()
        for connection in list(self._connections):
            connection.close()
        await asyncio.sleep(0)  # let the transports finish closing

    # ------------------------------------------------------------------ read timeout

    def _watch(self, response: UpstreamResponse) -> None:
        self._waiting.add(response)
        if self._watchdog is None:
            self._watchdog = response._loop.call_later(self._watchdog_tick, self._sweep, response._loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """Fail the waits that have seen nothing for the timeout (late by at most one tick)."""
        self._watchdog = None
        if not self._waiting:
            return
        quiet_before = loop.time() - self.timeout_seconds
        for response in [r for r in self._waiting if r._quiet_since <= quiet_before]:
            response._fail(TimeoutError(f"the upstream sent nothing for {self.timeout_seconds:g} s"))
        self._watchdog = loop.call_later(self._watchdog_tick, self._sweep, loop)

    # ------------------------------------------------------------------ pool

    def _locate(self, url: str) -> tuple[_Origin, str]:
        path_at = url.find("/", url.find("://") + 3)
        base, target = (url, "/") if path_at < 0 else (url[:path_at], url[path_at:])
        origin = self._origins.get(base)
        if origin is None:
            origin = self._origins[base] = self._new_origin(base)
        if "#" in target:
            target = target.partition("#")[0]
        return origin, target

    def _new_origin(self, base: str) -> _Origin:
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base!r}")
        if parts.username is not None or parts.path or parts.query or parts.fragment:
            raise ValueError(f"give the URL as scheme://host[:port]/path, without credentials: {base!r}")
        tls = parts.scheme == "https"
        key = (tls, parts.hostname, parts.port or (443 if tls else 80))
        origin = self._origins_by_key.get(key)
        if origin is None:
            origin = self._origins_by_key[key] = _Origin(parts.hostname, key[2], tls)
        return origin

    def _idle_connection(self, origin: _Origin) -> _Connection | None:
        idle = origin.idle
        while idle:
            connection = idle.pop()
            if connection.closed or connection.transport.is_closing():
                continue
            if connection.loop.time() - connection.idle_since > KEEPALIVE_SECONDS:
                connection.close()
                continue
            return connection
        return None

    def _keep(self, connection: _Connection) -> None:
        """A connection whose answer was received completely goes back to its origin's pool."""
        if self._closed:
            connection.close()
            return
        connection.idle_since = connection.loop.time()
        connection.origin.idle.append(connection)

    def _forget(self, connection: _Connection) -> None:
        self._connections.discard(connection)
        idle = connection.origin.idle
        if connection in idle:
            idle.remove(connection)

    async def _connect(self, origin: _Origin) -> _Connection:
        if self._closed:
            raise UpstreamError("the upstream client is closed")
        loop = asyncio.get_running_loop()
        tls_context = None
        if origin.tls:
            tls_context = self._ssl_context = self._ssl_context or _default_tls_context()
        try:
            async with asyncio.timeout(self.connect_timeout_seconds):
                _, connection = await loop.create_connection(
                    lambda: _Connection(self, origin, loop),
                    origin.host,
                    origin.port,
                    ssl=tls_context,
                    server_hostname=origin.host if origin.tls else None,
                )
        except TimeoutError:
            raise UpstreamError(
                f"connecting to {origin} took longer than {self.connect_timeout_seconds:g} s"
            ) from None
        except OSError as exc:  # refused, unreachable, name not found, TLS handshake failed
            raise UpstreamError(f"cannot connect to {origin}: {exc}") from None
        if self._closed:
            connection.close()
            raise UpstreamError("the upstream client is closed")
        self._connections.add(connection)
        return connection


def _default_tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


def _request_head(
    method: str, target: str, host_header: str, headers: Mapping[str, str] | None, body_length: int
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1\r\nHost: {host_header}\r\n"]
    if headers:
        for name, value in headers.items():
            if name.lower() not in _OWN_HEADERS:
                lines.append(f"{name}: {value}\r\n")
    if body_length or method not in _METHODS_WITHOUT_BODY:
        lines.append(f"Content-Length: {body_length}\r\n")
    lines.append("\r\n")
    text = "".join(lines)
    # Each line ends in exactly one CRLF: a line break inside a name, value or target would
    # let it write headers (or a second request) of its own.
    expected = len(lines) + 1
    if text.count("\n") != expected or text.count("\r") != expected:
        raise ValueError("a request header or the URL contains a line break")
    return text.encode()


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; carries one exchange at a time."""

    def __init__(self, client: UpstreamClient, origin: _Origin, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.origin = origin
        self.loop = loop
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set by connection_made
        self.response: UpstreamResponse | None = None
        self.closed = False
        self.idle_since = 0.0

    async def exchange(self, head: bytes, body: bytes, head_only: bool) -> UpstreamResponse:
        response = self.response = UpstreamResponse(self, head_only)
        if len(body) < _JOIN_BODY_BELOW:
            self.transport.write(head + body)
        else:
            self.transport.writelines((head, body))
        try:
            while not response.status:
                if response._error is not None:
                    raise response._error
                await response._wait()
        except BaseException:
            response.release()
            raise
        return response

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None:
            self.close()  # bytes nobody asked for: the connection's state is unknown
        else:
            response._feed(data)

    def eof_received(self) -> bool:
        self.closed = True  # not to be taken from the pool in the moment before connection_lost
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.client._forget(self)
        response = self.response
        if response is not None:
            self.response = None
            response._lost(exc)


class UpstreamResponse:
    """An answer whose head has arrived; its body arrives through ``read()`` or ``async for``."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_complete",
        "_connection",
        "_error",
        "_head_only",
        "_informational",
        "_keep_alive",
        "_loop",
        "_parser",
        "_paused",
        "_quiet_since",
        "_raw_headers",
        "_received",
        "_waiter",
        "headers",
        "status",
    )

    def __init__(self, connection: _Connection, head_only: bool) -> None:
        self.status = 0  # until the head has arrived
        self.headers = _NO_HEADERS
        self._connection: _Connection | None = connection
        self._loop = connection.loop
        self._parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        self._head_only = head_only
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self._informational = False
        self._keep_alive = False
        self._received = False
        self._complete = False
        self._error: BaseException | None = None
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._quiet_since = 0.0  # when the current wait began (every byte received ends a wait)

    # ------------------------------------------------------------------ public

    def __aiter__(self) -> UpstreamResponse:
        return self

    async def __anext__(self) -> bytes:
        """Everything received since the last call, as soon as there is something."""
        while True:
            if self._chunks:
                return self._take()
            if self._error is not None:
                raise self._error
            if self._complete:
                raise StopAsyncIteration
            await self._wait()

    async def read(self) -> bytes:
        """The whole body (raises UpstreamError if the upstream breaks it off)."""
        if self._complete and self._error is None:
            return self._take() if self._chunks else b""
        return b"".join([chunk async for chunk in self])

    def abort(self) -> None:
        """Stop receiving (whoever wanted the answer is gone): the connection is closed at once,
        which tells the upstream to stop producing. Chunks already received are still handed
        out; iteration then ends as if the answer were complete."""
        if not self.status:
            self._fail(UpstreamError("the answer was abandoned before it began"))
            return
        connection = self._detach()
        if connection is not None:
            connection.close()
            self._complete = True
        self._wake()

    def release(self) -> None:
        """Done with this answer: a connection whose answer was not received completely is
        closed (its state is unknown); a complete one is already back in the pool."""
        connection = self._detach()
        if connection is not None:
            connection.close()
            self._error = UpstreamError("the answer was released before it was read")
        self._chunks.clear()

    # ------------------------------------------------------------------ waiting

    async def _wait(self) -> None:
        """Until the connection delivers something or fails (TimeoutError after a quiet spell)."""
        assert self._connection is not None, "only an answer still arriving is waited for"
        client = self._connection.client
        waiter = self._waiter = self._loop.create_future()
        self._quiet_since = self._loop.time()
        client._watch(self)
        try:
            await waiter
        finally:
            client._waiting.discard(self)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _take(self) -> bytes:
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered = 0
        if self._paused:
            self._paused = False
            if self._connection is not None:
                self._connection.transport.resume_reading()
        return data

    # ------------------------------------------------------------------ from the connection

    def _feed(self, data: bytes) -> None:
        self._received = True
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail(UpstreamError(f"the upstream sent an invalid HTTP response: {exc}"))
            return
        if self._complete:
            self._hand_back()
        self._wake()

    def _lost(self, exc: Exception | None) -> None:
        self._detach()
        if self._complete:
            return
        if self.status and self._body_ends_at_close():
            self._complete = True
        elif not self._received:
            self._fail(_StaleConnection(f"the upstream closed the connection without answering ({exc})"))
        else:
            self._fail(UpstreamError("the upstream closed the connection before the answer was complete"))
        self._wake()

    def _fail(self, error: BaseException) -> None:
        if self._error is not None or self._complete:
            return
        self._error = error
        connection = self._detach()
        if connection is not None:
            connection.close()
        self._wake()

    def _body_ends_at_close(self) -> bool:
        """Neither Content-Length nor chunked: the body is whatever arrives until the close."""
        framing = self.headers.get("transfer-encoding", "") or ""
        return "content-length" not in self.headers and "chunked" not in framing.lower()

    def _detach(self) -> _Connection | None:
        """Part from the connection (and the parser, which refers back to this object)."""
        connection = self._connection
        if connection is not None:
            self._connection = None
            connection.response = None
        self._parser = None
        return connection

    def _hand_back(self) -> None:
        connection = self._detach()
        if connection is None:
            return
        if not self._keep_alive or connection.closed:
            connection.close()
            return
        if self._paused:
            connection.transport.resume_reading()  # an idle connection must notice the server closing
        connection.client._keep(connection)

    # ------------------------------------------------------------------ httptools callbacks

    def on_message_begin(self) -> None:
        if self._complete:
            self._keep_alive = False  # a second answer to one request: do not trust the connection

    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:
            self._informational = True  # 100 Continue and the like: the real answer follows
            self._raw_headers = []
            return
        self.status = status
        self.headers = Headers(self._raw_headers)
        self._keep_alive = self._parser.should_keep_alive()
        if self._head_only or status in (204, 304):
            self._complete = True

    def on_body(self, body: bytes) -> None:
        if self._complete:
            self._keep_alive = False  # a body where none belongs
            return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > BUFFER_HIGH_WATER and not self._paused:
            connection = self._connection
            if connection is not None:
                self._paused = True
                connection.transport.pause_reading()

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
        else:
            self._complete = True
