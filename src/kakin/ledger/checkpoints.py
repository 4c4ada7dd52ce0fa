"""SQLite checkpoints on a thread of their own, so that no commit waits for one.

In WAL mode a commit appends pages to the write-ahead log; a checkpoint copies them back into
the database file and syncs both files to disk. By default the connection whose commit brings
the log past 1000 pages runs the checkpoint before that commit returns: one charge in about
fifty waits milliseconds for writes and two fsyncs that are not its own, and with the gateway
waiting on the commit, that is the slowest request of the lot. The connection that writes the
ledger's batches (kakin.ledger.resident) hands this work to a :class:`Checkpointer` instead:
each commit only adds a guess of the pages it wrote, and a thread with its own connection runs
a passive checkpoint (which never blocks the writer) once the guesses add up to 4000 pages
(16 MB) of log, and at the latest a second after a commit. As no commit waits for them, checkpoints
can be fewer and larger than SQLite's: a page that many commits rewrote is copied once.

The writer keeps an automatic checkpoint of its own at a higher threshold: under a load that
never pauses the log cannot be restarted from its beginning (each passive checkpoint ends
behind the newest commit), and that one then catches up and lets the log restart. Durability
is that of SQLite's own checkpoints (see kakin.ledger.db).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading

PAGES_PER_CHECKPOINT = 4000
WRITER_CHECKPOINT_PAGES = 4 * PAGES_PER_CHECKPOINT  # the writer's own (see the module docstring)
# A guess of the pages a commit appends (it only decides when to run the next checkpoint): a
# dozen for the table and index leaves every charge adds to, eight per organisation (its row,
# grants, budget periods and its own leaves of the indexes by organisation, project and key)
# and about one per operation: within a quarter of the pages counted by bench/bench_ledger.py
# ("log pages", batches of 1 to 256 charges over 16 organisations), a third too many for a
# batch of one organisation's charges.
PAGES_PER_COMMIT = 12
PAGES_PER_ORGANISATION = 8
IDLE_SECONDS = 1.0


class Checkpointer:
    """A thread running passive checkpoints of the SQLite database at ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._due = threading.Event()
        self._closing = False
        self._written = 0  # pages guessed since the last checkpoint was asked for (writer's own)
        self._dirty = False  # a commit since the last checkpoint began
        self._thread: threading.Thread | None = None

    def committed(self, operations: int, organisations: int) -> None:
        """Called by the writer after each commit of ``operations`` operations that touched
        ``organisations`` organisations."""
        if self._thread is None and not self._closing:
            self._thread = threading.Thread(target=self._run, name="kakin-checkpoints", daemon=True)
            self._thread.start()
        self._dirty = True
        self._written += PAGES_PER_COMMIT + PAGES_PER_ORGANISATION * organisations + operations
        if self._written >= PAGES_PER_CHECKPOINT:
            self._written = 0
            self._due.set()

    def close(self) -> None:
        """Stop the thread (after the checkpoint it is running, if any)."""
        self._closing = True
        self._due.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        connection = sqlite3.connect(self.path, isolation_level=None)
        try:
            connection.execute("PRAGMA synchronous=NORMAL")
            while True:
                self._due.wait(IDLE_SECONDS)
                self._due.clear()
                if self._closing:
                    return
                if not self._dirty:
                    continue
                self._dirty = False
                # PASSIVE copies what no reader still needs and never waits for the writer; a
                # checkpoint already running elsewhere makes it return at once. Should it fail,
                # the writer's own checkpoint still bounds the log.
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            connection.close()
