"""Fewer index writes per charge: drop the indexes no query needs, and index open holds only.

* ``ix_grants_org_id_remaining``: grants are read by organisation, which the unique
  (org_id, idempotency_key) index already serves; indexing ``remaining_pico`` made every
  charge rewrite an index page (and, on PostgreSQL, ruled out HOT updates).
* ``ix_entries_grant_id``: entries are read by organisation (ix_entries_org_id_occurred_at),
  never by grant alone.
* ``ix_reservations_org_id_status_expires_at`` becomes ``ix_reservations_held_org_id_expires_at``,
  partial on ``status = 'held'``: the queries it serves (expiry, open holds) ask only for
  held reservations, and a one-phase charge, born settled, no longer writes it.

Revision ID: 0003_charge_indexes
Revises: 0002_alerts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_charge_indexes"
down_revision = "0002_alerts"
branch_labels = None
depends_on = None

_HELD = sa.text("status = 'held'")


def upgrade() -> None:
    op.drop_index("ix_grants_org_id_remaining", table_name="grants")
    op.drop_index("ix_entries_grant_id", table_name="entries")
    op.drop_index("ix_reservations_org_id_status_expires_at", table_name="reservations")
    op.create_index(
        "ix_reservations_held_org_id_expires_at",
        "reservations",
        ["org_id", "expires_at"],
        postgresql_where=_HELD,
        sqlite_where=_HELD,
    )


def downgrade() -> None:
    op.drop_index("ix_reservations_held_org_id_expires_at", table_name="reservations")
    op.create_index(
        "ix_reservations_org_id_status_expires_at", "reservations", ["org_id", "status", "expires_at"]
    )
    op.create_index("ix_entries_grant_id", "entries", ["grant_id"])
    op.create_index("ix_grants_org_id_remaining", "grants", ["org_id", "remaining_pico"])
