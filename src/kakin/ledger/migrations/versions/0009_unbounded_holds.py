"""Holds whose output is unbounded: a flag on each reservation and their count per organisation,
which the admission rule reads (one such hold at a time under a cap, kakin.ledger.admission).

Revision ID: 0009_unbounded_holds
Revises: 0008_provider_bills
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_unbounded_holds"
down_revision = "0008_provider_bills"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (SQLite takes one with a default in place; a batch copy of ``orgs``
    # would drop a table others refer to).
    op.add_column("orgs", sa.Column("held_unbounded", sa.BigInteger(), nullable=False, server_default="0"))
    op.add_column(
        "reservations", sa.Column("unbounded", sa.Boolean(), nullable=False, server_default=sa.false())
    )


def downgrade() -> None:
    op.drop_column("reservations", "unbounded")
    op.drop_column("orgs", "held_unbounded")
