"""Spend reports: one set of queries behind every face (CLI, admin API, dashboard).

    from kakin.reports import Reports
    reports = Reports(ledger)
    report = reports.spend("acme", by="day", start="2026-05-01", end="2026-06-01")
    report.timezone, report.total.cost, [(l.group, l.spend.cost) for l in report.lines]

Spend is read from the rollups the ledger writes with each charge (kakin.ledger.rollups);
one request's detail and the request log from the usage records. Money is exact ``Decimal``
USD; days and hours are the organisation's own (see docs/reports.md).
"""

from kakin.reports.queries import Reports
from kakin.reports.results import (
    GROUPINGS,
    CostLine,
    Grouping,
    Repriced,
    RequestDetail,
    RequestLine,
    RequestPage,
    Spend,
    SpendLine,
    SpendReport,
    UnitLine,
    WhatIf,
)

__all__ = [
    "GROUPINGS",
    "CostLine",
    "Grouping",
    "Reports",
    "Repriced",
    "RequestDetail",
    "RequestLine",
    "RequestPage",
    "Spend",
    "SpendLine",
    "SpendReport",
    "UnitLine",
    "WhatIf",
]
