"""Reading and writing the alert tables (see :mod:`kakin.alerts.schema`).

Every user-facing write validates first and raises a :class:`~kakin.errors.KakinError`
before touching the database. ``record_fired`` is the cross-process "once" guarantee: it
inserts under the unique ``(org_id, dedupe_key)`` and reports whether this call was first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from kakin.alerts import schema as s
from kakin.alerts.channels import Channel
from kakin.alerts.credit import CreditLowParams, ExpiringParams
from kakin.alerts.delivery import AttemptRecord
from kakin.alerts.model import ALERT_KINDS, Alert, jsonable
from kakin.alerts.runaway import RunawayParams
from kakin.alerts.signing import new_secret
from kakin.errors import Conflict, InvalidInput, NotFound
from kakin.ledger.ids import new_id
from kakin.ledger.schema import orgs, usage_records
from kakin.money import to_decimal

RULE_KINDS = ("runaway", "credit_low", "credit_expiring")
_EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+$")


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    org_id: str
    kind: str  # runaway | credit_low | credit_expiring
    scope: str  # org | project | key
    scope_ref: str  # "" = every project/key of the org
    params: dict[str, Any]
    auto_suspend: bool

    def runaway_params(self) -> RunawayParams:
        p = self.params
        return RunawayParams(
            window_minutes=int(p.get("window_minutes", 15)),
            baseline_hours=int(p.get("baseline_hours", 168)),
            factor=to_decimal(p.get("factor", "20"), what="factor"),
            floor_usd=to_decimal(p.get("floor_usd", "5"), what="floor_usd"),
        )

    def credit_low_params(self) -> CreditLowParams:
        p = self.params
        return CreditLowParams(
            min_usd=to_decimal(p["min_usd"], what="min_usd") if p.get("min_usd") is not None else None,
            min_days=to_decimal(p["min_days"], what="min_days") if p.get("min_days") is not None else None,
        )

    def expiring_params(self) -> ExpiringParams:
        return ExpiringParams(within_days=int(self.params.get("within_days", 7)))


@dataclass(frozen=True, slots=True)
class DeliveryView:
    id: str
    alert_id: str
    alert_kind: str
    alert_title: str
    channel_id: str
    channel_name: str
    status: str
    attempts: int
    last_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class PendingDelivery:
    delivery_id: str
    channel: Channel
    alert_id: str
    alert: Alert
    next_attempt: int


class AlertStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- channels -----------------------------------------------------------------------

    def add_channel(
        self,
        org_id: str,
        kind: str,
        name: str,
        target: str,
        *,
        settings: dict[str, Any] | None = None,
        kinds: Iterable[str] = (),
        secret: str | None = None,
        now: datetime | None = None,
    ) -> Channel:
        """Register a webhook (``target`` = URL; a signing secret is made unless given) or
        an e-mail channel (``target`` = comma-separated addresses, ``settings`` = SMTP)."""
        kinds = tuple(kinds)
        target = target.strip()
        name = name.strip()
        if not name:
            raise InvalidInput("channel name must not be empty")
        unknown = [k for k in kinds if k not in ALERT_KINDS]
        if unknown:
            raise InvalidInput(
                f"unknown alert kind(s) {', '.join(unknown)}; choose from {', '.join(ALERT_KINDS)}"
            )
        if kind == "webhook":
            parts = urlsplit(target)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise InvalidInput(f"webhook URL must be http(s)://host/path, got {target!r}")
            secret = secret or new_secret()
            settings = {}
        elif kind == "email":
            addresses = [a.strip() for a in target.split(",") if a.strip()]
            bad = [a for a in addresses if not _EMAIL.match(a)]
            if not addresses or bad:
                raise InvalidInput(f"e-mail channel needs valid addresses, got {target!r}")
            target = ", ".join(addresses)
            settings = _smtp_settings(settings or {})
            secret = ""
        else:
            raise InvalidInput(f"channel kind must be 'webhook' or 'email', got {kind!r}")
        self._require_org(org_id)
        channel = Channel(new_id("ach"), org_id, kind, name, target, secret, settings, kinds)  # type: ignore[arg-type]
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(s.alert_channels).values(
                        id=channel.id,
                        org_id=org_id,
                        kind=kind,
                        name=name,
                        target=target,
                        secret=secret,
                        settings=settings,
                        kinds=list(kinds),
                        created_at=now or datetime.now(UTC),
                    )
                )
        except IntegrityError:
            raise Conflict(
                f"org {org_id} already has an alert channel named {name!r}; pick another name"
            ) from None
        return channel

    def channels(self, org_id: str | None = None, *, include_disabled: bool = False) -> list[Channel]:
        query = select(s.alert_channels).order_by(s.alert_channels.c.id)
        if org_id is not None:
            query = query.where(s.alert_channels.c.org_id == org_id)
        if not include_disabled:
            query = query.where(s.alert_channels.c.disabled_at.is_(None))
        with self.engine.connect() as conn:
            return [_channel(row) for row in conn.execute(query).mappings()]

    def channel(self, channel_id: str) -> Channel:
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(s.alert_channels).where(s.alert_channels.c.id == channel_id))
                .mappings()
                .first()
            )
        if row is None:
            raise NotFound(f"no alert channel {channel_id!r}; see `kakin alerts list`")
        return _channel(row)

    def disable_channel(self, channel_id: str, now: datetime | None = None) -> None:
        self.channel(channel_id)
        with self.engine.begin() as conn:
            conn.execute(
                update(s.alert_channels)
                .where(s.alert_channels.c.id == channel_id)
                .values(disabled_at=now or datetime.now(UTC))
            )

    # -- rules --------------------------------------------------------------------------

    def add_rule(
        self,
        org_id: str,
        kind: str,
        *,
        scope: str = "key",
        scope_ref: str = "",
        params: dict[str, Any] | None = None,
        auto_suspend: bool = False,
        now: datetime | None = None,
    ) -> Rule:
        if kind not in RULE_KINDS:
            raise InvalidInput(f"rule kind must be one of {', '.join(RULE_KINDS)}, got {kind!r}")
        if scope not in ("org", "project", "key"):
            raise InvalidInput(f"rule scope must be org, project or key, got {scope!r}")
        if kind != "runaway" and scope != "org":
            raise InvalidInput(f"{kind} rules apply to the whole org: use scope 'org'")
        if auto_suspend and (kind != "runaway" or scope != "key"):
            raise InvalidInput("auto_suspend applies only to runaway rules with scope 'key'")
        rule = Rule("", org_id, kind, scope, scope_ref, jsonable(dict(params or {})), auto_suspend)
        # Validate the parameters by building them (raises InvalidInput naming the field).
        {
            "runaway": rule.runaway_params,
            "credit_low": rule.credit_low_params,
            "credit_expiring": rule.expiring_params,
        }[kind]()
        self._require_org(org_id)
        rule = replace(rule, id=new_id("arl"))
        with self.engine.begin() as conn:
            conn.execute(
                insert(s.alert_rules).values(
                    id=rule.id,
                    org_id=org_id,
                    kind=kind,
                    scope=scope,
                    scope_ref=scope_ref,
                    params=rule.params,
                    auto_suspend=auto_suspend,
                    created_at=now or datetime.now(UTC),
                )
            )
        return rule

    def rules(self, org_id: str | None = None) -> list[Rule]:
        query = (
            select(s.alert_rules).where(s.alert_rules.c.disabled_at.is_(None)).order_by(s.alert_rules.c.id)
        )
        if org_id is not None:
            query = query.where(s.alert_rules.c.org_id == org_id)
        with self.engine.connect() as conn:
            return [
                Rule(r.id, r.org_id, r.kind, r.scope, r.scope_ref, dict(r.params), r.auto_suspend)
                for r in conn.execute(query)
            ]

    # -- fired alerts and deliveries ------------------------------------------------------

    def record_fired(self, alert: Alert) -> str | None:
        """Store a fired alert; its id, or None if this dedupe key already fired."""
        alert_id = new_id("alr")
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(s.alert_fired).values(
                        id=alert_id,
                        org_id=alert.org_id,
                        dedupe_key=alert.dedupe_key[:300],
                        kind=alert.kind,
                        scope=alert.scope,
                        scope_ref=alert.scope_ref,
                        severity=alert.severity,
                        title=alert.title[:500],
                        message=alert.message[:2000],
                        data=jsonable(alert.data),
                        fired_at=alert.occurred_at,
                    )
                )
        except IntegrityError:
            return None
        return alert_id

    def mark_suspended(self, alert_id: str, key_id: str, data: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(s.alert_fired)
                .where(s.alert_fired.c.id == alert_id)
                .values(suspended_key=key_id, data=jsonable(data))
            )

    def fired(self, org_id: str, *, limit: int = 50) -> list[tuple[str, Alert]]:
        query = (
            select(s.alert_fired)
            .where(s.alert_fired.c.org_id == org_id)
            .order_by(s.alert_fired.c.fired_at.desc(), s.alert_fired.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [(row.id, _alert(row)) for row in conn.execute(query)]

    def create_deliveries(
        self, alert_id: str, channels: Iterable[Channel], now: datetime | None = None
    ) -> list[str]:
        rows = [
            {
                "id": new_id("dlv"),
                "alert_id": alert_id,
                "channel_id": channel.id,
                "status": "pending",
                "attempts": 0,
                "created_at": now or datetime.now(UTC),
            }
            for channel in channels
        ]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(insert(s.alert_deliveries), rows)
        return [row["id"] for row in rows]

    def record_attempt(self, record: AttemptRecord) -> None:
        """The dispatcher's delivery log: one attempt row, and the delivery's new state."""
        outcome = record.outcome
        finished = record.at if record.status in ("delivered", "failed") else None
        with self.engine.begin() as conn:
            conn.execute(
                insert(s.alert_delivery_attempts).values(
                    delivery_id=record.delivery_id,
                    attempt=record.attempt,
                    at=record.at,
                    ok=outcome.ok,
                    response_code=outcome.response_code,
                    error=outcome.error[:500] if outcome.error else None,
                    duration_ms=outcome.duration_ms,
                )
            )
            conn.execute(
                update(s.alert_deliveries)
                .where(s.alert_deliveries.c.id == record.delivery_id)
                .values(
                    status=record.status,
                    attempts=record.attempt,
                    last_code=outcome.response_code,
                    last_error=outcome.error[:500] if outcome.error else None,
                    next_attempt_at=record.next_attempt_at,
                    finished_at=finished,
                )
            )

    def deliveries(self, org_id: str, *, status: str | None = None, limit: int = 50) -> list[DeliveryView]:
        d, f, c = s.alert_deliveries, s.alert_fired, s.alert_channels
        query = (
            select(
                d,
                f.c.kind.label("alert_kind"),
                f.c.title.label("alert_title"),
                c.c.name.label("channel_name"),
            )
            .join(f, f.c.id == d.c.alert_id)
            .join(c, c.c.id == d.c.channel_id)
            .where(f.c.org_id == org_id)
            .order_by(d.c.created_at.desc(), d.c.id.desc())
            .limit(limit)
        )
        if status is not None:
            query = query.where(d.c.status == status)
        with self.engine.connect() as conn:
            return [
                DeliveryView(
                    r.id,
                    r.alert_id,
                    r.alert_kind,
                    r.alert_title,
                    r.channel_id,
                    r.channel_name,
                    r.status,
                    r.attempts,
                    r.last_code,
                    r.last_error,
                    r.next_attempt_at,
                    r.created_at,
                    r.finished_at,
                )
                for r in conn.execute(query)
            ]

    def attempts(self, delivery_id: str) -> list[dict[str, Any]]:
        a = s.alert_delivery_attempts
        query = select(a).where(a.c.delivery_id == delivery_id).order_by(a.c.attempt)
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def unfinished_deliveries(self) -> list[PendingDelivery]:
        """Deliveries a stopped process left pending or retrying, to resume."""
        d, f, c = s.alert_deliveries, s.alert_fired, s.alert_channels
        query = (
            select(d.c.id.label("delivery_id"), d.c.attempts, f, c.c.id.label("channel_id"))
            .join(f, f.c.id == d.c.alert_id)
            .join(c, c.c.id == d.c.channel_id)
            .where(d.c.status.in_(("pending", "retrying")))
            .order_by(d.c.id)
        )
        with self.engine.connect() as conn:
            rows = list(conn.execute(query))
        channels = {ch.id: ch for ch in self.channels(include_disabled=False)}
        return [
            PendingDelivery(row.delivery_id, channels[row.channel_id], row.id, _alert(row), row.attempts + 1)
            for row in rows
            if row.channel_id in channels
        ]

    def recent_usage(self, since: datetime) -> Iterator[tuple[str, str, str | None, datetime, int]]:
        """(org, project, key, occurred_at, cost_pico) of requests since ``since``, oldest
        first: warms the spend windows after a restart."""
        u = usage_records
        query = (
            select(u.c.org_id, u.c.project_id, u.c.key_id, u.c.occurred_at, u.c.cost_pico)
            .where(u.c.occurred_at >= since)
            .order_by(u.c.occurred_at)
        )
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                yield row.org_id, row.project_id, row.key_id, row.occurred_at, row.cost_pico

    def _require_org(self, org_id: str) -> None:
        with self.engine.connect() as conn:
            found = conn.execute(select(orgs.c.id).where(orgs.c.id == org_id)).first()
        if found is None:
            raise NotFound(f"no organisation {org_id!r}")


def _smtp_settings(raw: dict[str, Any]) -> dict[str, Any]:
    allowed = {"host", "port", "sender", "starttls", "username", "password_env"}
    extra = set(raw) - allowed
    if extra:
        raise InvalidInput(
            f"unknown SMTP setting(s) {', '.join(sorted(extra))}; allowed: {', '.join(sorted(allowed))}"
        )
    settings = {"host": "127.0.0.1", "port": 25, "sender": "kakin@localhost", "starttls": False} | {
        k: v for k, v in raw.items() if v is not None
    }
    try:
        port = int(settings["port"])
    except (TypeError, ValueError):
        raise InvalidInput(f"SMTP port must be a number, got {settings['port']!r}") from None
    if not 0 < port < 65536:
        raise InvalidInput(f"SMTP port must be 1..65535, got {port}")
    settings["port"] = port
    env_name = str(settings.get("password_env", ""))
    if env_name and not env_name.isidentifier():
        raise InvalidInput(
            f"password_env must name an environment variable (e.g. KAKIN_SMTP_PASSWORD), got {env_name!r}; "
            "the password itself is never stored"
        )
    return settings


def _channel(row: Any) -> Channel:
    return Channel(
        row["id"],
        row["org_id"],
        row["kind"],
        row["name"],
        row["target"],
        row["secret"],
        dict(row["settings"] or {}),
        tuple(row["kinds"] or ()),
    )


def _alert(row: Any) -> Alert:
    return Alert(
        kind=row.kind,
        org_id=row.org_id,
        scope=row.scope,
        scope_ref=row.scope_ref,
        dedupe_key=row.dedupe_key,
        title=row.title,
        message=row.message,
        occurred_at=row.fired_at,
        severity=row.severity,
        data=dict(row.data or {}),
    )


__all__ = ["AlertStore", "DeliveryView", "PendingDelivery", "Rule"]
