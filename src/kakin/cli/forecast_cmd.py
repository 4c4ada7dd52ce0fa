"""``kakin forecast``: month-end spend from a CSV of daily spend (date,spend).

The computation is kakin.estimate.forecast_month; this module reads the file and prints the
projection, its range and the weekday pattern it used.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kakin.cli.inputs import parse_date, read_text_file, require_exactly_one
from kakin.cli.ledger_cmds import DbOption
from kakin.cli.output import (
    Column,
    CurrencyOption,
    FormatOption,
    OutputFormat,
    Report,
    display,
    emit,
    resolve_currency,
)

if TYPE_CHECKING:
    from kakin.estimate import MonthForecast
    from kakin.money import FxRate


def register(app: typer.Typer) -> None:
    app.command("forecast")(forecast)


def forecast(
    csv_file: Annotated[
        str | None,
        typer.Argument(
            metavar="CSV_FILE|ORG",
            help="CSV of daily spend (date,spend in USD, header optional), or an organisation: "
            "its recorded spend per local day.",
        ),
    ] = None,
    org: Annotated[
        str | None,
        typer.Option(
            "--org", help="Forecast this organisation's recorded daily spend (its own days) instead."
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Forecast as of this date (default: the last date in the file; with --org, today in its timezone).",
        ),
    ] = None,
    window: Annotated[
        int, typer.Option("--window", help="Days of history to learn the pattern from (7–366).")
    ] = 28,
    fmt: FormatOption = OutputFormat.table,
    currency: CurrencyOption = None,
    database_url: DbOption = None,
) -> None:
    """Month-end forecast from the measured burn rate and weekday pattern, with a low–high range."""
    from kakin.estimate import forecast_month, parse_daily_csv

    fx = resolve_currency(currency)
    if csv_file is not None and org is None and not _names_a_file(csv_file):
        csv_file, org = None, csv_file  # `kakin forecast acme`: not a file, so an organisation
    require_exactly_one(
        [("CSV_FILE", csv_file), ("--org", org)], "forecast from a CSV file or an organisation"
    )
    day = parse_date(as_of, "--as-of")
    if org is not None:
        result, zone = _recorded_forecast(org, day, window, database_url)
    else:
        assert csv_file is not None
        daily = parse_daily_csv(read_text_file(csv_file, "spend CSV"), where=csv_file)
        result = forecast_month(daily, as_of=day, window_days=window)
    reports = forecast_reports(result, fx)
    if org is not None:
        reports[0].notes.append(f"recorded spend of {org} per day in {zone}")
        reports[0].extra["timezone"] = zone
    emit(reports, fmt, fx)


def _recorded_forecast(
    org: str, as_of: date | None, window: int, database_url: str | None
) -> tuple[MonthForecast, str]:
    """The forecast on the organisation's recorded spend per local day (the one the admin API
    and the pages give), and the timezone of those days."""
    from kakin.cli.ledger_cmds import _ledger
    from kakin.reports import Reports
    from kakin.reports.forecast import month_forecast

    with _ledger(database_url) as ledger:
        record = ledger.get_org(org)
        return month_forecast(Reports(ledger), record.id, as_of=as_of, window=window), record.timezone


def forecast_reports(result: MonthForecast, fx: FxRate) -> list[Report]:
    from kakin.estimate.forecast import WEEKDAY_NAMES

    month = f"{result.month:%Y-%m}"
    figures = Report(
        title=f"Month-end forecast for {month} (as of {result.as_of.isoformat()})",
        columns=[Column("figure", "figure"), Column("amount", "amount", "money"), Column("detail", "detail")],
        rows=[
            {
                "figure": "spent to date",
                "amount": result.spent_to_date,
                "detail": f"{result.days_elapsed} of {result.days_in_month} days",
            },
            {
                "figure": "remaining days",
                "amount": result.remaining_projection,
                "detail": f"{result.days_remaining} days at the {result.pattern} pattern",
            },
            {"figure": "projected total", "amount": result.projected, "detail": "spent + remaining"},
            {"figure": "low", "amount": result.low, "detail": "10th percentile (never below spent)"},
            {"figure": "high", "amount": result.high, "detail": "90th percentile"},
            {
                "figure": "burn rate",
                "amount": result.burn_rate,
                "detail": f"mean per day over {result.observed_days} days",
            },
            {"figure": "burn rate, last 7 days", "amount": result.burn_rate_7d, "detail": "mean per day"},
        ],
        notes=[
            f"range: projection ∓ 1.2816 × s × √(m + m²/n), s = {display(result.daily_stdev, 'rate', fx)} day-to-day deviation "
            f"around the pattern, m = {result.days_remaining} remaining days, n = {result.observed_days} observed days",
        ],
        extra={
            "forecast": {
                "month": month,
                "as_of": result.as_of,
                "pattern": result.pattern,
                "days_elapsed": result.days_elapsed,
                "days_remaining": result.days_remaining,
                "observed_days": result.observed_days,
                "spent_to_date": result.spent_to_date,
                "projected": result.projected,
                "low": result.low,
                "high": result.high,
                "burn_rate": result.burn_rate,
                "daily_stdev": result.daily_stdev,
            }
        },
        extra_money=frozenset({"forecast"}),
    )
    remaining = [0] * 7
    for offset in range(1, result.days_remaining + 1):
        remaining[(result.as_of.weekday() + offset) % 7] += 1
    pattern = Report(
        title=f"Daily pattern used ({result.pattern})",
        columns=[
            Column("weekday", "weekday"),
            Column("mean", "mean spend", "money"),
            Column("remaining", "days left this month", "int"),
        ],
        rows=[
            {"weekday": WEEKDAY_NAMES[w], "mean": result.day_means[w], "remaining": remaining[w]}
            for w in range(7)
        ],
    )
    return [figures, pattern]


def _names_a_file(argument: str) -> bool:
    """A path that exists, or one written as a path (a folder in it, a .csv name): a missing
    file then says so rather than looking for an organisation of that name."""
    path = Path(argument)
    return path.exists() or "/" in argument or path.suffix.lower() == ".csv"
