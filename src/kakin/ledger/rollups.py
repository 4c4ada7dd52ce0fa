"""Spend rolled up as it is posted: what every report reads instead of the usage records.

Each usage record adds its measures (requests, tokens and money by unit, savings) to two rows:
one for the organisation's local hour and one for its local day, keyed by project, key and
model. The rows are written by :meth:`kakin.ledger.work.Work.flush` in the transaction that
inserts the usage records, from those very records: a charge repeated under its idempotency
key writes no record and so touches no rollup, and a transaction that fails writes neither.
Reports therefore always equal the sum of the usage records (``kakin ledger show
--reconcile`` checks it).

A bucket is identified by the UTC instant its local hour or day begins in the organisation's
timezone (an hour of Asia/Kolkata starts at :30 UTC, a day of Asia/Tokyo at 15:00 UTC the day
before), so a report over local days adds whole buckets and never splits one.

Units come from the record's itemised cost (``cost_items``: component, quantity, amount), the
token counts from the record itself: uncached input is what is left of the input tokens once
the cached and cache-written ones are taken out. Money by unit always adds up to the
record's cost exactly: a sub-picodollar rounding difference between the lines and the charged
total goes to the largest line, and an amount no line explains goes to ``other``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from zoneinfo import ZoneInfo

import orjson

from kakin.ledger.periods import period_bounds
from kakin.money import to_pico

UNITS: Final = (
    "input",
    "cached_input",
    "cache_write",
    "output",
    "reasoning",
    "images",
    "audio",
    "requests",
    "other",
)
"""The units money is split into; ``<unit>_pico`` is a rollup column for each."""

QUANTITIES: Final = (
    "requests",
    "cache_hits",
    "routed_requests",
    "input_tokens",  # uncached input
    "cached_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "images",
    "audio_ms",  # audio billed by duration, in milliseconds
)
MONEY: Final = ("cost_pico", *(f"{unit}_pico" for unit in UNITS), "cache_saved_pico", "routing_saved_pico")
MEASURES: Final = QUANTITIES + MONEY
"""Every summed column of a rollup row, in storage order."""
DIMENSIONS: Final = ("org_id", "start", "project_id", "key_id", "model")
"""The key of a rollup row (``key_id`` is "" for requests made without a key)."""

NO_KEY: Final = ""

_COST = MEASURES.index("cost_pico")
_UNIT_AT: Final = {unit: MEASURES.index(f"{unit}_pico") for unit in UNITS}
_INPUT_TOKENS, _CACHED, _CACHE_WRITE, _OUTPUT, _REASONING, _IMAGES, _AUDIO_MS = (
    MEASURES.index(name)
    for name in (
        "input_tokens",
        "cached_tokens",
        "cache_write_tokens",
        "output_tokens",
        "reasoning_tokens",
        "images",
        "audio_ms",
    )
)


def unit_of(component: str, unit: str | None = None, direction: str | None = None) -> str:
    """The report unit of one cost line (its ``component`` as kakin.pricing names it)."""
    if component.startswith("cache_write"):
        return "cache_write"
    if component.startswith("cache_") and component.endswith("read"):
        return "cached_input"
    if component == "output_reasoning":
        return "reasoning"
    if component.startswith("image") or unit == "image":
        return "images"
    if component == "audio" or component.endswith("_duration") or unit == "second":
        return "audio"
    if component == "request":
        return "requests"
    if component == "cache_storage":
        return "other"
    if direction in ("input", "output"):
        return direction
    return "other"


def measures(record: Mapping[str, Any]) -> list[int]:
    """The rollup measures of one usage record (a row of ``usage_records`` as a dict)."""
    values = [0] * len(MEASURES)
    values[0] = 1
    values[1] = 1 if record["cache_hit"] else 0
    values[2] = 1 if record["routed_from"] else 0
    cost = record["cost_pico"]
    values[_COST] = cost
    values[MEASURES.index("cache_saved_pico")] = record["cache_saved_pico"]
    values[MEASURES.index("routing_saved_pico")] = record["routing_saved_pico"]
    lines = _lines(record["cost_items"])
    itemised = 0
    largest = -1
    for unit, quantity, amount in lines:
        at = _UNIT_AT[unit]
        values[at] += amount
        itemised += amount
        if largest < 0 or abs(values[at]) > abs(values[largest]):
            largest = at
        if unit == "cache_write":
            values[_CACHE_WRITE] += int(quantity)
        elif unit == "reasoning":
            values[_REASONING] += int(quantity)
        elif unit == "images":
            values[_IMAGES] += int(quantity)
        elif unit == "audio":
            values[_AUDIO_MS] += int((quantity * 1000).to_integral_value())
    rest = cost - itemised
    if rest:
        # Rounding between the lines and the charged total, or an amount no line explains.
        at = largest if largest >= 0 and abs(rest) <= len(lines) else _UNIT_AT["other"]
        values[at] += rest
    cached = record["cached_tokens"]
    values[_CACHED] = cached
    values[_INPUT_TOKENS] = max(record["input_tokens"] - cached - values[_CACHE_WRITE], 0)
    values[_OUTPUT] = max(record["output_tokens"] - values[_REASONING], 0)
    return values


def _lines(cost_items: Any) -> list[tuple[str, Decimal, int]]:
    """(unit, quantity, picodollars) of each priced line; anything else is not a line."""
    if cost_items is None:
        return []
    if isinstance(cost_items, str):
        try:
            cost_items = orjson.loads(str(cost_items))  # orjson takes no subclass (JsonText)
        except orjson.JSONDecodeError:
            return []
    if not isinstance(cost_items, list):
        return []
    lines = []
    for item in cost_items:
        if not isinstance(item, dict):
            continue
        component = item.get("component")
        if not isinstance(component, str):
            continue
        try:
            amount = to_pico(Decimal(str(item.get("amount", "0"))))
            quantity = Decimal(str(item.get("quantity", "0")))
        except (InvalidOperation, ValueError, OverflowError):
            continue
        if not quantity.is_finite():
            continue
        unit = unit_of(component, item.get("unit"), item.get("direction"))
        lines.append((unit, quantity, amount))
    return lines


# Buckets -------------------------------------------------------------------------------

_buckets: dict[tuple[str, datetime], tuple[datetime, datetime]] = {}


def buckets(timezone: str, at: datetime) -> tuple[datetime, datetime]:
    """The UTC starts of the local hour and the local day in ``timezone`` that hold ``at``.

    Every timezone's offset is a whole number of quarter hours, so all instants of one UTC
    quarter hour share their local hour and day: one computation per quarter hour."""
    quarter = at.replace(minute=at.minute - at.minute % 15, second=0, microsecond=0)
    known = _buckets.get((timezone, quarter))
    if known is None:
        local = quarter.astimezone(ZoneInfo(timezone))
        hour = local.replace(minute=0).astimezone(UTC)
        day = period_bounds("day", timezone, quarter)[0]
        if len(_buckets) > 8192:
            _buckets.clear()
        known = _buckets[(timezone, quarter)] = (hour, day)
    return known


Key = tuple[str, datetime, str, str, str]


def roll_up(
    records: Iterable[Mapping[str, Any]], timezone_of: Mapping[str, str]
) -> tuple[dict[Key, list[int]], dict[Key, list[int]]]:
    """Hour and day rollups of ``records``: one row per key, records sharing one added up."""
    hours: dict[Key, list[int]] = {}
    days: dict[Key, list[int]] = {}
    for record in records:
        org_id = record["org_id"]
        hour, day = buckets(timezone_of[org_id], record["occurred_at"])
        values = measures(record)
        rest = (record["project_id"], record["key_id"] or NO_KEY, record["model"])
        for table, start in ((hours, hour), (days, day)):
            key = (org_id, start, *rest)
            known = table.get(key)
            if known is None:
                table[key] = values if table is hours else values.copy()
            else:
                for i, value in enumerate(values):
                    known[i] += value
    return hours, days


def rows(rollup: Mapping[Key, list[int]]) -> list[dict[str, Any]]:
    """Rollup entries as row dicts (dimensions and measures by name), in key order."""
    return [
        dict(zip(DIMENSIONS, key, strict=True)) | dict(zip(MEASURES, values, strict=True))
        for key, values in sorted(rollup.items())
    ]
