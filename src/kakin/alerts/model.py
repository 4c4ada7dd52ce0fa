"""What an alert is, independent of how it was detected or where it is sent.

An alert carries a ``dedupe_key`` that names the thing that fired *and its period* (e.g.
``budget:bud_1:2025-06-01:80``): the fired-state store keeps one row per key, which is how
"each threshold fires once per period" holds across processes and repeated settles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from kakin.money import decimal_str

AlertKind = Literal[
    "budget_threshold",
    "token_threshold",
    "model_threshold",
    "credit_low",
    "credit_expiring",
    "runaway",
    "test",
]
ALERT_KINDS: tuple[str, ...] = (
    "budget_threshold",
    "token_threshold",
    "model_threshold",
    "credit_low",
    "credit_expiring",
    "runaway",
    "test",
)
Severity = Literal["info", "warning", "critical"]


@dataclass(frozen=True, slots=True)
class Alert:
    kind: AlertKind
    org_id: str
    scope: str  # org | project | key | model
    scope_ref: str  # the project/key id or model name; "" for the org itself
    dedupe_key: str
    title: str
    message: str
    occurred_at: datetime
    severity: Severity = "warning"
    data: dict[str, Any] = field(default_factory=dict)
    suspend_key: str | None = None  # key id the rule asks to suspend

    def payload(self, alert_id: str) -> dict[str, Any]:
        """The JSON body webhooks receive (amounts as decimal strings)."""
        return {
            "id": alert_id,
            "type": f"alert.{self.kind}",
            "org_id": self.org_id,
            "scope": self.scope,
            "scope_ref": self.scope_ref,
            "severity": self.severity,
            "title": self.title,
            "message": self.message,
            "occurred_at": self.occurred_at.isoformat(),
            "data": jsonable(self.data),
        }


def jsonable(value: Any) -> Any:
    """Decimals become exact decimal strings, datetimes ISO text, tuples lists."""
    if isinstance(value, Decimal):
        return decimal_str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
