"""Subscription or API: at what monthly usage a flat plan beats metered use.

A plan costs ``P`` a month whatever the usage; the API costs ``c`` per request of the typical
shape. The API is cheaper while ``requests × c < P``, so the break-even is

    break-even requests = ceil(P / c)        (per month; ÷ days for per day)
    break-even tokens   = break-even requests × tokens per request

Below it the API wins, at or above it the plan does (as long as the plan's own usage caps,
which this does not model, allow that much). For a given usage the verdict names the
winner and what it saves per month.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal, localcontext
from typing import Literal

from kakin.catalog import Catalog
from kakin.errors import InvalidInput
from kakin.estimate.inputs import (
    PLAN_PRICE,
    REQUESTS_PER_MONTH,
    TOKENS_PER_MONTH,
    days_per_month,
    number,
    settle,
)
from kakin.estimate.shape import RequestShape, price_shape, request_shape, resolve_model
from kakin.money import EXACT
from kakin.pricing import Cost

Winner = Literal["api", "plan", "either"]


@dataclass(frozen=True, slots=True)
class Verdict:
    requests_per_month: Decimal
    """Exact when the usage is given in requests; to 0.01 when it is given in tokens."""
    tokens_per_month: Decimal
    api_cost: Decimal
    """Exact (to the picodollar when the usage in tokens is not a whole number of requests)."""
    winner: Winner
    saving: Decimal
    """How much the winner saves per month against the other option."""


@dataclass(frozen=True, slots=True)
class BreakEven:
    plan_name: str
    plan_price: Decimal
    model: str
    provider: str
    shape: RequestShape
    per_request: Decimal
    days_per_month: Decimal
    requests_per_month: int | None
    """Fewest requests a month at which the plan is no dearer than the API (None: the API is free)."""
    tokens_per_month: int | None
    requests_per_day: Decimal | None
    verdict: Verdict | None
    cost: Cost
    """The itemised cost of one request of the shape."""


def breakeven(
    plan_price: object,
    model: str,
    *,
    input_tokens: object,
    output_tokens: object,
    cached_share: object = 0,
    usage_requests_per_month: object | None = None,
    usage_tokens_per_month: object | None = None,
    plan_name: str = "plan",
    days: object = "calendar",
    provider: str | None = None,
    at: datetime | None = None,
    mode: str = "standard",
    catalog: Catalog | None = None,
) -> BreakEven:
    """Where a ``plan_price`` (USD/month) subscription and metered ``model`` use cost the same.

    The usage for a verdict is given in requests or in tokens (input + output) per month."""
    plan = number(plan_price, "plan price per month (USD)", PLAN_PRICE)
    shape = request_shape(input_tokens, output_tokens, cached_share)
    month = days_per_month(days)
    if usage_requests_per_month is not None and usage_tokens_per_month is not None:
        raise InvalidInput("give the usage in requests or in tokens per month, not both")
    usage: Decimal | None = None
    if usage_requests_per_month is not None:
        usage = number(usage_requests_per_month, "usage (requests per month)", REQUESTS_PER_MONTH)
    elif usage_tokens_per_month is not None:
        usage_tokens = number(usage_tokens_per_month, "usage (tokens per month)", TOKENS_PER_MONTH)
    entry = resolve_model(model, provider, catalog)
    cost = price_shape(shape, entry, at=at, mode=mode)
    per_request = cost.total
    with localcontext(EXACT):
        if per_request > 0:
            requests = int((plan / per_request).to_integral_value(rounding=ROUND_CEILING))
            tokens: int | None = requests * shape.tokens
            per_day: Decimal | None = settle(Decimal(requests) / month, Decimal("0.01"))
        else:
            requests = tokens = per_day = None
        if usage is not None:
            verdict: Verdict | None = _verdict(usage, usage * shape.tokens, per_request * usage, plan)
        elif usage_tokens_per_month is not None:
            # Cost from the tokens, dividing last, so that whole amounts stay whole.
            api = settle(usage_tokens * per_request / shape.tokens)
            by_requests = settle(usage_tokens / shape.tokens, Decimal("0.01"))
            verdict = _verdict(by_requests, usage_tokens, api, plan)
        else:
            verdict = None
    return BreakEven(
        plan_name=plan_name,
        plan_price=plan,
        model=entry.model,
        provider=entry.provider,
        shape=shape,
        per_request=per_request,
        days_per_month=month,
        requests_per_month=requests,
        tokens_per_month=tokens,
        requests_per_day=per_day,
        verdict=verdict,
        cost=cost,
    )


def _verdict(requests: Decimal, tokens: Decimal, api: Decimal, plan: Decimal) -> Verdict:
    winner: Winner = "api" if api < plan else "plan" if api > plan else "either"
    return Verdict(requests, tokens, api, winner, abs(plan - api))
