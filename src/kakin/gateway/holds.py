"""The Redis hold store: shared accounting's holds, decided atomically across processes.

Each organisation's room lives in Redis under keys sharing one hash tag, so one Lua script
reads and writes all of them atomically (and on Redis Cluster they share a slot):

- ``<prefix>acct:{<org>}:s`` — the state (a hash): credit and held (picodollars), ``uh`` (how
  many open holds have unbounded output, see :mod:`kakin.ledger.admission`), every
  budget of the current period with its spent and held counters (in its unit), the keys
  that refuse requests and from when, ``until`` (the instant the figures may change by
  themselves, or an admin change marked them out of date: holds wait for a rebuild), ``fresh``
  (when one gateway is told to rebuild it in the background, to pick up changes made outside
  any gateway) and ``v`` (how many times the state was built). Built from a ledger snapshot (kakin.ledger.snapshots) by ``install``.
- ``…:h`` — open holds, one field per hold: amount, tokens, time, expiry, project, key, model,
  and ``'1'`` when its output is unbounded.
- ``…:p`` — charges counted here and made durable in a gateway's journal, which the ledger may
  not hold yet (removed by their gateway once they are posted, or by ``install`` once the
  snapshot holds them).
- ``…:i:<idempotency key>`` — the claim of a client's ``Idempotency-Key``: the id of the hold
  of the request it sent, until that hold's expiry; ``settled`` for ``REPLAY_SECONDS`` once
  charged; gone once released. A second request with the key gets ``REPEATED`` (as a ledger
  reservation with that key would be found), so one process alone forwards it.
- ``…:r`` — rebuilds in progress (token → deadline): while one is, no charge leaves ``…:p``,
  so the snapshot it takes and the charges it adds always meet.

``HOLD`` is the Lua copy of :func:`kakin.ledger.admission.decide` (tested against it:
``tests/gateway/test_redis_holds.py``). Amounts reach 9.2·10¹⁸ picodollars, past the 2⁵³ a
Lua number holds exactly, so the scripts keep them as decimal strings and add and compare
them as two parts (below and above 10¹²).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio

from kakin.ledger import admission
from kakin.ledger.records import Scope
from kakin.ledger.snapshots import AccountSnapshot
from kakin.ledger.views import Hold, LiveHolds
from kakin.limits.scripts import Script, ScriptConnection

_COMMON = """
local B = 1000000000000
local function num(s)
  s = s or '0'
  local n = #s
  if n <= 12 then return {0, tonumber(s)} end
  return {tonumber(string.sub(s, 1, n - 12)), tonumber(string.sub(s, n - 11))}
end
local function str(a)
  if a[1] == 0 then return string.format('%d', a[2]) end
  return string.format('%d%012d', a[1], a[2])
end
local function add(a, b)
  local hi, lo = a[1] + b[1], a[2] + b[2]
  if lo >= B then lo = lo - B; hi = hi + 1 end
  return {hi, lo}
end
local function cmp(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] and -1 or 1 end
  if a[2] ~= b[2] then return a[2] < b[2] and -1 or 1 end
  return 0
end
local function sub(a, b)
  if cmp(a, b) <= 0 then return {0, 0} end
  local hi, lo = a[1] - b[1], a[2] - b[2]
  if lo < 0 then lo = lo + B; hi = hi - 1 end
  return {hi, lo}
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Whether budget b counts an entry of this project, key and model made at time t.
local function applies(b, project, key, model, t)
  if t < tonumber(b.start) or (b.stop ~= '' and t >= tonumber(b.stop)) then return false end
  if b.scope == 'org' then return true end
  if b.scope == 'project' then return b.ref == project end
  if b.scope == 'key' then return b.ref == key end
  return b.ref == model
end
local function bump(S, field, value, op)
  redis.call('HSET', S, field, str(op(num(redis.call('HGET', S, field)), value)))
end
-- An entry: {amount, tokens, time, expiry, project, key, model[, unbounded]} (strings).
local function shift(S, budgets, e, op)
  local amount, tokens = num(e[1]), num(e[2])
  bump(S, 'held', amount, op)
  if e[8] == '1' then bump(S, 'uh', {0, 1}, op) end
  for _, b in ipairs(budgets) do
    if applies(b, e[5], e[6], e[7], tonumber(e[3])) then
      bump(S, 'h:' .. b.id, b.unit == 'usd' and amount or tokens, op)
    end
  end
end
-- A charge is taken from credit first (never below zero), and spent in every budget.
local function count(S, budgets, e)
  local amount, tokens = num(e[1]), num(e[2])
  bump(S, 'credit', amount, sub)
  for _, b in ipairs(budgets) do
    if applies(b, e[5], e[6], e[7], tonumber(e[3])) then
      bump(S, 's:' .. b.id, b.unit == 'usd' and amount or tokens, add)
    end
  end
end
"""

# KEYS: state, holds[, claim]. ARGV: hold id, amount, tokens, project, key ('' for none), model,
# ttl ms, unbounded ('1' or '0').
HOLD = (
    _COMMON
    + """
local S, H = KEYS[1], KEYS[2]
-- A client's Idempotency-Key already claimed: the first request is in flight, or was charged.
local claimed = KEYS[3] and redis.call('GET', KEYS[3])
if claimed then return {'REPEATED', claimed == 'settled' and 'settled' or 'held'} end
if redis.call('EXISTS', S) == 0 then return {'NOSTATE'} end
local now = now_ms()
local st = redis.call('HMGET', S, 'until', 'pm', 'credit', 'held', 'b', 'v', 'fresh')
if now >= tonumber(st[1]) then return {'STALE'} end
-- A refusal from a state due for a refresh waits for the refresh (it may be out of date).
local due = now >= tonumber(st[7])
local key = ARGV[5]
if key ~= '' then
  local blocks = redis.call('HGET', S, 'k:' .. key)
  if blocks then
    for _, blk in ipairs(cjson.decode(blocks)) do
      if now >= tonumber(blk[1]) then
        if due then return {'STALE'} end
        return {'KEY', blk[2], blk[3]}
      end
    end
  end
end
local amount, tokens = num(ARGV[2]), num(ARGV[3])
local credit, held = num(st[3]), num(st[4])
if st[2] ~= '1' then
  if not (cmp(credit, held) > 0 and cmp(add(held, amount), credit) <= 0) then
    if due then return {'STALE'} end
    return {'CREDIT', st[3], st[4]}
  end
end
local budgets = cjson.decode(st[5])
local capped = st[2] ~= '1'
for _, b in ipairs(budgets) do
  if b.cap and applies(b, ARGV[4], key, ARGV[6], now) then
    capped = true
    local spent = redis.call('HGET', S, 's:' .. b.id) or '0'
    local bheld = redis.call('HGET', S, 'h:' .. b.id) or '0'
    local need = b.unit == 'usd' and amount or tokens
    if cmp(add(add(num(spent), num(bheld)), need), num(b.limit)) > 0 then
      if due then return {'STALE'} end
      return {'BUDGET', b.id, str(num(spent)), str(num(bheld)), str(need)}
    end
  end
end
if ARGV[8] == '1' and capped then
  local uh = redis.call('HGET', S, 'uh') or '0'
  if cmp(num(uh), {0, 0}) > 0 then
    if due then return {'STALE'} end
    return {'UNBOUNDED', uh}
  end
end
local t = string.format('%d', now)
local e = {ARGV[2], ARGV[3], t, string.format('%d', now + tonumber(ARGV[7])), ARGV[4], key, ARGV[6], ARGV[8]}
redis.call('HSET', H, ARGV[1], cjson.encode(e))
if KEYS[3] then redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[7]) end
shift(S, budgets, e, add)
-- Past its refresh time the state is still exact, only perhaps not current with changes made
-- outside a gateway (the CLI): one caller is told to rebuild it, in the background.
if due then
  redis.call('HSET', S, 'fresh', string.format('%d', now + 60000))
  return {'OK', st[6], 1}
end
return {'OK', st[6], 0}
"""
)

# KEYS: state, holds, pending[, claim]. ARGV: hold id, charge key, amount, tokens, project, key,
# model, how long the claim is kept once charged (ms).
CHARGE = (
    _COMMON
    + """
local S, H, P = KEYS[1], KEYS[2], KEYS[3]
if KEYS[4] then redis.call('SET', KEYS[4], 'settled', 'PX', ARGV[8]) end
local live = redis.call('EXISTS', S) == 1
local budgets = live and cjson.decode(redis.call('HGET', S, 'b')) or {}
local held = redis.call('HGET', H, ARGV[1])
if held then
  redis.call('HDEL', H, ARGV[1])
  if live then shift(S, budgets, cjson.decode(held), sub) end
end
local e = {ARGV[3], ARGV[4], string.format('%d', now_ms()), '0', ARGV[5], ARGV[6], ARGV[7]}
if redis.call('HSETNX', P, ARGV[2], cjson.encode(e)) == 1 and live then count(S, budgets, e) end
-- The credit left for other requests: neither spent nor held (never below zero).
if live then
  local st = redis.call('HMGET', S, 'credit', 'held')
  return str(sub(num(st[1]), num(st[2])))
end
return false
"""
)

# KEYS: state, holds[, claim]. ARGV: hold id.
RELEASE = (
    _COMMON
    + """
local S, H = KEYS[1], KEYS[2]
-- Released unbilled: a retry with the key is a new attempt.
if KEYS[3] and redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
local held = redis.call('HGET', H, ARGV[1])
if not held then return 0 end
redis.call('HDEL', H, ARGV[1])
if redis.call('EXISTS', S) == 1 then shift(S, cjson.decode(redis.call('HGET', S, 'b')), cjson.decode(held), sub) end
return 1
"""
)

# A gateway puts back what it knows after Redis lost it. KEYS: state, holds, pending[, claim].
# ARGV: 'h' (a hold) or 'p' (a charge), field, entry (JSON)[, the claim's value, its ttl ms].
READD = (
    _COMMON
    + """
local S = KEYS[1]
if KEYS[4] then redis.call('SET', KEYS[4], ARGV[4], 'NX', 'PX', ARGV[5]) end
local target = ARGV[1] == 'h' and KEYS[2] or KEYS[3]
if redis.call('HSETNX', target, ARGV[2], ARGV[3]) == 1 and redis.call('EXISTS', S) == 1 then
  local budgets, e = cjson.decode(redis.call('HGET', S, 'b')), cjson.decode(ARGV[3])
  if ARGV[1] == 'h' then shift(S, budgets, e, add) else count(S, budgets, e) end
end
return 1
"""
)

# KEYS: pending, rebuilds. ARGV: the charge keys posted. Refused (0) while a rebuild runs.
POSTED = (
    _COMMON
    + """
local now = now_ms()
local r = redis.call('HGETALL', KEYS[2])
for i = 1, #r, 2 do
  if tonumber(r[i + 1]) > now then return 0 end
  redis.call('HDEL', KEYS[2], r[i])
end
redis.call('HDEL', KEYS[1], unpack(ARGV))
return 1
"""
)

# KEYS: pending, rebuilds. ARGV: token, how long it may take (ms). Returns the pending keys.
BEGIN = (
    _COMMON
    + """
redis.call('HSET', KEYS[2], ARGV[1], string.format('%d', now_ms() + tonumber(ARGV[2])))
return redis.call('HKEYS', KEYS[1])
"""
)

# KEYS: state, holds, pending, rebuilds. ARGV: token, snapshot (JSON), posted keys (JSON), meta.
INSTALL = (
    _COMMON
    + """
local S, H, P, R = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now = now_ms()
local deadline = redis.call('HGET', R, ARGV[1])
if not deadline or tonumber(deadline) <= now then
  redis.call('HDEL', R, ARGV[1])
  return -1
end
local snap = cjson.decode(ARGV[2])
local posted = {}
for _, k in ipairs(cjson.decode(ARGV[3])) do posted[k] = true end
local v = tonumber(redis.call('HGET', S, 'v') or '0') + 1
redis.call('DEL', S)
local fields = {'v', v, 'until', snap['until'], 'fresh', snap.fresh, 'pm', snap.pm, 'credit', snap.credit, 'held', snap.held,
  'uh', snap.uh, 'b', cjson.encode(snap.budgets), 'meta', ARGV[4]}
for _, b in ipairs(snap.budgets) do
  table.insert(fields, 's:' .. b.id); table.insert(fields, b.spent)
  table.insert(fields, 'h:' .. b.id); table.insert(fields, b.held)
end
for key, blocks in pairs(snap.blocked) do
  table.insert(fields, 'k:' .. key); table.insert(fields, cjson.encode(blocks))
end
redis.call('HSET', S, unpack(fields))
local p = redis.call('HGETALL', P)
for i = 1, #p, 2 do
  if posted[p[i]] then redis.call('HDEL', P, p[i]) else count(S, snap.budgets, cjson.decode(p[i + 1])) end
end
local h = redis.call('HGETALL', H)
for i = 1, #h, 2 do
  local e = cjson.decode(h[i + 1])
  if tonumber(e[4]) <= now then redis.call('HDEL', H, h[i]) else shift(S, snap.budgets, e, add) end
end
redis.call('HDEL', R, ARGV[1])
return v
"""
)

# KEYS: holds. The holds open now (their entries), expired ones left out.
OPEN = (
    _COMMON
    + """
local now, open = now_ms(), {}
for _, held in ipairs(redis.call('HVALS', KEYS[1])) do
  if tonumber(cjson.decode(held)[4]) > now then table.insert(open, held) end
end
return open
"""
)

# KEYS: state. Marks the state out of date: the next hold anywhere rebuilds it.
OUTDATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'until', '0') end
return 1
"""


@dataclass(frozen=True, slots=True)
class Held:
    version: int
    refresh: bool = False  # this caller should rebuild the state in the background


@dataclass(frozen=True, slots=True)
class Repeated:
    """The client's Idempotency-Key is claimed by an earlier request, still in flight or charged."""

    in_flight: bool


@dataclass(frozen=True, slots=True)
class Missing:
    """No state for the organisation: never built, or Redis lost it."""


@dataclass(frozen=True, slots=True)
class Stale:
    """The state is out of date (a period ended, a grant event came, an admin change)."""


@dataclass(frozen=True, slots=True)
class KeyRefused:
    error: str  # KeyRevoked | KeyExpired | KeySuspended
    message: str


HoldReply = Held | Repeated | Missing | Stale | KeyRefused | admission.Refused


def entry(
    amount_pico: int, tokens: int, at_ms: int, expires_ms: int, scope: Any, unbounded: bool = False
) -> bytes:
    """A hold or charge as the scripts store it."""
    return orjson.dumps(
        [
            str(amount_pico),
            str(tokens),
            str(at_ms),
            str(expires_ms),
            scope.project_id,
            scope.key_id or "",
            scope.model,
            "1" if unbounded else "0",
        ]
    )


def snapshot_json(snapshot: AccountSnapshot, refresh_ms: int) -> bytes:
    """The snapshot as INSTALL reads it (big numbers as strings); it is to be refreshed
    ``refresh_ms`` after it was taken."""
    blocked: dict[str, list[list[str]]] = {}
    for block in snapshot.blocked:
        blocked.setdefault(block.key_id, []).append([str(block.since_ms), block.error, block.message])
    return orjson.dumps(
        {
            "until": str(snapshot.valid_until_ms),
            "fresh": str(min(snapshot.taken_ms + refresh_ms, snapshot.valid_until_ms)),
            "pm": "1" if snapshot.payment_method else "0",
            "credit": str(snapshot.credit_pico),
            "held": str(snapshot.held_pico),
            "uh": str(snapshot.held_unbounded),
            "budgets": [
                {
                    "id": b.id,
                    "scope": b.scope,
                    "ref": b.scope_ref,
                    "unit": b.unit,
                    "limit": str(b.limit),
                    "cap": b.hard_cap,
                    "start": str(b.start_ms),
                    "stop": "" if b.end_ms is None else str(b.end_ms),
                    "spent": str(b.spent),
                    "held": str(b.held),
                }
                for b in snapshot.budgets
            ],
            "blocked": blocked,
        }
    )


def meta_json(snapshot: AccountSnapshot) -> bytes:
    """What a refusal is worded from (names, timezone, periods)."""
    return orjson.dumps({"org": snapshot.org_row(), "budgets": [b.row() for b in snapshot.budgets]})


class HoldStore:
    """Typed calls of the scripts above on one Redis: the per-request ones (hold, charge,
    release) and the steady upkeep (dropping posted charges) on a :class:`ScriptConnection`,
    the rest through ``client`` (redis-py, asyncio)."""

    def __init__(self, client: redis.asyncio.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.fast = ScriptConnection.like(client)
        self._hold = Script(HOLD)
        self._charge = Script(CHARGE)
        self._release = Script(RELEASE)
        self._readd = client.register_script(READD)
        self._posted = Script(POSTED)
        self._begin = client.register_script(BEGIN)
        self._install = client.register_script(INSTALL)
        self._outdate = client.register_script(OUTDATE)
        self._open = client.register_script(OPEN)
        self.epoch_key = f"{prefix}acct:epoch"

    def keys(self, org_id: str) -> tuple[str, str, str, str]:
        base = f"{self.prefix}acct:{{{org_id}}}:"
        return base + "s", base + "h", base + "p", base + "r"

    def claim(self, org_id: str, idempotency_key: str) -> list[str]:
        """The claim key of a client's Idempotency-Key (as a list of extra script keys; none
        for a key unique by construction, given as "")."""
        return [f"{self.prefix}acct:{{{org_id}}}:i:{idempotency_key}"] if idempotency_key else []

    async def hold(
        self,
        org_id: str,
        hold_id: str,
        scope: Any,
        amount_pico: int,
        tokens: int,
        ttl_ms: int,
        claim: str = "",
        unbounded: bool = False,
    ) -> HoldReply:
        """``claim``: the client's Idempotency-Key, claimed with the hold ("" for none)."""
        s, h, _, _ = self.keys(org_id)
        args = [
            hold_id,
            amount_pico,
            tokens,
            scope.project_id,
            scope.key_id or "",
            scope.model,
            ttl_ms,
            "1" if unbounded else "0",
        ]
        return parse_hold(
            await self.fast.run(self._hold, [s, h, *self.claim(org_id, claim)], args), amount_pico
        )

    async def charge(
        self,
        org_id: str,
        hold_id: str,
        charge_key: str,
        amount_pico: int,
        tokens: int,
        scope: Any,
        claim: str = "",
        keep_ms: int = 0,
    ) -> int | None:
        """Release the hold and count the charge; the credit left then, in picodollars: neither
        spent nor held, never below zero (None: no state now).
        ``claim`` (the client's Idempotency-Key) stays claimed ``keep_ms`` more."""
        s, h, p, _ = self.keys(org_id)
        args = [
            hold_id,
            charge_key,
            amount_pico,
            tokens,
            scope.project_id,
            scope.key_id or "",
            scope.model,
            keep_ms,
        ]
        left = await self.fast.run(self._charge, [s, h, p, *self.claim(org_id, claim)], args)
        return None if left is None else int(left)

    async def release(self, org_id: str, hold_id: str, claim: str = "") -> None:
        """Release the hold (and free ``claim``, the client's Idempotency-Key, if it holds it)."""
        s, h, _, _ = self.keys(org_id)
        await self.fast.run(self._release, [s, h, *self.claim(org_id, claim)], [hold_id])

    async def close(self) -> None:
        self.fast.close()
        await self.client.aclose()

    async def readd(
        self, org_id: str, kind: str, field: str, stored: bytes, claim: str = "", ttl_ms: int = 0
    ) -> None:
        """Put back a hold (``kind`` "h") or an unposted charge ("p") Redis lost, and the claim
        of its client's Idempotency-Key (``claim``; for ``ttl_ms``)."""
        s, h, p, _ = self.keys(org_id)
        claimed = self.claim(org_id, claim)
        value = ([field if kind == "h" else "settled", max(1, ttl_ms)]) if claimed else []
        await self._readd(keys=[s, h, p, *claimed], args=[kind, field, stored, *value])

    async def posted(self, org_id: str, charge_keys: list[str]) -> bool:
        """Drop charges the ledger now holds; False while a rebuild runs (try again later)."""
        _, _, p, r = self.keys(org_id)
        for at in range(0, len(charge_keys), 500):
            if not await self.fast.run(self._posted, [p, r], charge_keys[at : at + 500]):
                return False
        return True

    async def begin_rebuild(self, org_id: str, token: str, within_ms: int) -> list[str]:
        """Start a rebuild; returns the keys of the charges pending now (for the snapshot)."""
        _, _, p, r = self.keys(org_id)
        return [k.decode() for k in await self._begin(keys=[p, r], args=[token, within_ms])]

    async def install(
        self, org_id: str, token: str, snapshot: AccountSnapshot, refresh_ms: int = 5000
    ) -> int:
        """The state built from ``snapshot``: its version, or -1 when the rebuild took longer
        than it said it would (charges may have left the pending list since): rebuild again."""
        s, h, p, r = self.keys(org_id)
        args = [
            token,
            snapshot_json(snapshot, refresh_ms),
            orjson.dumps(list(snapshot.posted)),
            meta_json(snapshot),
        ]
        return int(await self._install(keys=[s, h, p, r], args=args))

    async def outdate(self, org_id: str) -> None:
        await self._outdate(keys=[self.keys(org_id)[0]])

    async def open_holds(self, org_id: str) -> LiveHolds:
        """The organisation's holds open now, every gateway's."""
        _, h, _, _ = self.keys(org_id)
        holds = []
        for stored in await self._open(keys=[h]):
            amount, tokens, _, _, project, key, model, *unbounded = orjson.loads(stored)
            scope = Scope(org_id, project, key or None, model)
            holds.append(Hold(scope, int(amount), int(tokens), unbounded == ["1"]))
        return LiveHolds(tuple(holds))

    async def meta(self, org_id: str) -> dict[str, Any] | None:
        raw = await self.client.hget(self.keys(org_id)[0], "meta")
        return None if raw is None else orjson.loads(raw)

    async def epoch(self) -> str:
        """The current epoch: made when absent (the first start, or Redis lost everything).
        It reads ``<birth ms>:<random>``; a gateway that sees a new one puts back what it knows."""
        current = await self.client.get(self.epoch_key)
        if current is None:
            seconds, micros = await self.client.time()
            await self.client.set(self.epoch_key, f"{seconds * 1000 + micros // 1000}:{_token()}", nx=True)
            current = await self.client.get(self.epoch_key)
        return current.decode()

    async def now_ms(self) -> int:
        seconds, micros = await self.client.time()
        return seconds * 1000 + micros // 1000


def parse_hold(reply: list[Any], amount_pico: int) -> HoldReply:
    kind = _text(reply[0])
    if kind == "OK":
        return Held(int(reply[1]), reply[2] == 1)
    if kind == "REPEATED":
        return Repeated(_text(reply[1]) == "held")
    if kind == "NOSTATE":
        return Missing()
    if kind == "STALE":
        return Stale()
    if kind == "KEY":
        return KeyRefused(_text(reply[1]), _text(reply[2]))
    if kind == "CREDIT":
        return admission.CreditShort(int(reply[1]), int(reply[2]), amount_pico)
    if kind == "BUDGET":
        return admission.BudgetFull(_text(reply[1]), int(reply[2]), int(reply[3]), int(reply[4]))
    if kind == "UNBOUNDED":
        return admission.UnboundedBusy(int(reply[1]))
    raise RuntimeError(f"unexpected reply from the hold script: {reply!r}")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _token() -> str:
    import uuid

    return uuid.uuid4().hex
