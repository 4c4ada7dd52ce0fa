"""The metering gateway: an ASGI app that speaks the providers' own APIs.

Every request goes: authenticate the kakin key → parse and bound it → route → rate limits
(:mod:`~kakin.gateway.admission`) → response cache or idempotent replay
(:mod:`~kakin.gateway.answers`) → reserve the bound against credit and budgets → forward →
read the usage the provider reported → price it → settle (durable) → answer
(:mod:`~kakin.gateway.billing`, :mod:`~kakin.gateway.relay`). A request that fails upstream
is voided (free, but it still counted toward rate limits); a stream the client abandons is
stopped upstream at once and billed for what the provider produced; the hold is released on
every exit path.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qsl

from kakin.catalog import Catalog
from kakin.config import Settings
from kakin.errors import KakinError, NotFound, UnknownModel
from kakin.gateway.access_log import note_caller
from kakin.gateway.accounting import Accountant, make_accountant
from kakin.gateway.admission import Admission
from kakin.gateway.answers import AnswerStore
from kakin.gateway.billing import Billing
from kakin.gateway.cache import ResponseCache, make_caches
from kakin.gateway.call import Call
from kakin.gateway.committer import make_committer, url_for_a_child
from kakin.gateway.holds import HoldStore
from kakin.gateway.http import ClientGone, Receive, Send, read_body, respond
from kakin.gateway.journal import ChargeJournal, PostedCharges, claim_journal, journal_path
from kakin.gateway.keys import KeyCache
from kakin.gateway.ownership import ObjectGuard
from kakin.gateway.relay import Relay
from kakin.gateway.routing import Router
from kakin.gateway.shared_holds import RedisAccountant
from kakin.limits import make_limiter
from kakin.metrics import Metrics, SharedState, make_metrics
from kakin.providers import error_for, match_endpoint


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
    """The ASGI application. Build with ``Gateway(settings, ledger)``; ``kakin serve`` runs it
    (kakin.app mounts the admin API, the dashboard and ``/metrics`` beside it)."""

    def __init__(
        self,
        settings: Settings,
        ledger: Any,
        *,
        catalog: Catalog | None = None,
        cache: ResponseCache | None = None,
        alerts: Any = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.catalog = catalog or Catalog.default()
        self.metrics = metrics if metrics is not None else make_metrics(settings.metrics.enabled)
        g = settings.gateway
        mode = g.accounting_mode(settings.database.url)
        redis_holds = g.holds_in_redis(settings.database.url, settings.redis.url)
        # A charge journal needs the writer process that applies it (a thread writer commits
        # directly). Local accounting keeps one next to its SQLite ledger; with Redis holds each
        # gateway process claims a directory of its own.
        journal, lock = None, None
        if g.charge_journal and g.ledger_writer == "process" and url_for_a_child(ledger) is not None:
            if mode == "local":
                journal = journal_path(ledger)
            elif redis_holds:
                journal, lock = claim_journal(g.journal_base(settings.database.url))
        posted = PostedCharges()  # what the writer tells of the journal charges it posts
        self.committer = make_committer(
            ledger, writer=g.ledger_writer, max_batch=g.commit_max_batch, journal=journal, posted=posted
        )
        self.journal = ChargeJournal(journal, waker=self.committer, lock=lock) if journal else None
        self.accounts: Accountant
        store: HoldStore | None = None
        if redis_holds:
            import redis.asyncio

            store = HoldStore(redis.asyncio.Redis.from_url(settings.redis.url), settings.redis.prefix)
            self.accounts = RedisAccountant(
                store,
                self.committer,
                self.journal,
                posted,
                hold_seconds=g.hold_seconds,
                fail_open=g.redis_unavailable == "open",
                grace=g.redis_rebuild_grace_seconds,
                wait=g.redis_wait_seconds,
            )
        else:
            self.accounts = make_accountant(
                mode, ledger, self.committer, g.hold_seconds, self.journal, posted
            )
        self._loop: asyncio.AbstractEventLoop | None = None
        self.keys = KeyCache(ledger, call=self.committer.call, on_tier_change=self.accounts.forget)
        # Provider-side objects, per project.
        self.objects = ObjectGuard(self.committer.call, self._context_window)
        # With holds in Redis, the limiter's scripts share the hold store's connection, so the
        # checks, holds, charges and token corrections sent in one turn of the event loop go
        # out in one write.
        self.limiter = make_limiter(
            settings.redis.url, prefix=settings.redis.prefix, scripts=store.fast if store else None
        )
        self.router = Router(settings.gateway, self.catalog)
        self.admission = Admission(settings, self.catalog, self.keys, self.objects, self.router, self.limiter)
        response_cache, replays = make_caches(settings)
        self.answers = AnswerStore(settings, response_cache if cache is None else cache, replays)
        self.billing = Billing(
            settings, self.catalog, self.accounts, self.limiter, self.metrics, mode, alerts
        )
        self.relay = Relay(settings, self.billing, self.objects, self.answers, self.metrics)
        self._probe: asyncio.Task[None] | None = None

    def _context_window(self, api: str, model: str) -> int | None:
        """The model's context window from the catalog, or None when it is not known."""
        try:
            return self.catalog.resolve(model, provider=api).context_window
        except UnknownModel:
            return None

    @property
    def alerts(self) -> Any:
        """Alert evaluation (kakin.alerts), told of every settlement; None: no alerts."""
        return self.billing.alerts

    @alerts.setter
    def alerts(self, alerts: Any) -> None:
        self.billing.alerts = alerts

    # ------------------------------------------------------------------ lifecycle

    def settled(self, timeout: float = 30) -> None:
        """From another thread: wait until every charge made so far is in the ledger itself
        (local accounting posts journaled charges moments after answering)."""
        assert self._loop is not None, "the gateway is not running"
        asyncio.run_coroutine_threadsafe(self.accounts.settled(), self._loop).result(timeout)

    async def startup(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.committer.start()
        await self.accounts.start()
        await self.relay.start()
        if isinstance(self.accounts, RedisAccountant) and self.metrics.enabled:
            self._probe = asyncio.ensure_future(self._report_shared_state())
        else:
            self.metrics.shared_state(None)

    async def _report_shared_state(self, every: float = 1) -> None:
        """Copy the accountant's view of the shared state (Redis) into the metrics."""
        while True:
            self.metrics.shared_state(SharedState(self.accounts.health().value))
            await asyncio.sleep(every)

    async def shutdown(self) -> None:
        """In-flight requests have finished: commit what is queued, then close the rest."""
        if self._probe is not None:
            self._probe.cancel()
        await self.relay.close()
        await self.accounts.close()
        await self.committer.stop()
        if self.journal is not None:
            self.journal.close()
        if self.alerts is not None:
            await asyncio.to_thread(self.alerts.close)
        await self.answers.close()
        self.metrics.close()
        aclose = getattr(self.limiter, "aclose", None)
        if aclose is not None:
            await aclose()
        self.limiter.close()

    def changed(self, kind: str, ident: str) -> None:
        """The admin API changed something: forget what was remembered about it."""
        self.keys.forget(kind, ident)
        if kind == "key":
            self.accounts.forget(None, key_id=ident)
        else:
            self.accounts.forget(ident or None)

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            if path == "/healthz":
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
        endpoint = "unknown"
        status = 0

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            match = match_endpoint(scope["method"], path)
            if match is None:
                raise NotFound(f"kakin does not serve {scope['method']} {path}")
            api, endpoint = match.endpoint.api, match.endpoint.name
            body = await read_body(receive, self.settings.server.max_body_bytes)
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            raw_query = scope.get("query_string", b"")
            query = dict(parse_qsl(raw_query.decode("latin-1"))) if raw_query else {}
            call = await self.admission.admit(match, body, headers, query)
            note_caller(scope, call.request_id, call.caller.key.org_id, call.caller.key.project_id)
            await self._serve(call, headers, receive, sending)
        except ClientGone:
            return
        except KakinError as error:
            self.metrics.refused(api, error.code)
            await self._refuse(sending, api, error)
        finally:
            if call is not None:
                # Every exit that did not charge releases the hold (errors, cancellation).
                self.billing.release(call)
                self.answers.finished(call)
            if status:
                self.metrics.answered(call.provider.name if call is not None else "none", endpoint, status)

    async def _serve(self, call: Call, headers: dict[str, str], receive: Receive, send: Send) -> None:
        if not call.parsed.endpoint.billable or call.entry is None:
            await self.relay.forward_unbilled(call, headers, send)
            return
        ckey = self.answers.cache_key(call, headers)
        if ckey:
            hit = await self.answers.cached(ckey)
            if hit is not None:
                await self.billing.record_hit(call, hit.cost)
                await self.answers.send_hit(call, hit, send)
                return
        stored = await self.answers.claim(call, headers)
        if stored is not None:
            await self.answers.replay(stored, send)
            return
        if call.idempotency_key and await self.accounts.charged_before(
            call.caller.key.org_id, call.idempotency_key
        ):
            # Its answer is no longer kept (past the replay window, evicted, or a restart):
            # serving it again would cost upstream what the key's charge cannot bill twice.
            raise self.answers.served_elsewhere(call, in_flight=False)
        bound = await self.billing.hold(call)
        if call.ticket is not None and call.ticket.repeated:
            in_flight = call.ticket.in_flight
            self.billing.disown(call)
            raise self.answers.served_elsewhere(call, in_flight)
        await self.relay.forward(call, bound, headers, receive, send, ckey)

    async def _refuse(self, send: Send, api: str, error: KakinError) -> None:
        extra = []
        if error.retry_after_seconds is not None:
            # None: e.g. the request alone is over a limit, so no Retry-After invites a futile resend.
            extra.append(("retry-after", str(max(1, int(error.retry_after_seconds + 0.999)))))
        status, body = error_for(api, error)
        await respond(send, status, body, extra=extra)
