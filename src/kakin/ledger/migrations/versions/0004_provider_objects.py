"""Provider-side objects created through the gateway, each owned by the project that created it.

Revision ID: 0004_provider_objects
Revises: 0003_charge_indexes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_provider_objects"
down_revision = "0003_charge_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_objects",
        sa.Column("api", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.String(length=300), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name=op.f("fk_provider_objects_org_id_orgs")),
        sa.PrimaryKeyConstraint("api", "kind", "object_id", name=op.f("pk_provider_objects")),
    )


def downgrade() -> None:
    op.drop_table("provider_objects")
