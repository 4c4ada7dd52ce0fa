"""Credit alerts: running low, and expiring unused.

*Running low* compares the organisation's credit balance (unexpired grants) with an absolute
floor (``min_usd``) and with its burn rate (``min_days``: fewer than N days of credit left at
the last 24 hours' spend rate). It fires at most once per UTC day while the condition holds.
An organisation with no credit left and a payment method on file is skipped: it simply
continues on postpaid billing.

*Expiring* reports each grant that still holds credit and expires within ``within_days``,
once per grant: free trial credit that silently runs out is money left on the table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from kakin.alerts.model import Alert
from kakin.errors import InvalidInput
from kakin.ledger.records import Balance, Grant
from kakin.money import format_amount


@dataclass(frozen=True, slots=True)
class CreditLowParams:
    min_usd: Decimal | None = None
    min_days: Decimal | None = Decimal(3)

    def __post_init__(self) -> None:
        if self.min_usd is None and self.min_days is None:
            raise InvalidInput("a credit_low rule needs min_usd, min_days or both")
        for name, value in (("min_usd", self.min_usd), ("min_days", self.min_days)):
            if value is not None and value <= 0:
                raise InvalidInput(f"credit_low {name} must be positive, got {value}")


@dataclass(frozen=True, slots=True)
class ExpiringParams:
    within_days: int = 7

    def __post_init__(self) -> None:
        if not 1 <= self.within_days <= 366:
            raise InvalidInput(f"credit_expiring within_days must be 1..366, got {self.within_days}")


def credit_low_alert(
    balance: Balance, burn_per_day: Decimal, params: CreditLowParams, at: datetime, rule_id: str = "default"
) -> Alert | None:
    credit = balance.credit
    if credit <= 0 and balance.payment_method:
        return None
    reasons = []
    if params.min_usd is not None and credit < params.min_usd:
        reasons.append(f"below the {format_amount(params.min_usd)} floor")
    days_left = credit / burn_per_day if burn_per_day > 0 else None
    if params.min_days is not None and days_left is not None and days_left < params.min_days:
        reasons.append(
            f"about {days_left:.1f} days at the last 24 hours' rate of {format_amount(burn_per_day)}/day"
        )
    if not reasons:
        return None
    after = (
        "billing continues postpaid"
        if balance.payment_method
        else "requests will be refused (no payment method)"
    )
    message = (
        f"org {balance.org_id} has {format_amount(credit)} of credit left: {'; '.join(reasons)}. "
        f"When it runs out, {after}."
    )
    return Alert(
        kind="credit_low",
        org_id=balance.org_id,
        scope="org",
        scope_ref="",
        dedupe_key=f"credit_low:{rule_id}:{at:%Y-%m-%d}",
        title=f"org {balance.org_id} credit is running low ({format_amount(credit)} left)",
        message=message,
        occurred_at=at,
        severity="warning" if credit > 0 else "critical",
        data={
            "credit": credit,
            "burn_per_day": burn_per_day,
            "days_left": days_left.quantize(Decimal("0.1")) if days_left is not None else None,
            "payment_method": balance.payment_method,
        },
    )


def expiring_alerts(
    org_id: str, grants: Iterable[Grant], params: ExpiringParams, at: datetime
) -> list[Alert]:
    horizon = at + timedelta(days=params.within_days)
    found = []
    for grant in grants:
        if grant.expires_at is None or grant.remaining <= 0 or not at < grant.expires_at <= horizon:
            continue
        days = (grant.expires_at - at).total_seconds() / 86400
        found.append(
            Alert(
                kind="credit_expiring",
                org_id=org_id,
                scope="org",
                scope_ref="",
                dedupe_key=f"credit_expiring:{grant.id}",
                title=f"{format_amount(grant.remaining)} of {grant.kind.replace('_', ' ')} credit expires in {days:.1f} days",
                message=(
                    f"org {org_id}: grant {grant.id} ({grant.kind.replace('_', ' ')}) still holds "
                    f"{format_amount(grant.remaining)} and expires {grant.expires_at:%Y-%m-%d %H:%M} UTC; "
                    "unused credit is lost then"
                ),
                occurred_at=at,
                severity="info",
                data={
                    "grant_id": grant.id,
                    "grant_kind": grant.kind,
                    "remaining": grant.remaining,
                    "expires_at": grant.expires_at,
                },
            )
        )
    return found
