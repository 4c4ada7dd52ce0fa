"""OpenAI's Admin API exports: ``GET /v1/organization/costs`` and
``GET /v1/organization/usage/completions``, saved as one page or a list of pages.

Costs come in daily buckets (``start_time``/``end_time``, Unix seconds) of results with an
``amount`` in dollars (a number or a decimal string), a free-text ``line_item`` ("gpt-4o-2024-
08-06, cached input") and the ``project_id``; the export must be grouped by line item. Usage
results count ``input_tokens`` (cached ones included), ``input_cached_tokens`` and
``output_tokens`` per model.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

from kakin.reconcile.bills import (
    BillFormatError,
    BillLine,
    ParsedBill,
    count,
    decimal,
    field,
    read_daily_buckets,
    text,
    usd,
)
from kakin.reconcile.mapping import line_items

TOKEN_UNITS = frozenset({"input", "cached_input", "cache_write", "output"})

BOUNDS = ("start_time", "end_time")  # a bucket's start and end
FORMATS = ("openai.costs", "openai.usage")  # the cost export's, the usage export's


def read(source: str, name: str) -> ParsedBill:
    return read_daily_buckets(
        source, name, "openai", bounds=BOUNDS, formats=FORMATS, costs=_costs, usage=_usage
    )


def _costs(result: dict[str, Any], day: date, where: str) -> list[BillLine]:
    amount = field(result, "amount", where)
    if not isinstance(amount, dict):
        raise BillFormatError(f"{where}.amount is not an object with `value` and `currency`")
    cost = decimal(field(amount, "value", f"{where}.amount"), f"{where}.amount.value")
    usd(amount.get("currency"), f"{where}.amount.currency")
    item = result.get("line_item")
    if item is None:
        raise BillFormatError(
            f"{where}: `line_item` is missing; export the costs grouped by line item (group_by=line_item)"
        )
    item = text(item, f"{where}.line_item").strip()
    model, unit = line_items().classify("openai", item)
    tokens = None
    if result.get("quantity") is not None and unit in TOKEN_UNITS:
        tokens = count(result["quantity"], f"{where}.quantity")
    account = text(result.get("project_id") or "", f"{where}.project_id")
    return [BillLine(day, "costs", "usage", account, item, model, unit, cost, tokens)]


def _usage(result: dict[str, Any], day: date, where: str) -> Iterator[BillLine]:
    name = result.get("model")
    if name is None:
        raise BillFormatError(
            f"{where}: `model` is missing; export the usage grouped by model (group_by=model)"
        )
    name = text(name, f"{where}.model").strip()
    given = count(field(result, "input_tokens", where), f"{where}.input_tokens")
    cached = count(result.get("input_cached_tokens") or 0, f"{where}.input_cached_tokens")
    output = count(field(result, "output_tokens", where), f"{where}.output_tokens")
    if cached > given:
        raise BillFormatError(f"{where}: input_cached_tokens ({cached}) exceeds input_tokens ({given})")
    account = text(result.get("project_id") or "", f"{where}.project_id")
    model = line_items().model_key(name)
    for unit, tokens in (("input", given - cached), ("cached_input", cached), ("output", output)):
        yield BillLine(day, "usage", "usage", account, f"{name}, {unit} tokens", model, unit, None, tokens)
