"""Invoice lines from usage records: one line per model, unit and price.

Each usage record's itemised cost (``cost_items``, written by kakin.pricing: component,
quantity, unit, unit price, amount, tier, mode, the price's source and the date it took
effect) is added to the line of the same model, component and price; a price change inside
the month therefore gives two lines. Money adds up exactly to what the ledger charged: a
record's lines are converted to picodollars and the rounding difference between them and the
charged cost (at most a picodollar a line) goes to its largest line, as the rollups do
(:mod:`kakin.ledger.rollups`). A cost its lines do not explain (no itemised cost, or lines
that do not add up to it) is one ``other`` line of the model, counted in requests. A request
answered from kakin's response cache costs nothing and is billed as such: a zero line of
the model, ``cache_hits`` counted in requests at a unit price of 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from kakin.billing.document import Line
from kakin.ledger.rollups import UNITS, unit_of
from kakin.ledger.rollups import _pico as amount_pico

# (section, month, model, component, measure, unit_price, tier, mode, source, effective_from)
LineKey = tuple[str, str, str, str, str, str | None, str | None, str, str, str | None]
CACHE_HITS = "cache_hits"  # the unit (and component) of requests answered from the response cache
_UNIT_ORDER = {unit: i for i, unit in enumerate((*UNITS, CACHE_HITS))}


@dataclass(slots=True)
class _Sum:
    unit: str
    quantity: Decimal | int
    amount_pico: int
    requests: int


@dataclass(frozen=True, slots=True)
class Priced:
    """One priced line of a record, ready to add."""

    key: tuple[str, str, str, str | None, str | None, str, str, str | None]
    unit: str
    quantity: Decimal
    amount_pico: int


class LineBook:
    """Lines being added up, record by record (or by groups of alike records)."""

    def __init__(self) -> None:
        self._sums: dict[LineKey, _Sum] = {}

    def add(
        self,
        section: str,
        month: str,
        model: str,
        cost_pico: int,
        cost_items: Any,
        count: int = 1,
        cache_hit: bool = False,
    ) -> None:
        """Add ``count`` records of ``model`` alike in cost, cost lines and being cache hits."""
        if cache_hit and cost_pico == 0:  # free, and itemised as such rather than as "other"
            hits = (section, month, model, CACHE_HITS, "request", "0", None, "standard", "", None)
            self._add(hits, CACHE_HITS, count, 0, count)
            return
        priced = priced_lines(cost_items)
        if priced and abs(cost_pico - sum(p.amount_pico for p in priced)) > len(priced):
            priced = []  # lines that do not add up to the cost do not explain it
        if not priced:
            other = (section, month, model, "other", "request", None, None, "standard", "", None)
            self._add(other, "other", count, cost_pico * count, count)
            return
        rest = cost_pico - sum(p.amount_pico for p in priced)
        largest = max(range(len(priced)), key=lambda i: abs(priced[i].amount_pico))
        for i, line in enumerate(priced):
            amount = line.amount_pico + (rest if i == largest else 0)
            key = (section, month, model, *line.key)
            self._add(key, line.unit, line.quantity * count, amount * count, count)  # type: ignore[arg-type]

    def _add(self, key: LineKey, unit: str, quantity: Decimal | int, amount: int, requests: int) -> None:
        known = self._sums.get(key)
        if known is None:
            self._sums[key] = _Sum(unit, quantity, amount, requests)
        else:
            known.quantity += quantity
            known.amount_pico += amount
            known.requests += requests

    def lines(self) -> tuple[Line, ...]:
        made = [
            Line(
                section=section,
                month=month,
                model=model,
                unit=total.unit,
                component=component,
                measure=measure,
                quantity=Decimal(total.quantity),
                unit_price=None if price is None else Decimal(price),
                amount_pico=total.amount_pico,
                tier=tier,
                mode=mode,
                price_source=source,
                effective_from=effective,
                requests=total.requests,
            )
            for (section, month, model, component, measure, price, tier, mode, source, effective), total in (
                self._sums.items()
            )
        ]
        made.sort(
            key=lambda line: (
                line.section != "current",
                line.month,
                line.model,
                _UNIT_ORDER.get(line.unit, len(UNITS)),
                line.component,
                line.effective_from or "",
                line.unit_price if line.unit_price is not None else Decimal(-1),
                line.tier or "",
                line.mode,
                line.price_source,
            )
        )
        return tuple(made)


def priced_lines(cost_items: Any) -> list[Priced]:
    """The priced lines of one record's itemised cost; none when one of them is not a
    priced line (then the cost is ``other``)."""
    found: list[Priced] = []
    for item in _parsed(cost_items):
        if type(item) is not dict:
            continue
        component = item.get("component")
        if type(component) is not str:
            continue  # a note, not a priced line
        amount = amount_pico(item.get("amount"))
        given = item.get("quantity")
        quantity = int(given) if type(given) is str and given.isdigit() else _decimal(given)
        price = _price(item.get("unit_price"))
        if amount is None or quantity is None or price is False:
            return []
        measure, direction = _text(item.get("unit")) or "", _text(item.get("direction"))
        unit = _units.get((component, measure, direction))
        if unit is None:
            unit = unit_of(component, measure, direction)
            if len(_units) < 4096:
                _units[(component, measure, direction)] = unit
        key = (
            component,
            measure,
            price,
            _text(item.get("tier")),
            _text(item.get("mode")) or "standard",
            _text(item.get("source")) or "",
            _text(item.get("effective_from")),
        )
        found.append(Priced(key, unit, quantity, amount))  # type: ignore[arg-type]
    return found


_units: dict[tuple[str, str, str | None], str] = {}
_prices: set[str] = set()  # unit prices already checked to be numbers


def _price(value: Any) -> str | bool | None:
    """A unit price as the text it was written in; None when absent; False when not a number."""
    if value is None:
        return None
    text = value if type(value) is str else str(value)
    if text not in _prices:
        if _decimal(text) is None:
            return False
        if len(_prices) < 65536:
            _prices.add(text)
    return text


def _parsed(cost_items: Any) -> Iterable[Any]:
    if cost_items is None:
        return ()
    if isinstance(cost_items, str):
        try:
            cost_items = orjson.loads(str(cost_items))
        except orjson.JSONDecodeError:
            return ()
    if type(cost_items) is dict:
        return (cost_items,)
    return cost_items if type(cost_items) is list else ()


def _decimal(value: Any) -> Decimal | None:
    if type(value) is str and value.isdigit():
        return Decimal(int(value))
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() and number >= 0 else None


def _text(value: Any) -> str | None:
    return value if type(value) is str else None if value is None else str(value)
