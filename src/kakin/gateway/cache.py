"""Exact-match response cache.

A hit answers the request from a stored response at zero cost; the gateway records the
hit with the amount it saved (what the original response cost). Entries are keyed per
project, so one project never sees another's responses, and by the exact request bytes
that reached the upstream (plus whether the client streamed).

Two backends with one interface: an in-process LRU with TTL (the embedded default) and
Redis (shared by every gateway process).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import orjson


@dataclass(frozen=True, slots=True)
class CachedResponse:
    status: int
    content_type: str
    body: bytes  # the full body as the client received it (SSE text for streams)
    cost: Decimal  # what the original request cost: the amount a hit saves
    model: str
    request: str = ""  # ParsedRequest.cache_key of the request answered (idempotent replays)


class ResponseCache(Protocol):
    async def get(self, key: str) -> CachedResponse | None: ...
    async def put(self, key: str, entry: CachedResponse) -> None: ...


def cache_key(project_id: str, path: str, stream: bool, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (project_id.encode(), path.encode(), b"1" if stream else b"0", body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


class MemoryCache:
    """LRU with a time-to-live; single event loop, so no locking is needed."""

    def __init__(self, ttl_seconds: int, max_entries: int, max_entry_bytes: int) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self.max_entry_bytes = max_entry_bytes
        self._entries: OrderedDict[str, tuple[float, CachedResponse]] = OrderedDict()

    async def get(self, key: str) -> CachedResponse | None:
        item = self._entries.get(key)
        if item is None:
            return None
        expires, entry = item
        if expires < time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    async def put(self, key: str, entry: CachedResponse) -> None:
        if len(entry.body) > self.max_entry_bytes:
            return
        self._entries[key] = (time.monotonic() + self.ttl, entry)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


class RedisCache:
    """Entries as Redis strings with EX; ``prefix`` + ``namespace`` keep kakin's keys apart."""

    def __init__(
        self, client, prefix: str, ttl_seconds: int, max_entry_bytes: int, namespace: str = "cache:"
    ) -> None:
        self.client = client
        self.prefix = prefix + namespace
        self.ttl = ttl_seconds
        self.max_entry_bytes = max_entry_bytes

    async def get(self, key: str) -> CachedResponse | None:
        raw = await self.client.get(self.prefix + key)
        if raw is None:
            return None
        data = orjson.loads(raw)
        return CachedResponse(
            status=data["status"],
            content_type=data["content_type"],
            body=bytes.fromhex(data["body"]),
            cost=Decimal(data["cost"]),
            model=data["model"],
            request=data["request"],
        )

    async def put(self, key: str, entry: CachedResponse) -> None:
        if len(entry.body) > self.max_entry_bytes:
            return
        payload = orjson.dumps(
            {
                "status": entry.status,
                "content_type": entry.content_type,
                "body": entry.body.hex(),
                "cost": str(entry.cost),
                "model": entry.model,
                "request": entry.request,
            }
        )
        await self.client.set(self.prefix + key, payload, ex=self.ttl)


REPLAY_SECONDS = 24 * 3600  # how long the answer to an Idempotency-Key is kept for a retry


def make_caches(settings: Any) -> tuple[ResponseCache, ResponseCache]:
    """The response cache and the idempotent-replay store: in Redis when one is configured
    (shared by every gateway process), else in this process."""
    c = settings.cache
    replay_ttl = REPLAY_SECONDS
    if settings.redis.url:
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(settings.redis.url)
        prefix = settings.redis.prefix
        return (
            RedisCache(client, prefix, c.ttl_seconds, c.max_entry_bytes),
            RedisCache(client, prefix, replay_ttl, c.max_entry_bytes, namespace="replay:"),
        )
    return (
        MemoryCache(c.ttl_seconds, c.max_entries, c.max_entry_bytes),
        MemoryCache(replay_ttl, 100_000, c.max_entry_bytes),
    )
