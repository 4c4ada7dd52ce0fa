"""The charge journal: where a gateway in local accounting makes each charge durable.

A response's charge must be durable before its last byte reaches the client. Writing it to
the ledger takes the ledger's full bookkeeping (grants, budgets, usage record), which is too
slow to wait for on every request. So the gateway appends the charge — the pickled
:class:`~kakin.ledger.records.PostOp` — to this journal, a small SQLite file of its own in WAL
mode: one INSERT per charge, one COMMIT per turn of the event loop for every charge queued in
it (group commit), then the response goes out. The ledger writer process applies the journal
to the ledger moments later, in order and in batches; the gateway deletes what was applied.

After a crash, the writer applies whatever is left when it next starts. Applying a charge
twice is harmless: a PostOp carries the request's idempotency key, and a repeat changes
nothing. The gateway is the journal's only writer, so its commits never wait for a lock.
"""

from __future__ import annotations

import asyncio
import pickle
import sqlite3
from pathlib import Path
from typing import Any

_SCHEMA = "CREATE TABLE IF NOT EXISTS charges (id INTEGER PRIMARY KEY AUTOINCREMENT, op BLOB NOT NULL)"


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # a commit is durable in the OS, as the ledger's
    conn.execute(_SCHEMA)
    return conn


def journal_path(ledger: Any) -> str | None:
    """Next to an SQLite ledger (``kakin.db`` → ``kakin.db.charges``); None for other databases."""
    url = ledger.engine.url
    if url.get_backend_name() != "sqlite" or not url.database:
        return None
    return str(Path(url.database).resolve()) + ".charges"


class ChargeJournal:
    """The gateway's side: append charges, forget applied ones. Use from one event loop."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn = _connect(path)
        self._queued: list[tuple[bytes, asyncio.Future]] = []
        self.on_commit: Any = None  # called after each commit (to wake the ledger writer)
        self.last_id = self._conn.execute("SELECT coalesce(max(id), 0) FROM charges").fetchone()[0]

    def append(self, op: object) -> asyncio.Future:
        """Queue ``op``; the future resolves to its journal id (ids only grow) once durable.
        Everything queued in one turn of the event loop is committed together."""
        future = asyncio.get_running_loop().create_future()
        if not self._queued:
            future.get_loop().call_soon(self.commit)
        self._queued.append((pickle.dumps(op, protocol=pickle.HIGHEST_PROTOCOL), future))
        return future

    def commit(self) -> None:
        """Commit what is queued now (and resolve its futures)."""
        queued, self._queued = self._queued, []
        if not queued:
            return
        try:
            cursor = self._conn.cursor()
            cursor.execute("BEGIN")
            ids = []
            for blob, _ in queued:
                cursor.execute("INSERT INTO charges (op) VALUES (?)", (blob,))
                ids.append(cursor.lastrowid)
            cursor.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            for _, future in queued:
                if not future.done():
                    future.set_exception(exc)
            return
        self.last_id = ids[-1]
        for (_, future), charge_id in zip(queued, ids, strict=True):
            if not future.done():
                future.set_result(charge_id)
        if self.on_commit is not None:
            self.on_commit()

    def forget_through(self, charge_id: int) -> None:
        """Delete charges the ledger now holds."""
        self._conn.execute("DELETE FROM charges WHERE id <= ?", (charge_id,))

    def close(self) -> None:
        self._conn.close()


class JournalReader:
    """The ledger writer's side: the charges after the last one applied, in order."""

    def __init__(self, path: str) -> None:
        self._conn = _connect(path)
        self.applied = 0

    def after(self, upto: int | None, limit: int) -> list[tuple[int, Any]]:
        rows = self._conn.execute(
            "SELECT id, op FROM charges WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
            (self.applied, upto if upto is not None else 2**62, limit),
        ).fetchall()
        return [(charge_id, pickle.loads(blob)) for charge_id, blob in rows]

    def close(self) -> None:
        self._conn.close()
