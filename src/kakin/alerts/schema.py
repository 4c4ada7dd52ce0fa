"""Alert tables, on the ledger's shared ``metadata`` (migration ``0002_alerts``).

* ``alert_channels`` — where alerts go (a webhook URL with its signing secret, or e-mail
  addresses with their SMTP server), optionally filtered by alert kind;
* ``alert_rules`` — detector settings per org: runaway, credit running low, credit expiring;
  budget thresholds need no rule (the ledger's budgets carry them);
* ``alert_fired`` — one row per alert that fired; the unique ``(org_id, dedupe_key)`` is what
  makes each threshold fire once per period even with many gateway processes;
* ``alert_deliveries`` / ``alert_delivery_attempts`` — the delivery log: one delivery per
  (alert, channel), one attempt row per try with its status code or error.

The signing secret is stored as given: kakin must be able to sign with it. Mail passwords
are never stored; a channel names the environment variable that holds one.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, ForeignKey, Index, Integer, String, Table, UniqueConstraint

from kakin.ledger.schema import ID, BigId, UTCDateTime, metadata

alert_channels = Table(
    "alert_channels",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("org_id", String(ID), ForeignKey("orgs.id"), nullable=False),
    Column("kind", String(10), nullable=False),  # webhook | email
    Column("name", String(200), nullable=False),
    Column("target", String(2000), nullable=False),  # URL, or comma-separated addresses
    Column("secret", String(200), nullable=False),  # webhook signing secret; "" for e-mail
    Column("settings", JSON, nullable=False),  # SMTP host/port/sender/starttls/username/password_env
    Column("kinds", JSON, nullable=False),  # alert kinds wanted; [] = all
    Column("created_at", UTCDateTime, nullable=False),
    Column("disabled_at", UTCDateTime),
    UniqueConstraint("org_id", "name"),
)

alert_rules = Table(
    "alert_rules",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("org_id", String(ID), ForeignKey("orgs.id"), nullable=False),
    Column("kind", String(20), nullable=False),  # runaway | credit_low | credit_expiring
    Column("scope", String(10), nullable=False),  # org | project | key
    Column("scope_ref", String(200), nullable=False),  # one project/key id; "" = each of them
    Column("params", JSON, nullable=False),
    Column("auto_suspend", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("disabled_at", UTCDateTime),
    Index("ix_alert_rules_org_id_kind", "org_id", "kind"),
)

alert_fired = Table(
    "alert_fired",
    metadata,
    Column("id", String(ID), primary_key=True),  # the alert id sent to receivers
    Column("org_id", String(ID), ForeignKey("orgs.id"), nullable=False),
    Column("dedupe_key", String(300), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("scope", String(10), nullable=False),
    Column("scope_ref", String(200), nullable=False),
    Column("severity", String(10), nullable=False),
    Column("title", String(500), nullable=False),
    Column("message", String(2000), nullable=False),
    Column("data", JSON, nullable=False),
    Column("suspended_key", String(ID)),  # key suspended because of this alert
    Column("fired_at", UTCDateTime, nullable=False),
    UniqueConstraint("org_id", "dedupe_key"),
    Index("ix_alert_fired_org_id_fired_at", "org_id", "fired_at"),
)

alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("alert_id", String(ID), ForeignKey("alert_fired.id"), nullable=False, index=True),
    Column("channel_id", String(ID), ForeignKey("alert_channels.id"), nullable=False),
    Column("status", String(10), nullable=False),  # pending | retrying | delivered | failed
    Column("attempts", Integer, nullable=False),
    Column("last_code", Integer),
    Column("last_error", String(500)),
    Column("next_attempt_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Index("ix_alert_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
)

alert_delivery_attempts = Table(
    "alert_delivery_attempts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("delivery_id", String(ID), ForeignKey("alert_deliveries.id"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("response_code", Integer),
    Column("error", String(500)),
    Column("duration_ms", Integer, nullable=False),
    UniqueConstraint("delivery_id", "attempt"),
)

ALERT_TABLES = (alert_channels, alert_rules, alert_fired, alert_deliveries, alert_delivery_attempts)
