"""Admission: from a request's bytes to a :class:`~kakin.gateway.call.Call` the gateway may
serve. The kakin key → the caller; the body → a parsed, bounded request; stored objects it
names → its project's own; the model → a route the key may use and a catalog entry (kakin
refuses models it cannot price); the rate limits → the request and its token bound counted."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kakin.catalog import Catalog
from kakin.config import Settings
from kakin.errors import NotFound, UnknownModel
from kakin.gateway.call import Call
from kakin.gateway.keys import KeyCache
from kakin.gateway.ownership import ObjectGuard
from kakin.gateway.routing import Route, Router
from kakin.gateway.upstream import NoUpstream
from kakin.ledger.errors import InvalidKey, PermissionDenied
from kakin.ledger.ids import new_id
from kakin.ledger.keys import shown_key
from kakin.limits import RateLimiter
from kakin.providers import extract_credential, parse


class UnpricedModel(NotFound):
    code = "model_not_priced"


class Admission:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        keys: KeyCache,
        objects: ObjectGuard,
        router: Router,
        limiter: RateLimiter,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.keys = keys
        self.objects = objects
        self.router = router
        self.limiter = limiter

    async def admit(self, match: Any, body: bytes, headers: dict[str, str], query: dict[str, str]) -> Call:
        endpoint = match.endpoint
        credential = extract_credential(headers, query)
        if credential is None:
            raise InvalidKey(
                "no kakin key presented: send it as 'Authorization: Bearer <key>' "
                "(or x-api-key / x-goog-api-key / api-key), as your SDK does with api_key"
            )
        # A request that takes no hold is the only check of its key: verified afresh, so a key
        # revoked or suspended through another process is refused here at once.
        caller = await self.keys.caller(credential.value, fresh=not endpoint.billable)
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
                f"API key {shown_key(caller.key.prefix)} may use {', '.join(allowed)}; {parsed.model!r} is not among them"
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
            # Time first, as every ledger id: a charge's request id (and idempotency key, when
            # the client gives none) then lands at the right end of their indexes, instead of
            # on a random page of each that the writer must rewrite.
            request_id=new_id("req"),
        )
        output = parsed.max_output_tokens or self.settings.gateway.default_max_output_tokens
        rest = output + parsed.stored_tokens  # beyond the counted input: output, stored input
        bound_tokens = parsed.input_count.quick_bound + rest
        decision = await self.limiter.acheck_and_consume(caller.limits, requests=1, tokens=bound_tokens)
        if not decision.allowed and parsed.input_tokens_bound + rest < bound_tokens:
            # Refused on the bound found without counting: the exact count may fit.
            bound_tokens = parsed.input_tokens_bound + rest
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
                    f"kakin refuses models it cannot price: {unknown.message}, or set "
                    "gateway.allow_unpriced_models = true to pass it through unbilled"
                ) from None
