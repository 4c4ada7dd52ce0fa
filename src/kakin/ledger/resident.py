"""The batch path of a process that owns an SQLite ledger: one connection kept open, and the
rows a charge reads kept between its transactions.

A transaction of one charge would otherwise spend most of its time on overhead, not on the
charge: checking a connection out of the pool and resetting it, and re-reading the
organisation, its budgets, grants, period counters and the key — rows that only this
process's own writes changed since the last transaction. So the ledger keeps one connection
for :meth:`Ledger.batch` and a :class:`~kakin.ledger.work.Cache` of those rows.

The cache is exact because SQLite says when it could be wrong: ``PRAGMA data_version``
changes, as seen by one connection, when any other connection (another process such as the
CLI, or another of this ledger's connections) commits. It is read inside each transaction,
after ``BEGIN IMMEDIATE`` has taken the write lock, so nothing can commit between the check
and the use; when it moved, the cache is dropped and the rows are read again. A transaction
that fails drops the cache too, since its operations may have changed rows in memory that
were never written.

Checkpoints of the write-ahead log run on a thread of their own (kakin.ledger.checkpoints),
so a commit here never waits for one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, Engine

from kakin.errors import KakinError
from kakin.ledger import ops
from kakin.ledger.checkpoints import WRITER_CHECKPOINT_PAGES, Checkpointer
from kakin.ledger.records import OpResult
from kakin.ledger.work import Cache, Context


class Resident:
    """One SQLite connection and its row cache; the caller serialises calls (one writer)."""

    def __init__(self, engine: Engine, context: Context) -> None:
        self.engine = engine
        self.context = context
        self.cache = Cache()
        self._conn: Connection | None = None
        self._version: int | None = None  # data_version when the cache was last valid
        self.checkpointer = Checkpointer(engine.url.database or "")

    def batch(self, operations: Sequence[object], now: datetime) -> list[OpResult | KakinError]:
        if self._conn is None:
            self._conn = self.engine.connect()
            self._conn.connection.driver_connection.execute(
                f"PRAGMA wal_autocheckpoint={WRITER_CHECKPOINT_PAGES}"
            )
        conn = self._conn
        driver = conn.connection.driver_connection
        try:
            # The transaction is begun and ended at the driver: SQLAlchemy's begin and commit
            # cost more than the statements of a small batch. A statement sent through
            # SQLAlchemy meanwhile (rows not in the cache) joins it: see kakin.ledger.db.
            driver.execute("BEGIN IMMEDIATE")
            version = driver.execute("PRAGMA data_version").fetchone()[0]
            if version != self._version:
                self.cache.clear()
            results = ops.execute(conn, operations, now=now, context=self.context, cache=self.cache)
            if conn.in_transaction():
                conn.commit()
            else:
                driver.commit()
        except BaseException:
            if conn.in_transaction():
                conn.rollback()
            elif driver.in_transaction:
                driver.rollback()
            self.cache.clear()
            self._version = None
            self._close_connection()  # rolls back; a fresh connection next time, whatever its state
            raise
        self._version = version
        self.checkpointer.committed(len(operations), self.cache.touched)
        return results

    def close(self) -> None:
        self._close_connection()
        self.checkpointer.close()

    def _close_connection(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.invalidate()  # closed for good: it carries a checkpoint threshold of its own
            conn.close()
