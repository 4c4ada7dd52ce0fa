"""Spend rolled up as it is posted: what every report reads instead of the usage records.

Each usage record adds its measures (requests, tokens and money by unit, savings) to two rows:
one for the organisation's local hour and one for its local day, keyed by project, key and
model. Those rows, summed further over fewer dimensions, fill narrower tables (:data:`TABLES`:
by model, by key, the organisation's total) so that a report reads as few rows as its
grouping and filters allow. All rows are written by :meth:`kakin.ledger.work.Work.flush` in the transaction that
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
record's cost exactly: a rounding difference between the lines and the charged total (at most
a picodollar a line) goes to the largest line; a cost its lines do not explain (no itemised
cost, or lines that do not add up to it) is ``other``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from itertools import repeat
from operator import add
from typing import Any, Final, Literal
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


_unit_at: dict[tuple[Any, Any, Any], int] = {}  # (component, unit, direction) → money column
_COUNTED: Final = {  # units whose quantity comes from the cost lines (the rest from the record)
    _UNIT_AT["cache_write"]: _CACHE_WRITE,
    _UNIT_AT["reasoning"]: _REASONING,
    _UNIT_AT["images"]: _IMAGES,
}
_AUDIO_AT: Final = _UNIT_AT["audio"]
_OUTPUT_AT: Final = _UNIT_AT["output"]
_REASONING_AT: Final = _UNIT_AT["reasoning"]
_OTHER_AT: Final = _UNIT_AT["other"]
_SAVED_CACHE, _SAVED_ROUTING = MEASURES.index("cache_saved_pico"), MEASURES.index("routing_saved_pico")
_ZEROS: Final = [0] * len(MEASURES)


def measures(record: Mapping[str, Any], cost_items: Any = None) -> list[int]:
    """The rollup measures of one usage record (a row of ``usage_records`` as a dict).
    ``cost_items``: its cost items already parsed from the record's JSON text (the charge
    that wrote it parsed them to check them), or None to parse them here."""
    if cost_items is None:
        cost_items = record["cost_items"]
    values = _ZEROS.copy()
    values[0] = 1
    if record["cache_hit"]:
        values[1] = 1
    if record["routed_from"]:
        values[2] = 1
    cost = record["cost_pico"]
    values[_COST] = cost
    values[_SAVED_CACHE] = record["cache_saved_pico"]
    values[_SAVED_ROUTING] = record["routing_saved_pico"]
    lines = _priced_lines(cost_items)
    if lines and abs(cost - sum(line[1] for line in lines)) > len(lines):
        lines = []  # lines that do not add up to the cost do not explain it
    if lines:
        largest = max(lines, key=lambda line: abs(line[1]))[0]
        for at, amount, counted, quantity in lines:
            values[at] += amount
            if counted is not None:
                values[counted] += quantity
        # What rounding left between the lines and the charged total goes to the largest line.
        values[largest] += cost - sum(line[1] for line in lines)
    else:
        values[_OTHER_AT] = cost
    reasoning = record.get("reasoning_tokens") or 0
    if reasoning > values[_REASONING]:  # reported by the provider, billed on the output line
        rate = _output_rate(cost_items) if lines and not values[_REASONING_AT] else None
        if rate is not None:
            moved = min(_pico(str(rate * reasoning)) or 0, values[_OUTPUT_AT])
            values[_OUTPUT_AT] -= moved
            values[_REASONING_AT] += moved
        values[_REASONING] = reasoning
    cached = record["cached_tokens"]
    values[_CACHED] = cached
    values[_INPUT_TOKENS] = max(record["input_tokens"] - cached - values[_CACHE_WRITE], 0)
    values[_OUTPUT] = max(record["output_tokens"] - values[_REASONING], 0)
    return values


Line = tuple[int, int, int | None, int]  # money column, picodollars, quantity column, quantity
_MAX_QUANTITY: Final = 10**13  # as kakin.pricing's largest count
_MAX_AMOUNT_DIGITS: Final = 7  # a line below $10,000,000: no line of one charge comes near it


def _priced_lines(cost_items: Any) -> list[Line]:
    """The priced lines of a record's itemised cost; none when one of them is not a priced
    line (an amount that is not a number, an absurd quantity): the cost is then ``other``."""
    lines: list[Line] = []
    for item in _parsed(cost_items) if cost_items is not None else ():
        if type(item) is not dict or type(item.get("component")) is not str:
            continue  # a note, not a priced line
        unit, direction = item.get("unit"), item.get("direction")
        described = (
            item["component"],
            unit if type(unit) is str else None,
            direction if type(direction) is str else None,
        )
        at = _unit_at.get(described)
        if at is None:
            at = _UNIT_AT[unit_of(*described)]
            if len(_unit_at) < 4096:
                _unit_at[described] = at
        amount = _pico(item.get("amount"))
        if amount is None:
            return []
        counted, quantity = _COUNTED.get(at), 0
        if counted is not None or at == _AUDIO_AT:
            number = _quantity(item.get("quantity"))
            if not 0 <= number <= _MAX_QUANTITY:
                return []
            if at == _AUDIO_AT:
                counted, quantity = _AUDIO_MS, int((number * 1000).to_integral_value())
            else:
                quantity = int(number)
        lines.append((at, amount, counted, quantity))
    return lines


def _output_rate(cost_items: Any) -> Decimal | None:
    """USD per output token, from the record's ``output`` line (reasoning tokens' share)."""
    for item in _parsed(cost_items):
        if type(item) is dict and item.get("component") == "output" and "unit_price" in item:
            rate = _quantity(item["unit_price"])
            return rate if 0 <= rate <= 1 else None
    return None


def _parsed(cost_items: Any) -> Any:
    """Stored cost items as Python values: a list of lines (anything else has none)."""
    if isinstance(cost_items, str):
        try:
            cost_items = orjson.loads(str(cost_items))  # orjson takes no subclass (JsonText)
        except orjson.JSONDecodeError:
            return ()
    if type(cost_items) is dict:
        return (cost_items,)
    return cost_items if type(cost_items) is list else ()


def _pico(amount: Any) -> int | None:
    """A USD amount (a decimal string, as cost lines hold them) in picodollars, or None when
    it is not an amount of at most a charge's size. Amounts of 12 decimals or fewer (all of
    kakin's) are read as text; others go through Decimal."""
    if type(amount) is str:
        whole, dot, fraction = amount.partition(".")
        digits = whole.removeprefix("-")
        if len(fraction) <= 12 and len(digits) <= 7 and digits.isdigit() and (not dot or fraction.isdigit()):
            pico = int(digits) * 10**12 + int(fraction.ljust(12, "0") or 0)
            return -pico if whole.startswith("-") else pico
    try:
        number = Decimal(str(amount))
    except (InvalidOperation, ValueError):
        return None
    # adjusted(): the exponent of the leading digit, read without arithmetic (none can overflow)
    return to_pico(number) if number.is_finite() and number.adjusted() < _MAX_AMOUNT_DIGITS else None


def _quantity(quantity: Any) -> Decimal:
    try:
        number = Decimal(str(quantity))
    except (InvalidOperation, ValueError):
        return Decimal(0)
    return number if number.is_finite() else Decimal(0)


# Buckets -------------------------------------------------------------------------------

_buckets: dict[tuple[str, datetime], tuple[datetime, datetime]] = {}
_last: tuple[datetime | None, str, tuple[datetime, datetime] | None] = (None, "", None)


def buckets(timezone: str, at: datetime) -> tuple[datetime, datetime]:
    """The UTC starts of the local hour and the local day in ``timezone`` that hold ``at``.

    Every timezone's offset is a whole number of quarter hours, so all instants of one UTC
    quarter hour share their local hour and day: one computation per quarter hour. (The
    records of one transaction mostly share their instant: the last is remembered as such.)"""
    global _last
    last_at, last_timezone, last = _last
    if last is not None and last_at == at and last_timezone == timezone:
        return last
    quarter = at.replace(minute=at.minute - at.minute % 15, second=0, microsecond=0)
    known = _buckets.get((timezone, quarter))
    if known is None:
        local = quarter.astimezone(ZoneInfo(timezone))
        hour = local.replace(minute=0).astimezone(UTC)
        day = period_bounds("day", timezone, quarter)[0]
        if len(_buckets) > 8192:
            _buckets.clear()
        known = _buckets[(timezone, quarter)] = (hour, day)
    _last = (at, timezone, known)
    return known


Key = tuple[Any, ...]  # org_id, start, then the table's own dimensions


def roll_up(
    records: Iterable[Mapping[str, Any]],
    timezone_of: Mapping[str, str],
    cost_items: Iterable[Any] | None = None,
) -> tuple[dict[Key, list[int]], dict[Key, list[int]]]:
    """Hour and day rollups of ``records``: one entry per key, records sharing one added up.
    (Entries are replaced, never changed in place, so the two tables may share a list.)
    ``cost_items``: each record's cost items already parsed, or None (see :func:`measures`)."""
    hours: dict[Key, list[list[int]]] = {}
    days: dict[Key, list[list[int]]] = {}
    paired = (
        zip(records, repeat(None), strict=False)  # repeat() has no end
        if cost_items is None
        else zip(records, cost_items, strict=True)
    )
    for record, items in paired:
        org_id = record["org_id"]
        hour, day = buckets(timezone_of[org_id], record["occurred_at"])
        values = measures(record, items)
        project, key, model = record["project_id"], record["key_id"] or NO_KEY, record["model"]
        hours.setdefault((org_id, hour, project, key, model), []).append(values)
        days.setdefault((org_id, day, project, key, model), []).append(values)
    return _added(hours), _added(days)


def _added(grouped: dict[Key, list[list[int]]]) -> dict[Key, list[int]]:
    """The measures of each key's records added up (column by column, in C)."""
    return {
        key: found[0] if len(found) == 1 else list(map(sum, zip(*found, strict=True)))
        for key, found in grouped.items()
    }


def rows(rollup: Mapping[Key, list[int]], dimensions: tuple[str, ...] = DIMENSIONS) -> list[dict[str, Any]]:
    """Rollup entries as row dicts (dimensions and measures by name), in key order."""
    return [
        dict(zip(dimensions, key, strict=True)) | dict(zip(MEASURES, values, strict=True))
        for key, values in sorted(rollup.items())
    ]


# The tables ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """One rollup table: spend by the organisation's local ``grain`` and ``by``."""

    name: str
    grain: Literal["hour", "day"]
    by: tuple[str, ...]  # the dimensions after org_id and start, a subset of the full key's

    @property
    def dimensions(self) -> tuple[str, ...]:
        """The table's key."""
        return ("org_id", "start", *self.by)

    @property
    def full(self) -> bool:
        """Written from the records themselves (the others are these summed further)."""
        return self.by == DIMENSIONS[2:]


TABLES: Final = (
    Table("rollup_hours", "hour", DIMENSIONS[2:]),
    Table("rollup_days", "day", DIMENSIONS[2:]),
    # Narrower: every key's day without its models (by key, by project, one key or project);
    # every model's hour and day (by model, one model); the organisation's hour and day.
    Table("rollup_days_by_key", "day", ("project_id", "key_id")),
    Table("rollup_hours_by_model", "hour", ("model",)),
    Table("rollup_days_by_model", "day", ("model",)),
    Table("rollup_hours_total", "hour", ()),
    Table("rollup_days_total", "day", ()),
)
"""Every rollup table. A report reads the narrowest one of its grain whose dimensions hold
its grouping and its filters (:func:`narrowest`)."""


def narrowest(grain: str, needed: Iterable[str]) -> Table:
    """The table of ``grain`` with the fewest rows that still has the ``needed`` dimensions."""
    wanted = set(needed)
    fitting = [t for t in TABLES if t.grain == grain and wanted <= set(t.by)]
    return min(fitting, key=lambda t: len(t.by))


def summed(rollup: Mapping[Key, list[int]], table: Table) -> dict[Key, list[int]]:
    """Full-key rollup entries (:func:`roll_up`'s) summed into ``table``'s key."""
    picks = [DIMENSIONS.index(d) for d in table.by]
    out: dict[Key, list[int]] = {}
    for key, values in rollup.items():
        at = (key[0], key[1], *[key[i] for i in picks])
        known = out.get(at)
        out[at] = values if known is None else list(map(add, known, values))
    return out


def roll_up_tables(
    records: Iterable[Mapping[str, Any]],
    timezone_of: Mapping[str, str],
    cost_items: Iterable[Any] | None = None,
) -> list[tuple[Table, dict[Key, list[int]]]]:
    """The entries ``records`` add to every table of :data:`TABLES` (``cost_items``: see
    :func:`roll_up`)."""
    hours, days = roll_up(records, timezone_of, cost_items)
    full = {"hour": hours, "day": days}
    return [(t, full[t.grain] if t.full else summed(full[t.grain], t)) for t in TABLES]
