"""The gateway's upstream HTTP client against small scripted servers on 127.0.0.1.

Each server is a real asyncio TCP (or TLS) server whose handler plays one upstream's part
byte by byte: answers framed by length or in chunks, streams paced by the test, connections
closed while idle or in the middle of an answer, silence. Every test runs on asyncio's own
loop and on uvloop (the gateway's).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest

from kakin.gateway.client import UpstreamClient, UpstreamError

Handler = Callable[["Upstream", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    if request.param == "uvloop":
        return pytest.importorskip("uvloop").run
    return asyncio.run


class Upstream:
    """A scripted server: counts connections, keeps every request it read."""

    def __init__(self, handle: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handle = handle
        self.tls = tls
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        self.url = ""

    async def __aenter__(self) -> Upstream:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.connections += 1
        try:
            await self.handle(self, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
        """One request (head, body), or None when the client closed the connection."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        request = (head, await reader.readexactly(length))
        self.requests.append(request)
        return request


def answer(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    lines = [f"HTTP/1.1 {status}", *headers, f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode() + body


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


async def answer_each(server: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Keep-alive: answer every request on the connection with its own body echoed."""
    while (request := await server.read_request(reader)) is not None:
        writer.write(answer(b"echo:" + request[1], "Content-Type: application/json"))


def test_content_length_answer_and_what_is_sent(run: Any) -> None:
    async def scenario() -> None:
        async with Upstream(answer_each) as server:
            client = UpstreamClient(5)
            response = await client.request(
                "POST",
                server.url + "/v1/chat/completions?api-version=1#ignored",
                b'{"model":"gpt-4o-mini"}',
                {"content-type": "application/json", "Authorization": "Bearer sk-test"},
            )
            assert response.status == 200
            assert response.headers.get("CONTENT-TYPE") == "application/json"
            assert response.headers.get("x-missing", "fallback") == "fallback"
            assert ("Content-Type", "application/json") in response.headers.items()
            assert await response.read() == b'echo:{"model":"gpt-4o-mini"}'
            response.release()
            await client.close()
        head, body = server.requests[0]
        lines = head.decode().split("\r\n")
        assert lines[0] == "POST /v1/chat/completions?api-version=1 HTTP/1.1"
        port = server.url.rsplit(":", 1)[1]
        assert f"Host: 127.0.0.1:{port}" in lines
        assert f"Content-Length: {len(body)}" in lines
        assert "Authorization: Bearer sk-test" in lines
        names = {line.split(":", 1)[0].lower() for line in lines[1:] if line}
        assert "user-agent" not in names and "accept-encoding" not in names

    run(scenario())


def test_chunked_answer_is_read_whole(run: Any) -> None:
    async def handle(server: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(CHUNKED_HEAD + chunk(b"data: 1\n\n") + chunk(b"data: 2\n\n") + b"0\r\n\r\n")
        await reader.read()

    async def scenario() -> None:
        async with Upstream(handle) as server:
            client = UpstreamClient(5)
            response = await client.request("GET", server.url + "/stream")
            assert await response.read() == b"data: 1\n\ndata: 2\n\n"
            response.release()
            await client.close()
        assert b"content-length" not in server.requests[0][0].lower()  # a GET without a body

    run(scenario())


def test_stream_chunks_reach_the_caller_as_they_arrive(run: Any) -> None:
    async def scenario() -> None:
        received_first = asyncio.Event()

        async def handle(
            server: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            await server.read_request(reader)
            writer.write(CHUNKED_HEAD + chunk(b"data: first\n\n"))
            await received_first.wait()  # the next event only once the first has been delivered
            writer.write(chunk(b"data: second\n\n") + b"0\r\n\r\n")
            await reader.read()

        async with Upstream(handle) as server:
            client = UpstreamClient(5)
            response = await client.request("POST", server.url + "/v1/chat/completions", b"{}")
            pieces = response.__aiter__()
            assert await asyncio.wait_for(pieces.__anext__(), 2) == b"data: first\n\n"
            received_first.set()
            rest = [piece async for piece in pieces]
            assert b"".join(rest) == b"data: second\n\n"
            response.release()
            await client.close()

    run(scenario())


def test_sequential_requests_share_one_connection(run: Any) -> None:
    async def scenario() -> None:
        async with Upstream(answer_each) as server:
            client = UpstreamClient(5)
            for number in range(3):
                response = await client.request("POST", server.url + "/n", b"%d" % number)
                assert await response.read() == b"echo:%d" % number
                response.release()
            await client.close()
        assert server.connections == 1
        assert len(server.requests) == 3

    run(scenario())


def test_connection_close_answer_is_not_reused(run: Any) -> None:
    async def handle(server: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(answer(b"bye", "Connection: close"))
        await writer.drain()

    async def scenario() -> None:
        async with Upstream(handle) as server:
            client = UpstreamClient(5)
            for _ in range(2):
                response = await client.request("GET", server.url + "/")
                assert await response.read() == b"bye"
                response.release()
            await client.close()
        assert server.connections == 2

    run(scenario())


def test_idle_connection_closed_by_the_server_is_not_used(run: Any) -> None:
    async def handle(server: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(answer(b"once"))  # keep-alive by default, then an idle close
        await writer.drain()

    async def scenario() -> None:
        async with Upstream(handle) as server:
            client = UpstreamClient(5)
            for _ in range(2):
                response = await client.request("GET", server.url + "/")
                assert await response.read() == b"once"
                response.release()
                await asyncio.sleep(0.05)  # the close reaches the idle connection
            await client.close()
        assert server.connections == 2

    run(scenario())


def test_request_on_a_connection_closed_before_answering_is_sent_again(run: Any) -> None:
    async def handle(server: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(answer(b"first"))
        if server.connections == 1:
            await server.read_request(reader)  # the second request arrives as the server gives up
            return  # closed without a byte of answer
        await answer_each(server, reader, writer)

    async def scenario() -> None:
        async with Upstream(handle) as server:
            client = UpstreamClient(5)
            first = await client.request("GET", server.url + "/")
            assert await first.read() == b"first"
            first.release()
            second = await client.request("POST", server.url + "/", b"again")
            assert await second.read() == b"first"  # a fresh connection's first answer
            second.release()
            await client.close()
        assert server.connections == 2
        assert [body for _, body in server.requests] == [b"", b"again", b"again"]

    run(scenario())


def test_fresh_connection_closed_before_answering_is_an_error(run: Any) -> None:
    async def handle(server: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)

    async def scenario() -> None:
        async with Upstream(handle) as server:
            client = UpstreamClient(5)
            with pytest.raises(UpstreamError, match="without answering"):
                await client.request("POST", server.url + "/", b"x")
            await client.close()
        assert server.connections == 1  # sent once: only a reused connection earns a retry

    run(scenario())


def test_server_closing_mid_answer_is_an_error_not_a_short_body(run: Any) -> None:
    async def by_length(server: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        await writer.drain()

    async def chunked(server: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(CHUNKED_HEAD + chunk(b"data: partial\n\n"))
        await writer.drain()

    async def scenario() -> None:
        client = UpstreamClient(5)
        async with Upstream(by_length) as server:
            response = await client.request("GET", server.url + "/")
            with pytest.raises(UpstreamError, match="before the answer was complete"):
                await response.read()
            response.release()
        async with Upstream(chunked) as server:
            response = await client.request("GET", server.url + "/")
            received = []
            with pytest.raises(UpstreamError, match="before the answer was complete"):
                async for piece in response:
                    received.append(piece)
            assert received == [b"data: partial\n\n"]
            response.release()
        await client.close()

    run(scenario())


def test_read_timeout_before_the_head_and_between_chunks(run: Any) -> None:
    async def silent(server: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        await reader.read()

    async def ticks_then_stalls(
        server: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await server.read_request(reader)
        writer.write(CHUNKED_HEAD)
        for _ in range(5):  # 0.5 s in all, but never 0.3 s without a byte
            writer.write(chunk(b"data: tick\n\n"))
            await asyncio.sleep(0.1)
        await reader.read()  # then silence

    async def scenario() -> None:
        client = UpstreamClient(0.3)
        async with Upstream(silent) as server:
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await client.request("POST", server.url + "/", b"x")
            assert 0.3 <= time.monotonic() - started < 2
        async with Upstream(ticks_then_stalls) as server:
            response = await client.request("POST", server.url + "/", b"x")
            ticks = 0
            with pytest.raises(TimeoutError):
                async for piece in response:
                    ticks += piece.count(b"tick")
                    last = time.monotonic()
            assert ticks == 5
            assert 0.3 <= time.monotonic() - last < 2
            response.release()
        await client.close()

    run(scenario())


def test_connection_refused_is_an_upstream_error(run: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nobody listens here once the socket is closed

    async def scenario() -> None:
        client = UpstreamClient(5)
        with pytest.raises(UpstreamError, match="cannot connect"):
            await client.request("GET", f"http://127.0.0.1:{port}/")
        await client.close()

    run(scenario())


def test_releasing_an_unfinished_answer_closes_its_connection(run: Any) -> None:
    async def scenario() -> None:
        closed_by_client = asyncio.Event()

        async def handle(
            server: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            await server.read_request(reader)
            writer.write(CHUNKED_HEAD + chunk(b"data: 1\n\n"))  # and more would follow
            if await reader.read() == b"":
                closed_by_client.set()

        async with Upstream(handle) as server:
            client = UpstreamClient(5)
            response = await client.request("GET", server.url + "/")
            assert await response.__anext__() == b"data: 1\n\n"
            response.release()
            await asyncio.wait_for(closed_by_client.wait(), 2)
            with pytest.raises(UpstreamError, match="released"):
                await response.read()
            second = await client.request("GET", server.url + "/")
            second.release()
            await client.close()
        assert server.connections == 2

    run(scenario())


def test_aborting_a_stream_while_it_waits_closes_the_connection_and_ends_it(run: Any) -> None:
    """The reader left: ``abort()`` from another task wakes the wait for the next chunk, ends the
    iteration after what was already received, and closes the connection (never pooled)."""

    async def scenario() -> None:
        closed_by_client = asyncio.Event()

        async def handle(
            server: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            await server.read_request(reader)
            writer.write(CHUNKED_HEAD + chunk(b"data: 1\n\n"))  # and then silence: still thinking
            if await reader.read() == b"":
                closed_by_client.set()

        async with Upstream(handle) as server:
            client = UpstreamClient(5)
            response = await client.request("GET", server.url + "/")
            asyncio.get_running_loop().call_later(0.1, response.abort)
            started = time.monotonic()
            pieces = [piece async for piece in response]
            assert pieces == [b"data: 1\n\n"] and time.monotonic() - started < 2
            await asyncio.wait_for(closed_by_client.wait(), 2)
            response.release()
            second = await client.request("GET", server.url + "/")
            second.release()
            await client.close()
        assert server.connections == 2

    run(scenario())


def test_answers_without_a_body_keep_the_connection(run: Any) -> None:
    async def handle(server: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (request := await server.read_request(reader)) is not None:
            if request[0].startswith(b"HEAD"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
            elif request[0].startswith(b"DELETE"):
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            else:
                writer.write(b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n")

    async def scenario() -> None:
        async with Upstream(handle) as server:
            client = UpstreamClient(5)
            for method, status in (("HEAD", 200), ("DELETE", 204), ("GET", 304), ("HEAD", 200)):
                response = await asyncio.wait_for(client.request(method, server.url + "/thing"), 2)
                assert response.status == status
                assert await asyncio.wait_for(response.read(), 2) == b""
                response.release()
            await client.close()
        assert server.connections == 1

    run(scenario())


def test_body_without_length_ends_at_the_close(run: Any) -> None:
    async def handle(server: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it")
        await writer.drain()

    async def scenario() -> None:
        async with Upstream(handle) as server:
            client = UpstreamClient(5)
            response = await client.request("GET", server.url + "/")
            assert await response.read() == b"all of it"
            response.release()
            await client.close()

    run(scenario())


def test_an_answer_that_is_not_http_is_an_upstream_error(run: Any) -> None:
    async def handle(server: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await reader.read()

    async def scenario() -> None:
        async with Upstream(handle) as server:
            client = UpstreamClient(5)
            with pytest.raises(UpstreamError, match="invalid HTTP"):
                await client.request("GET", server.url + "/")
            await client.close()

    run(scenario())


def test_line_breaks_in_headers_are_refused(run: Any) -> None:
    async def scenario() -> None:
        client = UpstreamClient(5)
        with pytest.raises(ValueError, match="line break"):
            await client.request("GET", "http://127.0.0.1:9/", headers={"x-a": "1\r\nx-injected: 1"})
        await client.close()

    run(scenario())


def test_a_reader_that_falls_behind_stops_the_socket_being_read(run: Any) -> None:
    piece = b"x" * 65536
    pieces = 512  # 32 MiB: far more than the kernel's socket buffers hold

    async def scenario() -> None:
        sent = [0]

        async def handle(
            server: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            await server.read_request(reader)
            writer.write(CHUNKED_HEAD)
            for _ in range(pieces):
                writer.write(chunk(piece))
                await writer.drain()
                sent[0] += len(piece)
            writer.write(b"0\r\n\r\n")
            await reader.read()

        async with Upstream(handle) as server:
            client = UpstreamClient(5)
            response = await client.request("GET", server.url + "/large")
            await asyncio.sleep(0.3)  # the caller is busy; the server writes as fast as it can
            assert sent[0] < pieces * len(piece) // 2
            assert len(await response.read()) == pieces * len(piece)
            response.release()
            await client.close()

    run(scenario())


def test_https_with_sni_and_certificate_checks(run: Any) -> None:
    trustme = pytest.importorskip("trustme", reason="trustme makes the test certificate authority")
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(server_context)
    names: list[str | None] = []
    server_context.sni_callback = lambda _sock, name, _context: names.append(name)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)

    async def scenario() -> None:
        async with Upstream(answer_each, tls=server_context) as server:
            url = server.url.replace("127.0.0.1", "localhost") + "/v1/models"
            client = UpstreamClient(5, ssl_context=client_context)
            for _ in range(2):
                response = await client.request("POST", url, b"tls")
                assert await response.read() == b"echo:tls"
                response.release()
            await client.close()
            untrusting = UpstreamClient(5)  # the system's authorities do not know this one
            with pytest.raises(UpstreamError, match="cannot connect"):
                await untrusting.request("GET", url)
            await untrusting.close()
        assert names[0] == "localhost"
        assert (
            server.connections == 1
        )  # both requests on one connection (the refused handshake never reached the handler)

    run(scenario())
