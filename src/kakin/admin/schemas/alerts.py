"""Alert channels (signed webhooks, e-mail), detector rules, fired alerts and deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kakin.admin.fields import Amount, Name, text
from kakin.admin.schemas.common import TIME_EXAMPLE, Strict, example, maybe_utc, money, utc
from kakin.alerts.channels import Channel
from kakin.alerts.model import Alert
from kakin.alerts.store import DeliveryView, Rule

AlertKind = Literal[
    "budget_threshold",
    "token_threshold",
    "model_threshold",
    "credit_low",
    "credit_expiring",
    "runaway",
    "test",
]
Target = text(2000, examples=["https://hooks.example.com/kakin"])
Host = text(255, examples=["127.0.0.1"])
EnvName = text(100, examples=["KAKIN_SMTP_PASSWORD"])
Sender = text(320, examples=["kakin@example.com"])
Ref = text(200, examples=["key_01hx3k9v2a7bq4c8m0zp"])


class SmtpSettings(Strict):
    host: Host = "127.0.0.1"
    port: int = Field(25, ge=1, le=65535)
    sender: Sender = "kakin@localhost"
    starttls: bool = False
    username: Name | None = None
    password_env: EnvName | None = Field(
        None, description="environment variable holding the SMTP password (the password is never stored)"
    )

    model_config = example(
        host="smtp.example.com",
        port=587,
        sender="kakin@example.com",
        starttls=True,
        username="kakin",
        password_env="KAKIN_SMTP_PASSWORD",
    )


class ChannelCreate(Strict):
    kind: Literal["webhook", "email"]
    name: Name = Field(description="unique within the organisation", examples=["ops-webhook"])
    target: Target = Field(description="webhook: http(s) URL; email: comma-separated addresses")
    kinds: list[AlertKind] = Field([], max_length=7, description="only these alert kinds (empty: all)")
    smtp: SmtpSettings | None = Field(None, description="email only: the SMTP server to send through")

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [{"kind": "webhook", "name": "ops", "target": "https://hooks.example.com/kakin"}]
        },
    )


class ChannelOut(BaseModel):
    id: str = Field(examples=["ach_01hx3k9v2a7bq4c8m0zp"])
    org_id: str
    kind: Literal["webhook", "email"]
    name: str
    target: str
    kinds: list[str]
    smtp: dict[str, Any] | None = Field(description="email channels: SMTP settings (never a password)")

    @classmethod
    def of(cls, channel: Channel) -> ChannelOut:
        return cls(
            id=channel.id,
            org_id=channel.org_id,
            kind=channel.kind,
            name=channel.name,
            target=channel.target,
            kinds=list(channel.kinds),
            smtp=dict(channel.settings) if channel.kind == "email" else None,
        )


class ChannelCreated(ChannelOut):
    secret: str | None = Field(
        description="webhooks: the signing secret for the Kakin-Signature header, shown only here",
        examples=["whsec_…"],
    )


# Which parameters each rule kind reads.
RULE_PARAMS = {
    "runaway": ("window_minutes", "baseline_hours", "factor", "floor_usd"),
    "credit_low": ("min_usd", "min_days"),
    "credit_expiring": ("within_days",),
}


class RuleParams(Strict):
    window_minutes: int | None = Field(None, ge=1, le=1440, description="runaway: recent window")
    baseline_hours: int | None = Field(None, ge=1, le=744, description="runaway: baseline span")
    factor: Amount | None = Field(None, description="runaway: times the baseline rate (> 1)")
    floor_usd: Amount | None = Field(None, description="runaway: minimum recent spend to fire")
    min_usd: Amount | None = Field(None, description="credit_low: fire below this credit")
    min_days: Amount | None = Field(None, description="credit_low: fire below this many days of burn")
    within_days: int | None = Field(None, ge=1, le=366, description="credit_expiring: look-ahead")

    def as_dict(self) -> dict[str, Any]:
        return {
            name: money(value) if not isinstance(value, int) else value
            for name, value in self.model_dump(exclude_none=True).items()
        }

    model_config = example(factor="20", window_minutes=15)


class RuleCreate(Strict):
    kind: Literal["runaway", "credit_low", "credit_expiring"]
    scope: Literal["org", "project", "key"] = Field(
        "org", description="runaway rules watch each key, project or the org; credit rules: org"
    )
    scope_ref: Ref | None = Field(None, description="one project or key id; omit to watch each of them")
    params: RuleParams = Field(default_factory=RuleParams)
    auto_suspend: bool = Field(False, description="runaway on keys only: suspend the key when it fires")

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"kind": "runaway", "scope": "key", "params": {"factor": "20"}, "auto_suspend": True}
            ]
        },
    )


class RuleOut(BaseModel):
    id: str = Field(examples=["arl_01hx3k9v2a7bq4c8m0zp"])
    org_id: str
    kind: Literal["runaway", "credit_low", "credit_expiring"]
    scope: Literal["org", "project", "key"]
    scope_ref: str
    params: dict[str, Any] = Field(examples=[{"factor": "20"}])
    auto_suspend: bool

    @classmethod
    def of(cls, rule: Rule) -> RuleOut:
        return cls(
            id=rule.id,
            org_id=rule.org_id,
            kind=rule.kind,  # type: ignore[arg-type]
            scope=rule.scope,  # type: ignore[arg-type]
            scope_ref=rule.scope_ref,
            params=rule.params,
            auto_suspend=rule.auto_suspend,
        )


class FiredAlertOut(BaseModel):
    id: str = Field(examples=["alr_01hx3k9v2a7bq4c8m0zp"])
    kind: AlertKind
    scope: str
    scope_ref: str
    severity: Literal["info", "warning", "critical"]
    title: str
    message: str
    occurred_at: datetime = Field(examples=[TIME_EXAMPLE])
    data: dict[str, Any]

    @classmethod
    def of(cls, alert_id: str, alert: Alert) -> FiredAlertOut:
        payload = alert.payload(alert_id)
        return cls(
            id=alert_id,
            kind=alert.kind,
            scope=alert.scope,
            scope_ref=alert.scope_ref,
            severity=alert.severity,
            title=alert.title,
            message=alert.message,
            occurred_at=utc(alert.occurred_at),
            data=payload["data"],
        )


class DeliveryOut(BaseModel):
    id: str = Field(examples=["dlv_01hx3k9v2a7bq4c8m0zp"])
    alert_id: str
    alert_kind: str
    alert_title: str
    channel_id: str
    channel_name: str
    status: Literal["pending", "retrying", "delivered", "failed"]
    attempts: int
    last_code: int | None = Field(description="HTTP status or SMTP reply code of the last attempt")
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime = Field(examples=[TIME_EXAMPLE])
    finished_at: datetime | None

    @classmethod
    def of(cls, view: DeliveryView) -> DeliveryOut:
        return cls(
            id=view.id,
            alert_id=view.alert_id,
            alert_kind=view.alert_kind,
            alert_title=view.alert_title,
            channel_id=view.channel_id,
            channel_name=view.channel_name,
            status=view.status,  # type: ignore[arg-type]
            attempts=view.attempts,
            last_code=view.last_code,
            last_error=view.last_error,
            next_attempt_at=maybe_utc(view.next_attempt_at),
            created_at=utc(view.created_at),
            finished_at=maybe_utc(view.finished_at),
        )
