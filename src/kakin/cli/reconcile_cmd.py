"""``kakin reconcile import|show|imports``: the providers' own bills beside kakin's metering.

The figures come from kakin.reconcile (the same comparison the admin API and the dashboard
show); this module reads options and turns the result into tables, JSON and CSV.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kakin.cli.ledger_cmds import DbOption, _ledger
from kakin.cli.output import (
    Column,
    CurrencyOption,
    FormatOption,
    OutputFormat,
    Report,
    emit,
    fail,
    resolve_currency,
)
from kakin.cli.report_cmds import _org

if TYPE_CHECKING:
    from kakin.reconcile import BillImport, Reconciliation

reconcile_app = typer.Typer(
    help="Reconcile with the providers' own bills: import their cost and usage exports, compare them "
    "with kakin's metering per UTC day, model and unit."
)

ProviderOption = Annotated[str, typer.Option("--provider", "-p", help="openai, anthropic or google")]
OrgOption = Annotated[
    str | None, typer.Option("--org", help="organisation id or name (default: the only one)")
]
_SIDE_BY_SIDE = (
    Column("kakin_tokens", "kakin tokens", "int"),
    Column("provider_tokens", "provider tokens", "int"),
    Column("kakin_cost", "kakin cost", "money"),
    Column("provider_cost", "provider cost", "money"),
    Column("difference", "difference", "money"),
)
"""kakin's figures beside the bill's, in the units' table and the lines'."""


def register(app: typer.Typer) -> None:
    reconcile_app.info.no_args_is_help = True
    app.add_typer(reconcile_app, name="reconcile")


@reconcile_app.command("import")
def import_bill(
    file: Annotated[
        Path,
        typer.Argument(help="the export: JSON (API pages), JSON lines or CSV", exists=True, dir_okay=False),
    ],
    provider: ProviderOption,
    org: OrgOption = None,
    fmt: FormatOption = OutputFormat.table,
    database_url: DbOption = None,
) -> None:
    """Import a provider's cost or usage export into an organisation (the same file twice changes nothing)."""
    from kakin.reconcile import BillStore

    with _ledger(database_url) as ledger:
        done = BillStore(ledger).import_bill(_org(ledger, org), provider, file.read_bytes(), file.name)
    emit(
        imports_report([done], f"{'Imported' if done.new else 'Already imported'} {file.name}"),
        fmt,
        resolve_currency("USD"),
    )


@reconcile_app.command("imports")
def list_imports(
    org: Annotated[str | None, typer.Argument(help="organisation id or name (default: the only one)")] = None,
    provider: Annotated[str | None, typer.Option("--provider", "-p", help="only this provider's")] = None,
    fmt: FormatOption = OutputFormat.table,
    database_url: DbOption = None,
) -> None:
    """The bills imported into an organisation."""
    from kakin.reconcile import BillStore

    with _ledger(database_url) as ledger:
        found = BillStore(ledger).imports(_org(ledger, org), provider)
    emit(imports_report(found, "Imported bills"), fmt, resolve_currency("USD"))


@reconcile_app.command("show")
def show(
    org: Annotated[str | None, typer.Argument(help="organisation id or name (default: the only one)")] = None,
    provider: ProviderOption = "openai",
    start: Annotated[
        str | None, typer.Option("--from", help="first UTC day (YYYY-MM-DD); default: the bills' first")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="UTC day after the last; default: the bills' end")
    ] = None,
    account: Annotated[
        list[str] | None,
        typer.Option(
            "--account",
            help="a provider project/workspace kakin's traffic uses (repeat); others are "
            "traffic outside kakin. Default: all are compared",
        ),
    ] = None,
    tolerance: Annotated[
        str, typer.Option("--tolerance", help="USD a line may differ by and match")
    ] = "0.01",
    relative: Annotated[
        str, typer.Option("--relative", help="share of the larger side a line may differ by")
    ] = "0.01",
    lag_days: Annotated[
        int, typer.Option("--lag-days", help="last days the provider may not have finished")
    ] = 1,
    flagged_only: Annotated[bool, typer.Option("--flagged", help="only the lines flagged")] = False,
    fmt: FormatOption = OutputFormat.table,
    currency: CurrencyOption = None,
    database_url: DbOption = None,
) -> None:
    """A provider's bill beside kakin's metering per UTC day × model × unit, with verdicts."""
    from kakin.money import to_decimal
    from kakin.reconcile import Reconciler, Tolerance

    fx = resolve_currency(currency)
    limits = Tolerance(to_decimal(tolerance, what="--tolerance"), to_decimal(relative, what="--relative"))
    with _ledger(database_url) as ledger:
        result = Reconciler(ledger).compare(
            _org(ledger, org), provider, start=start, end=end, tolerance=limits, accounts=account or (),
            lag_days=lag_days,
        )  # fmt: skip
    emit(reconciliation_reports(result, flagged_only), fmt, fx)


def imports_report(found: list[BillImport], title: str) -> Report:
    if not found and title == "Imported bills":
        fail("no bill imported yet (import one with `kakin reconcile import FILE --provider …`)")
    columns = [
        Column("id", "import", optional=True),
        Column("provider", "provider"),
        Column("format", "format", optional=True),
        Column("filename", "file", wrap=True),
        Column("first_day", "first UTC day"),
        Column("last_day", "last UTC day"),
        Column("rows", "rows", "int"),
        Column("lines", "lines", "int"),
        Column("skipped", "other services", "int", optional=True),
        Column("imported_at", "imported (UTC)", optional=True),
        Column("sha256", "sha256", table=False),
        Column("new", "new", table=False),
    ]
    from datetime import timedelta

    rows = [
        {
            "id": i.id,
            "provider": i.provider,
            "format": i.format,
            "filename": i.filename,
            "first_day": i.start_day.isoformat(),
            "last_day": (i.end_day - timedelta(days=1)).isoformat(),
            "rows": i.rows,
            "lines": i.lines,
            "skipped": i.skipped,
            "imported_at": i.imported_at.isoformat(timespec="seconds"),
            "sha256": i.sha256,
            "new": i.new,
        }
        for i in found
    ]
    return Report(title, columns, rows=rows)


def reconciliation_reports(result: Reconciliation, flagged_only: bool = False) -> list[Report]:
    """The units compared over the period (cache categories first), then the lines."""
    from datetime import timedelta

    from kakin.reconcile.compare import EXPLAINED_WORDS

    last = result.end - timedelta(days=1)
    period = result.start.isoformat() if last == result.start else f"{result.start} to {last}"
    notes = [
        "days are UTC days, as the providers bill them",
        f"a line matches within {result.tolerance.describe()}",
        f"kakin's traffic through provider(s) {', '.join(result.kakin_providers)}",
    ]
    if result.accounts:
        notes.append(f"provider accounts carrying kakin's traffic: {', '.join(result.accounts)}")
    extra: dict[str, Any] = {
        "org_id": result.org_id,
        "provider": result.provider,
        "from": result.start.isoformat(),
        "to": result.end.isoformat(),
        "tolerance": {"usd": result.tolerance.cost, "relative": result.tolerance.relative},
        "accounts": list(result.accounts),
        "flagged": len(result.flagged),
    }
    units = Report(
        f"{result.provider} bill vs kakin for {result.org_name} by unit, {period} (UTC)",
        [
            Column("unit", "unit"),
            *_SIDE_BY_SIDE,
        ],
        rows=[
            {
                "unit": u.unit,
                "kakin_tokens": u.kakin_tokens,
                "provider_tokens": u.provider_tokens,
                "kakin_cost": u.kakin_cost,
                "provider_cost": u.provider_cost,
                "difference": u.provider_cost - u.kakin_cost,
            }
            for u in result.units
        ],
        total={
            "unit": "total",
            "kakin_cost": result.totals["kakin"],
            "provider_cost": result.totals["provider"],
            "difference": result.totals["provider"] - result.totals["kakin"],
        },
        notes=[
            f"also on the bill: traffic outside kakin {result.totals['outside_kakin']} USD, "
            f"credits and other corrections {result.totals['corrections']} USD"
        ],
        extra=extra,
    )
    shown = [line for line in result.lines if line.flagged or not flagged_only]
    lines = Report(
        f"{len(result.flagged)} line(s) flagged of {len(result.lines)}",
        [
            Column("day", "UTC day"),
            Column("model", "model"),
            Column("unit", "unit"),
            *_SIDE_BY_SIDE,
            Column("verdict", "verdict"),
            Column("explained", "explained", wrap=True),
            Column("flagged", "flagged", table=False),
            Column("kind", "kind", table=False),
            Column("accounts", "provider accounts", wrap=True, optional=True),
            Column("line_items", "provider line items", table=False),
        ],
        rows=[
            {
                **line.row(),
                "explained": EXPLAINED_WORDS[line.explained]
                if line.explained
                else ("" if not line.flagged else "FLAGGED"),
                "kind": line.kind,
                "accounts": ", ".join(a or "(default)" for a in line.accounts),
                "line_items": "; ".join(line.line_items),
            }
            for line in shown
        ],
        notes=notes,
        row_style=lambda row: "bold red" if row["flagged"] else ("dim" if row["explained"] else None),
    )
    return [units, lines]
