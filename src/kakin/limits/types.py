"""The vocabulary of rate limiting: a limit, the set of limits one request is checked
against, and the decision.

Everything a backend needs per limit (its storage key and how long one unit occupies the
bucket) is computed once when the limit is built, so the gateway can cache a key's
``LimitSet`` and the per-request check does no string formatting or division.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final, Literal

from kakin.errors import InvalidInput, KakinError

Kind = Literal["requests", "tokens"]
Scope = Literal["key", "project", "org"]

# Every limit is "per minute": the bucket holds one minute of allowance.
WINDOW_SECONDS: Final = 60.0
# Float time arithmetic may leave a sub-millisecond residue; a wait this short is no wait.
# It is smaller than one unit of any limit up to 60,000 per minute.
SLACK_SECONDS: Final = 0.001


@dataclass(frozen=True, slots=True)
class Limit:
    """``per_minute`` requests or tokens for one subject (a key, a project or an org's tier)."""

    scope: Scope
    subject: str
    kind: Kind
    per_minute: int
    label: str = ""
    storage_key: str = field(init=False, repr=False)
    interval: float = field(init=False, repr=False)  # seconds one unit keeps the bucket busy

    def __post_init__(self) -> None:
        if isinstance(self.per_minute, bool) or not isinstance(self.per_minute, int) or self.per_minute <= 0:
            raise InvalidInput(
                f"{self.scope} {self.subject!r}: {self.kind}/min limit must be a positive integer, "
                f"got {self.per_minute!r} (leave it unset for no limit)"
            )
        if self.kind not in ("requests", "tokens"):
            raise InvalidInput(f"limit kind must be 'requests' or 'tokens', got {self.kind!r}")
        if not self.label:
            object.__setattr__(self, "label", f"{self.scope} {self.subject}")
        # The value is part of the key: a changed limit (a tier promotion, a key's new rpm)
        # starts from a bucket of its own, never from the state the old value left behind.
        object.__setattr__(
            self, "storage_key", f"{self.scope}:{self.subject}:{self.kind[0]}:{self.per_minute}"
        )
        object.__setattr__(self, "interval", WINDOW_SECONDS / self.per_minute)

    def describe(self) -> str:
        return f"{self.per_minute:,} {self.kind}/min"


@dataclass(frozen=True, slots=True)
class LimitSet:
    """All limits one request must pass, checked and consumed together (all or nothing)."""

    limits: tuple[Limit, ...] = ()

    def __post_init__(self) -> None:
        names = [f"{limit.scope}:{limit.subject}:{limit.kind}" for limit in self.limits]
        if len(names) != len(set(names)):
            raise InvalidInput(f"a limit set names the same limit twice: {', '.join(sorted(names))}")

    def __bool__(self) -> bool:
        return bool(self.limits)


UNLIMITED: Final = LimitSet()


def key_label(key_prefix: str) -> str:
    """How a key appears in messages: its public prefix, never the secret."""
    return f"key {key_prefix}" if key_prefix.endswith("…") else f"key {key_prefix}…"


def build_limits(
    *,
    key_id: str,
    key_prefix: str = "",
    key_rpm: int | None = None,
    key_tpm: int | None = None,
    project_id: str | None = None,
    project_rpm: int | None = None,
    project_tpm: int | None = None,
    org_id: str | None = None,
    tier_name: str | None = None,
    tier_rpm: int | None = None,
    tier_tpm: int | None = None,
) -> LimitSet:
    """The limits a request made with one key is held to. ``None`` (or 0) means no limit.

    The tier's limits are shared by every key of the organisation; the project's by every key
    of the project; the key's by that key alone."""
    found: list[Limit] = []
    label = key_label(key_prefix or key_id)

    def add(scope: Scope, subject: str | None, kind: Kind, value: int | None, text: str) -> None:
        if value is None or value == 0:
            return
        if subject is None:
            raise InvalidInput(f"a {scope} {kind}/min limit was given without the {scope} id")
        found.append(Limit(scope, subject, kind, value, text))

    add("key", key_id, "requests", key_rpm, label)
    add("key", key_id, "tokens", key_tpm, label)
    add("project", project_id, "requests", project_rpm, f"project {project_id}")
    add("project", project_id, "tokens", project_tpm, f"project {project_id}")
    tier_text = f"org {org_id} ({tier_name} tier)" if tier_name else f"org {org_id}"
    add("org", org_id, "requests", tier_rpm, tier_text)
    add("org", org_id, "tokens", tier_tpm, tier_text)
    return LimitSet(tuple(found))


class RateLimitExceeded(KakinError):
    """HTTP 429: a request or token rate limit is exhausted (or a request is bigger than it)."""

    status = 429
    code = "rate_limit_exceeded"

    def __init__(self, message: str, limit: Limit, retry_after_seconds: float | None) -> None:
        super().__init__(message)
        self.limit = limit
        self.kind = limit.kind  # "requests" or "tokens", as OpenAI labels its 429s
        self.retry_after_seconds = retry_after_seconds


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one check. When refused, ``limit`` is the one that binds (the one with
    the longest wait) and ``retry_after_seconds`` says when the same request would pass;
    ``None`` means waiting never helps because the request alone exceeds the limit."""

    allowed: bool
    retry_after_seconds: float | None = 0.0
    limit: Limit | None = None
    requested: int = 0

    @property
    def retry_after_header(self) -> str | None:
        """Whole seconds for a ``Retry-After`` header (rounded up, at least 1). The slack a
        check tolerates also absorbs float noise here, so "1.0000001 s" reads as 1."""
        if self.allowed or self.retry_after_seconds is None:
            return None
        return str(max(1, math.ceil(self.retry_after_seconds - SLACK_SECONDS)))

    @property
    def message(self) -> str:
        if self.allowed or self.limit is None:
            return "allowed"
        limit = self.limit
        if self.retry_after_seconds is None:
            return (
                f"request needs {self.requested:,} {limit.kind} but {limit.label} allows "
                f"{limit.describe()}; send fewer {limit.kind} per request (lower max_tokens) or raise the limit"
            )
        return f"{limit.label} exceeded {limit.describe()}; retry after {self.retry_after_header} s"

    def error(self) -> RateLimitExceeded:
        """The error the gateway answers a refused request with."""
        if self.allowed or self.limit is None:
            raise ValueError("an allowed decision has no error")
        return RateLimitExceeded(self.message, self.limit, self.retry_after_seconds)


ALLOWED: Final = Decision(True)


def validate_amounts(requests: int, tokens: int) -> None:
    for name, value in (("requests", requests), ("tokens", tokens)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInput(f"rate-limit check: {name} must be a non-negative integer, got {value!r}")


def too_big(limits: LimitSet, requests: int, tokens: int) -> Decision | None:
    """A refusal for a request that no amount of waiting admits, else None."""
    for limit in limits.limits:
        amount = requests if limit.kind == "requests" else tokens
        if amount > limit.per_minute:
            return Decision(False, None, limit, amount)
    return None
