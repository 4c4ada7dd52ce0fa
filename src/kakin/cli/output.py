"""What every CLI command shares: error handling, currency, and table/JSON/CSV rendering.

Commands build a :class:`Report` (columns, rows, totals and notes, amounts in exact USD) and
hand it to :func:`emit`, which converts money to the display currency and renders it in the
format asked for. Keeping the numbers apart from their rendering is what lets every report
speak table, JSON and CSV with the same figures: JSON and CSV carry exact decimal strings,
tables round for reading.

Errors a user can cause never show a traceback: :class:`KakinGroup` (the root command class)
prints them as one line on stderr and exits with code 2.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import Enum, StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

import typer
from typer.core import TyperGroup

from kakin.errors import KakinError
from kakin.money import USD, FxRate, MoneyError, decimal_str, format_amount, fx_rate, minor_units

EXIT_USER_ERROR = 2

# The click that Typer runs on (recent Typer releases ship their own copy of it).
_click_exceptions = importlib.import_module(typer.BadParameter.__module__)
_PASS_THROUGH: tuple[type[BaseException], ...] = tuple(
    getattr(_click_exceptions, name)
    for name in ("Exit", "Abort", "NoArgsIsHelpError")
    if hasattr(_click_exceptions, name)
)
_UsageError: type[Exception] = _click_exceptions.UsageError


# --------------------------------------------------------------------------- errors


def _user_error_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [KakinError, MoneyError]
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None:  # only loaded when settings were read
        types.append(pydantic.ValidationError)
    return tuple(types)


def one_line(message: str) -> str:
    """Collapse a message to a single line (some library messages span several)."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def fail(message: str) -> NoReturn:
    """Print ``error: <message>`` on stderr and exit with code 2."""
    typer.echo(f"error: {one_line(message)}", err=True)
    raise typer.Exit(EXIT_USER_ERROR)


class KakinGroup(TyperGroup):
    """Root command group: user errors become one line on stderr and exit code 2.

    Handled here rather than in ``main()`` so that the behaviour is the same under
    ``typer.testing.CliRunner`` and for command groups other packages register."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except _PASS_THROUGH:
            raise
        except _UsageError as exc:
            where = exc.ctx.command_path if getattr(exc, "ctx", None) is not None else "kakin"  # type: ignore[attr-defined]
            fail(f"{exc.format_message()} (see '{where} --help')")  # type: ignore[attr-defined]
        except _user_error_types() as exc:
            fail(str(exc))


def run_app(app: typer.Typer) -> None:
    """Run ``app`` as the console entry point (Typer exits with the command's code)."""
    app()


# --------------------------------------------------------------------------- options


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


FormatOption = Annotated[
    OutputFormat,
    typer.Option("--format", "-f", help="table (for reading), json or csv (exact decimal strings)."),
]
ModeOption = Annotated[
    str, typer.Option("--mode", help="Pricing mode: standard, batch, flex, priority or fast.")
]
AtOption = Annotated[
    str | None, typer.Option("--at", help="Price at this date (YYYY-MM-DD, UTC) instead of now.")
]
ProviderOption = Annotated[
    str | None,
    typer.Option("--provider", help="openai, anthropic, google or azure (default: from the name)."),
]
CurrencyOption = Annotated[
    str | None,
    typer.Option(
        "--currency",
        # "\\[" keeps the brackets: help text is Rich markup, where [currency] would be a style tag.
        help="Display currency (ISO code, e.g. USD, JPY). Rate from kakin.toml \\[currency.rates], "
        "KAKIN_FX_<CODE>, or the labelled default. Default: \\[currency] display, else USD.",
    ),
]


def resolve_currency(code: str | None) -> FxRate:
    """The display rate for ``--currency`` (or the configured display currency)."""
    if code is not None and code.strip().upper() == USD:
        return fx_rate(USD)
    settings = _settings()
    rates = dict(settings.currency.rates) if settings is not None else {}
    if code is None:
        code = settings.currency.display if settings is not None else USD
    return fx_rate(code, rates)


def _settings() -> Any:
    """kakin.toml settings when a file or KAKIN_ variables exist; None otherwise (fast path)."""
    if not (os.environ.get("KAKIN_CONFIG") or Path("kakin.toml").exists() or _has_kakin_env()):
        return None
    from kakin.config import load_settings

    return load_settings()


def configured_rates() -> dict[str, Decimal]:
    """Display rates from kakin.toml ``[currency] rates`` (empty without a file)."""
    settings = _settings()
    return dict(settings.currency.rates) if settings is not None else {}


def _has_kakin_env() -> bool:
    return any(name.startswith("KAKIN_") and not name.startswith("KAKIN_FX_") for name in os.environ)


def load_catalog() -> Any:
    """The price catalog (with kakin.toml's ``[catalog]`` overrides when the file has any)."""
    from kakin.catalog import Catalog

    return Catalog.default()


# --------------------------------------------------------------------------- reports

Kind = Literal["text", "number", "int", "money", "decimal", "percent", "rate", "factor"]


@dataclass(frozen=True, slots=True)
class Column:
    """One column. ``money`` values are USD Decimals converted to the display currency;
    ``rate`` values are small per-unit prices (converted, shown with 4 significant digits);
    ``factor`` values are ratios shown as "2.5×". ``table=False`` keeps a column out of
    the table (JSON and CSV still carry it); ``wrap=True`` lets long text break over lines
    (other cells never break: a terminal too narrow for them leaves columns out, see
    :func:`fit_columns`)."""

    key: str
    header: str
    kind: Kind = "text"
    table: bool = True
    wrap: bool = False
    optional: bool = False
    """True: among the first columns left out of a table too wide for the terminal."""
    export: bool = True
    """False: a reading aid for the table only, not part of the JSON/CSV data."""


@dataclass(slots=True)
class Report:
    """A titled table of rows plus totals, notes and extra JSON fields."""

    title: str
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    total: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    """Extra top-level JSON fields (amounts inside are converted like money columns when
    listed in ``extra_money``)."""
    extra_money: frozenset[str] = frozenset()
    row_style: Callable[[dict[str, Any]], str | None] | None = None


def emit(reports: Report | Sequence[Report], fmt: OutputFormat, fx: FxRate, console: Any = None) -> None:
    """Render one or more reports to stdout in ``fmt`` and display currency ``fx``."""
    items = [reports] if isinstance(reports, Report) else list(reports)
    if fmt is OutputFormat.json:
        payloads = [report_json(r, fx) for r in items]
        typer.echo(json.dumps(payloads[0] if len(payloads) == 1 else payloads, ensure_ascii=False, indent=2))
    elif fmt is OutputFormat.csv:
        typer.echo("\n".join(report_csv(r, fx) for r in items), nl=False)
    else:
        from rich.console import Console

        out = console or Console()
        for report in items:
            print_table(report, fx, out)


def fx_json(fx: FxRate) -> dict[str, str]:
    return {"currency": fx.currency, "per_usd": decimal_str(fx.per_usd), "source": fx.source}


def json_value(value: Any, kind: Kind, fx: FxRate) -> Any:
    """A cell for JSON: money as a decimal string in the display currency."""
    if value is None:
        return None
    if kind in ("money", "rate"):
        return decimal_str(fx.convert(value))
    if isinstance(value, bool):
        return value
    if isinstance(value, Decimal):
        return decimal_str(value)
    if isinstance(value, Enum):
        return value.value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _extra_json(value: Any, fx: FxRate, money: bool) -> Any:
    if isinstance(value, Mapping):
        return {k: _extra_json(v, fx, money) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_extra_json(v, fx, money) for v in value]
    if isinstance(value, Decimal):
        return decimal_str(fx.convert(value) if money else value)
    return json_value(value, "text", fx)


def report_json(report: Report, fx: FxRate) -> dict[str, Any]:
    columns = [c for c in report.columns if c.export]
    payload: dict[str, Any] = {"report": report.title, "fx": fx_json(fx)}
    payload["rows"] = [
        {c.key: json_value(row.get(c.key), c.kind, fx) for c in columns} for row in report.rows
    ]
    if report.total is not None:
        payload["total"] = {
            c.key: json_value(report.total[c.key], c.kind, fx) for c in columns if c.key in report.total
        }
    for key, value in report.extra.items():
        payload[key] = _extra_json(value, fx, key in report.extra_money)
    if report.notes:
        payload["notes"] = list(report.notes)
    return payload


def report_csv(report: Report, fx: FxRate) -> str:
    columns = [c for c in report.columns if c.export]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([_csv_header(c, fx) for c in columns])
    rows = list(report.rows)
    if report.total is not None:
        rows.append(report.total)
    for row in rows:
        writer.writerow(
            ["" if row.get(c.key) is None else json_value(row.get(c.key), c.kind, fx) for c in columns]
        )
    return buffer.getvalue()


def _csv_header(column: Column, fx: FxRate) -> str:
    return f"{column.key}_{fx.currency.lower()}" if column.kind in ("money", "rate") else column.key


def display(value: Any, kind: Kind, fx: FxRate) -> str:
    """A cell for reading: money rounded for display, exact enough never to show zero."""
    if value is None:
        return "—"
    if kind == "money":
        return format_amount(fx.convert(value), fx.currency)
    if kind == "rate":
        return format_rate(fx.convert(value), fx.currency)
    if kind == "factor":
        return f"{Decimal(value).quantize(Decimal('0.01')):,}×"
    if kind == "percent":
        return f"{decimal_str((Decimal(value) * 100).quantize(Decimal('0.1')))}%"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "number":
        return decimal_str(value) if isinstance(value, Decimal) else str(value)
    if kind == "decimal":
        number = Decimal(value)
        if number == number.to_integral_value():
            return f"{int(number):,}"
        return f"{number.quantize(Decimal('0.01')):,f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Enum):
        return str(value.value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def format_rate(amount: Decimal, currency: str, significant: int = 4) -> str:
    """A per-unit price: at least ``significant`` digits (¥1.078, not ¥1), grouped thousands."""
    places = minor_units(currency)
    if (
        amount == 0
        or abs(amount) < Decimal(1).scaleb(-places)
        or amount.adjusted() >= significant - 1 - places
    ):
        return format_amount(amount, currency, significant=significant)
    exponent = min(amount.adjusted() - significant + 1, -places)
    text = f"{abs(amount).quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_UP):,f}"
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0").ljust(places, "0")
    symbol = format_amount(Decimal(0), currency).rstrip("0.,")
    return ("-" if amount < 0 else "") + symbol + whole + ("." + fraction if fraction else "")


def print_table(report: Report, fx: FxRate, console: Any) -> None:
    from rich import box
    from rich.table import Table

    has_total = report.total is not None
    columns = [c for c in report.columns if c.table]
    cells = [[display(row.get(c.key), c.kind, fx) for c in columns] for row in report.rows]
    footers = [
        display(report.total.get(c.key), c.kind, fx) if has_total and c.key in report.total else ""  # type: ignore[union-attr]
        for c in columns
    ]
    shown, widths = fit_columns(
        columns, [[line[i] for line in cells] + [footers[i]] for i in range(len(columns))], console.width
    )
    table = Table(
        title=report.title,
        title_justify="left",
        show_footer=has_total,
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for index in shown:
        column = columns[index]
        # Widths are decided above, so Rich never shortens a cell: headers and wrapping
        # columns break between words (folding a longer word), every other cell fits whole.
        table.add_column(
            column.header,
            justify="left" if column.kind == "text" else "right",
            footer=footers[index],
            width=widths[index],
            overflow="fold",
        )
    cells = [[line[i] for i in shown] for line in cells]
    for row, line in zip(report.rows, cells, strict=True):
        style = report.row_style(row) if report.row_style else None
        table.add_row(*line, style=style)
    console.print(table)
    notes = list(report.notes)
    hidden = [c.header for i, c in enumerate(columns) if i not in shown]
    if hidden:
        notes.append(
            f"not shown at this width: {', '.join(hidden)} (a wider terminal or --format json shows them)"
        )
    if fx.currency != USD and any(c.kind in ("money", "rate") for c in report.columns):
        notes.append(f"amounts in {fx.currency} at {fx.describe()}")
    for note in notes:
        console.print(f"  {note}", highlight=False, markup=False, soft_wrap=True)


# A table's borders and padding: one space at each edge, three between columns.
_EDGES, _BETWEEN = 2, 3
# A wrapping column is never narrowed below its longest word, up to this many characters.
_LONGEST_WORD = 24


def fit_columns(
    columns: Sequence[Column], values: Sequence[Sequence[str]], width: int
) -> tuple[list[int], list[int]]:
    """Which columns a table ``width`` wide shows, and how wide each one is.

    A cell never loses characters. Cells of ordinary columns (numbers, amounts, dates, ids)
    stay on one line, so their column is as wide as its widest cell; ``wrap`` columns share
    what is left, breaking between words. When even that is too wide, columns are left out —
    empty ones first, then ``optional`` ones, then from the right; the first column always stays."""
    from rich.cells import cell_len

    natural, least = [], []
    for column, texts in zip(columns, values, strict=True):
        widest = max([cell_len(column.header), *(cell_len(t) for t in texts)])
        word = max(cell_len(w) for t in [column.header, *texts] for w in (t.split() or [""]))
        natural.append(widest)
        if column.wrap:
            least.append(min(widest, max(10, min(word, _LONGEST_WORD))))
        else:  # its header may break between words, its cells may not
            least.append(max([*(cell_len(t) for t in texts), *(cell_len(w) for w in column.header.split())]))
    shown = list(range(len(columns)))
    empty = {i for i, texts in enumerate(values) if set(texts) <= {"", "—"}}  # "—": display(None)
    leave_out = sorted(reversed(shown[1:]), key=lambda i: (i not in empty, not columns[i].optional))

    def room() -> int:
        return width - _EDGES - _BETWEEN * (len(shown) - 1)

    while sum(least[i] for i in shown) > room() and leave_out:
        shown.remove(leave_out.pop(0))
    widths = list(least)
    spare = room() - sum(least[i] for i in shown)
    growing = sorted((i for i in shown if natural[i] > least[i]), key=lambda i: natural[i] - least[i])
    for n, index in enumerate(growing):  # the spare width, shared; what one column cannot use goes on
        extra = min(natural[index] - least[index], max(spare, 0) // (len(growing) - n))
        widths[index] += extra
        spare -= extra
    return shown, widths
