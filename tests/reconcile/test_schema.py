"""Migration 0008_provider_bills builds exactly the tables kakin.reconcile.schema declares, on
SQLite and PostgreSQL, and comes down again."""

from __future__ import annotations

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from conftest import schema_drift
from kakin.ledger import Ledger
from kakin.ledger import schema as s
from kakin.ledger.db import alembic_config, migrate
from kakin.reconcile import schema as bills

TABLES = {bills.provider_bill_imports.name, bills.provider_bill_lines.name}


def test_the_migration_builds_the_declared_tables_and_comes_down(ledger: Ledger) -> None:
    with ledger.engine.connect() as conn:
        assert schema_drift(conn, s.metadata, TABLES) == []
    below = ScriptDirectory.from_config(alembic_config()).get_revision("0008_provider_bills").down_revision
    with ledger.engine.begin() as conn:
        command.downgrade(alembic_config(conn), str(below))
    assert not TABLES & set(inspect(ledger.engine).get_table_names())
    migrate(ledger.engine)
    assert set(inspect(ledger.engine).get_table_names()) >= TABLES
