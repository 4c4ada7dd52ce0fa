"""Narrower rollups: spend by key (without the model) per local day, by model and in total
per local hour and day, built from the rollups already there.

From here on the ledger writes these with the other rollups, from the same entries summed
further (kakin.ledger.rollups.TABLES); this revision sums the rows already written the same
way, so every table covers the whole history.

Revision ID: 0006_rollup_summaries
Revises: 0005_rollups
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_rollup_summaries"
down_revision = "0005_rollups"
branch_labels = None
depends_on = None

# name, the rollup it sums, its dimensions after org_id and start
_TABLES = (
    ("rollup_days_by_key", "rollup_days", ("project_id", "key_id")),
    ("rollup_hours_by_model", "rollup_hours", ("model",)),
    ("rollup_days_by_model", "rollup_days", ("model",)),
    ("rollup_hours_total", "rollup_hours", ()),
    ("rollup_days_total", "rollup_days", ()),
)
_COLUMNS = {
    "project_id": lambda: sa.Column("project_id", sa.String(length=40), nullable=False),
    "key_id": lambda: sa.Column("key_id", sa.String(length=40), nullable=False),
    "model": lambda: sa.Column("model", sa.String(length=200), nullable=False),
}
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


def upgrade() -> None:
    for name, source, by in _TABLES:
        key = ("org_id", "start", *by)
        op.create_table(
            name,
            sa.Column("org_id", sa.String(length=40), nullable=False),
            sa.Column("start", sa.DateTime(timezone=True), nullable=False),
            *(_COLUMNS[column]() for column in by),
            *(sa.Column(measure, sa.BigInteger(), nullable=False) for measure in _MEASURES),
            sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name=op.f(f"fk_{name}_org_id_orgs")),
            sa.PrimaryKeyConstraint(*key, name=op.f(f"pk_{name}")),
            sqlite_with_rowid=False,  # rows stored in key order: see kakin.ledger.schema
        )
        # Integer sums of the rows the charge path wrote: what it would have written here.
        columns = ", ".join(key)
        sums = ", ".join(f"SUM({m})" for m in _MEASURES)
        op.execute(
            f"INSERT INTO {name} ({columns}, {', '.join(_MEASURES)}) "
            f"SELECT {columns}, {sums} FROM {source} GROUP BY {columns}"
        )


def downgrade() -> None:
    for name, _, _ in reversed(_TABLES):
        op.drop_table(name)
