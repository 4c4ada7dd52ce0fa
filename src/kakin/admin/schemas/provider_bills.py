"""Imported provider bills and their reconciliation with kakin's metering."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from pydantic import BaseModel, Field

from kakin.admin.schemas.common import maybe_money, money, usd_field, utc
from kakin.reconcile import BillImport, Line, Reconciliation, UnitTotal


class BillImportOut(BaseModel):
    id: str = Field(examples=["bil_01hx3k9v2a7bq4c8m0zp"])
    org_id: str
    provider: str = Field(examples=["openai"])
    format: str = Field(examples=["openai.costs"], description="the export format recognised")
    filename: str
    sha256: str = Field(description="of the file's bytes: the same file imported again changes nothing")
    first_day: date = Field(description="first UTC day the file covers")
    last_day: date = Field(description="last UTC day the file covers")
    rows: int = Field(description="rows read")
    lines: int = Field(description="bill lines stored (rows of one line added up)")
    skipped: int = Field(description="rows of services other than the model API")
    imported_at: datetime
    new: bool = Field(description="false: this file was imported before and nothing changed")

    @classmethod
    def of(cls, done: BillImport) -> BillImportOut:
        return cls(
            id=done.id,
            org_id=done.org_id,
            provider=done.provider,
            format=done.format,
            filename=done.filename,
            sha256=done.sha256,
            first_day=done.start_day,
            last_day=done.end_day - timedelta(days=1),
            rows=done.rows,
            lines=done.lines,
            skipped=done.skipped,
            imported_at=utc(done.imported_at),
            new=done.new,
        )


class BillLineOut(BaseModel):
    day: date = Field(description="UTC day")
    model: str | None = Field(examples=["gpt-4o"], description="the model, snapshot dates taken off")
    unit: str = Field(examples=["cached_input"])
    kind: str = Field(description="usage, or the provider's correction: credit, rounding, adjustment, tax")
    kakin_cost: str = usd_field("kakin metered", "0.25")
    provider_cost: str | None = Field(description="USD the bill says; null: the bill has no cost for it")
    difference: str | None = Field(description="USD, the provider's cost less kakin's")
    kakin_tokens: int | None
    provider_tokens: int | None
    verdict: str = Field(
        examples=["provider_higher"],
        description="match, provider_higher, kakin_higher, missing_at_provider or missing_in_kakin",
    )
    explained: str | None = Field(
        description="a benign cause: lag, day_boundary, credit, rounding, adjustment, tax, outside_kakin"
    )
    flagged: bool = Field(description="a difference with no benign cause")
    accounts: list[str] = Field(description='the provider\'s projects or workspaces ("": default / none)')
    line_items: list[str] = Field(description="the bill's own words for the line")

    @classmethod
    def of(cls, line: Line) -> BillLineOut:
        return cls(
            day=line.day,
            model=line.model,
            unit=line.unit,
            kind=line.kind,
            kakin_cost=money(line.kakin_cost),
            provider_cost=maybe_money(line.provider_cost),
            difference=maybe_money(line.cost_difference),
            kakin_tokens=line.kakin_tokens,
            provider_tokens=line.provider_tokens,
            verdict=line.verdict,
            explained=line.explained,
            flagged=line.flagged,
            accounts=list(line.accounts),
            line_items=list(line.line_items),
        )


class UnitTotalOut(BaseModel):
    unit: str = Field(examples=["cached_input"])
    kakin_cost: str = usd_field("kakin metered", "0.93")
    provider_cost: str = usd_field("the bill's cost", "1.05")
    kakin_tokens: int | None = Field(examples=[3100000])
    provider_tokens: int | None = Field(examples=[3500000])

    @classmethod
    def of(cls, total: UnitTotal) -> UnitTotalOut:
        return cls(
            unit=total.unit,
            kakin_cost=money(total.kakin_cost),
            provider_cost=money(total.provider_cost),
            kakin_tokens=total.kakin_tokens,
            provider_tokens=total.provider_tokens,
        )


class ReconciliationOut(BaseModel):
    org_id: str
    provider: str
    first_day: date = Field(description="first UTC day compared")
    last_day: date = Field(description="last UTC day compared")
    tolerance_usd: str = Field(examples=["0.01"], description="a line matches within this many USD …")
    tolerance_relative: str = Field(examples=["0.01"], description="… or this share of its larger side")
    accounts: list[str] = Field(description="provider accounts carrying kakin's traffic; [] = all")
    kakin_providers: list[str] = Field(description="kakin providers whose traffic the bill covers")
    flagged: int = Field(description="lines flagged")
    kakin_cost: str = usd_field("kakin metered over the compared lines", "16.605")
    provider_cost: str = usd_field("the bill's cost of the compared lines (before credits)", "15.525")
    outside_kakin: str = usd_field("the bill's cost of traffic outside kakin", "0")
    corrections: str = usd_field("the bill's credits, rounding, adjustments and tax", "0")
    units: list[UnitTotalOut] = Field(description="per unit over the period, cache categories first")
    lines: list[BillLineOut]
    imports: list[BillImportOut]

    @classmethod
    def of(cls, result: Reconciliation) -> ReconciliationOut:
        return cls(
            org_id=result.org_id,
            provider=result.provider,
            first_day=result.start,
            last_day=result.end - timedelta(days=1),
            tolerance_usd=money(result.tolerance.cost),
            tolerance_relative=money(result.tolerance.relative),
            accounts=list(result.accounts),
            kakin_providers=list(result.kakin_providers),
            flagged=len(result.flagged),
            kakin_cost=money(result.totals["kakin"]),
            provider_cost=money(result.totals["provider"]),
            outside_kakin=money(result.totals["outside_kakin"]),
            corrections=money(result.totals["corrections"]),
            units=[UnitTotalOut.of(u) for u in result.units],
            lines=[BillLineOut.of(line) for line in result.lines],
            imports=[BillImportOut.of(i) for i in result.imports],
        )
