"""The ledger writer process: the gateway's group commit, beside its event loop.

Started by :class:`kakin.gateway.committer.ProcessCommitter` as
``python -m kakin.gateway.ledger_writer``. It reads frames on stdin (first its settings, then
requests), commits everything that has arrived (up to ``max_batch`` per transaction), and
answers each batch with one frame on stdout. At the end of its input it commits what it has
and exits.

It ignores SIGINT and SIGTERM: Ctrl-C or a service manager signals the whole process group,
and the gateway, still finishing its in-flight requests, decides when the writer ends by
closing the pipe. If the gateway dies, the pipe closes and the writer finishes the same way.
"""

from __future__ import annotations

import os
import select
import signal
import sys
from typing import Any

from kakin.errors import KakinError
from kakin.gateway.committer import frame, run_batch, run_call, unframe


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

    def next(self) -> list[Any] | None:
        """Every request that has arrived, waiting for the first; None at the end of input."""
        while True:
            ready = unframe(self.buffer)
            if ready:
                while not self.ended and select.select([self.fd], [], [], 0)[0]:
                    self._read()
                    ready += unframe(self.buffer)
                return ready
            if self.ended:
                return None
            self._read()


def _answer(ledger: Any, requests: list[tuple[int, str, Any]]) -> list[tuple[int, Any]]:
    ops = [(number, payload) for number, kind, payload in requests if kind == "op"]
    results = run_batch(ledger, [op for _, op in ops]) if ops else []
    answers = list(zip([number for number, _ in ops], results, strict=True))
    for number, kind, payload in requests:
        if kind == "call":
            method, args = payload
            answers.append((number, run_call(ledger, method, args)))
    return [(number, _portable(result)) for number, result in answers]


def _portable(result: Any) -> Any:
    """Errors other than kakin's own may not survive pickling; send their text."""
    if isinstance(result, BaseException) and not isinstance(result, KakinError):
        return RuntimeError(f"{type(result).__name__}: {result}")
    return result


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


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
    size = config["max_batch"]
    try:
        pending: list[Any] | None = first
        while pending is not None:
            for start in range(0, len(pending), size):
                _write(out, frame(_answer(ledger, pending[start : start + size])))
            pending = requests.next()
    finally:
        ledger.close()


if __name__ == "__main__":
    main()
