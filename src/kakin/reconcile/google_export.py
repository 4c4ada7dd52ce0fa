"""Google Cloud Billing exports of the Gemini API's costs.

Three shapes are read:

* the standard usage cost export to BigQuery, saved as JSON lines (nested fields:
  ``service.description``, ``sku.description``, ``usage_start_time``, ``project.id``, ``cost``
  before credits, ``credits[]`` with negative amounts, ``currency``, ``usage.amount``/``unit``,
  ``cost_type``: regular, tax, adjustment or rounding error);
* the same rows as CSV, one column per field by its dotted name (``credits`` as a JSON list);
* the console's cost table download: lines of preamble before the header, then one row per
  project, SKU and day, a "Rounding error" row and a "Total" row (never counted).

Rows of services other than the Gemini API (a billing account pays for more) are skipped.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from kakin.reconcile.bills import (
    BillFormatError,
    BillLine,
    Kind,
    ParsedBill,
    combined,
    count,
    decimal,
    instant,
    load_json,
    text,
    usd,
)
from kakin.reconcile.mapping import line_items

TOKEN_UNITS = frozenset({"input", "cached_input", "cache_write", "output"})
TOKEN_MEASURES = frozenset({"count", "token", "tokens"})
_KINDS: dict[str, Kind] = {
    "regular": "usage",
    "usage": "usage",
    "rounding error": "rounding",
    "rounding": "rounding",
    "adjustment": "adjustment",
    "tax": "tax",
    "credit": "credit",
}
_CONSOLE = {  # the console's column headings → the export's field names
    "service description": "service.description",
    "sku description": "sku.description",
    "cost type": "cost_type",
    "usage start date": "usage_start_time",
    "project id": "project.id",
    "usage amount": "usage.amount",
    "usage unit": "usage.unit",
}
_CONSOLE_COST = re.compile(r"(unrounded )?cost \((?P<currency>[^)]*)\)", re.IGNORECASE)
_CONSOLE_CREDITS = ("discounts", "promotions and others", "credits")

Getter = Callable[[str], Any]


def read(source: str, name: str) -> ParsedBill:
    if source.lstrip().startswith("{"):
        return _finish("google.bigquery_jsonl", _json_lines(source, name), name)
    lines = source.splitlines()
    for number, line in enumerate(lines):
        heading = line.lower()
        if "service.description" in heading or "sku.description" in heading:
            return _finish("google.bigquery_csv", _bigquery_csv(lines, number, name), name)
        if "sku description" in heading and "cost type" in heading:
            return _finish("google.console_csv", _console_csv(lines, number, name), name)
    raise BillFormatError(
        f"{name}: not a Cloud Billing export (JSON lines, or CSV with a `sku.description` or "
        "`SKU description` column)"
    )


def _finish(fmt: str, rows: Iterator[list[BillLine] | None], name: str) -> ParsedBill:
    lines: list[BillLine] = []
    read_rows = skipped = 0
    for found in rows:
        read_rows += 1
        if found is None:
            skipped += 1
        else:
            lines += found
    if not lines:
        raise BillFormatError(f"{name}: no Gemini API rows ({read_rows} rows of other services)")
    days = [line.day for line in lines]
    return combined("google", fmt, lines, read_rows, skipped, min(days), max(days) + timedelta(days=1))


def _json_lines(source: str, name: str) -> Iterator[list[BillLine] | None]:
    for number, line in enumerate(source.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{name}: line {number}"
        row = load_json(line, where)
        if not isinstance(row, dict):
            raise BillFormatError(f"{where} is not an object")
        yield _row(lambda key, row=row: _nested(row, key), where)


def _nested(row: dict[str, Any], key: str) -> Any:
    value: Any = row
    for part in key.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _bigquery_csv(lines: list[str], header: int, name: str) -> Iterator[list[BillLine] | None]:
    reader = csv.reader(io.StringIO("\n".join(lines[header:])))
    columns = [c.strip() for c in next(reader)]
    for number, cells in enumerate(reader, header + 2):
        if not any(c.strip() for c in cells):
            continue
        where = f"{name}: line {number}"
        if len(cells) != len(columns):
            raise BillFormatError(f"{where} has {len(cells)} cells; the header has {len(columns)}")
        row = dict(zip(columns, cells, strict=True))

        def get(key: str, row: dict[str, str] = row, where: str = where) -> Any:
            value = row.get(key, row.get(key.replace(".", "_")))
            if key == "credits" and value:
                return load_json(value, f"{where}, column credits")
            return value if value not in (None, "") else None

        yield _row(get, where)


def _console_csv(lines: list[str], header: int, name: str) -> Iterator[list[BillLine] | None]:
    reader = csv.reader(io.StringIO("\n".join(lines[header:])))
    columns = [c.strip() for c in next(reader)]
    fields: dict[str, str] = {}
    credit_columns: list[str] = []
    cost_column, cost_rank = None, -1
    for column in columns:
        lowered = column.lower()
        if lowered in _CONSOLE:
            fields[_CONSOLE[lowered]] = column
        found = _CONSOLE_COST.fullmatch(column)
        if found is not None:
            if found["currency"].strip() not in ("$", "USD", "US$"):
                usd(found["currency"], f"{name}: column {column!r}")
            rank = 1 if found.group(1) else 0  # the unrounded cost when the table has it
            if rank > cost_rank:
                cost_column, cost_rank = column, rank
        elif lowered.split(" (")[0] in _CONSOLE_CREDITS:
            credit_columns.append(column)
    missing = [c for c in ("service.description", "sku.description", "usage_start_time") if c not in fields]
    if cost_column is None or missing:
        wanted = [k for k, v in _CONSOLE.items() if v in missing] + ([] if cost_column else ["cost ($)"])
        raise BillFormatError(f"{name}: the cost table has no column {', '.join(map(repr, wanted))}")
    for number, cells in enumerate(reader, header + 2):
        if not any(c.strip() for c in cells):
            continue
        where = f"{name}: line {number}"
        if len(cells) > len(columns):
            raise BillFormatError(f"{where} has {len(cells)} cells; the header has {len(columns)}")
        row = dict(zip(columns, cells, strict=False))
        if any(cell.strip().lower() == "total" for cell in cells[:3]):
            continue  # the table's own sum
        credits = [
            {"name": column, "amount": row[column]}
            for column in credit_columns
            if row.get(column, "").strip()
        ]

        def get(key: str, row: dict[str, str] = row, credits: list[dict[str, str]] = credits) -> Any:
            if key == "cost":
                return row.get(cost_column or "") or None
            if key == "currency":
                return "USD"
            if key == "credits":
                return credits
            value = row.get(fields.get(key, ""), "").strip()
            return value or None

        yield _row(get, where)


def _row(get: Getter, where: str) -> list[BillLine] | None:
    """One export row as bill lines (its cost, then each credit), or None for another service."""
    cost_type = (get("cost_type") or "regular").strip().lower()
    kind = _KINDS.get(cost_type)
    if kind is None:
        raise BillFormatError(f"{where}: cost_type {cost_type!r} is not one of {', '.join(_KINDS)}")
    service = (get("service.description") or "").strip()
    sku = (get("sku.description") or "").strip()
    if service not in line_items().services("google") and kind != "rounding":
        return None
    start = get("usage_start_time")
    if start is None:
        raise BillFormatError(f"{where}: usage_start_time is missing")
    day: date = instant(start, f"{where}, usage_start_time").date()
    raw_cost = get("cost")
    if raw_cost is None:
        raise BillFormatError(f"{where}: cost is missing")
    cost = decimal(raw_cost, f"{where}, cost")
    usd(get("currency"), f"{where}, currency")
    account = text(get("project.id") or "", f"{where}, project.id")
    model, unit = line_items().classify("google", sku) if sku else (None, "other")
    tokens = None
    measure = (get("usage.unit") or "").strip().lower()
    if (
        kind == "usage"
        and unit in TOKEN_UNITS
        and measure in TOKEN_MEASURES
        and get("usage.amount") is not None
    ):
        tokens = count(get("usage.amount"), f"{where}, usage.amount")
    item = sku or cost_type
    found = [BillLine(day, "costs", kind, account, item, model, unit, cost, tokens)]
    credits = get("credits") or []
    if not isinstance(credits, list):
        raise BillFormatError(f"{where}, credits: not a list")
    for n, credit in enumerate(credits):
        if not isinstance(credit, dict):
            raise BillFormatError(f"{where}, credits[{n}]: not an object")
        amount: Decimal = decimal(credit.get("amount"), f"{where}, credits[{n}].amount")
        if amount:
            label = str(credit.get("type") or credit.get("name") or "credit")
            found.append(
                BillLine(day, "costs", "credit", account, f"{item}: {label}", model, unit, amount, None)
            )
    return found
