"""An itemised cost: the total and one explainable line per priced component.

Pricing a request computes every amount up front, but builds the ``CostItem`` objects
only when someone reads ``Cost.items``: the gateway settles millions of requests from
``total`` alone, while invoices and ``explain()`` read the lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final, overload

from kakin.catalog.prices import Component, ImagePrice, PricePeriod
from kakin.money import decimal_str, format_amount
from kakin.pricing.slots import slot_builder


@dataclass(frozen=True, slots=True)
class CostItem:
    """One line of a cost: ``quantity`` × ``unit_price`` = ``amount``."""

    component: str
    """input, output, cache_read, cache_write, cache_write_1h, input_audio, image, cache_storage…"""
    quantity: Decimal
    unit: str
    """token, second, request, search, image, token-hour…"""
    unit_price: Decimal
    """USD per one unit."""
    amount: Decimal
    tier: str | None
    """The context tier applied, e.g. "input > 200,000 tokens"."""
    effective_from: date | None
    """Start of the price period used (None: the earliest known prices)."""
    source: str
    """Where the price comes from, e.g. "genai-prices 0.2.3" or "override: kakin.toml"."""
    direction: str | None = None
    """input, output, or None for charges that are neither (searches, storage, requests)."""
    mode: str = "standard"
    """The mode whose rate priced this line (standard, batch, flex, priority, fast)."""
    note: str | None = None
    """Why the line is not billed as asked, e.g. no rate for the served mode on that date."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "quantity": decimal_str(self.quantity),
            "unit": self.unit,
            "unit_price": decimal_str(self.unit_price),
            "amount": decimal_str(self.amount),
            "tier": self.tier,
            "effective_from": self.effective_from.isoformat() if self.effective_from else None,
            "source": self.source,
            "direction": self.direction,
            "mode": self.mode,
            "note": self.note,
        }


class CostItems(Sequence[CostItem]):
    """The lines of a cost, materialised on first access; behaves as a tuple of ``CostItem``."""

    __slots__ = ("_items", "_lines", "_period")

    def __init__(self, lines: list[tuple[Any, ...]], period: PricePeriod | None) -> None:
        self._lines: list[tuple[Any, ...]] | None = lines
        self._period = period
        self._items: tuple[CostItem, ...] | None = None

    @classmethod
    def of(cls, items: Iterable[CostItem]) -> CostItems:
        """Items already built (e.g. read back from storage)."""
        made = cls([], None)
        made._items = tuple(items)
        return made

    def _all(self) -> tuple[CostItem, ...]:
        items = self._items
        if items is None:
            items = self._items = cost_items(self._lines or [], self._period) if self._period else ()
            self._lines = self._period = None
        return items

    @overload
    def __getitem__(self, index: int) -> CostItem: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[CostItem, ...]: ...
    def __getitem__(self, index: int | slice) -> CostItem | tuple[CostItem, ...]:
        return self._all()[index]

    def __len__(self) -> int:
        return len(self._all())

    def __iter__(self) -> Iterator[CostItem]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return self._all() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._all())

    def __repr__(self) -> str:
        return repr(self._all())


@dataclass(frozen=True, slots=True)
class Cost:
    """What a usage costs on a model at a time, with the lines that add up to it."""

    model: str
    provider: str
    total: Decimal
    input: Decimal
    """Sum of the input-side lines (input, cached and cache-write tokens, audio/image input)."""
    output: Decimal
    """Sum of the output-side lines (output, reasoning, audio/image output tokens, images)."""
    items: Sequence[CostItem]
    priced_at: datetime
    mode: str = "standard"
    """The mode the request was served in (or asked for)."""
    billed_mode: str = "standard"
    """The mode whose rates apply: ``mode``, or standard when the model has no rate for
    ``mode`` on that date."""

    @property
    def other(self) -> Decimal:
        """Charges that are neither input nor output: searches, per-request fees, storage, durations."""
        return self.total - self.input - self.output

    def explain(self) -> str:
        """A human-readable breakdown, one line per item, ending with the total."""
        lines = [
            f"{self.provider}/{self.model} ({self.mode_label}) priced at {self.priced_at.isoformat(timespec='seconds')}"
        ]
        for item in self.items:
            tier = f", {item.tier}" if item.tier else ""
            since = f", from {item.effective_from.isoformat()}" if item.effective_from else ""
            lines.append(
                f"  {item.component:<16} {_quantity(item.quantity):>14} {item.unit}"
                f" × ${decimal_str(item.unit_price)} = ${decimal_str(item.amount)}"
                f"  [{item.source}{tier}{since}]"
            )
        if not self.items:
            lines.append("  (nothing billable)")
        lines.append(
            f"  total {format_amount(self.total)} (${decimal_str(self.total)}; "
            f"input ${decimal_str(self.input)}, output ${decimal_str(self.output)})"
        )
        return "\n".join(lines)

    @property
    def mode_label(self) -> str:
        """The mode, and when its rates were missing, that the standard ones apply."""
        if self.billed_mode == self.mode:
            return self.mode
        return f"{self.mode}; the catalog has no {self.mode} rate on this date: {self.billed_mode} rates"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: amounts as exact decimal strings."""
        return {
            "model": self.model,
            "provider": self.provider,
            "mode": self.mode,
            "billed_mode": self.billed_mode,
            "priced_at": self.priced_at.isoformat(),
            "total": decimal_str(self.total),
            "input": decimal_str(self.input),
            "output": decimal_str(self.output),
            "items": [item.to_dict() for item in self.items],
        }


def _quantity(value: Decimal) -> str:
    return f"{value:,}" if value == value.to_integral_value() else decimal_str(value)


_new_item: Final = slot_builder(CostItem)


def line_position(line: tuple[Any, ...]) -> int:
    """Priced lines carry their component's position in display (and summation) order."""
    return line[0]


def cost_items(lines: list[tuple[Any, ...]], period: PricePeriod) -> tuple[CostItem, ...]:
    """The ``CostItem`` of each priced line, in display order (sorts ``lines`` in place)."""
    effective = period.effective_from.date() if period.effective_from is not None else None
    mode, note = _billed_mode(period)
    lines.sort(key=line_position)
    items = []
    for _, priced, count, unit_price, amount, tier in lines:
        if type(priced) is Component:
            unit = priced.unit
            items.append(
                _new_item(
                    unit.component,
                    Decimal(count),
                    unit.unit,
                    unit_price,
                    amount,
                    tier,
                    effective,
                    priced.source,
                    unit.direction,
                    mode,
                    note,
                )
            )
        else:
            table = period.images
            source = _image_source(priced, table.source if table else period.source)
            name = f"image {priced.size} {priced.quality}"
            items.append(
                _new_item(
                    name,
                    Decimal(count),
                    "image",
                    unit_price,
                    amount,
                    None,
                    effective,
                    source,
                    "output",
                    mode,
                    note,
                )
            )
    return tuple(items)


def _billed_mode(period: PricePeriod) -> tuple[str, str | None]:
    """The mode whose rates priced a period's lines, and a note when it is not the one asked."""
    if period.variant or period.mode == "standard":
        return period.mode, None
    return "standard", f"the catalog has no {period.mode} rate on this date: standard rate"


def _image_source(image: ImagePrice, source: str) -> str:
    if image.tokens is None:
        return source
    return f"{source}; {image.tokens:,} output tokens × output rate"
