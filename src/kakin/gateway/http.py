"""The few ASGI chores the gateway does by hand: read a bounded body, send a response.

The gateway is a plain ASGI callable rather than a framework app because it sits on every
request's path: a router lookup and two ``send`` calls are all it needs, and each
microsecond spent here is added to every call a client makes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from kakin.errors import KakinError

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class PayloadTooLarge(KakinError):
    status = 413
    code = "request_too_large"


class ClientGone(Exception):
    """The client disconnected before the request body arrived."""


class HangUp:
    """Watches for the client disconnecting while a stream is served: ``gone`` turns true the
    moment it does, and the action given to ``then`` runs at once (to stop the upstream)."""

    __slots__ = ("_action", "_task", "gone")

    def __init__(self, receive: Receive) -> None:
        self.gone = False
        self._action: Callable[[], object] | None = None
        self._task = asyncio.ensure_future(self._watch(receive))

    def then(self, action: Callable[[], object]) -> None:
        """Run ``action`` when the client goes (at once if it has gone already)."""
        self._action = action
        if self.gone:
            action()

    def stop(self) -> None:
        self._task.cancel()

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        if self._action is not None:
            self._action()


async def read_body(receive: Receive, limit: int) -> bytes:
    first = await receive()
    if first["type"] == "http.disconnect":
        raise ClientGone
    body = first.get("body", b"")
    if not first.get("more_body"):
        if len(body) > limit:
            raise _too_large(limit)
        return body
    parts = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
        if not message.get("more_body"):
            return b"".join(parts)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"request body is larger than the gateway's limit of {limit:,} bytes "
        "(server.max_body_bytes in kakin.toml)"
    )


def header_list(content_type: str, extra: Iterable[tuple[str, str]] = ()) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-type", content_type.encode("latin-1"))]
    headers.extend((name.encode("latin-1"), value.encode("latin-1")) for name, value in extra)
    return headers


async def respond(
    send: Send, status: int, body: bytes, content_type: str = "application/json", extra=()
) -> None:
    headers = header_list(content_type, extra)
    headers.append((b"content-length", str(len(body)).encode()))  # else the server frames it chunked
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
