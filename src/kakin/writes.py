"""One write per turn of the event loop.

On loopback a ``write`` is a system call that also runs the receiver's TCP path and wakes it:
it costs more CPU than the bytes it carries. A busy process produces several pieces of output
in one turn of its event loop (uvicorn writes a response's head and its body apart; the Redis
scripts of several requests go out together), so they are written once, at the end of the turn.
"""

from __future__ import annotations

import asyncio
from typing import Any


class OneWritePerTurn:
    """A transport whose writes made in one turn of the event loop go out as one, at its end;
    everything else is the wrapped transport's. Nothing is written to a transport closing by
    then (the peer is gone); :meth:`close` writes what is pending first."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self._pending is None:
            self._pending = [data]
            self._loop.call_soon(self._flush)
        else:
            self._pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
