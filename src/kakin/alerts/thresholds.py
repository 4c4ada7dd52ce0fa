"""Budget, token and per-model thresholds → alerts.

The ledger owns the counting: a budget (scope org / project / key / model, unit USD or
tokens, period day / month / total) carries soft thresholds in percent, and its settle
reports each threshold the first time a period reaches it. Here those reports become
alerts whose ``dedupe_key`` includes the period start, so a repeated settle cannot alert
twice and the next period alerts again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from kakin.alerts.model import Alert, AlertKind, Severity
from kakin.ledger.records import ThresholdCrossed
from kakin.money import format_amount

_PERIOD_WORD = {"day": "daily", "month": "monthly", "total": "total"}


def threshold_alerts(crossings: Iterable[ThresholdCrossed], at: datetime) -> list[Alert]:
    return [threshold_alert(crossing, at) for crossing in crossings]


def threshold_alert(crossing: ThresholdCrossed, at: datetime) -> Alert:
    kind: AlertKind
    if crossing.scope == "model":
        kind = "model_threshold"
    elif crossing.unit == "tokens":
        kind = "token_threshold"
    else:
        kind = "budget_threshold"
    severity: Severity = "critical" if crossing.threshold >= 100 else "warning"
    who = _who(crossing)
    period = _PERIOD_WORD.get(crossing.period, crossing.period)
    if crossing.unit == "tokens":
        spent = f"{int(crossing.spent):,} tokens"
        limit = f"{int(crossing.limit):,}-token"
    else:
        spent = format_amount(crossing.spent)
        limit = format_amount(crossing.limit)
    title = f"{who} reached {crossing.threshold}% of its {period} budget"
    message = (
        f"{who} reached {crossing.threshold}% of its {limit} {period} budget "
        f"{crossing.budget_name!r}: {spent} used since {crossing.period_start:%Y-%m-%d %H:%M} UTC"
    )
    return Alert(
        kind=kind,
        org_id=crossing.org_id,
        scope=crossing.scope,
        scope_ref=crossing.scope_ref,
        dedupe_key=f"budget:{crossing.budget_id}:{crossing.period_start.isoformat()}:{crossing.threshold}",
        title=title,
        message=message,
        occurred_at=at,
        severity=severity,
        data={
            "budget_id": crossing.budget_id,
            "budget_name": crossing.budget_name,
            "period": crossing.period,
            "period_start": crossing.period_start,
            "period_end": crossing.period_end,
            "unit": crossing.unit,
            "threshold_percent": crossing.threshold,
            "spent": crossing.spent,
            "limit": crossing.limit,
        },
    )


def _who(crossing: ThresholdCrossed) -> str:
    if crossing.scope == "org":
        return f"org {crossing.org_id}"
    if crossing.scope == "model":
        return f"model {crossing.scope_ref} (org {crossing.org_id})"
    return f"{crossing.scope} {crossing.scope_ref}"
