"""The charge journal: where a gateway in local accounting makes each charge durable.

A response's charge must be durable before its last byte reaches the client. Writing it to
the ledger takes the ledger's full bookkeeping (grants, budgets, usage record), which is too
slow to wait for on every request. So the gateway appends the charge — its
:class:`~kakin.ledger.records.PostOp` — to this journal: every charge made in one turn of the
event loop goes out in one ``write`` to an append-only file (durable in the OS once it
returns, like a committed SQLite WAL write), then the responses go out. The ledger writer
process posts the journal to the ledger moments later, in order and in batches.

The journal is a directory of segment files (``000000000001.log`` …). Each gateway start
opens a new segment, and a segment past ``SEGMENT_BYTES`` is followed by a new one; a
segment is deleted by the writer once every charge in it is in the ledger. A record is a header (length,
CRC-32 of the body, charge id) and the body; a torn record at the end of a segment (power
lost mid-write) fails its CRC and is ignored. Charge ids grow across segments and restarts:
the segment number in the high 32 bits, the record's sequence in the low 32.

A body is a format version byte and the charge in that format. Version 2 is a JSON object
written and read field by field (amounts as decimal strings), so what a journal holds never
depends on how the classes in memory are laid out. Version 1, the first, was a pickle,
recognisable by its first byte 0x80; it is still read, by an unpickler that builds nothing
but a charge's own types, so a journal left by an older kakin is posted after an upgrade.

After a crash, the writer posts whatever the segments hold when kakin starts again.
Posting a charge twice is harmless: a PostOp carries the request's idempotency key, and a
repeat changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import pickle
import struct
import zlib
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import orjson

from kakin.errors import KakinError
from kakin.ledger.records import PostOp, Scope, UsageDetail
from kakin.ledger.validate import json_text

log = logging.getLogger("kakin.gateway")

SEGMENT_BYTES = 16 << 20
_HEADER = struct.Struct(">IIQ")  # body length, CRC-32 of the body, charge id
_SUFFIX = ".log"


def journal_path(ledger: Any) -> str | None:
    """Next to an SQLite ledger (``kakin.db`` → ``kakin.db.charges/``); None for other databases."""
    url = ledger.engine.url
    if url.get_backend_name() != "sqlite" or not url.database:
        return None
    return str(Path(url.database).resolve()) + ".charges"


def _segments(directory: Path) -> list[int]:
    """The segment numbers in ``directory``, in order (none if it is gone). Listed by the
    writer before each read, so by name alone: no path objects, no pattern matching."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(
        int(n[: -len(_SUFFIX)]) for n in names if n.endswith(_SUFFIX) and n[: -len(_SUFFIX)].isdigit()
    )


def _segment_file(directory: Path, number: int) -> Path:
    return directory / f"{number:012d}{_SUFFIX}"


def segment_of(charge_id: int) -> int:
    return charge_id >> 32


class Waker(Protocol):
    """Told after each write to the journal (the ledger writer, which then posts it)."""

    def wake(self, *, now: bool = False) -> None:
        """``now``: someone waits for the charges journaled so far; post them without delay."""


class PostingListener(Protocol):
    """Told by the ledger writer of each batch of journal charges it posted: the last charge
    id posted so far, and each charge's result (a Settlement, or the error that refused it)."""

    def applied(self, last_id: int, results: list[tuple[int, Any]]) -> None: ...


class PostedCharges:
    """How far the ledger writer has posted the journal, and what to do with a charge's
    result once it is posted (a :class:`PostingListener`)."""

    def __init__(self) -> None:
        self.through = 0
        self._then: dict[int, Callable[[Any], None]] = {}

    def then(self, charge_id: int, fn: Callable[[Any], None]) -> None:
        """Call ``fn(result)`` once charge ``charge_id`` is posted (not if it is refused)."""
        self._then[charge_id] = fn

    def applied(self, last_id: int, results: list[tuple[int, Any]]) -> None:
        self.through = last_id
        for charge_id, result in results:
            then = self._then.pop(charge_id, None)
            if isinstance(result, BaseException):
                log.error("journal charge %d could not be posted to the ledger: %s", charge_id, result)
            elif then is not None:
                then(result)

    async def reached(self, charge_id: int) -> None:
        """Wait until the writer has posted through ``charge_id``."""
        while self.through < charge_id:
            await asyncio.sleep(0.001)


class ChargeJournal:
    """The gateway's side: append charges, delete posted ones. Use from one event loop.
    ``waker`` is told after each write."""

    def __init__(self, path: str, waker: Waker | None = None, lock: int | None = None) -> None:
        """``lock``: the directory's lock, when :func:`claim_journal` took it already."""
        self.waker = waker
        self.directory = Path(path)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = _lock(self.directory) if lock is None else lock
        existing = _segments(self.directory)
        self._segment = (existing[-1] if existing else 0) + 1
        self._fd = -1
        self._open_segment()
        self._queued: list[tuple[PostOp, asyncio.Future]] = []
        self.last_id = 0

    def _open_segment(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        self._fd = os.open(_segment_file(self.directory, self._segment), flags, 0o600)
        self._sequence = 0
        self._written = 0

    def append(self, op: PostOp) -> asyncio.Future:
        """Queue ``op``; the future resolves to its charge id once it is durable. Everything
        queued in one turn of the event loop is written together."""
        future = asyncio.get_running_loop().create_future()
        if not self._queued:
            future.get_loop().call_soon(self.commit)
        self._queued.append((op, future))
        return future

    def commit(self) -> None:
        """Write what is queued now (and resolve its futures)."""
        queued, self._queued = self._queued, []
        if not queued:
            return
        if self._written >= SEGMENT_BYTES:
            self._segment += 1
            self._open_segment()
        records, ids = [], []
        for op, _ in queued:
            self._sequence += 1
            charge_id = (self._segment << 32) | self._sequence
            body = encode_charge(op)
            records.append(_HEADER.pack(len(body), zlib.crc32(body), charge_id) + body)
            ids.append(charge_id)
        data = b"".join(records)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            for _, future in queued:
                if not future.done():
                    future.set_exception(exc)
            # Part of a record may have been written: continue in a new segment, so the
            # reader, which stops at a torn record, moves on to what follows.
            with contextlib.suppress(OSError):
                self._segment += 1
                self._open_segment()
            return
        self._written += len(data)
        self.last_id = ids[-1]
        for (_, future), charge_id in zip(queued, ids, strict=True):
            if not future.done():
                future.set_result(charge_id)
        if self.waker is not None:
            self.waker.wake()

    def hurry(self) -> None:
        """Have the writer post what is written at once, without its usual delay: someone
        waits for it (a read that must count every charge so far)."""
        if self.waker is not None:
            self.waker.wake(now=True)

    async def all_posted(self, posted: PostedCharges) -> None:
        """Return once every charge appended so far is posted (``posted``: what the writer
        tells of it), hurrying the writer if one is not yet."""
        self.commit()
        if posted.through < self.last_id:
            self.hurry()
            await posted.reached(self.last_id)

    def close(self) -> None:
        os.close(self._fd)
        self._fd = -1
        if not self._sequence:  # nothing was written to it
            _segment_file(self.directory, self._segment).unlink(missing_ok=True)
        (self.directory / _LOCK).unlink(missing_ok=True)
        os.close(self._lock)
        with contextlib.suppress(OSError):
            self.directory.rmdir()  # gone if the writer posted and deleted every segment


_LOCK = "gateway.lock"


def claim_journal(base: str) -> tuple[str, int]:
    """A journal directory of this process's own under ``base``, for a gateway that shares the
    ledger with others (shared accounting with Redis holds): the first of ``base/000``,
    ``base/001``, … that no running gateway holds, and its lock. One a crashed gateway left
    behind is claimed by the next to start, whose writer posts what it holds."""
    for slot in range(1000):
        path = Path(base) / f"{slot:03d}"
        path.mkdir(parents=True, exist_ok=True)
        try:
            return str(path), _lock(path)
        except KakinError:
            continue
    raise KakinError(f"every charge journal directory under {base} is held by a running gateway")


def _lock(directory: Path) -> int:
    """Hold the journal for this process: a second gateway on the same ledger in local
    accounting would post, and delete, this one's charges."""
    fd = os.open(directory / _LOCK, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        import fcntl
    except ImportError:  # no advisory locks on this platform: one gateway per ledger is on trust
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise KakinError(
            f"another kakin gateway is using the charge journal {directory} of this ledger in local "
            'accounting; run one gateway per SQLite ledger, or set gateway.accounting = "shared" '
            "(with PostgreSQL) for several"
        ) from None
    return fd


class JournalReader:
    """The ledger writer's side: the charges after the last one posted, in order."""

    def __init__(self, path: str) -> None:
        self.directory = Path(path)
        self.applied = 0
        self._segment = 0
        self._file = -1  # the segment being read, kept open (and positioned) between reads
        self._tail = b""  # the start of a record not completely written yet
        self._ready: deque[tuple[int, PostOp]] = deque()

    def after(self, upto: int | None, limit: int, *, read: bool = True) -> list[tuple[int, PostOp]]:
        """Up to ``limit`` charges after ``applied`` (and not after ``upto``); ``read``: also
        those journaled since the last read, when fewer than ``limit`` are in hand."""
        if read and len(self._ready) < limit:
            self._read()
        out: list[tuple[int, PostOp]] = []
        while self._ready and len(out) < limit:
            charge_id, op = self._ready[0]
            if upto is not None and charge_id > upto:
                break
            self._ready.popleft()
            if charge_id > self.applied:
                out.append((charge_id, op))
        return out

    def unread(self, rows: list[tuple[int, PostOp]]) -> None:
        """Put back charges :meth:`after` returned that could not be posted: next in line again."""
        self._ready.extendleft(reversed(rows))

    def _read(self) -> None:
        while True:
            # Listed before reading: the gateway finishes a segment before it starts the next,
            # so once a later one exists, this read sees all of the current one.
            later = [n for n in _segments(self.directory) if n > self._segment]
            if self._segment:
                self._parse(self._read_segment())
            if not later:
                return
            self._close_segment()
            self._segment, self._tail = later[0], b""  # what is left was torn

    def _read_segment(self) -> bytes:
        """What the current segment holds past what was read of it."""
        if self._file < 0:
            try:
                self._file = os.open(
                    _segment_file(self.directory, self._segment), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
                )
            except FileNotFoundError:
                return b""
        chunks = []
        while chunk := os.read(self._file, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)

    def _close_segment(self) -> None:
        if self._file >= 0:
            os.close(self._file)
            self._file = -1

    def close(self) -> None:
        self._close_segment()

    def release(self, *, everything: bool = False) -> None:
        """Delete the segments whose charges are all posted: those before the segment of the
        last charge posted, or (at the end, once the gateway has stopped writing and every
        charge read is posted) every segment read."""
        posted_up_to = self._segment + 1 if everything else segment_of(self.applied)
        if self._segment < posted_up_to:  # should it outlive this, it is read again from its start
            self._close_segment()
            self._tail = b""
        for number in _segments(self.directory):
            if number < posted_up_to:
                _segment_file(self.directory, number).unlink(missing_ok=True)

    def _parse(self, data: bytes) -> None:
        buffer = self._tail + data
        at = 0
        while len(buffer) - at >= _HEADER.size:
            length, crc, charge_id = _HEADER.unpack_from(buffer, at)
            end = at + _HEADER.size + length
            if end > len(buffer):
                break
            body = buffer[at + _HEADER.size : end]
            if zlib.crc32(body) != crc:
                break  # torn: nothing valid follows in this segment
            self._ready.append((charge_id, decode_charge(body, charge_id)))
            at = end
        self._tail = buffer[at:]


# Record bodies ------------------------------------------------------------------------------

FORMAT = 2  # the version this kakin writes
_FORMAT_BYTE = bytes((FORMAT,))
_PICKLE = 0x80  # the first byte of every version 1 body (pickle's protocol opcode)


def encode_charge(op: PostOp) -> bytes:
    """``op`` as a version 2 record body."""
    scope, usage = op.scope, op.usage
    items = usage.cost_items  # stored as the JSON text the ledger keeps (the gateway's already is)
    return _FORMAT_BYTE + orjson.dumps(
        {
            "org_id": scope.org_id,
            "project_id": scope.project_id,
            "key_id": scope.key_id,
            "model": scope.model,
            "amount": str(op.amount),
            "idempotency_key": op.idempotency_key,
            "tokens": op.tokens,
            "provider": usage.provider,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cached_tokens": usage.cached_tokens,
            "cost_items": items
            if items is None or isinstance(items, str)
            else json_text(items, "cost_items"),
            "request_id": usage.request_id,
            "cache_hit": usage.cache_hit,
            "cache_saved": str(usage.cache_saved),
            "routed_from": usage.routed_from,
            "routing_saved": str(usage.routing_saved),
            "reasoning_tokens": usage.reasoning_tokens,
        }
    )


def decode_charge(body: bytes, charge_id: int = 0) -> PostOp:
    """The charge a record body holds, in whichever format version wrote it."""
    version = body[0] if body else None
    if version == FORMAT:
        r = orjson.loads(body[1:])
        return PostOp(
            scope=Scope(r["org_id"], r["project_id"], r["key_id"], r["model"]),
            amount=Decimal(r["amount"]),
            usage=UsageDetail(
                provider=r["provider"],
                input_tokens=r["input_tokens"],
                output_tokens=r["output_tokens"],
                cached_tokens=r["cached_tokens"],
                cost_items=r["cost_items"],
                request_id=r["request_id"],
                cache_hit=r["cache_hit"],
                cache_saved=Decimal(r["cache_saved"]),
                routed_from=r["routed_from"],
                routing_saved=Decimal(r["routing_saved"]),
                reasoning_tokens=r["reasoning_tokens"],
            ),
            idempotency_key=r["idempotency_key"],
            tokens=r["tokens"],
        )
    if version == _PICKLE:
        return _read_version_1(body)
    raise KakinError(
        f"charge journal record {charge_id} is in format version {version}, which this kakin cannot "
        f"read (it writes version {FORMAT}); run the kakin that wrote it until its journal is posted"
    )


class _Version1(pickle.Unpickler):
    """Version 1 bodies: pickles of a PostOp. Only a charge's own types may be built from one.
    Read for one release, so that a journal an upgrade finds is posted; then it goes."""

    _ALLOWED = frozenset(
        {
            ("kakin.ledger.records", "PostOp"),
            ("kakin.ledger.records", "Scope"),
            ("kakin.ledger.records", "UsageDetail"),
            ("decimal", "Decimal"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"a charge journal record may not hold {module}.{name}")
        return super().find_class(module, name)


def _read_version_1(body: bytes) -> PostOp:
    op = _Version1(io.BytesIO(body)).load()
    if not isinstance(op, PostOp):
        raise pickle.UnpicklingError(f"a charge journal record holds a {type(op).__name__}, not a PostOp")
    return op
