"""Background delivery with retries, so a slow or broken receiver never delays a request.

``Dispatcher.submit`` only puts a job on a heap and returns. A scheduler thread hands due
jobs to a small thread pool; a failed attempt is put back with an exponential backoff
(``base × 2^(attempt-1)``, capped) with *equal jitter* — half the delay fixed, half random —
so retries from many alerts spread out yet always grow. After ``max_attempts`` the delivery is
marked ``failed`` and stays in the log for ``kakin alerts deliveries``. Every attempt is
written to the log (attempt number, status, response code, error, duration).

The same pool runs other background work (``call_soon``), e.g. the alert engine's
bookkeeping that touches the database.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from kakin.alerts.channels import Channel, EmailSender, Outcome, Sender, WebhookSender
from kakin.alerts.model import Alert

log = logging.getLogger("kakin.alerts")

DeliveryStatus = Literal["pending", "retrying", "delivered", "failed"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 6
    base_seconds: float = 2.0
    max_seconds: float = 600.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Wait before attempt ``attempt + 1`` (attempt counts from 1)."""
        full = min(self.max_seconds, self.base_seconds * 2 ** (attempt - 1))
        return full / 2 + rng.uniform(0, full / 2)


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    delivery_id: str
    channel_id: str
    attempt: int
    at: datetime
    outcome: Outcome
    status: DeliveryStatus  # the delivery's status after this attempt
    next_attempt_at: datetime | None


class DeliveryLog(Protocol):
    def record_attempt(self, record: AttemptRecord) -> None: ...


class MemoryDeliveryLog:
    """A delivery log kept in a list (tests, and the CLI's ``test`` command)."""

    def __init__(self) -> None:
        self.records: list[AttemptRecord] = []
        self._lock = threading.Lock()

    def record_attempt(self, record: AttemptRecord) -> None:
        with self._lock:
            self.records.append(record)

    def for_delivery(self, delivery_id: str) -> list[AttemptRecord]:
        with self._lock:
            return [r for r in self.records if r.delivery_id == delivery_id]


@dataclass(slots=True)
class _Job:
    delivery_id: str
    channel: Channel
    alert_id: str
    alert: Alert
    attempt: int = 1


class Dispatcher:
    """Runs deliveries (and other background work) off the request path."""

    def __init__(
        self,
        delivery_log: DeliveryLog,
        *,
        policy: RetryPolicy | None = None,
        senders: dict[str, Sender] | None = None,
        workers: int = 4,
        rng: random.Random | None = None,
    ) -> None:
        self.log = delivery_log
        self.policy = policy or RetryPolicy()
        self._senders: dict[str, Sender] = senders or {"webhook": WebhookSender(), "email": EmailSender()}
        self._rng = rng or random.Random()
        self._heap: list[tuple[float, int, _Job]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kakin-alerts")
        self._busy = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._schedule, name="kakin-alerts-scheduler", daemon=True)
        self._thread.start()

    def submit(
        self, delivery_id: str, channel: Channel, alert_id: str, alert: Alert, *, attempt: int = 1
    ) -> None:
        """Queue a delivery; returns at once."""
        self._push(time.monotonic(), _Job(delivery_id, channel, alert_id, alert, attempt))

    def call_soon(self, work: Callable[[], object]) -> None:
        """Run ``work`` on the background pool; errors are logged, never raised here."""
        with self._cond:
            self._busy += 1
        self._pool.submit(self._guarded, work)

    def idle(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is queued or running (deliveries waiting for a retry count).
        Returns False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Stop scheduling; attempts in flight finish. Queued retries are dropped here but
        stay ``retrying`` in a persistent log, to be resumed by the next process."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)
        self._pool.shutdown(wait=True)
        for sender in self._senders.values():
            close = getattr(sender, "close", None)
            if close:
                close()

    # -- internals ----------------------------------------------------------------------

    def _push(self, due: float, job: _Job) -> None:
        with self._cond:
            heapq.heappush(self._heap, (due, next(self._seq), job))
            self._cond.notify_all()

    def _schedule(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (not self._heap or self._heap[0][0] > time.monotonic()):
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(wait)
                if self._stopping:
                    return
                _, _, job = heapq.heappop(self._heap)
                self._busy += 1
            self._pool.submit(self._attempt, job)

    def _attempt(self, job: _Job) -> None:
        try:
            sender = self._senders.get(job.channel.kind)
            if sender is None:
                outcome = Outcome(False, None, f"no sender for channel kind {job.channel.kind!r}")
            else:
                try:
                    outcome = sender.send(job.channel, job.delivery_id, job.attempt, job.alert_id, job.alert)
                except Exception as exc:  # a sender bug must not kill the worker
                    outcome = Outcome(False, None, f"{type(exc).__name__}: {exc}"[:500])
            now = datetime.now(UTC)
            retry_in = None
            if outcome.ok:
                status: DeliveryStatus = "delivered"
            elif job.attempt >= self.policy.max_attempts:
                status = "failed"
                log.warning(
                    "alert delivery %s gave up after %d attempts: %s",
                    job.delivery_id,
                    job.attempt,
                    outcome.error,
                )
            else:
                status = "retrying"
                retry_in = self.policy.delay(job.attempt, self._rng)
            next_at = now + timedelta(seconds=retry_in) if retry_in is not None else None
            self._guarded(
                lambda: self.log.record_attempt(
                    AttemptRecord(job.delivery_id, job.channel.id, job.attempt, now, outcome, status, next_at)
                ),
                count=False,
            )
            if retry_in is not None:
                job.attempt += 1
                self._push(time.monotonic() + retry_in, job)
        finally:
            with self._cond:
                self._busy -= 1
                self._cond.notify_all()

    def _guarded(self, work: Callable[[], object], count: bool = True) -> None:
        try:
            work()
        except Exception:
            log.exception("alert background work failed")
        finally:
            if count:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()
