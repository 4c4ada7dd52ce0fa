"""The charge journal of local accounting: a charge is durable once appended, reaches the
ledger exactly once (also when the journal is applied again after a crash), and the
gateway's in-memory account views count every charge once, even while they reload."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from kakin.gateway.accounting import LocalAccountant
from kakin.gateway.committer import ProcessCommitter
from kakin.gateway.journal import ChargeJournal, JournalReader, PostedCharges, journal_path
from kakin.ledger import Ledger, PostOp, Scope, UsageDetail

USAGE = UsageDetail(provider="sim", input_tokens=10, output_tokens=5)


@pytest.fixture()
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield ledger
    ledger.close()


def _org(ledger: Ledger, credit: str = "10") -> Scope:
    org = ledger.create_org("journal", payment_label="card")
    project = ledger.create_project(org.id, "p")
    ledger.grant(org.id, "prepaid", Decimal(credit), idempotency_key="prepaid")
    ledger.set_budget(org.id, limit="100", hard_cap=True)
    return Scope(org.id, project.id, None, "m")


class _Applied:
    """A PostingListener keeping every result the writer reports, by charge id."""

    def __init__(self) -> None:
        self.results: dict[int, object] = {}

    def applied(self, last_id: int, results: list[tuple[int, object]]) -> None:
        self.results.update(results)


def _writer(ledger: Ledger, path: str, posted: object = None) -> ProcessCommitter:
    return ProcessCommitter(
        str(ledger.engine.url),
        hold_seconds=900,
        max_batch=16,
        journal=path,
        posted=posted,  # type: ignore[arg-type]
    )


def _charge(n: int) -> PostOp:
    return PostOp(Scope("org", "prj", None, "m"), Decimal("0.01"), USAGE, "x" * 100, n)


def test_the_journal_sits_next_to_an_sqlite_ledger(ledger: Ledger, tmp_path: Path) -> None:
    assert journal_path(ledger) == str((tmp_path / "ledger.db").resolve()) + ".charges"


def test_segments_rotate_ids_grow_and_torn_records_are_ignored(tmp_path: Path, monkeypatch) -> None:
    from kakin.gateway import journal as journal_module

    monkeypatch.setattr(journal_module, "SEGMENT_BYTES", 300)
    path = tmp_path / "j.charges"

    async def write(first: int, count: int) -> list[int]:
        journal = ChargeJournal(str(path))
        ids = [await journal.append(_charge(first + i)) for i in range(count)]
        journal.close()
        return ids

    ids = asyncio.run(write(0, 6))
    assert ids == sorted(ids)
    assert len(list(path.glob("*.log"))) >= 2  # rotated
    # A write cut short at the end of the last segment (power lost mid-write):
    last = sorted(path.glob("*.log"))[-1]
    last.write_bytes(last.read_bytes() + b"\x00\x00\x01\x00garbage")
    ids += asyncio.run(write(6, 2))  # a restart starts a new segment; ids keep growing
    assert ids == sorted(ids) and len(set(ids)) == 8

    reader = JournalReader(str(path))
    assert [op.tokens for _, op in reader.after(ids[2], 100)] == [0, 1, 2]  # not past upto
    reader.applied = ids[2]
    rest = reader.after(None, 100)
    assert [op.tokens for _, op in rest] == [3, 4, 5, 6, 7]  # the torn record is skipped

    segments = sorted(path.glob("*.log"))
    reader.release()  # posted through ids[2]: only the segments before its segment go
    assert sorted(path.glob("*.log")) == [s for s in segments if int(s.stem) >= ids[2] >> 32]
    reader.applied = ids[-1]
    reader.release()
    assert len(sorted(path.glob("*.log"))) == 1  # the last charge's segment stays until the end
    reader.release(everything=True)
    assert not list(path.glob("*.log"))
    ChargeJournal(str(path)).close()  # a gateway stopping with nothing left removes the directory
    assert not path.exists()


def test_a_crash_leaves_charges_the_next_start_applies_once(ledger: Ledger, tmp_path: Path) -> None:
    scope = _org(ledger)
    path = str(tmp_path / "ledger.db.charges")

    async def journal_only() -> list[int]:
        journal = ChargeJournal(path)
        ids = await asyncio.gather(
            *(journal.append(PostOp(scope, Decimal("0.01"), USAGE, f"req-{i}", 15)) for i in range(50))
        )
        journal.close()  # the process dies here: nothing was posted to the ledger
        return list(ids)

    ids = asyncio.run(journal_only())
    assert ids == sorted(ids) and len(set(ids)) == 50
    assert ledger.usage(scope.org_id) == []

    def start_and_stop() -> list[int]:
        applied = _Applied()
        writer = _writer(ledger, path, applied)

        async def run() -> None:
            await writer.start()  # answers once the journal left behind is applied
            await writer.stop()

        asyncio.run(run())
        return list(applied.results)

    segments = {file: file.read_bytes() for file in Path(path).glob("*.log")}
    assert start_and_stop() == ids
    assert not list(Path(path).glob("*.log"))  # posted, then deleted
    for file, content in segments.items():  # as if the writer died after posting, before deleting
        file.write_bytes(content)
    assert start_and_stop() == ids  # posted again: repeats change nothing
    assert len(ledger.usage(scope.org_id)) == 50
    assert ledger.balance(scope.org_id).spent == Decimal("0.50")
    assert ledger.reconcile(scope.org_id).ok


def test_a_charge_the_ledger_refuses_does_not_stop_the_others(ledger: Ledger, tmp_path: Path) -> None:
    scope = _org(ledger)
    path = str(tmp_path / "ledger.db.charges")

    async def append() -> None:
        journal = ChargeJournal(path)
        await journal.append(PostOp(scope, Decimal("0.01"), USAGE, "first", 15))
        await journal.append(
            PostOp(Scope(scope.org_id, "prj_unknown", None, "m"), Decimal("0.01"), USAGE, "x", 1)
        )
        await journal.append(PostOp(scope, Decimal("0.02"), USAGE, "third", 15))
        journal.close()

    asyncio.run(append())
    applied = _Applied()
    writer = _writer(ledger, path, applied)
    results = applied.results

    async def run() -> None:
        await writer.start()
        await writer.stop()

    asyncio.run(run())
    assert [type(result).__name__ for _, result in sorted(results.items())] == [
        "Settlement",
        "PermissionDenied",
        "Settlement",
    ]
    assert ledger.balance(scope.org_id).spent == Decimal("0.03")
    assert not list(Path(path).glob("*.log"))  # all three were dealt with: nothing is posted twice


def test_views_count_each_charge_once_while_they_reload(ledger: Ledger, tmp_path: Path) -> None:
    """Charges race reloads of the organisation's view; the view and the ledger agree."""
    scope = _org(ledger, credit="3")
    path = str(tmp_path / "ledger.db.charges")
    posted = PostedCharges()
    writer = _writer(ledger, path, posted)
    journal = ChargeJournal(path, waker=writer)
    accounts = LocalAccountant(ledger, writer, journal, posted)
    rng = random.Random(7)

    async def one(i: int) -> None:
        await asyncio.sleep(rng.random() / 50)
        ticket = await accounts.hold(scope, Decimal("0.05"), 20, f"req-{i}")
        if i % 7 == 0:
            accounts.forget(scope.org_id)  # an admin change: the next request reloads the view
        await asyncio.sleep(rng.random() / 100)
        await accounts.charge(ticket, Decimal("0.01") + Decimal(i) / 10_000, USAGE)

    async def run() -> object:
        await writer.start()
        try:
            await asyncio.gather(*(one(i) for i in range(120)))
            await accounts.settled()
            return await accounts.view(scope.org_id)
        finally:
            await writer.stop()
            journal.close()

    view = asyncio.run(run())
    expected = sum(Decimal("0.01") + Decimal(i) / 10_000 for i in range(120))
    balance = ledger.balance(scope.org_id)
    assert balance.spent == expected
    assert view.open_holds == 0  # type: ignore[attr-defined]
    assert view.available == balance.credit == Decimal("3") - expected  # type: ignore[attr-defined]
    assert ledger.reconcile(scope.org_id).ok


def test_a_charge_journaled_while_the_writer_posts_reaches_the_ledger_without_being_waited_for(
    ledger: Ledger, tmp_path: Path
) -> None:
    """The gateway keeps one wake-up of the writer in flight: a charge journaled while the
    writer posts what it read gets the next one, sent once the writer says it has read the
    journal. With nobody hurrying the writer, it reaches the ledger all the same."""
    scope = _org(ledger)
    path = str(tmp_path / "ledger.db.charges")
    posted = PostedCharges()
    writer = _writer(ledger, path, posted)  # batches of 16: posting 320 charges takes a while
    journal = ChargeJournal(path, waker=writer)
    wakes: list[object] = []
    send = writer._send

    def counting(kind: str, payload: object, *, wait: bool) -> asyncio.Future:
        if kind == "journal":
            wakes.append(payload)
        return send(kind, payload, wait=wait)

    writer._send = counting  # type: ignore[method-assign]

    async def run() -> None:
        await writer.start()
        try:
            charges = [PostOp(scope, Decimal("0.01"), USAGE, f"req-{i}", 15) for i in range(321)]
            await asyncio.gather(*(journal.append(op) for op in charges[:-1]))  # one write, one wake-up
            while not posted.through:  # the writer has read them and is posting them
                await asyncio.sleep(0.001)
            await journal.append(charges[-1])  # its wake-up waits for the writer's word
            await asyncio.wait_for(posted.reached(journal.last_id), 20)
        finally:
            await writer.stop()
            journal.close()

    asyncio.run(run())
    assert len(ledger.usage(scope.org_id)) == 321
    assert ledger.balance(scope.org_id).spent == Decimal("3.21")
    assert ledger.reconcile(scope.org_id).ok
    assert wakes == [None, None]  # the first write's, then the one sent on the writer's word


def test_the_admin_api_sees_a_request_as_soon_as_it_is_answered(tmp_path: Path) -> None:
    import httpx

    from kakin.config import load_settings
    from kakin.server import start_in_thread

    database = f"sqlite:///{tmp_path / 'kakin.db'}"
    settings = load_settings(env={"KAKIN_DATABASE_URL": database, "KAKIN_ADMIN_KEY": "admin-secret"})
    ledger = Ledger.open(database)
    scope = _org(ledger)
    _, key = ledger.create_key(scope.project_id, "k")
    running = start_in_thread(settings, ledger)
    try:
        assert running.gateway.journal is not None  # local accounting on SQLite journals charges
        admin = {"Authorization": "Bearer admin-secret"}
        for n in range(1, 6):
            answered = httpx.post(
                running.url + "/v1/chat/completions",
                json={
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": f"hi {n}"}],
                    "max_tokens": 5,
                },
                headers={"Authorization": f"Bearer {key}"},
            )
            assert answered.status_code == 200
            usage = httpx.get(f"{running.url}/admin/orgs/{scope.org_id}/usage", headers=admin).json()["items"]
            assert len(usage) == n
            assert usage[-1]["request_id"] == answered.headers["x-kakin-request-id"]
    finally:
        running.stop()
        ledger.close()


def test_a_second_gateway_cannot_take_the_same_journal(tmp_path: Path) -> None:
    from kakin.errors import KakinError

    first = ChargeJournal(str(tmp_path / "kakin.db.charges"))
    with pytest.raises(KakinError, match="another kakin gateway is using the charge journal"):
        ChargeJournal(str(tmp_path / "kakin.db.charges"))
    first.close()
    ChargeJournal(str(tmp_path / "kakin.db.charges")).close()  # free again once the first stops
    assert not (tmp_path / "kakin.db.charges").exists()


def test_a_record_keeps_every_field_of_its_charge() -> None:
    from kakin.gateway.journal import decode_charge, encode_charge

    op = PostOp(
        Scope("org_1", "prj_1", "key_1", "gpt-4o-mini"),
        Decimal("0.000123456789"),
        UsageDetail(
            provider="openai",
            input_tokens=1234,
            output_tokens=56,
            cached_tokens=7,
            cost_items='[{"amount": "0.0001"}]',
            request_id="req_1",
            cache_hit=True,
            cache_saved=Decimal("0.5"),
            routed_from="gpt-4o",
            routing_saved=Decimal("0.000002"),
            reasoning_tokens=40,
        ),
        "idem-1",
        2000,
    )
    # Every field is set to something other than its default, so a field the record format
    # forgets cannot pass unnoticed.
    for part in (op.scope, op.usage, op):
        for f in dataclasses.fields(part):
            assert getattr(part, f.name) != f.default, f"give {f.name} a non-default value here"
    body = encode_charge(op)
    assert body[0] == 2 and b"kakin.ledger" not in body  # a versioned JSON record, not a pickle
    assert decode_charge(body) == op
    structured = PostOp(
        op.scope, op.amount, UsageDetail("openai", cost_items=[{"amount": Decimal("1.5")}]), "k"
    )
    assert decode_charge(encode_charge(structured)).usage.cost_items == '[{"amount": "1.5"}]'


def _write_version_1_segment(directory: Path, segment: int, ops: list[PostOp]) -> list[int]:
    """The journal writer of format version 1 (pickled charges), frozen here as it was."""
    import pickle
    import struct
    import zlib

    header = struct.Struct(">IIQ")
    records, ids = [], []
    for sequence, op in enumerate(ops, 1):
        charge_id = (segment << 32) | sequence
        body = pickle.dumps(op, protocol=pickle.HIGHEST_PROTOCOL)
        records.append(header.pack(len(body), zlib.crc32(body), charge_id) + body)
        ids.append(charge_id)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{segment:012d}.log").write_bytes(b"".join(records))
    return ids


def test_a_journal_of_format_version_1_is_posted_once_after_an_upgrade(
    ledger: Ledger, tmp_path: Path
) -> None:
    scope = _org(ledger)
    path = tmp_path / "ledger.db.charges"
    old_ids = _write_version_1_segment(
        path, 1, [PostOp(scope, Decimal("0.01"), USAGE, f"old-{i}", 15) for i in range(20)]
    )

    async def new_charges() -> list[int]:  # the upgraded gateway starts, journaling in version 2
        journal = ChargeJournal(str(path))
        ids = [await journal.append(PostOp(scope, Decimal("0.02"), USAGE, f"new-{i}", 15)) for i in range(5)]
        journal.close()
        return ids

    new_ids = asyncio.run(new_charges())
    segments = {file: file.read_bytes() for file in path.glob("*.log")}

    def start_and_stop() -> list[int]:
        applied = _Applied()
        writer = _writer(ledger, str(path), applied)

        async def run() -> None:
            await writer.start()
            await writer.stop()

        asyncio.run(run())
        return list(applied.results)

    assert start_and_stop() == old_ids + new_ids
    assert not path.exists() or not list(path.glob("*.log"))
    for file, content in segments.items():  # as if the writer died after posting, before deleting
        path.mkdir(exist_ok=True)
        file.write_bytes(content)
    assert start_and_stop() == old_ids + new_ids
    assert len(ledger.usage(scope.org_id)) == 25  # each charge once
    assert ledger.balance(scope.org_id).spent == Decimal("0.30")
    assert ledger.reconcile(scope.org_id).ok


def test_a_journal_record_never_builds_anything_but_a_charge(tmp_path: Path) -> None:
    import pickle
    import struct
    import zlib

    class Trap:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (Path.touch, (str(tmp_path / "pwned"),))  # type: ignore[return-value]

    body = pickle.dumps(Trap(), protocol=pickle.HIGHEST_PROTOCOL)
    path = tmp_path / "j.charges"
    path.mkdir()
    (path / "000000000001.log").write_bytes(struct.pack(">IIQ", len(body), zlib.crc32(body), 1 << 32) + body)
    with pytest.raises(pickle.UnpicklingError, match="may not hold pathlib"):
        JournalReader(str(path)).after(None, 10)
    assert not (tmp_path / "pwned").exists()


def test_charges_wait_in_the_journal_while_the_database_is_unreachable_and_are_posted_once(
    ledger: Ledger, tmp_path: Path
) -> None:
    """The writer posts one batch, then the database goes away: the charges it cannot post
    stay first in line (none is reported, none dropped, their segment kept) and are posted,
    each once, when it returns. (Were a refused charge skipped, the ledger would end short.)"""
    import os

    from sqlalchemy.exc import OperationalError

    from kakin.gateway.committer import JOURNAL_APPLIED, unframe
    from kakin.gateway.ledger_writer import _Writer

    scope = _org(ledger)
    path = str(tmp_path / "ledger.db.charges")

    async def append() -> list[int]:
        journal = ChargeJournal(path)
        ids = await asyncio.gather(
            *(journal.append(PostOp(scope, Decimal("0.01"), USAGE, f"req-{i}", 15)) for i in range(7))
        )
        journal.close()
        return list(ids)

    ids = asyncio.run(append())

    class Outage:
        """The ledger, whose database answers ``batches`` more batches, then is unreachable."""

        def __init__(self, batches: int) -> None:
            self.batches = batches

        def batch(self, ops: list[object]) -> list[object]:
            if self.batches <= 0:
                raise OperationalError("COMMIT", {}, ConnectionRefusedError("connection refused"))
            self.batches -= 1
            return ledger.batch(ops)

    reports, out = os.pipe()
    reader = JournalReader(path)
    database = Outage(batches=1)
    writer = _Writer(database, out, 3, reader)
    assert writer.apply_journal() is False  # one batch of three posted, then the outage
    assert reader.applied == ids[2]
    assert len(ledger.usage(scope.org_id)) == 3
    assert writer.apply_journal() is False  # still away: nothing moves, nothing is lost
    assert reader.applied == ids[2] and list(Path(path).glob("*.log"))
    database.batches = 100  # back
    assert writer.apply_journal() is True
    reader.release(everything=True)
    os.close(out)
    with os.fdopen(reports, "rb") as stream:
        frames = unframe(bytearray(stream.read()))
    reported = [charge_id for batch in frames for number, (_, results) in batch for charge_id, _ in results]
    assert all(number == JOURNAL_APPLIED for batch in frames for number, _ in batch)
    assert reported == ids  # each charge reported posted once, in order
    assert len(ledger.usage(scope.org_id)) == 7
    assert ledger.balance(scope.org_id).spent == Decimal("0.07")
    assert ledger.reconcile(scope.org_id).ok
    assert not list(Path(path).glob("*.log"))
