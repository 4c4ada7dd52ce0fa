"""Answers kept for reuse: the response cache and idempotent replays.

A cache hit is another request asking the same thing: it gets the stored answer free (the
hit is recorded with the amount it saved). A replay is the same request sent again with its
``Idempotency-Key``: it gets the very first answer, kakin's fields included, and is billed
nothing new; a key is served once at a time, and a key reused for a different request is a
conflict.
"""

from __future__ import annotations

from decimal import Decimal

from kakin.config import Settings
from kakin.errors import Conflict, InvalidInput
from kakin.gateway.cache import CachedResponse, ResponseCache, cache_key
from kakin.gateway.call import Call
from kakin.gateway.http import Send, respond
from kakin.money import decimal_str


class AnswerStore:
    """``cache``: answers by request content, per project; ``replays``: answers by the key
    that sent them and its Idempotency-Key."""

    def __init__(self, settings: Settings, cache: ResponseCache, replays: ResponseCache) -> None:
        self.cache_enabled = settings.cache.enabled
        self.cache = cache
        self.replays = replays
        self._in_flight: set[str] = set()  # idempotency keys of requests being served

    # ------------------------------------------------------------------ cache

    def cache_key(self, call: Call, headers: dict[str, str]) -> str:
        """Where the answer to this request is cached, or "" when the cache is not wanted."""
        asked = headers.get("x-kakin-cache", "").strip().lower()
        if asked in ("off", "0", "false", "no", "bypass"):
            return ""
        if not (self.cache_enabled or asked in ("on", "1", "true", "yes")):
            return ""
        parsed = call.parsed
        return cache_key(call.caller.key.project_id, call.route.model, parsed.stream, parsed.body)

    async def cached(self, ckey: str) -> CachedResponse | None:
        return await self.cache.get(ckey)

    async def send_hit(self, call: Call, hit: CachedResponse, send: Send) -> None:
        extra = [
            ("x-kakin-request-id", call.request_id),
            ("x-kakin-cache", "hit"),
            ("x-kakin-cost-usd", "0"),
            ("x-kakin-saved-usd", decimal_str(hit.cost)),
        ]
        await respond(send, hit.status, hit.body, hit.content_type, extra)

    async def remember(
        self, ckey: str, call: Call, status: int, content_type: str, body: bytes, cost: Decimal
    ) -> None:
        """Cache an answer, as another request would receive it (without kakin's fields)."""
        await self.cache.put(ckey, CachedResponse(status, content_type, body, cost, call.route.model))

    # ------------------------------------------------------------------ idempotent replays

    async def claim(self, call: Call, headers: dict[str, str]) -> CachedResponse | None:
        """The answer already given to this request's Idempotency-Key, if any; else the key is
        taken for this request (``call.idempotency_key``) until :meth:`finished`."""
        idem = headers.get("idempotency-key", "").strip()
        if len(idem) > 255:
            raise InvalidInput("Idempotency-Key must be at most 255 characters")
        if not idem:
            return None
        replay_key = call.caller.key.id + ":" + idem
        stored = await self.replays.get(replay_key)
        if stored is not None:
            if stored.request != call.parsed.cache_key:
                raise Conflict(
                    f"Idempotency-Key {idem!r} was first used for a different request, which was "
                    "served and billed; use a new key for a new request"
                )
            return stored
        if replay_key in self._in_flight:
            raise Conflict(
                f"a request with Idempotency-Key {idem!r} is still in progress; retry after it ends"
            )
        self._in_flight.add(replay_key)
        call.idempotency_key = replay_key
        return None

    def served_elsewhere(self, call: Call, in_flight: bool) -> Conflict:
        """The refusal when another request took this Idempotency-Key: ``in_flight``, another
        gateway process is still serving it (a retry after it ends gets the replay); else it
        was served and billed, and no answer to it is kept here."""
        idem = call.idempotency_key[len(call.caller.key.id) + 1 :]
        if in_flight:
            return Conflict(
                f"a request with Idempotency-Key {idem!r} is still in progress (on another gateway "
                "process); retry after it ends"
            )
        return Conflict(
            f"a request with Idempotency-Key {idem!r} was already served and billed once, and its "
            "answer is no longer kept to replay here; use a new key for a new request"
        )

    async def replay(self, stored: CachedResponse, send: Send) -> None:
        """A retry with a used Idempotency-Key: answer as the first time, bill nothing new."""
        extra = [("x-kakin-idempotent-replay", "true"), ("x-kakin-cost-usd", "0")]
        await respond(send, stored.status, stored.body, stored.content_type, extra)

    async def keep_for_replay(
        self, call: Call, status: int, content_type: str, body: bytes, cost: Decimal
    ) -> None:
        """Keep the answer a retry with this request's Idempotency-Key gets."""
        entry = CachedResponse(status, content_type, body, cost, call.route.model, call.parsed.cache_key)
        await self.replays.put(call.idempotency_key, entry)

    def finished(self, call: Call) -> None:
        self._in_flight.discard(call.idempotency_key)

    async def close(self) -> None:
        """Close the Redis connection the two stores share, if they have one."""
        clients = {
            id(c): c
            for c in (getattr(self.cache, "client", None), getattr(self.replays, "client", None))
            if c
        }
        for client in clients.values():
            await client.aclose()
