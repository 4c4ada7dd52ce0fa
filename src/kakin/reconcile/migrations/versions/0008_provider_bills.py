"""Provider bills imported for reconciliation (kakin.reconcile.schema).

Revision ID: 0008_provider_bills
Revises: 0007_invoices
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_provider_bills"
down_revision = "0007_invoices"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_bill_imports",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("format", sa.String(length=40), nullable=False),
        sa.Column("filename", sa.String(length=300), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("start_day", sa.Date(), nullable=False),
        sa.Column("end_day", sa.Date(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name=op.f("fk_provider_bill_imports_org_id_orgs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_bill_imports")),
        sa.UniqueConstraint("org_id", "sha256", name=op.f("uq_provider_bill_imports_org_id_sha256")),
    )
    op.create_table(
        "provider_bill_lines",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("row_key", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("import_id", sa.String(length=40), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("report", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("account", sa.String(length=200), nullable=False),
        sa.Column("line_item", sa.String(length=500), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column("cost_pico", sa.BigInteger(), nullable=True),
        sa.Column("tokens", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name=op.f("fk_provider_bill_lines_org_id_orgs")),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["provider_bill_imports.id"],
            name=op.f("fk_provider_bill_lines_import_id_provider_bill_imports"),
        ),
        sa.PrimaryKeyConstraint("org_id", "row_key", name=op.f("pk_provider_bill_lines")),
    )
    op.create_index(
        "ix_provider_bill_lines_org_id_provider_day", "provider_bill_lines", ["org_id", "provider", "day"]
    )


def downgrade() -> None:
    op.drop_index("ix_provider_bill_lines_org_id_provider_day", table_name="provider_bill_lines")
    op.drop_table("provider_bill_lines")
    op.drop_table("provider_bill_imports")
