"""Alembic environment: runs on the connection handed over by kakin.ledger.db.migrate,
or on ``$KAKIN_DATABASE_URL`` when invoked from the ``alembic`` command line."""

from __future__ import annotations

from alembic import context

from kakin.ledger.db import make_engine
from kakin.ledger.schema import metadata


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = make_engine()
    with engine.begin() as own_connection:
        _run(own_connection)
    engine.dispose()
