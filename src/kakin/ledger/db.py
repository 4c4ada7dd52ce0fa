"""Opening the ledger database: URL resolution, engine tuning, migrations on open.

SQLite is the embedded default. Its writers are serialised by ``BEGIN IMMEDIATE`` (taken
when a write transaction starts, so two writers never deadlock upgrading a read lock), in
WAL mode with ``synchronous=NORMAL``: a commit survives a process crash; only an OS crash or
power loss can lose the last commits. PostgreSQL uses psycopg 3 and row locks on the
organisation (``SELECT … FOR UPDATE``); commits are fsync'd when ``synchronous_commit`` is on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError

from kakin.errors import InvalidInput

DEFAULT_SQLITE_PATH = Path("kakin-data") / "kakin.db"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Read-only work on SQLite starts a plain (deferred) transaction instead of BEGIN IMMEDIATE.
READ_ONLY = {"kakin_read_only": True}
_MIGRATION_LOCK = 0x6B616B696E  # PostgreSQL advisory lock id held while migrating


def database_url(url: str | None = None) -> URL:
    """The URL to open: ``url``, else ``$KAKIN_DATABASE_URL``, else ``./kakin-data/kakin.db``.

    ``postgresql://`` and ``postgres://`` select the psycopg 3 driver."""
    raw = url or os.environ.get("KAKIN_DATABASE_URL") or f"sqlite:///{DEFAULT_SQLITE_PATH}"
    if raw.startswith("postgres://"):
        raw = "postgresql://" + raw[len("postgres://") :]
    try:
        parsed = make_url(raw)
    except ArgumentError:
        raise InvalidInput(
            f"database URL {raw!r} is not valid; use sqlite:///path/to/kakin.db or postgresql://user@host/db"
        ) from None
    if parsed.drivername in ("postgresql", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise InvalidInput(f"database URL {raw!r}: only sqlite:// and postgresql:// are supported")
    return parsed


def make_engine(url: str | URL | None = None, *, pool_size: int = 10, max_overflow: int = 70) -> Engine:
    """An engine tuned for the ledger (see module docstring). Creates the SQLite folder."""
    parsed = url if isinstance(url, URL) else database_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, pool_size=pool_size, max_overflow=max_overflow)
    return create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=max_overflow,
        # No pre-ping round trip per transaction: a connection broken by a server restart
        # fails one transaction (which the caller may retry) and the pool replaces it.
        pool_recycle=1800,
        connect_args={"application_name": "kakin"},
    )


def unreachable(error: BaseException) -> bool:
    """Whether ``error`` says the database cannot be reached — down, restarting, the connection
    cut — rather than that a statement is at fault. The pool replaces a connection that failed
    so, and a later transaction succeeds once the database is back."""
    return isinstance(error, OperationalError | InterfaceError) or (
        isinstance(error, DBAPIError) and error.connection_invalidated
    )


def _sqlite_engine(url: URL, *, pool_size: int, max_overflow: int) -> Engine:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        raise InvalidInput(
            "the ledger needs an SQLite file (sqlite:///path/to/kakin.db), not an in-memory database"
        )
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        connect_args={"check_same_thread": False, "timeout": 60},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event decide how transactions start (see below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
            return  # begun at the driver by its owner (kakin.ledger.resident)
        read_only = connection.get_execution_options().get("kakin_read_only", False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def version_locations() -> list[Path]:
    """Alembic version folders: the ledger's, then every ``kakin/<package>/migrations/versions``."""
    package_root = Path(__file__).parent.parent
    found = [MIGRATIONS_DIR / "versions"]
    for candidate in sorted(package_root.glob("*/migrations/versions")):
        if candidate.resolve() != found[0].resolve():
            found.append(candidate)
    return found


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config built in code (no ini file needed at run time)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("version_locations", " ".join(str(p) for p in version_locations()))
    config.set_main_option("path_separator", "space")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def migrate(engine: Engine, revision: str = "heads") -> None:
    """Bring the schema to ``revision`` (all heads by default). Safe to run from many
    processes at once: PostgreSQL takes an advisory lock, SQLite's BEGIN IMMEDIATE serialises."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK})
        command.upgrade(alembic_config(connection), revision)
