"""Anthropic's Admin API exports: ``GET /v1/organizations/cost_report`` and
``GET /v1/organizations/usage_report/messages``, saved as one page or a list of pages.

Both come in daily buckets (``starting_at``/``ending_at``, RFC 3339). A cost result's
``amount`` is a decimal string in cents of ``currency`` "USD"; ``cost_type``, ``token_type``,
``model``, ``service_tier`` and ``context_window`` say what it is (the report must be grouped
by description), ``workspace_id`` where (null: the default workspace). A usage result counts
``uncached_input_tokens`` (cache excluded), ``cache_read_input_tokens``,
``cache_creation.*`` and ``output_tokens``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
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

CENTS = Decimal(100)
DEFAULT_WORKSPACE = ""  # workspace_id null

BOUNDS = ("starting_at", "ending_at")  # a bucket's start and end
FORMATS = ("anthropic.cost_report", "anthropic.usage_report")  # the cost export's, the usage export's


def read(source: str, name: str) -> ParsedBill:
    return read_daily_buckets(
        source, name, "anthropic", bounds=BOUNDS, formats=FORMATS, costs=_cost, usage=_usage
    )


def _cost(result: dict[str, Any], day: date, where: str) -> list[BillLine]:
    cents = decimal(field(result, "amount", where), f"{where}.amount")
    usd(result.get("currency", "USD"), f"{where}.currency")
    cost_type = result.get("cost_type")
    if cost_type is None:
        raise BillFormatError(
            f"{where}: `cost_type` is missing; export the cost report grouped by description"
        )
    cost_type = text(cost_type, f"{where}.cost_type")
    token_type = result.get("token_type")
    named = result.get("model")
    what = text(token_type, f"{where}.token_type") if cost_type == "tokens" and token_type else cost_type
    model, unit = line_items().classify("anthropic", what, text(named, f"{where}.model") if named else None)
    parts = [named, what, result.get("service_tier"), result.get("context_window")]
    item = ", ".join(str(part) for part in parts if part) or str(result.get("description") or cost_type)
    account = _workspace(result, where)
    return [BillLine(day, "costs", "usage", account, item, model, unit, cents / CENTS, None)]


def _usage(result: dict[str, Any], day: date, where: str) -> Iterator[BillLine]:
    name = result.get("model")
    if name is None:
        raise BillFormatError(f"{where}: `model` is missing; export the usage grouped by model")
    name = text(name, f"{where}.model")
    creation = result.get("cache_creation") or {}
    if not isinstance(creation, dict):
        raise BillFormatError(f"{where}.cache_creation is not an object")
    written = sum(count(v, f"{where}.cache_creation.{k}") for k, v in creation.items() if v is not None)
    counts = (
        ("input", count(field(result, "uncached_input_tokens", where), f"{where}.uncached_input_tokens")),
        (
            "cached_input",
            count(result.get("cache_read_input_tokens") or 0, f"{where}.cache_read_input_tokens"),
        ),
        ("cache_write", written),
        ("output", count(field(result, "output_tokens", where), f"{where}.output_tokens")),
    )
    account = _workspace(result, where)
    model = line_items().model_key(name)
    tier = result.get("service_tier")
    for unit, tokens in counts:
        item = ", ".join(str(part) for part in (name, f"{unit} tokens", tier) if part)
        yield BillLine(day, "usage", "usage", account, item, model, unit, None, tokens)


def _workspace(result: dict[str, Any], where: str) -> str:
    workspace = result.get("workspace_id")
    return DEFAULT_WORKSPACE if workspace is None else text(workspace, f"{where}.workspace_id")
