"""The server writes what one turn of the event loop produced in one write (a response's head
and body together), and never holds back what is written before the next turn."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from kakin import serving
from kakin.writes import OneWritePerTurn


class _Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def test_writes_of_one_turn_go_out_as_one_and_close_sends_what_is_pending() -> None:
    async def scenario() -> None:
        raw = _Transport()
        transport = OneWritePerTurn(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(b"body")
        assert raw.writes == []
        await asyncio.sleep(0)
        assert raw.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
        transport.write(b"next")
        await asyncio.sleep(0)
        assert raw.writes[-1] == b"next"
        transport.write(b"last words")
        transport.close()
        assert raw.writes[-1] == b"last words" and raw.closing
        assert transport.get_extra_info("peername") == "info:peername"

    asyncio.run(scenario())


def test_nothing_is_written_to_a_transport_already_closing() -> None:
    async def scenario() -> None:
        raw = _Transport()
        transport = OneWritePerTurn(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"late")
        raw.closing = True  # the client went away within the turn
        await asyncio.sleep(0)
        assert raw.writes == []

    asyncio.run(scenario())


async def _slow_body(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]})
    await asyncio.sleep(0.5)
    await send({"type": "http.response.body", "body": b"done"})


def test_a_served_head_reaches_the_client_before_a_body_sent_later() -> None:
    server, thread, port = serving.start_in_thread(
        lambda host, p: serving.uvicorn_config(_slow_body, host, p, lifespan="off"), "127.0.0.1", "test"
    )
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            started = time.monotonic()
            client.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            head = client.recv(65536)
            assert head.startswith(b"HTTP/1.1 200") and b"done" not in head
            assert time.monotonic() - started < 0.4  # not held back until the body
            rest = b""
            while not rest.endswith(b"done"):
                rest += client.recv(65536)
    finally:
        server.should_exit = True
        thread.join(10)
