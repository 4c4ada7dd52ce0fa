"""Spend rollups by the organisation's local hour and day, built from the usage records;
usage records found by request id, and keeping their reasoning tokens.

From here on the ledger adds each usage record to its rollups in the transaction that writes
it (kakin.ledger.rollups); this revision builds the rollups of the records already there,
with that same function, so reports cover the whole history.

Revision ID: 0005_rollups
Revises: 0004_provider_objects
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_rollups"
down_revision = "0004_provider_objects"
branch_labels = None
depends_on = None

_TABLES = ("rollup_hours", "rollup_days")
_MEASURES = (
    "requests",
    "cache_hits",
    "routed_requests",
    "input_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "images",
    "audio_ms",
    "cost_pico",
    "input_pico",
    "cached_input_pico",
    "cache_write_pico",
    "output_pico",
    "reasoning_pico",
    "images_pico",
    "audio_pico",
    "requests_pico",
    "other_pico",
    "cache_saved_pico",
    "routing_saved_pico",
)
_CHUNK = 5_000


def upgrade() -> None:
    for name in _TABLES:
        op.create_table(
            name,
            sa.Column("org_id", sa.String(length=40), nullable=False),
            sa.Column("start", sa.DateTime(timezone=True), nullable=False),
            sa.Column("project_id", sa.String(length=40), nullable=False),
            sa.Column("key_id", sa.String(length=40), nullable=False),
            sa.Column("model", sa.String(length=200), nullable=False),
            *(sa.Column(measure, sa.BigInteger(), nullable=False) for measure in _MEASURES),
            sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name=op.f(f"fk_{name}_org_id_orgs")),
            sa.PrimaryKeyConstraint(
                "org_id", "start", "project_id", "key_id", "model", name=op.f(f"pk_{name}")
            ),
        )
    op.create_index("ix_usage_records_request_id", "usage_records", ["request_id"])
    with op.batch_alter_table("usage_records") as batch_op:
        batch_op.add_column(
            sa.Column("reasoning_tokens", sa.BigInteger(), nullable=False, server_default="0")
        )
    _backfill(op.get_bind())


def _backfill(conn: sa.Connection) -> None:
    from kakin.ledger import rollups
    from kakin.ledger import schema as s

    u = s.usage_records
    if conn.execute(sa.select(sa.func.count()).select_from(u)).scalar() == 0:
        return
    timezone_of = {row.id: row.timezone for row in conn.execute(sa.select(s.orgs.c.id, s.orgs.c.timezone))}
    needed = (
        u.c.org_id,
        u.c.project_id,
        u.c.key_id,
        u.c.model,
        u.c.input_tokens,
        u.c.output_tokens,
        u.c.cached_tokens,
        u.c.reasoning_tokens,
        u.c.cost_pico,
        u.c.cost_items,
        u.c.occurred_at,
        u.c.cache_hit,
        u.c.cache_saved_pico,
        u.c.routed_from,
        u.c.routing_saved_pico,
    )
    records = (dict(row._mapping) for row in conn.execute(sa.select(*needed)))
    hours, days = rollups.roll_up(records, timezone_of)
    for table, rollup in ((s.rollup_hours, hours), (s.rollup_days, days)):
        rows = rollups.rows(rollup)
        for start in range(0, len(rows), _CHUNK):
            conn.execute(sa.insert(table), rows[start : start + _CHUNK])


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch_op:
        batch_op.drop_column("reasoning_tokens")
    op.drop_index("ix_usage_records_request_id", table_name="usage_records")
    for name in reversed(_TABLES):
        op.drop_table(name)
