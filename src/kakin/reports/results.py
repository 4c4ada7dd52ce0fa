"""What report queries return: typed, exact (``Decimal`` USD, ``int`` counts), and always
stating the timezone their days and hours are in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Literal, NamedTuple

from kakin.money import from_pico

Grouping = Literal["day", "hour", "model", "project", "key", "unit"]
GROUPINGS: tuple[Grouping, ...] = ("day", "hour", "model", "project", "key", "unit")


class Spend(NamedTuple):
    """Requests, tokens by kind and money of a set of usage records.

    Its fields are the rollup columns that count them, in that order and by those names
    (:data:`kakin.ledger.rollups.MEASURES`), so a report makes one from a row as it is read;
    money stays integer picodollars until it is read, as exact ``Decimal`` USD, through
    :attr:`cost`, :attr:`cache_saved`, :attr:`routing_saved` and :attr:`saved`. A named tuple
    rather than a frozen dataclass: a report can hold thousands (a month by hour of six models,
    4,300), and a tuple is made in a fraction of the time."""

    requests: int
    cache_hits: int
    routed_requests: int
    input_tokens: int  # uncached input
    cached_tokens: int
    cache_write_tokens: int
    output_tokens: int  # output other than reasoning
    reasoning_tokens: int
    images: int
    audio_ms: int
    cost_pico: int
    cache_saved_pico: int
    routing_saved_pico: int

    @property
    def cost(self) -> Decimal:
        """What was charged, USD."""
        return from_pico(self.cost_pico)

    @property
    def cache_saved(self) -> Decimal:
        """What the response cache saved, USD."""
        return from_pico(self.cache_saved_pico)

    @property
    def routing_saved(self) -> Decimal:
        """What routing to another model saved, USD."""
        return from_pico(self.routing_saved_pico)

    @property
    def saved(self) -> Decimal:
        """What caching and routing saved, USD."""
        return from_pico(self.cache_saved_pico + self.routing_saved_pico)

    @property
    def audio_seconds(self) -> Decimal:
        """Audio billed by duration, in seconds."""
        return Decimal(self.audio_ms).scaleb(-3)

    @property
    def tokens(self) -> int:
        """Every token: input (uncached, cached, cache-written) and output (reasoning included)."""
        return (
            self.input_tokens
            + self.cached_tokens
            + self.cache_write_tokens
            + self.output_tokens
            + self.reasoning_tokens
        )


@dataclass(frozen=True, slots=True)
class SpendLine:
    """One group of a report: a local day or hour, a model, a project or a key."""

    group: str
    """The group's value: ISO local date, ISO local hour start with its offset, model, project
    id, or key id ("" for requests made without a key)."""
    label: str
    """What a reader sees: the same, or a project's name, a key's name and prefix."""
    spend: Spend
    start: datetime | None = None
    """For days and hours: the local instant the group begins."""


@dataclass(frozen=True, slots=True)
class UnitLine:
    """Money and quantity of one unit: input, cached_input, cache_write, output, reasoning,
    images, audio, requests, other."""

    unit: str
    quantity: Decimal | None  # None for "other" (searches, storage…): no common measure
    measure: str | None  # token, image, second, request
    cost: Decimal


@dataclass(frozen=True, slots=True)
class SpendReport:
    """Spend over ``[start, end)`` in the organisation's zone, grouped ``by``."""

    org_id: str
    org_name: str
    timezone: str
    by: Grouping
    start: datetime  # local, aware
    end: datetime
    project_id: str | None
    key_id: str | None
    model: str | None
    lines: tuple[SpendLine, ...]
    units: tuple[UnitLine, ...]
    """The whole period's money and quantities by unit (what ``by="unit"`` shows)."""
    total: Spend

    def daily(self) -> dict[date, Decimal]:
        """Cost per local day (for ``by="day"``)."""
        return {line.start.date(): line.spend.cost for line in self.lines if line.start is not None}


@dataclass(frozen=True, slots=True)
class CostLine:
    """One line of a request's itemised cost, as priced when it was settled."""

    component: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount: Decimal
    tier: str | None
    effective_from: str | None  # ISO date the price took effect
    source: str


@dataclass(frozen=True, slots=True)
class RequestDetail:
    """Everything recorded about one request."""

    request_id: str | None
    reservation_id: str
    org_id: str
    timezone: str
    project_id: str
    project_name: str
    key_id: str | None
    key_label: str | None
    model: str
    provider: str
    started_at: datetime  # local, aware
    settled_at: datetime
    latency: timedelta | None  # start to settle, when the request was held before it ran
    input_tokens: int  # all input, cached included
    cached_tokens: int
    output_tokens: int
    units: tuple[UnitLine, ...]
    cost: Decimal
    items: tuple[CostLine, ...]
    notes: tuple[str, ...]
    cache_hit: bool
    cache_saved: Decimal
    routed_from: str | None
    routing_saved: Decimal


@dataclass(frozen=True, slots=True)
class RequestLine:
    """One request in the request log."""

    id: int
    request_id: str | None
    reservation_id: str
    started_at: datetime  # local, aware
    project_id: str
    key_id: str | None
    model: str
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    cost: Decimal
    cache_hit: bool
    routed_from: str | None


@dataclass(frozen=True, slots=True)
class RequestPage:
    """A page of the request log, newest first; ``next`` continues after its last line."""

    org_id: str
    timezone: str
    lines: Sequence[RequestLine]
    next: str | None


@dataclass(frozen=True, slots=True)
class Repriced:
    """The usage of one recorded model, at its recorded cost and on each other model."""

    model: str  # the model the requests ran on
    requests: int
    input_tokens: int  # all input
    output_tokens: int  # all output
    cost: Decimal  # what it was charged
    on: dict[str, Decimal]  # target model → what the same usage would have cost


@dataclass(frozen=True, slots=True)
class WhatIf:
    """A period's usage repriced on other models, side by side with what it cost."""

    org_id: str
    org_name: str
    timezone: str
    start: datetime  # local, aware
    end: datetime
    targets: tuple[str, ...]
    priced_at: datetime  # the catalog's prices in force at this instant
    lines: tuple[Repriced, ...]
    cost: Decimal
    totals: dict[str, Decimal]  # target model → the whole period's cost on it
    unpriced: tuple[str, ...]  # what a token reprice leaves out (images, audio, other units)
