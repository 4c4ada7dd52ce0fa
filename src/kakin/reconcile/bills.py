"""A provider's export read into bill lines: one shape for every provider and format.

``parse_bill(provider, data)`` recognises the format (OpenAI costs or completions usage,
Anthropic cost or messages usage report, Google Cloud Billing's BigQuery export as JSON lines
or CSV, or the console's cost table CSV), reads every row with exact ``Decimal`` amounts, and
adds up rows that are the same line (same UTC day, report, kind, provider account and line
item). Anything malformed raises :class:`BillFormatError` naming the line or field; nothing
is returned then, so nothing is imported.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from kakin.errors import InvalidInput
from kakin.reconcile.mapping import PROVIDERS, Provider

Report = Literal["costs", "usage"]
Kind = Literal["usage", "credit", "rounding", "adjustment", "tax"]
KINDS: tuple[Kind, ...] = ("usage", "credit", "rounding", "adjustment", "tax")
"""``usage`` lines are compared with kakin's metering; the others are the provider's own
corrections (credits, rounding rows, adjustments, tax), shown beside it and never flagged."""

MAX_BYTES = 512 * 1024 * 1024


class BillFormatError(InvalidInput):
    """An export kakin cannot read; the message names the line or field."""


@dataclass(frozen=True, slots=True)
class BillLine:
    """One line of a provider's bill for one UTC day."""

    day: date
    report: Report  # "costs": money (and maybe quantities); "usage": token counts only
    kind: Kind
    account: str  # the provider's project or workspace ("" when the export names none)
    line_item: str  # the provider's own words for it
    model: str | None  # the model key (kakin.reconcile.mapping), None for lines of no model
    unit: str
    cost: Decimal | None  # USD; None on usage reports
    tokens: int | None  # None when the export does not count them


@dataclass(frozen=True, slots=True)
class ParsedBill:
    provider: Provider
    format: str
    start: date  # the first UTC day the export covers
    end: date  # the day after the last one
    lines: tuple[BillLine, ...]  # one per identity, rows of one line added up
    rows: int  # rows read
    skipped: int  # rows of other services (Google billing accounts bill more than Gemini)


def parse_bill(provider: str, data: bytes, name: str = "the file") -> ParsedBill:
    """Read ``data`` as an export of ``provider`` (see the module docstring)."""
    if provider not in PROVIDERS:
        raise InvalidInput(f"the provider is one of {', '.join(PROVIDERS)}, not {provider!r}")
    if len(data) > MAX_BYTES:
        raise BillFormatError(f"{name} is larger than {MAX_BYTES // 2**20} MiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise BillFormatError(f"{name}: line {line} is not UTF-8 text") from None
    if not text.strip():
        raise BillFormatError(f"{name} is empty")
    from kakin.reconcile import anthropic_export, google_export, openai_export

    readers = {"openai": openai_export.read, "anthropic": anthropic_export.read, "google": google_export.read}
    return readers[provider](text, name)


def combined(
    provider: Provider, fmt: str, lines: Iterable[BillLine], rows: int, skipped: int, start: date, end: date
) -> ParsedBill:
    """The parsed bill, rows of one line added up."""
    merged: dict[tuple[Any, ...], BillLine] = {}
    for line in lines:
        key = identity(line)
        known = merged.get(key)
        if known is not None:
            line = BillLine(
                line.day,
                line.report,
                line.kind,
                line.account,
                line.line_item,
                line.model,
                line.unit,
                _add(known.cost, line.cost),
                _add(known.tokens, line.tokens),
            )
        merged[key] = line
    ordered = sorted(merged.values(), key=lambda b: (b.day, b.report, b.kind, b.account, b.line_item))
    return ParsedBill(provider, fmt, start, end, tuple(ordered), rows, skipped)


RowReader = Callable[[dict[str, Any], date, str], Iterable[BillLine]]
"""Reads one result of a daily bucket (the result, its UTC day, where it is) into bill lines."""


def read_daily_buckets(
    source: str,
    name: str,
    provider: Provider,
    *,
    bounds: tuple[str, str],
    formats: tuple[str, str],
    costs: RowReader,
    usage: RowReader,
) -> ParsedBill:
    """An Admin API export of daily buckets (OpenAI's and Anthropic's), saved as one page or a
    list of pages: each bucket's ``results`` are cost results (with an ``amount``) or usage
    results, never both in one file. ``bounds`` names the bucket's start and end fields,
    ``formats`` the cost and the usage format."""
    found = pages(load_json(source, name), name)
    reports: set[Report] = set()
    lines: list[BillLine] = []
    days: list[date] = []
    rows = 0
    for p, page in enumerate(found, 1):
        for b, bucket in enumerate(page["data"]):
            where = f"{name}: page {p}, data[{b}]"
            if not isinstance(bucket, dict):
                raise BillFormatError(f"{where} is not a bucket")
            start = instant(field(bucket, bounds[0], where), f"{where}.{bounds[0]}")
            end = instant(field(bucket, bounds[1], where), f"{where}.{bounds[1]}")
            day, after = whole_days(start, end, where)
            days += [day, after]
            results = field(bucket, "results", where)
            if not isinstance(results, list):
                raise BillFormatError(f"{where}.results is not a list")
            for r, result in enumerate(results):
                at = f"{where}.results[{r}]"
                if not isinstance(result, dict):
                    raise BillFormatError(f"{at} is not a result")
                report: Report = "costs" if "amount" in result else "usage"
                reports.add(report)
                if len(reports) > 1:
                    raise BillFormatError(f"{at}: cost and usage results in one file; import them apart")
                rows += 1
                lines += (costs if report == "costs" else usage)(result, day, at)
    if not days:
        raise BillFormatError(f"{name}: no buckets; nothing to import")
    fmt = formats[0] if reports != {"usage"} else formats[1]
    return combined(provider, fmt, lines, rows, 0, min(days), max(days))


def identity(line: BillLine) -> tuple[Any, ...]:
    """What makes two rows the same line: a later import of it replaces an earlier one."""
    return (line.day, line.report, line.kind, line.account, line.line_item)


def _add(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return a + b


# Reading values ------------------------------------------------------------------------------


def load_json(text: str, name: str) -> Any:
    """JSON with every number that has a fraction read as ``Decimal`` (never float)."""
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise BillFormatError(f"{name}: line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except ValueError as exc:
        raise BillFormatError(f"{name}: {exc}") from None


def _no_constant(word: str) -> Any:
    raise ValueError(f"{word} is not an amount")


def pages(document: Any, name: str) -> list[dict[str, Any]]:
    """An API answer saved as one page, or a list of pages."""
    found = document if isinstance(document, list) else [document]
    for n, page in enumerate(found):
        if not isinstance(page, dict) or not isinstance(page.get("data"), list):
            where = f"page {n + 1}" if isinstance(document, list) else "the document"
            raise BillFormatError(f"{name}: {where} is not an API page (an object with a `data` list)")
    return found


def field(row: dict[str, Any], key: str, where: str, *, required: bool = True) -> Any:
    if key not in row or row[key] is None:
        if required:
            raise BillFormatError(f"{where}: `{key}` is missing")
        return None
    return row[key]


def decimal(value: Any, where: str) -> Decimal:
    """An exact amount from a JSON number, a decimal string or a CSV cell."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise BillFormatError(f"{where}: {value!r} is not an amount")
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip().replace(",", ""))
    except InvalidOperation:
        raise BillFormatError(f"{where}: {value!r} is not an amount") from None
    if not number.is_finite():
        raise BillFormatError(f"{where}: {value!r} is not a finite amount")
    return number


def count(value: Any, where: str) -> int:
    """A token count: a whole, non-negative number."""
    number = decimal(value, where)
    if number < 0 or number != number.to_integral_value():
        raise BillFormatError(f"{where}: {value!r} is not a token count")
    return int(number)


def text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise BillFormatError(f"{where}: {value!r} is not text")
    return value


def instant(value: Any, where: str) -> datetime:
    """Unix seconds, or an RFC 3339 / BigQuery timestamp, as an aware UTC datetime."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise BillFormatError(f"{where}: {value!r} is not a time") from None
    if isinstance(value, str):
        raw = value.strip().replace(" UTC", "+00:00").replace("Z", "+00:00")
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            raise BillFormatError(f"{where}: {value!r} is not a time") from None
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    raise BillFormatError(f"{where}: {value!r} is not a time")


def usd(currency: Any, where: str) -> None:
    if not isinstance(currency, str) or currency.strip().upper() != "USD":
        raise BillFormatError(
            f"{where}: the currency is {currency!r}; kakin compares bills in USD (export the bill in USD)"
        )


def whole_days(start: datetime, end: datetime, where: str) -> tuple[date, date]:
    """A daily bucket's UTC day; a bucket that is not one UTC day is refused."""
    if start.time() != time(0) or end - start != timedelta(days=1):
        raise BillFormatError(
            f"{where}: the bucket {start.isoformat()} to {end.isoformat()} is not one UTC day "
            "(export with daily buckets)"
        )
    return start.date(), end.date()
