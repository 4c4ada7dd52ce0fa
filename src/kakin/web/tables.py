"""One table, three renderings: the page's HTML, and its CSV and JSON exports.

A :class:`Table` holds raw values (exact ``Decimal`` USD, ``int`` counts, text); the page shows
them formatted in the chosen currency, the exports hold the same rows and columns with money
as exact decimals in that currency. So an export is exactly what is on screen.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import orjson
from markupsafe import Markup, escape

from kakin.money import FxRate, decimal_str, format_amount
from kakin.reports import SpendReport

Kind = Literal["text", "int", "money", "decimal", "percent"]


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    kind: Kind = "text"


@dataclass(slots=True)
class Table:
    columns: Sequence[Column]
    rows: list[dict[str, Any]]
    timezone: str
    title: str = ""
    period: tuple[str, str] | None = None  # local ISO start and end
    links: list[str | None] = field(default_factory=list)  # a row's detail URL

    def sort(self, key: str | None, descending: bool) -> None:
        """Order rows by one column (blank values last), keeping links beside their rows."""
        if key is None or key not in {c.key for c in self.columns}:
            return
        pairs = list(zip(self.rows, self.links or [None] * len(self.rows), strict=True))
        present = [p for p in pairs if p[0].get(key) is not None]
        blank = [p for p in pairs if p[0].get(key) is None]
        present.sort(key=lambda p: p[0][key], reverse=descending)
        self.rows = [p[0] for p in present + blank]
        self.links = [p[1] for p in present + blank]


def report_table(report: SpendReport, title: str, columns: list[Column], rows: list[dict[str, Any]]) -> Table:
    """A table of a spend report's rows, over the report's period and in its timezone."""
    period = (report.start.isoformat(), report.end.isoformat())
    return Table(columns, rows, report.timezone, title, period)


def cell(value: Any, kind: Kind, fx: FxRate) -> str:
    """A value as the page shows it."""
    if value is None:
        return "—"
    if kind == "money":
        return format_amount(fx.convert(value), fx.currency)
    if kind == "int":
        return f"{value:,}"
    if kind == "percent":
        return f"{value:.1f}%"
    if kind == "decimal":
        return f"{value:,}"
    return str(value)


def html_rows(table: Table, fx: FxRate, detail: str | None = None) -> list[Markup]:
    """Each row's cells as HTML, values shown as :func:`cell` shows them: built here in one
    pass, as a page of hundreds of rows would spend most of its time doing it cell by cell in
    the template. The cell of column ``detail`` links to the row's detail, which opens beside
    the table (htmx, into ``#detail``)."""
    opens = [f'<td class="{escape(c.kind)}" data-key="{escape(c.key)}">' for c in table.columns]
    out = []
    for n, row in enumerate(table.rows):
        cells = []
        for column, opening in zip(table.columns, opens, strict=True):
            text = escape(cell(row.get(column.key), column.kind, fx))
            if column.key == detail:
                href = escape(table.links[n] or "")
                text = Markup(
                    f'<a href="{href}" hx-get="{href}" hx-target="#detail" hx-swap="innerHTML" '
                    f'data-testid="{escape(detail)}-link">{text}</a>'
                )
            cells.append(f"{opening}{text}</td>")
        out.append(Markup("".join(cells)))
    return out


def export_value(value: Any, kind: Kind, fx: FxRate) -> Any:
    """A value as the exports hold it: exact, money in the chosen currency."""
    if value is None:
        return None
    if kind == "money":
        return decimal_str(fx.convert(value))
    if isinstance(value, Decimal):
        return decimal_str(value)
    return value


def to_csv(table: Table, fx: FxRate) -> str:
    """The table's rows, one column more: the timezone its days and hours are in."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c.key for c in table.columns] + ["currency", "timezone"])
    for row in table.rows:
        values = [export_value(row.get(c.key), c.kind, fx) for c in table.columns]
        writer.writerow(["" if v is None else v for v in values] + [fx.currency, table.timezone])
    return out.getvalue()


def to_json(table: Table, fx: FxRate) -> bytes:
    document = {
        "title": table.title,
        "timezone": table.timezone,
        "from": table.period[0] if table.period else None,
        "to": table.period[1] if table.period else None,
        "currency": fx.currency,
        "rate": {"per_usd": decimal_str(fx.per_usd), "source": fx.source},
        "columns": [{"key": c.key, "label": c.label, "kind": c.kind} for c in table.columns],
        "rows": [
            {c.key: export_value(row.get(c.key), c.kind, fx) for c in table.columns} for row in table.rows
        ],
    }
    return orjson.dumps(document)
