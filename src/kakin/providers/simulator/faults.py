"""The fault-injection grammar of the simulated provider.

A request asks for faults in its ``x-kakin-simulate`` header; the simulator's
configuration can set defaults applied to every request (the header wins per field).
The grammar is a ``;``-separated list of ``name`` or ``name=value`` items::

    latency=50ms        wait before answering (ms or s)
    status=429          answer with this HTTP error, in the provider's error shape
    error-rate=0.1      fail this fraction of requests (deterministic sequence) with
    error-status=503    this status (default 500)
    timeout             hold the request and never answer it (until the client gives up,
    timeout=2s          or for the given time, then 504)
    truncate=3          end a stream after 3 events, before its usage and end events
    no-usage            report no usage at all (body, stream and Gemini metadata)
    chunks=20           split the generated text into 20 stream events
    chunk-delay=5ms     pause between stream events
    tokens=40           generate about 40 words of text (before max-token limits)
    priority-capacity   the organisation has Anthropic Priority Tier capacity: messages
                        not sent with service_tier "standard_only" are served at priority

Unknown names or malformed values are refused with a 400 naming the item.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from decimal import Decimal

from kakin.errors import InvalidInput

HEADER = "x-kakin-simulate"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)?$")


@dataclass(frozen=True, slots=True)
class Faults:
    latency_s: float = 0.0
    status: int | None = None
    error_rate: float = 0.0
    error_status: int = 500
    timeout_s: float | None = None
    truncate: int | None = None
    no_usage: bool = False
    chunks: int | None = None
    chunk_delay_s: float = 0.0
    words: int | None = None
    priority_capacity: bool = False
    # The fields a specification named, so that "error-rate=0" can override a default.
    given: frozenset[str] = field(default=frozenset(), compare=False)

    def merged(self, override: Faults) -> Faults:
        """This one with the fields ``override`` named replaced by its values."""
        changes = {name: getattr(override, name) for name in override.given}
        return replace(self, **changes, given=self.given | override.given) if changes else self


NO_FAULTS = Faults()
# Hold "forever" (until the client disconnects) when a timeout names no duration.
FOREVER_S = 3600.0


def _duration(name: str, value: str) -> float:
    found = _DURATION.match(value.strip().lower())
    if not found:
        raise InvalidInput(f"{HEADER}: {name} takes a duration such as 50ms or 2s, got {value!r}")
    number = float(found.group(1))
    seconds = number / 1000 if found.group(2) in (None, "ms") else number
    if seconds > FOREVER_S:
        raise InvalidInput(f"{HEADER}: {name} must be at most {int(FOREVER_S)}s, got {value!r}")
    return seconds


def _count(name: str, value: str, low: int, high: int) -> int:
    if not value.strip().isdigit() or not low <= int(value) <= high:
        raise InvalidInput(f"{HEADER}: {name} takes a whole number from {low} to {high}, got {value!r}")
    return int(value)


def parse_faults(spec: str) -> Faults:
    """Parse a fault specification (see the module docstring)."""
    values: dict[str, object] = {}
    for raw in spec.split(";"):
        item = raw.strip()
        if not item:
            continue
        name, has_value, value = (part.strip() for part in item.partition("="))
        name = name.lower()
        if name == "latency" and has_value:
            values["latency_s"] = _duration(name, value)
        elif name == "status" and has_value:
            values["status"] = _count(name, value, 400, 599)
        elif name == "error-rate" and has_value:
            try:
                rate = Decimal(value)
            except ArithmeticError:
                rate = Decimal(-1)
            if not Decimal(0) <= rate <= Decimal(1):
                raise InvalidInput(f"{HEADER}: error-rate takes a fraction from 0 to 1, got {value!r}")
            values["error_rate"] = float(rate)
        elif name == "error-status" and has_value:
            values["error_status"] = _count(name, value, 400, 599)
        elif name == "timeout":
            values["timeout_s"] = _duration(name, value) if has_value else FOREVER_S
        elif name == "truncate" and has_value:
            values["truncate"] = _count(name, value, 0, 1_000_000)
        elif name == "no-usage" and not has_value:
            values["no_usage"] = True
        elif name == "chunks" and has_value:
            values["chunks"] = _count(name, value, 1, 100_000)
        elif name == "chunk-delay" and has_value:
            values["chunk_delay_s"] = _duration(name, value)
        elif name == "tokens" and has_value:
            values["words"] = _count(name, value, 0, 1_000_000)
        elif name == "priority-capacity" and not has_value:
            values["priority_capacity"] = True
        else:
            raise InvalidInput(
                f"{HEADER}: unknown or incomplete item {item!r}; items are latency=, status=, error-rate=, "
                "error-status=, timeout[=], truncate=, no-usage, chunks=, chunk-delay=, tokens=, "
                "priority-capacity"
            )
    return Faults(**values, given=frozenset(values))  # type: ignore[arg-type]
