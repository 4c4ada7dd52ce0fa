"""Opening the database: URL rules, SQLite tuning, and migrations that produce exactly the
schema the code declares."""

from __future__ import annotations

import pytest
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from conftest import schema_drift
from kakin.errors import InvalidInput
from kakin.ledger import Ledger
from kakin.ledger import schema as s
from kakin.ledger.db import alembic_config, database_url, make_engine, migrate


def test_migrations_build_exactly_the_declared_ledger_tables(ledger: Ledger) -> None:
    with ledger.engine.connect() as conn:
        assert schema_drift(conn, s.metadata, (t.name for t in s.LEDGER_TABLES)) == []
        heads = set(MigrationContext.configure(conn).get_current_heads())
    script = ScriptDirectory.from_config(alembic_config())
    assert heads == set(script.get_heads())
    assert "0001_ledger" in {rev.revision for rev in script.walk_revisions()}
    migrate(ledger.engine)  # again: nothing to do, nothing breaks


def test_sqlite_runs_in_wal_mode_with_normal_sync(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'sub' / 'k.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 60000
    engine.dispose()


def test_database_url_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAKIN_DATABASE_URL", raising=False)
    assert str(database_url()) == "sqlite:///kakin-data/kakin.db"
    assert database_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert database_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    monkeypatch.setenv("KAKIN_DATABASE_URL", "postgresql://app@127.0.0.1/kakin")
    assert database_url().database == "kakin"
    with pytest.raises(InvalidInput, match="only sqlite"):
        database_url("mysql://u@h/db")
    with pytest.raises(InvalidInput, match="not valid"):
        database_url("::nonsense::")
    with pytest.raises(InvalidInput, match="in-memory"):
        make_engine("sqlite://")
