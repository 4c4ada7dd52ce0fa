"""Gemini explicit context caches: ``cachedContents`` create, get, list, update, delete.

Storage is billed per token-hour: creating a cache of N tokens with a TTL of T hours is
``Usage(cache_storage_token_hours = N × T)``. The bound before the request uses kakin's
count of the cached contents; the figure after it uses the provider's
``usageMetadata.totalTokenCount`` and the TTL the provider granted
(``expireTime − createTime``). An update (PATCH) that sets a new TTL is billed for that
TTL's storage from the moment of the update, at the rates of the model the cache was made
for (the gateway knows it from its record of the cache). Reading, listing and deleting are
free.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Any

from kakin.errors import InvalidInput
from kakin.money import EXACT
from kakin.pricing import Usage
from kakin.providers import counting
from kakin.providers.adapter import Adapter, as_int
from kakin.providers.endpoints import Endpoint
from kakin.providers.gemini import count_request, field, model_name
from kakin.providers.request import MAX_CACHE_TTL_SECONDS, ParsedRequest, load_json_object

DEFAULT_TTL_SECONDS = 3600
_DURATION = re.compile(r"^(\d+)(?:\.(\d{1,9}))?s$")


def parse_duration(value: Any) -> int:
    """Protobuf Duration JSON ("300s", "1.5s") → whole seconds, rounded up."""
    if not isinstance(value, str) or not (found := _DURATION.match(value.strip())):
        raise InvalidInput(f"ttl must be a duration in seconds such as '3600s', got {value!r}")
    seconds = int(found.group(1)) + (1 if found.group(2) and int(found.group(2)) else 0)
    if seconds <= 0 or seconds > MAX_CACHE_TTL_SECONDS:
        raise InvalidInput(f"ttl must be between 1s and {MAX_CACHE_TTL_SECONDS}s, got {value!r}")
    return seconds


def parse_time(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be an RFC 3339 timestamp such as '2030-01-01T00:00:00Z'")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{what} is not an RFC 3339 timestamp: {value!r}") from None
    if parsed.tzinfo is None:
        raise InvalidInput(f"{what} must carry a timezone (end it with Z), got {value!r}")
    return parsed


def ttl_seconds(doc: Mapping[str, Any], now: datetime) -> int:
    if doc.get("ttl") is not None:
        return parse_duration(doc["ttl"])
    expire = field(doc, "expireTime")
    if expire is not None:
        seconds = int((parse_time(expire, "expireTime") - now).total_seconds())
        if seconds <= 0 or seconds > MAX_CACHE_TTL_SECONDS:
            raise InvalidInput(f"expireTime must be in the future and within a year, got {expire!r}")
        return seconds
    return DEFAULT_TTL_SECONDS


def parse(
    endpoint: Endpoint,
    body: bytes,
    path_params: Mapping[str, str],
    query: Mapping[str, str],
    model_map: Mapping[str, str],
) -> ParsedRequest:
    doc = load_json_object(body, endpoint)
    now = datetime.now(UTC)
    if endpoint.kind == "cache_create":
        raw_model = doc.get("model")
        if not isinstance(raw_model, str) or not raw_model:
            raise InvalidInput("model is required (for example model='models/gemini-2.5-flash')")
        model = model_name(raw_model)
        count = count_request(doc, model)
        tokens, bound, exact, method = count.tokens, count.upper_bound, count.exact, count.method
    else:  # cache_update: the contents are already stored upstream; their size shows in the response
        # The gateway prices it at the model recorded with the cache (kakin.gateway.ownership).
        model = "cachedContents/" + path_params.get("name", "")
        tokens = bound = 0
        exact, method = False, "stored"
    return ParsedRequest(
        endpoint=endpoint,
        model=model,
        input_count=counting.Count.known(tokens, bound, exact, method),
        cache_ttl_seconds=ttl_seconds(doc, now),
        doc=doc,
        path_params=path_params,
        query=query,
        body=body,
    )


def rewrite(parsed: ParsedRequest, model: str | None) -> dict[str, Any] | None:
    return None


def usage(parsed: ParsedRequest, doc: Any) -> Usage | None:
    if not isinstance(doc, dict):
        return None
    meta = field(doc, "usageMetadata")
    tokens = as_int(field(meta, "totalTokenCount")) if isinstance(meta, dict) else 0
    seconds = Decimal(parsed.cache_ttl_seconds or 0)
    created = field(doc, "updateTime") if parsed.endpoint.kind == "cache_update" else field(doc, "createTime")
    expire = field(doc, "expireTime")
    if isinstance(created, str) and isinstance(expire, str):
        try:
            delta = parse_time(expire, "expireTime") - parse_time(created, "createTime")
            seconds = Decimal(int(delta.total_seconds() * 1_000_000)) / Decimal(1_000_000)
        except InvalidInput:
            pass
    with localcontext(EXACT):
        hours = Decimal(tokens) * seconds / Decimal(3600)
    return Usage(cache_storage_token_hours=hours)


ADAPTER = Adapter(parse=parse, rewrite=rewrite, usage=usage)
