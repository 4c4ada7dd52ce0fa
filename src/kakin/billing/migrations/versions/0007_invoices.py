"""Billing: issued invoices, credit notes and their per-organisation number sequences.

Revision ID: 0007_invoices
Revises: 0006_rollup_summaries
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_invoices"
down_revision = "0006_rollup_summaries"
branch_labels = None
depends_on = None


def _utc() -> sa.types.TypeEngine:  # as kakin.ledger.schema.UTCDateTime stores it
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "invoices",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("org_id", sa.String(40), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(40), nullable=False),
        sa.Column("cycle_start", _utc(), nullable=False),
        sa.Column("cycle_end", _utc(), nullable=False),
        sa.Column("issued_at", _utc(), nullable=False),
        sa.Column("through_usage_id", sa.BigInteger(), nullable=False),
        sa.Column("charges_pico", sa.BigInteger(), nullable=False),
        sa.Column("credits_pico", sa.BigInteger(), nullable=False),
        sa.Column("due_pico", sa.BigInteger(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name=op.f("fk_invoices_org_id_orgs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("org_id", "month", name=op.f("uq_invoices_org_id_month")),
        sa.UniqueConstraint("org_id", "seq", name=op.f("uq_invoices_org_id_seq")),
    )
    op.create_table(
        "credit_notes",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("org_id", sa.String(40), nullable=False),
        sa.Column("invoice_id", sa.String(40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(40), nullable=False),
        sa.Column("issued_at", _utc(), nullable=False),
        sa.Column("amount_pico", sa.BigInteger(), nullable=False),
        sa.Column("settlement", sa.String(10), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("params_hash", sa.String(64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name=op.f("fk_credit_notes_org_id_orgs")),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_credit_notes_invoice_id_invoices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_notes")),
        sa.UniqueConstraint("org_id", "seq", name=op.f("uq_credit_notes_org_id_seq")),
        sa.UniqueConstraint("org_id", "idempotency_key", name=op.f("uq_credit_notes_org_id_idempotency_key")),
    )
    op.create_index(op.f("ix_credit_notes_invoice_id"), "credit_notes", ["invoice_id"])
    op.create_table(
        "billing_numbers",
        sa.Column("org_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name=op.f("fk_billing_numbers_org_id_orgs")),
        sa.PrimaryKeyConstraint("org_id", "kind", name=op.f("pk_billing_numbers")),
    )


def downgrade() -> None:
    op.drop_table("billing_numbers")
    op.drop_index(op.f("ix_credit_notes_invoice_id"), table_name="credit_notes")
    op.drop_table("credit_notes")
    op.drop_table("invoices")
