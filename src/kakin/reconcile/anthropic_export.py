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
    combined,
    count,
    decimal,
    field,
    instant,
    load_json,
    pages,
    text,
    usd,
    whole_days,
)
from kakin.reconcile.mapping import line_items

CENTS = Decimal(100)
DEFAULT_WORKSPACE = ""  # workspace_id null


def read(source: str, name: str) -> ParsedBill:
    found = pages(load_json(source, name), name)
    reports: set[str] = set()
    lines: list[BillLine] = []
    days: list[date] = []
    rows = 0
    for p, page in enumerate(found, 1):
        for b, bucket in enumerate(page["data"]):
            where = f"{name}: page {p}, data[{b}]"
            if not isinstance(bucket, dict):
                raise BillFormatError(f"{where} is not a bucket")
            start = instant(field(bucket, "starting_at", where), f"{where}.starting_at")
            end = instant(field(bucket, "ending_at", where), f"{where}.ending_at")
            day, after = whole_days(start, end, where)
            days += [day, after]
            results = field(bucket, "results", where)
            if not isinstance(results, list):
                raise BillFormatError(f"{where}.results is not a list")
            for r, result in enumerate(results):
                at = f"{where}.results[{r}]"
                if not isinstance(result, dict):
                    raise BillFormatError(f"{at} is not a result")
                report = "costs" if "amount" in result else "usage"
                reports.add(report)
                if len(reports) > 1:
                    raise BillFormatError(f"{at}: cost and usage results in one file; import them apart")
                rows += 1
                lines += _cost(result, day, at) if report == "costs" else _usage(result, day, at)
    if not days:
        raise BillFormatError(f"{name}: no buckets; nothing to import")
    fmt = "anthropic.cost_report" if reports != {"usage"} else "anthropic.usage_report"
    return combined("anthropic", fmt, lines, rows, 0, min(days), max(days))


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
