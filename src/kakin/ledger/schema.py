"""The ledger's tables, on one shared ``MetaData``.

Other packages that own tables (alerts, billing…) add them to :data:`metadata` and ship an
Alembic revision under ``kakin/<package>/migrations/versions/`` whose ``down_revision``
chains after ``"0001_ledger"``; :func:`kakin.ledger.db.migrate` finds those folders.

Conventions, held by every table here:

* money is an integer number of picodollars (``*_pico``, BIGINT) — exact in both backends;
* token counts are integers (BIGINT);
* timestamps are :class:`UTCDateTime`: timezone-aware UTC in Python, ``timestamptz`` in
  PostgreSQL, ISO text in SQLite (always stored in UTC, so text order is time order);
* identifiers are short prefixed strings (``org_…``, ``prj_…``, ``key_…``) that sort by
  creation time, so they are both readable in the CLI and index-friendly.

The journal (``entries``) is append-only. The counters on ``orgs``, ``grants`` and
``budget_periods`` summarise it and are updated in the same transaction as the entries they
summarise; :func:`kakin.ledger.reconcile.reconcile` proves they agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
    false,
    literal_column,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from kakin.ledger import rollups

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes in, timezone-aware UTC datetimes out, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the ledger; pass a timezone-aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else utc_datetime(value)


def utc_datetime(stored: str | datetime) -> datetime:
    """A timezone-aware UTC datetime from one as a database returns it: SQLite's text or a
    naive datetime (UTC, without an offset), PostgreSQL's aware datetime."""
    value = datetime.fromisoformat(stored) if isinstance(stored, str) else stored
    if value.tzinfo is None:  # combined rather than replace(tzinfo=…), which takes several times longer
        return datetime.combine(value.date(), value.time(), UTC)
    return value.astimezone(UTC)


# SQLite only makes INTEGER PRIMARY KEY an auto-increment rowid; PostgreSQL wants BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")

ID = 40  # length of the prefixed identifiers

orgs = Table(
    "orgs",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("currency", String(3), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("phone", String(20), index=True),  # verified identity, E.164
    Column("payment_method", Boolean, nullable=False),
    Column("payment_label", String(100)),
    Column("billing_since", UTCDateTime),  # first payment method or prepayment
    Column("first_payment_at", UTCDateTime),
    Column("tier_rules", String(64)),  # name of a tier rule set (preset or registered)
    Column("tier", String(64)),
    Column("tier_since", UTCDateTime),
    # Counters (see module docstring); all picodollars or tokens.
    Column("credit_pico", BigInteger, nullable=False),  # Σ entries on grants
    Column("held_pico", BigInteger, nullable=False),  # Σ open reservations
    Column("held_tokens", BigInteger, nullable=False),
    # How many open reservations have unbounded output (kakin.ledger.admission).
    Column("held_unbounded", BigInteger, nullable=False, server_default="0"),
    Column("spent_pico", BigInteger, nullable=False),  # −Σ charge entries
    Column("spent_tokens", BigInteger, nullable=False),  # Σ usage tokens
    Column("due_pico", BigInteger, nullable=False),  # postpaid charges − payments
    Column("paid_pico", BigInteger, nullable=False),  # prepayments + payments − refunds
    # Lazy work markers: nothing to do for this org before these instants.
    Column("next_grant_event", UTCDateTime),
    Column("next_hold_expiry", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
)

projects = Table(
    "projects",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("org_id", String(ID), ForeignKey("orgs.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("org_id", "name"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("org_id", String(ID), ForeignKey("orgs.id"), nullable=False),
    Column("project_id", String(ID), ForeignKey("projects.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("prefix", String(16), nullable=False, unique=True),  # public lookup part of the key
    Column("secret_hash", String(64), nullable=False),  # sha256 hex of the whole key
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
    Column("suspended_at", UTCDateTime),
    Column("suspend_reason", String(500)),
    Column("models", JSON),  # list of allowed models, null = all
    Column("rpm", Integer),
    Column("tpm", BigInteger),
    Column("rotated_from", String(ID)),
    Column("replaced_by", String(ID)),
)

grants = Table(
    "grants",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("org_id", String(ID), ForeignKey("orgs.id"), nullable=False),
    Column("kind", String(20), nullable=False),  # free_trial | welcome | prepaid | promotional
    Column("category", String(20), nullable=False),  # free | promotional | paid
    Column("rank", Integer, nullable=False),  # 0 free/promotional, 1 paid: consumption order
    Column("priority", Integer, nullable=False),
    Column("amount_pico", BigInteger, nullable=False),
    Column("remaining_pico", BigInteger, nullable=False),  # Σ entries on this grant
    Column("refunded_pico", BigInteger, nullable=False),
    Column("effective_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime),
    Column("activated_at", UTCDateTime),  # when its grant entry was written
    Column("expired_at", UTCDateTime),  # when its expiry was processed
    Column("identity", String(20)),  # phone that claimed a free grant
    Column("idempotency_key", String(200), nullable=False),
    Column("params_hash", String(64), nullable=False),
    Column("note", String(500), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # Read by organisation through this index; none on remaining_pico, which every charge changes.
    UniqueConstraint("org_id", "idempotency_key"),
)

entries = Table(
    "entries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("org_id", String(ID), ForeignKey("orgs.id"), nullable=False),
    # grant | charge | expiry | refund | payment | tier
    Column("kind", String(16), nullable=False),
    Column("grant_id", String(ID)),  # null: postpaid charge, payment, tier event
    Column("reservation_id", String(ID)),
    Column("amount_pico", BigInteger, nullable=False),  # signed: + credits the org, − debits it
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("detail", JSON),
    Column("idempotency_key", String(200)),  # refunds and payments; null for the rest
    Index("ix_entries_org_id_occurred_at", "org_id", "occurred_at"),
)
# Partial: charges (the bulk of the journal) carry no key and cost this index nothing.
Index(
    "uq_entries_org_id_idempotency_key",
    entries.c.org_id,
    entries.c.idempotency_key,
    unique=True,
    postgresql_where=entries.c.idempotency_key.is_not(None),
    sqlite_where=entries.c.idempotency_key.is_not(None),
)

reservations = Table(
    "reservations",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("org_id", String(ID), ForeignKey("orgs.id"), nullable=False),
    Column("project_id", String(ID), nullable=False),
    Column("key_id", String(ID)),
    Column("model", String(200), nullable=False),
    Column("idempotency_key", String(200), nullable=False),
    Column("params_hash", String(64), nullable=False),
    Column("amount_pico", BigInteger, nullable=False),  # the hold
    Column("tokens", BigInteger, nullable=False),
    # The request's output is unbounded: it may cost more than it holds (kakin.ledger.admission).
    Column("unbounded", Boolean, nullable=False, server_default=false()),
    Column("status", String(10), nullable=False),  # held | settled | voided | expired
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime),
    Column("actual_pico", BigInteger),
    Column("actual_tokens", BigInteger),
    Column("overrun_pico", BigInteger),
    Column("late", Boolean, nullable=False),
    Column("settle_hash", String(64)),
    Column("holds", JSON),  # [[budget_id, period_start_iso], …] this hold counts in
    Column("result", JSON),  # what settle returned, for idempotent repeats
    UniqueConstraint("org_id", "idempotency_key"),
)
# Partial: only open holds are looked up by status (expiry, budget adoption, reconcile), and a
# one-phase charge, born settled, costs this index nothing. Queries name the status as the
# literal HELD: PostgreSQL cannot match the predicate to a parameter in a generic plan.
HELD = literal_column("'held'")
Index(
    "ix_reservations_held_org_id_expires_at",
    reservations.c.org_id,
    reservations.c.expires_at,
    postgresql_where=reservations.c.status == HELD,
    sqlite_where=reservations.c.status == HELD,
)

usage_records = Table(
    "usage_records",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("org_id", String(ID), ForeignKey("orgs.id"), nullable=False),
    Column("project_id", String(ID), nullable=False),
    Column("key_id", String(ID)),
    Column("reservation_id", String(ID), nullable=False, unique=True),
    Column("request_id", String(200)),
    Column("model", String(200), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cached_tokens", BigInteger, nullable=False),
    Column("reasoning_tokens", BigInteger, nullable=False, server_default="0"),  # part of output
    Column("cost_pico", BigInteger, nullable=False),
    Column("cost_items", JSON),
    Column("occurred_at", UTCDateTime, nullable=False),  # when the request started (its hold)
    Column("settled_at", UTCDateTime, nullable=False),
    Column("cache_hit", Boolean, nullable=False),
    Column("cache_saved_pico", BigInteger, nullable=False),
    Column("routed_from", String(200)),
    Column("routing_saved_pico", BigInteger, nullable=False),
    Index("ix_usage_records_org_id_occurred_at", "org_id", "occurred_at"),
    Index("ix_usage_records_project_id_occurred_at", "project_id", "occurred_at"),
    Index("ix_usage_records_key_id_occurred_at", "key_id", "occurred_at"),
    Index("ix_usage_records_request_id", "request_id"),  # one request's detail, by its id
)

budgets = Table(
    "budgets",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("org_id", String(ID), ForeignKey("orgs.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("scope", String(10), nullable=False),  # org | project | key | model
    Column("scope_ref", String(200), nullable=False),  # project id, key id, model; "" for org
    Column("period", String(10), nullable=False),  # day | month | total
    Column("unit", String(10), nullable=False),  # usd | tokens
    Column("limit_value", BigInteger, nullable=False),  # picodollars or tokens
    Column("thresholds", JSON, nullable=False),  # percents, e.g. [50, 80, 100]
    Column("hard_cap", Boolean, nullable=False),
    Column("source", String(10), nullable=False),  # user | tier
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("org_id", "scope", "scope_ref", "period", "unit", "source"),
)

budget_periods = Table(
    "budget_periods",
    metadata,
    Column("budget_id", String(ID), ForeignKey("budgets.id", ondelete="CASCADE"), nullable=False),
    Column("period_start", UTCDateTime, nullable=False),
    Column("spent_pico", BigInteger, nullable=False),
    Column("spent_tokens", BigInteger, nullable=False),
    Column("held_pico", BigInteger, nullable=False),
    Column("held_tokens", BigInteger, nullable=False),
    Column("fired", JSON, nullable=False),  # thresholds already reported this period
    PrimaryKeyConstraint("budget_id", "period_start"),
)

# One row per (verified identity, kind of claim): a free grant kind, "free" for its first free
# grant of any kind, or "billing" for the first billing account the identity ever had. The
# primary key makes claims race-free.
identity_claims = Table(
    "identity_claims",
    metadata,
    Column("identity", String(20), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("org_id", String(ID), ForeignKey("orgs.id"), nullable=False),
    Column("grant_id", String(ID)),
    Column("claimed_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("identity", "kind"),
)

tier_rule_sets = Table(
    "tier_rule_sets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("definition", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# Objects a project created at a provider through the gateway (a Gemini cached content, a
# stored OpenAI response): with one provider key for every project, this row is what makes the
# object its creator's alone. Looked up by primary key; ``object_id`` is the provider's id.
provider_objects = Table(
    "provider_objects",
    metadata,
    Column("api", String(16), nullable=False),  # openai | anthropic | google
    Column("kind", String(32), nullable=False),  # cached_content | response
    Column("object_id", String(300), nullable=False),
    Column("org_id", String(ID), ForeignKey("orgs.id"), nullable=False),
    Column("project_id", String(ID), nullable=False),
    # The model it was made with: a cache's storage is priced at its model's rates.
    Column("model", String(200), nullable=False),
    # The input tokens it brings to a request that names it (NULL: not known).
    Column("tokens", BigInteger, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("api", "kind", "object_id"),
)


def _rollup(spec: rollups.Table) -> Table:
    """Spend summed by the organisation's local hour or day (see kakin.ledger.rollups)."""
    return Table(
        spec.name,
        metadata,
        Column("org_id", String(ID), ForeignKey("orgs.id"), nullable=False),
        Column("start", UTCDateTime, nullable=False),  # the local hour's or day's first instant
        *(_ROLLUP_COLUMNS[name]() for name in spec.by),
        *(Column(measure, BigInteger, nullable=False) for measure in rollups.MEASURES),
        # The key serves every report: an organisation's buckets in time order. On SQLite the
        # rows are stored in that order (no rowid): a report reads one range of one B-tree,
        # and a charge's upsert writes one B-tree instead of a table and its key's index.
        PrimaryKeyConstraint(*spec.dimensions),
        sqlite_with_rowid=False,
    )


_ROLLUP_COLUMNS = {
    "project_id": lambda: Column("project_id", String(ID), nullable=False),
    "key_id": lambda: Column("key_id", String(ID), nullable=False),  # "" for requests made without a key
    "model": lambda: Column("model", String(200), nullable=False),
}
ROLLUPS: dict[str, Table] = {spec.name: _rollup(spec) for spec in rollups.TABLES}
"""Every rollup table by name (kakin.ledger.rollups.TABLES)."""
rollup_hours = ROLLUPS["rollup_hours"]
rollup_days = ROLLUPS["rollup_days"]


LEDGER_TABLES: tuple[Table, ...] = (
    orgs,
    projects,
    api_keys,
    grants,
    entries,
    reservations,
    usage_records,
    budgets,
    budget_periods,
    identity_claims,
    tier_rule_sets,
    provider_objects,
    *ROLLUPS.values(),
)
