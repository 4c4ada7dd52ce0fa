"""The ledger writer process: the gateway's group commit, beside its event loop.

Started by :class:`kakin.gateway.committer.ProcessCommitter` as
``python -m kakin.gateway.ledger_writer``. It reads frames on stdin (first its settings, then
requests), commits everything that has arrived (up to ``max_batch`` per transaction), and
answers each batch with one frame on stdout. At the end of its input it commits what it has
and exits.

Given a charge journal (kakin.gateway.journal), it applies the journal to the ledger: at
start (whatever a crash left; charges already applied are repeats and change nothing),
``JOURNAL_DELAY`` after the gateway wakes it (at once when someone waits for the charges),
before a snapshot that must include given charges, and at the end.
While the database cannot be reached, the charges it could not post stay first in line and
are tried again (after 0.25 s, then twice as long each time, up to 5 s) until they are
posted; at the end they stay in the journal for the next start.

It ignores SIGINT and SIGTERM: Ctrl-C or a service manager signals the whole process group,
and the gateway, still finishing its in-flight requests, decides when the writer ends by
closing the pipe. If the gateway dies, the pipe closes and the writer finishes the same way.
"""

from __future__ import annotations

import gc
import os
import select
import signal
import sys
import time
from typing import Any

from kakin.errors import KakinError
from kakin.gateway.committer import (
    JOURNAL_APPLIED,
    JOURNAL_READ,
    LedgerUnavailable,
    frame,
    run_batch,
    run_call,
    unframe,
)
from kakin.gateway.journal import JournalReader, segment_of


class _Requests:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()
        self.ended = False

    def _read(self) -> None:
        data = os.read(self.fd, 1 << 20)
        if data:
            self.buffer += data
        else:
            self.ended = True

    def next(self, timeout: float | None = None) -> list[Any] | None:
        """Every request that has arrived, waiting for the first (at most ``timeout`` seconds,
        then an empty list); None at the end of input."""
        while True:
            ready = unframe(self.buffer)
            if ready:
                while not self.ended and select.select([self.fd], [], [], 0)[0]:
                    self._read()
                    ready += unframe(self.buffer)
                return ready
            if self.ended:
                return None
            if timeout is not None and not select.select([self.fd], [], [], timeout)[0]:
                return []
            self._read()


# How long after a wake-up journaled charges are posted (seconds): under load, the charges of
# that time share one transaction, whose fixed cost (the commit and its log pages, the
# organisation's and the rollups' rows) is then spread over more of them. Nobody waits for
# them meanwhile: a read that must count them hurries the writer (ChargeJournal.hurry).
JOURNAL_DELAY = 0.02
# How long after the database could not be reached posting is tried again: the first wait,
# doubled after each failure up to the last.
RETRY_FIRST, RETRY_LAST = 0.25, 5.0


class _Writer:
    def __init__(self, ledger: Any, out: int, size: int, journal: JournalReader | None) -> None:
        self.ledger = ledger
        self.out = out
        self.size = size
        self.journal = journal
        self._released = 0

    def serve(self, requests: _Requests, first: list[tuple[int, str, Any]]) -> None:
        """Answer requests as they come (``first``: those that came with the settings); post
        journaled charges ``JOURNAL_DELAY`` after the wake-up that announced them. Nobody
        waits for those (they are durable already), so the delay lets the charges of that time
        share one transaction and keeps the posting out of the way of the requests that follow
        at once. Once the journal has been read after a wake-up, the gateway is told
        (``JOURNAL_READ``): it sends the next wake-up only then, so the charges it journals
        meanwhile cost no wake-up each."""
        due: float | None = None
        woken = False
        retry = RETRY_FIRST
        batch: list[Any] | None = first
        while batch is not None:
            self.answer(batch)
            wakes = [payload for _, kind, payload in batch if kind == "journal"]
            if wakes:
                woken = True
                if "now" in wakes:  # someone waits for the charges
                    due = time.monotonic()
                elif due is None:
                    due = time.monotonic() + JOURNAL_DELAY
            if due is not None and time.monotonic() >= due:
                posted = self.apply_journal()
                if woken:
                    self._write([(JOURNAL_READ, None)])
                    woken = False
                if posted:
                    due, retry = None, RETRY_FIRST
                else:  # the database is unreachable: the charges wait in the journal
                    due, retry = time.monotonic() + retry, min(retry * 2, RETRY_LAST)
            batch = requests.next(None if due is None else max(0.0, due - time.monotonic()))

    def apply_journal(self, upto: int | None = None) -> bool:
        """Apply the journal's charges (through ``upto``), reporting each batch. False when the
        database could not be reached: the charges from the first it refused on stay in line,
        to be posted by a later call (a charge is never dropped for want of the database)."""
        if self.journal is None:
            return True
        # What the journal holds now, in batches; charges journaled meanwhile come with a
        # wake-up of their own, and wait for it to share a transaction with those after them.
        read = True
        while rows := self.journal.after(upto, self.size, read=read):
            read = False
            results = run_batch(self.ledger, [op for _, op in rows])
            posted = next((i for i, r in enumerate(results) if isinstance(r, LedgerUnavailable)), len(rows))
            self.journal.unread(rows[posted:])
            if posted:
                self.journal.applied = rows[posted - 1][0]
                applied = [
                    (charge_id, _portable(r))
                    for (charge_id, _), r in zip(rows[:posted], results, strict=False)
                ]
                self._write([(JOURNAL_APPLIED, (self.journal.applied, applied))])
                if segment_of(self.journal.applied) != self._released:
                    self.journal.release()
                    self._released = segment_of(self.journal.applied)
            if posted < len(rows):
                return False
        return True

    def answer(self, requests: list[tuple[int, str, Any]]) -> None:
        """Answer requests, at most ``size`` operations per transaction."""
        for start in range(0, len(requests), self.size):
            self._answer(requests[start : start + self.size])

    def _answer(self, requests: list[tuple[int, str, Any]]) -> None:
        ops = [(number, payload) for number, kind, payload in requests if kind == "op"]
        results = run_batch(self.ledger, [op for _, op in ops]) if ops else []
        answers = list(zip([number for number, _ in ops], results, strict=True))
        for number, kind, payload in requests:
            if kind == "call":
                fn, args, journal_upto = payload
                if journal_upto is None:
                    answers.append((number, run_call(self.ledger, fn, args)))
                else:
                    self.apply_journal(journal_upto)
                    applied = self.journal.applied if self.journal else 0
                    answers.append((number, (_portable(run_call(self.ledger, fn, args)), applied)))
        if answers:
            self._write([(number, _portable(result)) for number, result in answers])

    def _write(self, answers: list[tuple[int, Any]]) -> None:
        data = memoryview(frame(answers))
        while data:
            data = data[os.write(self.out, data) :]


def _portable(result: Any) -> Any:
    """Errors other than kakin's own may not survive pickling; send their text."""
    if isinstance(result, BaseException) and not isinstance(result, KakinError):
        return RuntimeError(f"{type(result).__name__}: {result}")
    return result


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    out = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not corrupt the answers
    requests = _Requests(sys.stdin.fileno())
    first = requests.next()
    if not first:
        return
    config = first.pop(0)
    from kakin.ledger import Ledger

    ledger = Ledger.open(
        config["url"], migrate=False, hold_seconds=config["hold_seconds"], pool_size=2, max_overflow=4
    )
    journal = JournalReader(config["journal"]) if config.get("journal") else None
    writer = _Writer(ledger, out, config["max_batch"], journal)
    # Everything loaded so far lives as long as the process: kept out of the collector's
    # full passes, which a writer making rows all day would otherwise run over it again and again.
    gc.freeze()
    try:
        writer.apply_journal()
        writer.serve(requests, first)
        if writer.apply_journal() and journal is not None:
            journal.release(everything=True)  # the gateway has stopped writing: all is posted
    finally:
        if journal is not None:
            journal.close()
        ledger.close()


if __name__ == "__main__":
    main()
