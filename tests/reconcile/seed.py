"""The kakin ledger the sample bills in tests/data/reconcile are compared with.

Organisation "acme" in Asia/Kolkata (UTC+05:30: its local hours straddle UTC midnight, so
one request is counted by splitting a local hour). Every day of 2026-03-01 to 03-07 (UTC) it
sends, through kakin:

* gpt-4o to provider "openai": 1,000,000 input tokens of which 200,000 cached, 100,000
  output — $2.00 + $0.25 + $1.00; on 03-03 one more request at 23:45 UTC (100,000 in,
  10,000 out: $0.25 + $0.10) and, in the same local hour, one at 00:10 on 03-04 (100,000 input: $0.25, on 03-04);
* claude-sonnet-4 to provider "anthropic": 300,000 uncached, 500,000 cache-read and 100,000
  cache-written input tokens, 50,000 output — $0.90 + $0.15 + $0.375 + $0.75; on 03-05 one
  more request at 23:59 UTC of 20,000 output tokens ($0.30), which Anthropic counts on 03-06;
* gemini-2.5-flash to provider "gemini" (a Google provider by another name): 2,000,000 input
  tokens of which 1,000,000 cached, 200,000 output — $0.30 + $0.075 + $0.50;
* claude-haiku to the simulator (not on any bill).

kakin's own error, planted: on 03-02 and 03-03 it metered claude-sonnet-4's cache reads short
(300,000 instead of 500,000: the rest counted as uncached input, $1.50 + $0.09).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from conftest import Clock
from kakin.ledger import Ledger, Scope, UsageDetail

DAYS = [date(2026, 3, 1) + timedelta(days=n) for n in range(7)]
PRICES = {  # USD per token
    "gpt-4o": {"input": "0.0000025", "cache_read": "0.00000125", "output": "0.00001"},
    "claude-sonnet-4": {"input": "0.000003", "cache_read": "0.0000003", "cache_write": "0.00000375", "output": "0.000015"},
    "gemini-2.5-flash": {"input": "0.0000003", "cache_read": "0.000000075", "output": "0.0000025"},
    "claude-haiku": {"input": "0.000001", "output": "0.000005"},
}  # fmt: skip


def items(model: str, **tokens: int) -> list[dict[str, Any]]:
    lines = []
    for component, quantity in tokens.items():
        if not quantity:
            continue
        price = Decimal(PRICES[model][component])
        lines.append(
            {
                "component": component,
                "quantity": str(quantity),
                "unit": "token",
                "unit_price": str(price),
                "amount": str(price * quantity),
                "direction": "output" if component == "output" else "input",
            }
        )
    return lines


def charge(
    ledger: Ledger,
    clock: Clock,
    scope: Scope,
    at: datetime,
    provider: str,
    *,
    uncached: int = 0,
    cached: int = 0,
    written: int = 0,
    output: int = 0,
) -> None:
    clock.now = at
    lines = items(scope.model, input=uncached, cache_read=cached, cache_write=written, output=output)
    cost = sum((Decimal(line["amount"]) for line in lines), Decimal(0))
    usage = UsageDetail(
        provider=provider,
        input_tokens=uncached + cached + written,
        output_tokens=output,
        cached_tokens=cached,
        cost_items=lines,
    )
    ledger.post(scope, cost, usage, idempotency_key=f"{scope.model}-{at.isoformat()}")


def seed(ledger: Ledger, clock: Clock, name: str = "acme") -> str:
    """The organisation's id, its usage charged as the module docstring says."""
    clock.now = datetime(2026, 2, 1, tzinfo=UTC)
    org = ledger.create_org(name, timezone="Asia/Kolkata", payment_label="card")
    project = ledger.create_project(org.id, "app")
    key, _ = ledger.create_key(project.id, "server")

    def scope(model: str) -> Scope:
        return Scope(org.id, project.id, key.id, model)

    for day in DAYS:
        at = datetime(day.year, day.month, day.day, tzinfo=UTC)
        charge(ledger, clock, scope("gpt-4o"), at + timedelta(hours=12), "openai",
               uncached=800_000, cached=200_000, output=100_000)  # fmt: skip
        short = day.day in (2, 3)  # kakin's planted cache-read undercount
        charge(ledger, clock, scope("claude-sonnet-4"), at + timedelta(hours=9), "anthropic",
               uncached=500_000 if short else 300_000, cached=300_000 if short else 500_000,
               written=100_000, output=50_000)  # fmt: skip
        charge(ledger, clock, scope("gemini-2.5-flash"), at + timedelta(hours=15), "gemini",
               uncached=1_000_000, cached=1_000_000, output=200_000)  # fmt: skip
        charge(ledger, clock, scope("claude-haiku"), at + timedelta(hours=8), "simulator",
               uncached=1000, output=100)  # fmt: skip
        if day.day == 3:  # in a local hour (05:00–06:00 IST is 23:30–00:30 UTC) across UTC midnight
            charge(ledger, clock, scope("gpt-4o"), at + timedelta(hours=23, minutes=45), "openai",
                   uncached=100_000, output=10_000)  # fmt: skip
            charge(ledger, clock, scope("claude-haiku"), at + timedelta(hours=23, minutes=50), "simulator",
                   uncached=1000, output=100)  # fmt: skip
            charge(ledger, clock, scope("gpt-4o"), at + timedelta(hours=24, minutes=10), "openai",
                   uncached=100_000)  # fmt: skip
        if day.day == 5:
            charge(ledger, clock, scope("claude-sonnet-4"), at + timedelta(hours=23, minutes=59), "anthropic",
                   output=20_000)  # fmt: skip
    clock.now = datetime(2026, 3, 9, tzinfo=UTC)
    return org.id
