"""What an adapter learns from a request, and the checks every adapter shares.

``ParsedRequest`` is everything the gateway needs *before* forwarding: which model, whether
it streams, how large the answer may get, how many input tokens it carries (exact where
kakin can count exactly, otherwise an estimate with a strict upper bound), and the key of
an identical request for the response cache. ``bound_usage`` turns that into the worst-case
``Usage`` the gateway reserves budget for.

The validation helpers raise ``InvalidInput`` naming the field, what was wrong and what a
valid value looks like, so a client sees the fix in its provider's own error shape.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from kakin.errors import InvalidInput
from kakin.pricing import Usage
from kakin.providers.counting import NO_COUNT, Count
from kakin.providers.endpoints import Endpoint

# Larger than any model's context or output window today; anything above is a typo or an attack.
MAX_TOKENS_LIMIT = 2_000_000
MAX_IMAGES_PER_REQUEST = 10
MAX_CHOICES = 128
# A cache TTL longer than a year is certainly a mistake (Gemini bills storage per hour).
MAX_CACHE_TTL_SECONDS = 365 * 24 * 3600


@dataclass(slots=True)
class ParsedRequest:
    """One validated client request. Built only by ``kakin.providers.parse``."""

    endpoint: Endpoint
    model: str
    stream: bool = False
    # True when the client itself asked for usage in the stream (OpenAI stream_options).
    client_wants_stream_usage: bool = False
    # What the request caps output at (max_tokens & co., × n choices); None when it sets none.
    max_output_tokens: int | None = None
    # When it sets none: extra output each answer may produce on top of the gateway's default
    # (Gemini's thinking budget, as thoughts count toward maxOutputTokens).
    extra_output_tokens: int = 0
    # How many answers the request asks for (OpenAI n, Gemini candidateCount).
    choices: int = 1
    input_count: Count = NO_COUNT
    # The pricing mode the request asks for (its service_tier); the response's tier wins.
    mode: str = "standard"
    images: int = 0
    image_size: str | None = None
    image_quality: str | None = None
    audio_seconds: Decimal | None = None
    audio_seconds_exact: bool = False
    cache_ttl_seconds: int | None = None
    cached_content: str | None = None
    # Tokens of the stored objects the request names, which its body does not show (set at
    # admission, ``kakin.gateway.ownership``): the conversation a response continues, the
    # items it fetches and the cache a generation reads are part of its input; a cache
    # update keeps its cache's tokens longer.
    stored_tokens: int = 0
    deployment: str | None = None
    doc: dict[str, Any] | None = None
    path_params: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def input_tokens(self) -> int:
        """Input tokens: exact where kakin can count exactly, otherwise an estimate."""
        return self.input_count.tokens

    @property
    def input_tokens_bound(self) -> int:
        """A strict upper bound of the input tokens (the count itself when exact)."""
        return self.input_count.upper_bound

    @property
    def input_tokens_exact(self) -> bool:
        return self.input_count.exact

    @property
    def counting_method(self) -> str:
        return self.input_count.method

    @property
    def billable(self) -> bool:
        return self.endpoint.billable

    @property
    def cache_key(self) -> str:
        """Identical requests (same endpoint, path, query and body bytes) share this key."""
        digest = hashlib.sha256()
        digest.update(self.endpoint.name.encode())
        for name in sorted(self.path_params):
            digest.update(b"\0" + name.encode() + b"=" + self.path_params[name].encode())
        for name in sorted(self.query):
            if name != "key":  # the caller's credential is not part of what was asked
                digest.update(b"\1" + name.encode() + b"=" + str(self.query[name]).encode())
        digest.update(b"\2" + self.body)
        return digest.hexdigest()

    def output_limit(self, default_max_output_tokens: int) -> int:
        """The output limit of each answer of a request that sets none: the gateway's default,
        plus the thinking budget the request grants. The gateway holds this much output per
        answer and sends it upstream as the request's limit (``upstream_request``)."""
        return default_max_output_tokens + self.extra_output_tokens

    def bound_usage(self, default_max_output_tokens: int, *, quick: bool = False) -> Usage:
        """The most this request can consume: what the gateway reserves before forwarding.

        Output is the request's own cap, or ``output_limit(default_max_output_tokens)`` for
        each answer when it sets none; input is the strict upper bound of the count — with
        ``quick``, the bound found without counting where there is one (see
        ``Count.quick_bound``) — plus the ``stored_tokens`` the provider adds to it. Every
        input token is bounded at the full input rate, though stored tokens may be billed
        at a cached rate."""
        kind = self.endpoint.kind
        if not self.endpoint.billable:
            return Usage(requests=1)
        if kind == "images":
            return Usage(
                input_tokens=self.input_tokens_bound,
                images=self.images,
                image_size=self.image_size,
                image_quality=self.image_quality,
            )
        if kind == "transcriptions":
            return Usage(input_tokens=0, audio_seconds=self.audio_seconds or Decimal(0))
        if kind in ("cache_create", "cache_update"):
            ttl = Decimal(self.cache_ttl_seconds or 0)
            hours = ttl / Decimal(3600)
            kept = self.input_tokens_bound + self.stored_tokens  # an update keeps its cache's
            return Usage(
                input_tokens=self.input_tokens_bound,
                cache_storage_token_hours=Decimal(kept) * hours,
            )
        if kind == "embeddings":
            return Usage(input_tokens=self.input_tokens_bound)
        cap = self.max_output_tokens
        if cap is None:
            cap = self.output_limit(default_max_output_tokens) * self.choices
        bound = self.input_count.quick_bound if quick else self.input_tokens_bound
        return Usage(input_tokens=bound + self.stored_tokens, output_tokens=cap)


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """What to send upstream: path with query string, body bytes, headers to add."""

    path: str
    body: bytes
    headers: dict[str, str]


# ---------------------------------------------------------------- shared validation


def load_json_object(body: bytes, endpoint: Endpoint) -> dict[str, Any]:
    if not body:
        raise InvalidInput(f"{endpoint.pattern}: request body is empty; send a JSON object")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(
            f"{endpoint.pattern}: request body is not valid JSON ({exc}); send a JSON object"
        ) from None
    if not isinstance(doc, dict):
        raise InvalidInput(
            f"{endpoint.pattern}: request body must be a JSON object, got {type(doc).__name__}"
        )
    return doc


_JSON_TYPES = {str: "a string", bool: "true or false", list: "an array", dict: "an object"}


def require_str(doc: Mapping[str, Any], key: str, *, example: str) -> str:
    value = doc.get(key)
    if value is None:
        raise InvalidInput(f"{key} is required (for example {key}={example!r})")
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{key} must be a non-empty string such as {example!r}, got {value!r}")
    return value


def optional_str(doc: Mapping[str, Any], key: str) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{key} must be a string, got {_describe(value)}")
    return value


def optional_bool(doc: Mapping[str, Any], key: str) -> bool:
    value = doc.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidInput(f"{key} must be true or false, got {_describe(value)}")
    return value


def optional_int(
    doc: Mapping[str, Any], key: str, *, minimum: int = 1, maximum: int = MAX_TOKENS_LIMIT, where: str = ""
) -> int | None:
    """An integer field within [minimum, maximum], or None when absent."""
    value = doc.get(key)
    if value is None:
        return None
    name = where + key
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise InvalidInput(
                f"{name} must be an integer between {minimum} and {maximum}, got {_describe(value)}"
            )
    if value < minimum or value > maximum:
        raise InvalidInput(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def require_list(doc: Mapping[str, Any], key: str, *, allow_empty: bool = False) -> list[Any]:
    value = doc.get(key)
    if value is None:
        raise InvalidInput(f"{key} is required and must be an array")
    if not isinstance(value, list):
        raise InvalidInput(f"{key} must be an array, got {_describe(value)}")
    if not value and not allow_empty:
        raise InvalidInput(f"{key} must not be empty")
    return value


def check_tools(tools: Any) -> None:
    """A request's ``tools``: absent, or an array (each provider reads the definitions itself)."""
    if tools is not None and not isinstance(tools, list):
        raise InvalidInput("tools must be an array of tool definitions")


def optional_object(doc: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{key} must be an object, got {_describe(value)}")
    return value


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    for kind, label in _JSON_TYPES.items():
        if isinstance(value, kind):
            shown = repr(value)
            return f"{label} ({shown[:40]}{'…' if len(shown) > 40 else ''})"
    return repr(value)[:40]
