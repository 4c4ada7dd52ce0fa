"""The metering gateway: an ASGI app that speaks the providers' own APIs.

Every request goes: authenticate the kakin key → parse and bound it → route → rate limits →
response cache → reserve the bound against credit and budgets → forward → read the usage
the provider reported → price it → settle (durable) → answer. A request that fails upstream
is voided (free, but it still counted toward rate limits); a stream the client abandons is
stopped upstream at once and billed for what the provider produced; the hold is released on
every exit path. A stream's cost travels in its final event (see ``StreamMeter.stamp``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import orjson

from kakin.catalog import Catalog
from kakin.config import ProviderSettings, Settings
from kakin.errors import Conflict, InvalidInput, KakinError, NotFound, UnknownModel
from kakin.gateway.access_log import note_caller
from kakin.gateway.accounting import Ticket, make_accountant
from kakin.gateway.cache import CachedResponse, ResponseCache, cache_key, make_caches
from kakin.gateway.client import UpstreamClient, UpstreamError, UpstreamResponse
from kakin.gateway.committer import ProcessCommitter, make_committer
from kakin.gateway.http import ClientGone, HangUp, Receive, Send, header_list, read_body, respond
from kakin.gateway.journal import ChargeJournal, journal_path
from kakin.gateway.keys import Caller, KeyCache
from kakin.gateway.ownership import ObjectGuard
from kakin.gateway.routing import Route, Router
from kakin.gateway.upstream import upstream_headers
from kakin.ledger.errors import BudgetExceeded, CreditExhausted, InvalidKey, PermissionDenied
from kakin.ledger.keys import KEY_PREFIX
from kakin.ledger.records import Scope, UsageDetail
from kakin.limits import make_limiter
from kakin.money import decimal_str
from kakin.pricing import Cost, Usage, price
from kakin.providers import (
    ParsedRequest,
    StreamMeter,
    error_response,
    extract_credential,
    match_endpoint,
    parse,
    stream_error_event,
    upstream_request,
    usage_from_body,
)

log = logging.getLogger("kakin.gateway")


class NoUpstream(KakinError):
    status = 502
    code = "bad_gateway"


class UpstreamTimeout(KakinError):
    status = 504
    code = "upstream_timeout"


class UnpricedModel(NotFound):
    code = "model_not_priced"


@dataclass(slots=True)
class Call:
    """One request's state as it moves through the gateway."""

    api: str
    caller: Caller
    parsed: ParsedRequest
    provider: ProviderSettings
    route: Route
    entry: Any  # catalog ModelEntry, or None for an explicitly allowed unpriced model
    started: datetime
    request_id: str
    bound_tokens: int = 0  # what the rate limiter was charged before forwarding
    ticket: Ticket | None = None  # the hold, until it is charged or released
    idempotency_key: str = ""
    extra_headers: list[tuple[str, str]] = field(default_factory=list)
    forwarded: bool = False  # the request was (being) sent upstream

    @property
    def scope(self) -> Scope:
        key = self.caller.key
        return Scope(org_id=key.org_id, project_id=key.project_id, key_id=key.id, model=self.route.model)


def api_of_path(path: str) -> str:
    """Which provider's error format to answer in, even for a path kakin does not serve."""
    if path.startswith("/v1/messages"):
        return "anthropic"
    if path.startswith("/v1beta/") or ":" in path.rsplit("/", 1)[-1]:
        return "google"
    if path.startswith("/openai/"):
        return "azure"
    return "openai"


class Gateway:
    """The ASGI application. Build with ``Gateway(settings, ledger)``; ``kakin serve`` runs it."""

    def __init__(
        self,
        settings: Settings,
        ledger: Any,
        *,
        catalog: Catalog | None = None,
        cache: ResponseCache | None = None,
        alerts: Any = None,
        admin_app: Any = None,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.catalog = catalog or Catalog.default()
        mode = settings.gateway.accounting_mode(settings.database.url)
        journal = journal_path(ledger) if mode == "local" and settings.gateway.charge_journal else None
        self.committer = make_committer(
            ledger,
            writer=settings.gateway.ledger_writer,
            max_batch=settings.gateway.commit_max_batch,
            journal=journal,
        )
        # The journal needs the writer process that applies it (a thread writer commits directly).
        self.journal = (
            ChargeJournal(journal) if journal and isinstance(self.committer, ProcessCommitter) else None
        )
        self.accounts = make_accountant(
            mode, ledger, self.committer, settings.gateway.hold_seconds, self.journal
        )
        self._in_flight: set[str] = set()  # idempotency keys of requests being served
        self._loop: asyncio.AbstractEventLoop | None = None
        self.keys = KeyCache(ledger, call=self.committer.call, on_tier_change=self.accounts.forget)
        self.objects = ObjectGuard(self.committer.call)  # provider-side objects, per project
        self.limiter = make_limiter(settings.redis.url, prefix=settings.redis.prefix)
        self.router = Router(settings.gateway, self.catalog)
        # ``replays``: responses of requests sent with an Idempotency-Key, replayed to a retry.
        self.cache, self.replays = make_caches(settings)
        if cache is not None:
            self.cache = cache
        self.alerts = alerts
        self.admin_app = admin_app
        self.session: UpstreamClient | None = None

    # ------------------------------------------------------------------ lifecycle

    def settled(self, timeout: float = 30) -> None:
        """From another thread: wait until every charge made so far is in the ledger itself
        (local accounting posts journaled charges moments after answering)."""
        assert self._loop is not None, "the gateway is not running"
        asyncio.run_coroutine_threadsafe(self.accounts.settled(), self._loop).result(timeout)

    async def startup(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.committer.start()
        self.session = UpstreamClient(self.settings.gateway.upstream_timeout_seconds)

    async def shutdown(self) -> None:
        """In-flight requests have finished: commit what is queued, then close the rest."""
        if self.session is not None:
            await self.session.close()
        await self.committer.stop()
        if self.journal is not None:
            self.journal.close()
        if self.alerts is not None:
            await asyncio.to_thread(self.alerts.close)
        for client in {
            id(c): c
            for c in (getattr(self.cache, "client", None), getattr(self.replays, "client", None))
            if c
        }.values():
            await client.aclose()  # the Redis connection the caches share
        aclose = getattr(self.limiter, "aclose", None)
        if aclose is not None:
            await aclose()
        self.limiter.close()

    def changed(self, kind: str, ident: str) -> None:
        """The admin API changed something: forget what was remembered about it."""
        self.keys.forget(kind, ident)
        self.accounts.forget(None if kind == "key" else ident or None)

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            if path.startswith("/admin") and self.admin_app is not None:
                await self.admin_app(scope, receive, send)
            elif path == "/healthz":
                await respond(send, 200, b'{"status":"ok"}')
            else:
                await self.handle(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def handle(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        path = scope["path"]
        api = api_of_path(path)
        call: Call | None = None
        try:
            match = match_endpoint(scope["method"], path)
            if match is None:
                raise NotFound(f"kakin does not serve {scope['method']} {path}")
            api = match.endpoint.api
            body = await read_body(receive, self.settings.server.max_body_bytes)
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            call = await self._admit(match, body, headers, query)
            note_caller(scope, call.request_id, call.caller.key.org_id, call.caller.key.project_id)
            await self._serve(call, headers, receive, send)
        except ClientGone:
            return
        except KakinError as error:
            await self._refuse(send, api, error)
        finally:
            if call is not None:
                # Every exit that did not charge releases the hold (errors, cancellation).
                if call.ticket is not None:
                    self.accounts.release(call.ticket)
                self._in_flight.discard(call.idempotency_key)

    async def _refuse(self, send: Send, api: str, error: KakinError) -> None:
        extra = []
        retry = getattr(error, "retry_after_seconds", None)
        if error.status == 429 and retry is not None:
            # None: the request alone is over a limit, so no Retry-After invites a futile resend.
            extra.append(("retry-after", str(max(1, int(retry + 0.999)))))
        # Providers answer malformed requests with 400 (SDKs raise BadRequestError), never 422.
        status = 400 if error.status == 422 else error.status
        body = error_response(api, status, error.message, code=error.code)
        await respond(send, status, body, extra=extra)

    # ------------------------------------------------------------------ admission

    async def _admit(self, match: Any, body: bytes, headers: dict[str, str], query: dict[str, str]) -> Call:
        endpoint = match.endpoint
        credential = extract_credential(headers, query)
        if credential is None:
            raise InvalidKey(
                "no kakin key presented: send it as 'Authorization: Bearer <key>' "
                "(or x-api-key / x-goog-api-key / api-key), as your SDK does with api_key"
            )
        caller = await self.keys.caller(credential.value)
        provider = self.settings.provider_for(endpoint.api)
        if provider is None:
            raise NoUpstream(
                f"no upstream is configured for the {endpoint.api} API; add one under [[providers]]"
            )
        parsed = parse(endpoint, body, match.path_params, query, model_map=provider.deployments)
        await self.objects.admit(caller.key, parsed)
        route = self.router.resolve(parsed.model) if parsed.model else Route(parsed.model, None, None)
        allowed = caller.key.models
        if allowed and route.model not in allowed and (route.routed_from or "") not in allowed:
            raise PermissionDenied(
                f"API key {KEY_PREFIX}{caller.key.prefix}-… may use {', '.join(allowed)}; {parsed.model!r} is not among them"
            )
        entry = self._catalog_entry(route.model, endpoint.api) if endpoint.billable else None
        call = Call(
            api=endpoint.api,
            caller=caller,
            parsed=parsed,
            provider=provider,
            route=route,
            entry=entry,
            started=datetime.now(UTC),
            request_id="req_" + secrets.token_hex(12),
        )
        output = parsed.max_output_tokens or self.settings.gateway.default_max_output_tokens
        bound_tokens = parsed.input_count.quick_bound + output
        decision = await self.limiter.acheck_and_consume(caller.limits, requests=1, tokens=bound_tokens)
        if not decision.allowed and parsed.input_tokens_bound + output < bound_tokens:
            # Refused on the bound found without counting: the exact count may fit.
            bound_tokens = parsed.input_tokens_bound + output
            decision = await self.limiter.acheck_and_consume(caller.limits, requests=1, tokens=bound_tokens)
        if not decision.allowed:
            raise decision.error()
        call.bound_tokens = bound_tokens
        return call

    def _catalog_entry(self, model: str, api: str) -> Any:
        try:
            return self.catalog.resolve(model, provider=api)
        except UnknownModel:
            try:
                return self.catalog.resolve(model)
            except UnknownModel as unknown:
                if self.settings.gateway.allow_unpriced_models:
                    return None
                raise UnpricedModel(
                    f"{unknown.message}. kakin refuses models it cannot price; add its prices in "
                    "kakin.toml, or set gateway.allow_unpriced_models = true to pass it through unbilled"
                ) from None

    def _bound(self, call: Call, usage: Usage) -> Decimal:
        """The most this request can cost: the price of its worst-case usage, or — when it may
        write to a prompt cache, whose rate can be twice the input rate — every input token
        at the dearest input-side rate."""
        cost = self._price(call, usage)
        bound = cost.total if cost else Decimal(0)
        if call.entry is not None and b"cache_control" in call.parsed.body:
            rates = self.catalog.bound_rates(
                call.entry, call.started, call.parsed.mode, input_tokens=usage.input_tokens
            )
            bound = max(bound, rates.bound(usage.input_tokens, usage.output_tokens))
        return bound

    def _price(self, call: Call, usage: Usage) -> Cost | None:
        if call.entry is None:
            return None
        return price(usage, call.entry, at=call.started, mode=call.parsed.mode, catalog=self.catalog)

    # ------------------------------------------------------------------ serving

    async def _serve(self, call: Call, headers: dict[str, str], receive: Receive, send: Send) -> None:
        parsed = call.parsed
        if not parsed.endpoint.billable or call.entry is None:
            await self._forward_unbilled(call, headers, send)
            return
        cache_on = self._cache_wanted(headers)
        ckey = (
            cache_key(call.caller.key.project_id, call.route.model, parsed.stream, parsed.body)
            if cache_on
            else ""
        )
        if cache_on:
            hit = await self.cache.get(ckey)
            if hit is not None:
                await self._serve_hit(call, hit, send)
                return
        idem = headers.get("idempotency-key", "").strip()
        if len(idem) > 255:
            raise InvalidInput("Idempotency-Key must be at most 255 characters")
        if idem:
            replay_key = self._replay_key(call, idem)
            stored = await self.replays.get(replay_key)
            if stored is not None:
                if stored.request != parsed.cache_key:
                    raise Conflict(
                        f"Idempotency-Key {idem!r} was first used for a different request, which was "
                        "served and billed; use a new key for a new request"
                    )
                await self._replay(stored, send)
                return
            if replay_key in self._in_flight:
                raise Conflict(
                    f"a request with Idempotency-Key {idem!r} is still in progress; retry after it ends"
                )
            self._in_flight.add(replay_key)
            call.idempotency_key = replay_key
        bound = await self._hold(call)
        if call.ticket.repeated:
            call.ticket = None  # the hold belongs to the first request
            raise Conflict(
                f"a request with Idempotency-Key {idem!r} was already served (by another gateway "
                "process) and billed once; use a new key for a new request"
            )
        call.extra_headers = [
            ("x-kakin-request-id", call.request_id),
            ("x-kakin-reserved-usd", decimal_str(bound)),
        ]
        if call.route.routed_from:
            call.extra_headers.append(("x-kakin-routed-to", call.route.model))
        up = upstream_request(
            parsed,
            model=call.route.model if call.route.routed_from else None,
            api_version=call.provider.api_version or None,
            output_limit=self._output_limit(parsed),
        )
        if parsed.stream:
            await self._stream(call, up, headers, receive, send, ckey)
            return
        response = await self._open_upstream(call, up, headers)
        try:
            if response.status >= 400:
                await self._pass_error(call, response, send)
            else:
                await self._complete(call, response, send, ckey)
        finally:
            response.release()

    async def _hold(self, call: Call) -> Decimal:
        """Hold the most the request can cost; returns that bound. The input side is first
        bounded without counting tokens (cheap, never below the count); only if that hold
        is refused is the exact count used to try again."""
        default_output = self.settings.gateway.default_max_output_tokens
        usage = call.parsed.bound_usage(default_output, quick=True)
        key = call.idempotency_key or call.request_id
        bound = self._bound(call, usage)
        try:
            call.ticket = await self.accounts.hold(
                call.scope, bound, usage.input_tokens + usage.output_tokens, key
            )
        except (BudgetExceeded, CreditExhausted):
            exact = call.parsed.bound_usage(default_output)
            if exact.input_tokens >= usage.input_tokens:
                raise
            usage, bound = exact, self._bound(call, exact)
            call.ticket = await self.accounts.hold(
                call.scope, bound, usage.input_tokens + usage.output_tokens, key
            )
        return bound

    def _output_limit(self, parsed: ParsedRequest) -> int | None:
        """The output limit to send with a request that sets none: the one held for each of
        its answers, so no answer can cost more than its hold (None: forward it unchanged)."""
        if self.settings.gateway.output_limit != "enforce":
            return None
        return parsed.output_limit(self.settings.gateway.default_max_output_tokens)

    def _cache_wanted(self, headers: dict[str, str]) -> bool:
        asked = headers.get("x-kakin-cache", "").strip().lower()
        if asked in ("off", "0", "false", "no", "bypass"):
            return False
        return self.settings.cache.enabled or asked in ("on", "1", "true", "yes")

    async def _open_upstream(self, call: Call, up: Any, headers: dict[str, str]) -> UpstreamResponse:
        assert self.session is not None
        url = call.provider.base_url.rstrip("/") + up.path
        call.forwarded = True
        try:
            return await self.session.request(
                call.parsed.endpoint.method,
                url,
                up.body,
                upstream_headers(headers, call.provider, call.api, up.headers),
            )
        except TimeoutError:
            raise UpstreamTimeout(
                f"{call.provider.name} did not answer in time; the request was not billed"
            ) from None
        except UpstreamError as exc:
            raise NoUpstream(
                f"could not reach {call.provider.name} ({exc}); the request was not billed"
            ) from None

    async def _pass_error(self, call: Call, response: UpstreamResponse, send: Send) -> None:
        """An upstream 4xx/5xx is not billed: void the hold, hand the provider's answer over."""
        body = await response.read()
        self.accounts.release(call.ticket)
        call.ticket = None
        await self.limiter.aadjust_tokens(call.caller.limits, -call.bound_tokens)
        extra = [(k, v) for k, v in response.headers.items() if k.lower() == "retry-after"]
        await respond(
            send,
            response.status,
            body,
            response.headers.get("content-type", "application/json"),
            extra + call.extra_headers,
        )

    async def _complete(self, call: Call, response: UpstreamResponse, send: Send, ckey: str) -> None:
        try:
            body = await response.read()
        except (TimeoutError, UpstreamError):
            raise UpstreamTimeout(
                f"{call.provider.name} broke off its answer; the request was not billed"
            ) from None
        usage = usage_from_body(call.parsed, body)
        note = ""
        if usage is None:
            # Never a silent zero: without reported usage, charge the bound that was reserved.
            usage = call.parsed.bound_usage(self.settings.gateway.default_max_output_tokens)
            note = _NO_USAGE
        cost = await self._settle(call, usage, note)
        body = await self.objects.answered(call.caller.key, call.parsed, response.status, body)
        content_type = response.headers.get("content-type", "application/json")
        extra = [*call.extra_headers, ("x-kakin-cost-usd", decimal_str(cost))]
        credit = self.accounts.credit_left(call.caller.key.org_id)
        if credit is not None:
            extra.append(("x-kakin-credit-remaining-usd", decimal_str(credit)))
        if ckey:
            await self.cache.put(
                ckey, CachedResponse(response.status, content_type, body, cost, call.route.model)
            )
        if call.idempotency_key:
            await self.replays.put(
                call.idempotency_key,
                CachedResponse(
                    response.status, content_type, body, cost, call.route.model, call.parsed.cache_key
                ),
            )
        await respond(send, response.status, body, content_type, extra)

    async def _stream(
        self,
        call: Call,
        up: Any,
        headers: dict[str, str],
        receive: Receive,
        send: Send,
        ckey: str,
    ) -> None:
        """Open and relay a stream. The client hanging up stops the upstream at once: the
        answer's head is no longer waited for, or the connection reading the answer is closed,
        so the provider stops producing; what it produced is billed."""
        hangup = HangUp(receive)
        try:
            opening = asyncio.ensure_future(self._open_upstream(call, up, headers))
            hangup.then(opening.cancel)
            try:
                response = await opening
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not hangup.gone or (task is not None and task.cancelling()):
                    raise  # the gateway itself is being stopped
                await self._bill_hangup(call, StreamMeter(call.parsed))
                return
            try:
                hangup.then(response.abort)
                if response.status >= 400:
                    await self._pass_error(call, response, send)
                else:
                    await self._relay(call, response, hangup, send, ckey)
            finally:
                response.release()
        finally:
            hangup.stop()

    async def _relay(
        self, call: Call, response: UpstreamResponse, hangup: HangUp, send: Send, ckey: str
    ) -> None:
        """Forward each event as it arrives; from the event carrying the final usage on, hold
        the output until the charge is durable, then send it with the cost stamped in."""
        meter = StreamMeter(call.parsed)
        content_type = response.headers.get("content-type", "text/event-stream")
        delivered: list[bytes] = []
        held = b""  # from the event carrying the final usage on: sent once the charge is durable
        broken = False
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": header_list(content_type, call.extra_headers),
            }
        )
        try:
            async for chunk in response:  # ends early once the client has gone (abort)
                out = meter.feed(chunk)
                if hangup.gone:
                    continue  # what was received is metered, nothing is sent
                if held or meter.state.finished or _may_end(out):
                    held += out
                elif out:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
                    delivered.append(out)
        except (TimeoutError, UpstreamError):
            broken = True
        if hangup.gone:
            await self._bill_hangup(call, meter)
            return
        if not broken:
            held += meter.finish()
        usage = meter.usage()
        if usage is None:
            cost = await self._settle(call, meter.partial_usage(), _NO_USAGE)
        else:
            cost = await self._settle(call, usage)
        await self.objects.streamed(call.caller.key, call.parsed, meter.state)
        tail = meter.stamp(held, self._receipt(call, cost))
        if broken:
            tail += stream_error_event(call.api, 502, f"{call.provider.name} broke off the stream")
        await send({"type": "http.response.body", "body": tail, "more_body": False})
        if not broken and usage is not None:
            # A retry with the Idempotency-Key gets this very answer, kakin's fields included (the
            # charge it names is the one and only); a cache hit is another request, free: the
            # answer without them.
            if ckey:
                body = b"".join([*delivered, held])
                await self.cache.put(
                    ckey, CachedResponse(response.status, content_type, body, cost, call.route.model)
                )
            if call.idempotency_key:
                entry = CachedResponse(
                    response.status,
                    content_type,
                    b"".join([*delivered, tail]),
                    cost,
                    call.route.model,
                    call.parsed.cache_key,
                )
                await self.replays.put(call.idempotency_key, entry)

    async def _bill_hangup(self, call: Call, meter: StreamMeter) -> None:
        """The client left mid-stream: bill the provider's final usage if it came, else what
        was produced until the upstream was stopped (input, and the output received). A request
        that never left the gateway is not billed."""
        if not call.forwarded:
            await self.limiter.aadjust_tokens(call.caller.limits, -call.bound_tokens)
            return  # the hold is released by the caller
        usage = meter.usage()
        if usage is None:
            await self._settle(call, meter.partial_usage(), _HUNG_UP)
        else:
            await self._settle(call, usage)
        # A response stored upstream before the hang-up is still its project's own.
        await self.objects.streamed(call.caller.key, call.parsed, meter.state)

    def _receipt(self, call: Call, cost: Decimal) -> dict[str, str]:
        """kakin's fields in a stream's final event: what the headers say for a complete answer."""
        receipt = {"request_id": call.request_id, "cost_usd": decimal_str(cost)}
        credit = self.accounts.credit_left(call.caller.key.org_id)
        if credit is not None:
            receipt["credit_remaining_usd"] = decimal_str(credit)
        return receipt

    async def _settle(self, call: Call, usage: Usage, note: str = "") -> Decimal:
        """Charge ``usage`` (durable on return); ``note`` says why it is not the provider's report."""
        cost = self._price(call, usage)
        total = cost.total if cost else Decimal(0)
        items = [item.to_dict() for item in cost.items] if cost else []
        if note:
            items.append({"note": note})
        routing_saved = Decimal(0)
        if call.route.baseline and call.route.baseline != call.route.model:
            try:
                routing_saved = max(
                    Decimal(0),
                    price(usage, call.route.baseline, at=call.started, catalog=self.catalog).total - total,
                )
            except KakinError:
                routing_saved = Decimal(0)
        detail = UsageDetail(
            provider=call.provider.name,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_tokens=usage.cache_read_tokens,
            reasoning_tokens=min(usage.output_reasoning_tokens, usage.output_tokens),
            cost_items=orjson.dumps(items).decode(),  # the ledger stores a JSON text as it is
            request_id=call.request_id,
            routed_from=call.route.routed_from,
            routing_saved=routing_saved,
        )
        then = (lambda settlement: self._notify_alerts(call, settlement, detail)) if self.alerts else None
        await self.accounts.charge(call.ticket, total, detail, then)
        call.ticket = None
        await self.limiter.aadjust_tokens(
            call.caller.limits, usage.input_tokens + usage.output_tokens - call.bound_tokens
        )
        return total

    def _notify_alerts(self, call: Call, settlement: Any, detail: UsageDetail) -> None:
        from kakin.alerts import SettleEvent

        try:
            event = SettleEvent.from_settlement(
                call.scope, settlement, detail, datetime.now(UTC), key_label=call.caller.key.prefix
            )
            self.alerts.on_settle(event)
        except Exception:  # alerts must never fail a request that was served and billed
            log.exception("alert evaluation failed for %s", call.request_id)

    async def _serve_hit(self, call: Call, hit: CachedResponse, send: Send) -> None:
        """A cache hit costs nothing; record it with the amount it saved."""
        call.ticket = await self.accounts.hold(call.scope, Decimal(0), 0, call.request_id)
        detail = UsageDetail(
            provider=call.provider.name,
            request_id=call.request_id,
            cache_hit=True,
            cache_saved=hit.cost,
            routed_from=call.route.routed_from,
        )
        await self.accounts.charge(call.ticket, Decimal(0), detail)
        call.ticket = None
        extra = [
            ("x-kakin-request-id", call.request_id),
            ("x-kakin-cache", "hit"),
            ("x-kakin-cost-usd", "0"),
            ("x-kakin-saved-usd", decimal_str(hit.cost)),
        ]
        await respond(send, hit.status, hit.body, hit.content_type, extra)

    def _replay_key(self, call: Call, idem: str) -> str:
        return call.caller.key.id + ":" + idem

    async def _replay(self, stored: CachedResponse, send: Send) -> None:
        """A retry with a used Idempotency-Key: answer as the first time, bill nothing new."""
        extra = [("x-kakin-idempotent-replay", "true"), ("x-kakin-cost-usd", "0")]
        await respond(send, stored.status, stored.body, stored.content_type, extra)

    async def _forward_unbilled(self, call: Call, headers: dict[str, str], send: Send) -> None:
        """Operations the provider does not charge for (models, countTokens, reading, listing
        or deleting stored objects)."""
        content_type = "application/json"

        async def fetch(parsed: ParsedRequest) -> tuple[int, bytes]:
            nonlocal content_type
            up = upstream_request(parsed, api_version=call.provider.api_version or None)
            response = await self._open_upstream(call, up, headers)
            try:
                body = await response.read()
            finally:
                response.release()
            content_type = response.headers.get("content-type", content_type)
            return response.status, body

        status, body = await fetch(call.parsed)
        body = await self.objects.answered(call.caller.key, call.parsed, status, body, fetch)
        await respond(
            send,
            status,
            body,
            content_type,
            [("x-kakin-request-id", call.request_id), ("x-kakin-cost-usd", "0")],
        )


# Why a charge is not the usage the provider reported (a note among the cost items).
_NO_USAGE = "the provider reported no usage; charged kakin's own count"
_HUNG_UP = (
    "the client hung up before the provider reported usage; the provider was stopped and "
    "kakin charged its own count of the input and of the output produced until then"
)

# Markers of a stream's last events in each provider's format (OpenAI chat and Responses,
# Anthropic, Gemini). From the piece carrying one, output waits until the charge is durable.
_ENDINGS = (
    b"[DONE]",
    b"message_stop",
    b"response.completed",
    b"response.incomplete",
    b"response.failed",
    b'"finishReason"',
)


def _may_end(piece: bytes) -> bool:
    return any(marker in piece for marker in _ENDINGS)
