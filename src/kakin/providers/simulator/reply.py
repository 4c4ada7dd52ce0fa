"""What a simulated endpoint answers: a JSON body, or a list of stream events.

Streams are built whole before the first byte is sent (generation is deterministic and
cheap), which makes ``truncate=N`` and ``chunks=N`` exact and keeps the send loop trivial.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

JSON = b"application/json"
SSE = b"text/event-stream"


@dataclass(slots=True)
class Reply:
    status: int = 200
    body: bytes = b""
    events: list[bytes] | None = None
    content_type: bytes = JSON
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


def json_reply(doc: object, status: int = 200) -> Reply:
    return Reply(status=status, body=orjson.dumps(doc))


def data_event(doc: object, newline: bytes = b"\n\n") -> bytes:
    return b"data: " + orjson.dumps(doc) + newline


def named_event(kind: str, doc: object) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(doc) + b"\n\n"
