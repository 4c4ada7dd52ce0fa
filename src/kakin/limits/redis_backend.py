"""Redis rate limiter: the same GCRA as the in-memory backend, shared by many gateways.

One check is one round trip: a Lua script (EVALSHA) reads every limit's TAT, decides, and
writes them all or none, atomically, because Redis runs a script without interleaving. The
script reads the clock with ``TIME`` so gateways on machines with skewed clocks still agree.
Each TAT is stored under ``<prefix>rl:<scope>:<id>:<r|t>:<limit>`` with a TTL that ends when its
bucket would be full again, so idle subjects cost no memory.

All keys of one check are touched by one script, so on Redis Cluster they would have to
share a hash slot; kakin targets a single Redis (with replicas) for counters.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio

from kakin.limits.scripts import Script, ScriptConnection
from kakin.limits.types import (
    ALLOWED,
    SLACK_SECONDS,
    WINDOW_SECONDS,
    Decision,
    LimitSet,
    too_big,
    validate_amounts,
)

_US = 1_000_000

# KEYS[i]: TAT of limit i. ARGV: window_us, slack_us, then per limit: interval_us, amount.
# Returns {1} when admitted, {0, i, wait_us} when limit i binds. TATs are written with %.17g
# so a float survives the round trip exactly.
_CHECK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local horizon = tonumber(ARGV[1]) + tonumber(ARGV[2])
local worst, binding = 0, 0
local tats = {}
for i = 1, #KEYS do
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  tat = tat + tonumber(ARGV[2 * i + 1]) * tonumber(ARGV[2 * i + 2])
  local wait = tat - now - horizon
  if wait > worst then worst = wait; binding = i end
  tats[i] = tat
end
if binding > 0 then
  return {0, binding, math.ceil(worst + tonumber(ARGV[2]))}
end
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], string.format('%.17g', tats[i]), 'PX', math.ceil((tats[i] - now) / 1000) + 1)
end
return {1}
"""

# KEYS[i]: TAT of token limit i. ARGV[i]: delta_units * interval_us for that limit.
_ADJUST = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, #KEYS do
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  tat = tat + tonumber(ARGV[i])
  if tat > now then
    redis.call('SET', KEYS[i], string.format('%.17g', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
  else
    redis.call('DEL', KEYS[i])
  end
end
return #KEYS
"""


_CHECK_SCRIPT, _ADJUST_SCRIPT = Script(_CHECK), Script(_ADJUST)


class RedisRateLimiter:
    """``RateLimiter`` shared through Redis. Give a ``url`` (clients are made lazily, a sync
    one for threads and an asyncio one for the gateway's event loop) or ready clients;
    ``scripts``: the event loop's script connection, when another part of the process runs its
    own scripts on the same Redis (shared accounting's holds), so that both go out in the same
    writes. Clients and connections passed in belong to the caller."""

    def __init__(
        self,
        url: str | None = None,
        *,
        prefix: str = "kakin:",
        client: redis.Redis | None = None,
        async_client: redis.asyncio.Redis | None = None,
        scripts: ScriptConnection | None = None,
    ) -> None:
        if url is None and client is None and async_client is None:
            raise ValueError("RedisRateLimiter needs a Redis URL or a client")
        self._url = url
        self._prefix = prefix + "rl:"
        self._client = client
        self._async_client = async_client
        self._own_clients = client is None and async_client is None
        self._scripts: tuple[Any, Any] | None = None
        self._fast: ScriptConnection | None = scripts
        self._own_fast = scripts is None

    def check_and_consume(self, limits: LimitSet, *, requests: int = 1, tokens: int = 0) -> Decision:
        early = self._precheck(limits, requests, tokens)
        if early is not None:
            return early
        check, _ = self._sync_scripts()
        keys, args = self._check_args(limits, requests, tokens)
        return self._decision(check(keys=keys, args=args), limits, requests, tokens)

    async def acheck_and_consume(self, limits: LimitSet, *, requests: int = 1, tokens: int = 0) -> Decision:
        early = self._precheck(limits, requests, tokens)
        if early is not None:
            return early
        keys, args = self._check_args(limits, requests, tokens)
        reply = await self._fast_connection().run(_CHECK_SCRIPT, keys, args)
        return self._decision(reply, limits, requests, tokens)

    def adjust_tokens(self, limits: LimitSet, delta: int) -> None:
        keys, args = self._adjust_args(limits, delta)
        if keys:
            _, adjust = self._sync_scripts()
            adjust(keys=keys, args=args)

    async def aadjust_tokens(self, limits: LimitSet, delta: int) -> None:
        keys, args = self._adjust_args(limits, delta)
        if keys:
            await self._fast_connection().run(_ADJUST_SCRIPT, keys, args)

    def close(self) -> None:
        """Close clients this limiter made (clients passed in belong to the caller)."""
        if self._own_clients and self._client is not None:
            self._client.close()
            self._client = None
            self._scripts = None

    async def aclose(self) -> None:
        if self._fast is not None and self._own_fast:
            self._fast.close()
            self._fast = None
        if self._own_clients and self._async_client is not None:
            await self._async_client.aclose()
            self._async_client = None
        self.close()

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def _precheck(limits: LimitSet, requests: int, tokens: int) -> Decision | None:
        validate_amounts(requests, tokens)
        if not limits.limits:
            return ALLOWED
        return too_big(limits, requests, tokens)

    def _check_args(self, limits: LimitSet, requests: int, tokens: int) -> tuple[list[str], list[Any]]:
        keys = [self._prefix + limit.storage_key for limit in limits.limits]
        args: list[Any] = [int(WINDOW_SECONDS * _US), int(SLACK_SECONDS * _US)]
        for limit in limits.limits:
            args.append(repr(limit.interval * _US))
            args.append(requests if limit.kind == "requests" else tokens)
        return keys, args

    def _adjust_args(self, limits: LimitSet, delta: int) -> tuple[list[str], list[Any]]:
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise TypeError(f"token delta must be an integer, got {delta!r}")
        token_limits = [limit for limit in limits.limits if limit.kind == "tokens"] if delta else []
        keys = [self._prefix + limit.storage_key for limit in token_limits]
        return keys, [repr(delta * limit.interval * _US) for limit in token_limits]

    @staticmethod
    def _decision(reply: list[Any], limits: LimitSet, requests: int, tokens: int) -> Decision:
        if int(reply[0]) == 1:
            return ALLOWED
        limit = limits.limits[int(reply[1]) - 1]
        amount = requests if limit.kind == "requests" else tokens
        return Decision(False, int(reply[2]) / _US, limit, amount)

    def _sync_scripts(self) -> tuple[Any, Any]:
        if self._scripts is None:
            if self._client is None:
                self._client = redis.Redis.from_url(self._url or "")
            self._scripts = (self._client.register_script(_CHECK), self._client.register_script(_ADJUST))
        return self._scripts

    def _fast_connection(self) -> ScriptConnection:
        # The event loop's checks run on a pipelined connection (a third of redis-py's CPU per
        # call); the client only tells where Redis is.
        if self._fast is None:
            if self._async_client is None:
                self._async_client = redis.asyncio.Redis.from_url(self._url or "")
            self._fast = ScriptConnection.like(self._async_client)
        return self._fast
