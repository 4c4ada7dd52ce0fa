"""The Redis hold store's Lua copy of the admission rule decides as kakin.ledger.admission does:
same numbers in, same decision (and so the same refusal, word for word) out — amounts up to
the ledger's largest, past what a Lua number holds exactly."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import redis.asyncio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from kakin.gateway.holds import Held, HoldStore, entry
from kakin.ledger import admission
from kakin.ledger.budgets import scope_matches
from kakin.ledger.records import Scope
from kakin.ledger.snapshots import AccountSnapshot, BudgetSnapshot

MAX_PICO = 2**63 - 1  # the largest counter a BIGINT column holds
FAR = 4_102_444_800_000  # 2100-01-01 in epoch ms

pico = st.one_of(st.integers(0, 10**6), st.integers(0, 10**15), st.integers(0, MAX_PICO // 4))
scopes = st.sampled_from(["org", "project", "key", "model"])


@st.composite
def budgets(draw: st.DrawFn) -> list[BudgetSnapshot]:
    out = []
    for i in range(draw(st.integers(0, 4))):
        scope = draw(scopes)
        ref = (
            ""
            if scope == "org"
            else draw(
                st.sampled_from(
                    {"project": ["prj_a", "prj_b"], "key": ["key_a", "key_b"], "model": ["m1", "m2"]}[scope]
                )
            )
        )
        unit = draw(st.sampled_from(["usd", "tokens"]))
        big = pico if unit == "usd" else st.integers(0, 10**12)
        out.append(
            BudgetSnapshot(
                id=f"bud_{i}",
                name=f"b{i}",
                scope=scope,
                scope_ref=ref,
                period=draw(st.sampled_from(["day", "month", "total"])),
                unit=unit,
                source=draw(st.sampled_from(["user", "tier"])),
                limit=draw(big) + 1,
                hard_cap=draw(st.booleans()),
                start_ms=0,
                end_ms=None,
                spent=draw(big),
                held=draw(big),
            )
        )
    return out


@pytest.fixture()
def store(redis_prefix: tuple[str, str]) -> Iterator[tuple[asyncio.AbstractEventLoop, HoldStore]]:
    url, prefix = redis_prefix
    loop = asyncio.new_event_loop()
    client = redis.asyncio.Redis.from_url(url)
    yield loop, HoldStore(client, prefix)
    loop.run_until_complete(client.aclose())
    loop.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payment_method=st.booleans(),
    credit=pico,
    held=pico,
    budget_list=budgets(),
    amount=pico,
    tokens=st.integers(0, 10**9),
    project=st.sampled_from(["prj_a", "prj_b"]),
    key=st.sampled_from(["key_a", "key_b", None]),
    model=st.sampled_from(["m1", "m2"]),
    unbounded=st.booleans(),
    unbounded_held=st.sampled_from([0, 0, 1, 2]),
)
def test_lua_rule_decides_as_the_python_rule(
    store,
    payment_method,
    credit,
    held,
    budget_list,
    amount,
    tokens,
    project,
    key,
    model,
    unbounded,
    unbounded_held,
) -> None:
    loop, holds = store
    org_id = "org_" + uuid.uuid4().hex[:10]
    scope = Scope(org_id, project, key, model)
    snapshot = AccountSnapshot(
        org_id=org_id,
        name="acme",
        timezone="Asia/Tokyo",
        tier="Tier 1",
        tier_rules="openai",
        payment_method=payment_method,
        credit_pico=credit,
        held_pico=held,
        held_unbounded=unbounded_held,
        budgets=tuple(budget_list),
        blocked=(),
        taken_ms=int(time.time() * 1000),  # fresh: refusals are not sent to a refresh first
        valid_until_ms=FAR,
        posted=(),
    )
    applicable = [b for b in budget_list if scope_matches(b.scope, b.scope_ref, project, key, model)]
    room = admission.Room(
        payment_method,
        credit,
        held,
        tuple(admission.BudgetRoom(b.id, b.hard_cap, b.unit, b.limit, b.spent, b.held) for b in applicable),
        unbounded_held,
    )
    expected = admission.decide(room, admission.Ask(amount, tokens, unbounded))
    event(type(expected).__name__)

    async def lua() -> object:
        token = uuid.uuid4().hex
        await holds.begin_rebuild(org_id, token, 10_000)
        await holds.install(org_id, token, snapshot)
        return await holds.hold(org_id, "h1", scope, amount, tokens, 60_000, unbounded=unbounded)

    got = loop.run_until_complete(lua())
    if isinstance(expected, admission.Admitted):
        assert isinstance(got, Held)
    else:
        assert got == expected
        now = datetime(2026, 3, 1, tzinfo=UTC)
        by_id = {b.id: b.row() for b in budget_list}

        def words(decision: object) -> str:
            return admission.refusal(decision, snapshot.org_row(), by_id, now, lambda: None).message  # type: ignore[arg-type]

        assert words(got) == words(expected)
    loop.run_until_complete(holds.client.delete(*holds.keys(org_id)))


def test_a_client_idempotency_key_is_claimed_with_its_hold_as_a_ledger_reservation_would_be(store) -> None:
    """The hold script claims the client's Idempotency-Key atomically with the hold: a second
    request with it while the first is in flight is a repeat (in flight); once the first is
    released unbilled the key is free again (a retry is a new attempt); once it is charged
    it stays a repeat (served), for as long as its answer is kept. Other keys never collide."""
    from kakin.gateway.holds import Repeated

    loop, holds = store
    org_id = "org_" + uuid.uuid4().hex[:10]
    scope = Scope(org_id, "prj_a", "key_a", "m1")
    snapshot = AccountSnapshot(
        org_id=org_id,
        name="acme",
        timezone="UTC",
        tier="Tier 1",
        tier_rules="openai",
        payment_method=True,
        credit_pico=0,
        held_pico=0,
        held_unbounded=0,
        budgets=(),
        blocked=(),
        taken_ms=int(time.time() * 1000),
        valid_until_ms=FAR,
        posted=(),
    )
    key = "key_a:order-1"

    async def run() -> None:
        token = uuid.uuid4().hex
        await holds.begin_rebuild(org_id, token, 10_000)
        await holds.install(org_id, token, snapshot)
        claim_key = holds.claim(org_id, key)[0]
        assert isinstance(await holds.hold(org_id, "h1", scope, 10, 1, 60_000, key), Held)
        assert 0 < await holds.client.pttl(claim_key) <= 60_000  # it lapses with the hold
        # Concurrent repeats: every one is refused as in flight, none takes a hold.
        again = await asyncio.gather(
            *(holds.hold(org_id, f"r{i}", scope, 10, 1, 60_000, key) for i in range(8))
        )
        assert again == [Repeated(in_flight=True)] * 8
        assert await holds.client.hkeys(holds.keys(org_id)[1]) == [b"h1"]
        assert isinstance(await holds.hold(org_id, "h2", scope, 10, 1, 60_000, "key_a:order-2"), Held)
        assert isinstance(await holds.hold(org_id, "h3", scope, 10, 1, 60_000), Held)  # no client key
        await holds.release(org_id, "r0", key)  # not the claimant: the claim stays
        assert await holds.hold(org_id, "r9", scope, 10, 1, 60_000, key) == Repeated(in_flight=True)
        await holds.release(org_id, "h1", key)  # released unbilled: a retry is a new attempt
        assert isinstance(await holds.hold(org_id, "h4", scope, 10, 1, 60_000, key), Held)
        await holds.charge(org_id, "h4", key, 10, 1, scope, key, 3_600_000)
        assert await holds.hold(org_id, "r10", scope, 10, 1, 60_000, key) == Repeated(in_flight=False)
        assert 60_000 < await holds.client.pttl(claim_key) <= 3_600_000  # kept with its answer
        await holds.release(org_id, "h4", key)  # a late release of a charged hold frees nothing
        assert await holds.hold(org_id, "r11", scope, 10, 1, 60_000, key) == Repeated(in_flight=False)
        await holds.client.delete(*holds.keys(org_id), claim_key, *holds.claim(org_id, "key_a:order-2"))

    loop.run_until_complete(run())


def test_every_script_keeps_the_count_of_unbounded_holds(store) -> None:
    """Hold, charge, release, a rebuild and a hold put back after a loss all keep ``uh``: an
    unbounded hold is refused exactly while another is open, and only where a cap could be passed."""
    loop, holds = store
    org_id = "org_" + uuid.uuid4().hex[:10]
    scope = Scope(org_id, "prj_a", None, "m1")

    def snapshot(payment_method: bool) -> AccountSnapshot:
        now = int(time.time() * 1000)
        return AccountSnapshot(
            org_id=org_id,
            name="acme",
            timezone="UTC",
            tier=None,
            tier_rules=None,
            payment_method=payment_method,
            credit_pico=10**12,
            held_pico=0,
            held_unbounded=0,
            budgets=(),
            blocked=(),
            taken_ms=now,
            valid_until_ms=FAR,
            posted=(),
        )

    async def install(payment_method: bool = False) -> None:
        token = uuid.uuid4().hex
        await holds.begin_rebuild(org_id, token, 10_000)
        assert await holds.install(org_id, token, snapshot(payment_method)) > 0

    async def hold(hold_id: str, unbounded: bool = True) -> object:
        return await holds.hold(org_id, hold_id, scope, 1_000, 10, 60_000, unbounded=unbounded)

    busy = admission.UnboundedBusy(1)

    async def run() -> None:
        await install()  # credit only: credit is a cap
        assert isinstance(await hold("u1"), Held)
        assert await hold("u2") == busy
        assert isinstance(await hold("b1", unbounded=False), Held)  # bounded holds are not affected
        await holds.release(org_id, "u1")
        assert isinstance(await hold("u2"), Held)
        await holds.charge(org_id, "u2", "c2", 5_000, 10, scope)  # charged past its hold
        assert isinstance(await hold("u3"), Held)
        await install()  # a rebuild counts the holds Redis keeps
        assert await hold("u4") == busy

        await holds.client.delete(*holds.keys(org_id))  # Redis lost everything
        now = int(time.time() * 1000)
        await holds.readd(org_id, "h", "u3", entry(1_000, 10, now, now + 60_000, scope, True))
        await install()
        assert await hold("u4") == busy
        await holds.release(org_id, "u3")
        assert isinstance(await hold("u4"), Held)

        await install(payment_method=True)  # no cap at all: unbounded holds are not limited
        assert isinstance(await hold("u5"), Held)
        assert int(await holds.client.hget(holds.keys(org_id)[0], "uh")) == 2

    loop.run_until_complete(run())


@pytest.mark.postgres
def test_what_redis_loses_every_gateway_puts_back_before_anything_is_admitted(
    gateway_pg_url: str, redis_prefix: tuple[str, str], tmp_path
) -> None:
    """Three gateways' accountants on one ledger and one Redis. A holds and has charged (in its
    journal, not yet posted), B holds; Redis then loses everything. C, which knew nothing, is
    admitted only into the room A's and B's requests leave: they put back what they know before
    the state is rebuilt from the ledger."""
    from kakin.gateway.accounting import AccountingHealth
    from kakin.gateway.committer import ProcessCommitter, ThreadCommitter
    from kakin.gateway.journal import ChargeJournal, PostedCharges
    from kakin.gateway.shared_holds import RedisAccountant
    from kakin.ledger import Ledger
    from kakin.ledger.errors import BudgetExceeded
    from kakin.ledger.records import UsageDetail

    url, prefix = redis_prefix
    ledger = Ledger.open(gateway_pg_url)
    org = ledger.create_org("lost-" + uuid.uuid4().hex[:8], payment_method=True, payment_label="card")
    project = ledger.create_project(org.id, "p")
    ledger.set_budget(org.id, period="month", limit=Decimal("1"), hard_cap=True)
    scope = Scope(org.id, project.id, None, "gpt-4o-mini")
    tenth = Decimal("0.1")
    usage = UsageDetail(provider="openai", input_tokens=10, output_tokens=10)

    async def run() -> None:
        posted = PostedCharges()
        path = str(tmp_path / "journal")
        # A's writer is never woken, so its charges stay in its journal, unposted, until it stops.
        writer_a = ProcessCommitter(gateway_pg_url, hold_seconds=900, journal=path, posted=posted)
        journal = ChargeJournal(path)

        def accountant(committer, journal=None, posted=None) -> RedisAccountant:  # type: ignore[no-untyped-def]
            store = HoldStore(redis.asyncio.Redis.from_url(url), prefix)
            return RedisAccountant(
                store, committer, journal, posted or PostedCharges(), hold_seconds=900, grace=0.3, wait=10
            )

        committer = ThreadCommitter(ledger)
        await writer_a.start()
        await committer.start()
        a, b, c = accountant(writer_a, journal, posted), accountant(committer), accountant(committer)
        for one in (a, b, c):
            await one.start()
        try:
            held_a = [await a.hold(scope, tenth, 20, f"a{i}") for i in range(5)]
            for ticket in held_a[:3]:
                await a.charge(ticket, tenth, usage)  # durable in A's journal, not in the ledger
            held_b = [await b.hold(scope, tenth, 20, f"b{i}") for i in range(4)]
            assert ledger.balance(org.id).spent == 0
            with pytest.raises(BudgetExceeded):
                await c.hold(scope, Decimal("0.2"), 20, "c0")  # 0.3 spent + 0.6 held of 1

            client = redis.asyncio.Redis.from_url(url)
            lost = [key async for key in client.scan_iter(match=prefix + "*")]
            await client.delete(*lost)  # as a flush or a restart would
            await client.aclose()

            with pytest.raises(BudgetExceeded):  # waits for the rebuild, then refuses
                await c.hold(scope, Decimal("0.2"), 20, "c1")
            # Each gateway says healthy again at its next upkeep once the grace has passed
            # (every TEND_SECONDS): within moments, however loaded the machine.
            deadline = time.monotonic() + 10
            while {a.health(), b.health(), c.health()} != {AccountingHealth.HEALTHY}:
                assert time.monotonic() < deadline, (a.health(), b.health(), c.health())
                await asyncio.sleep(0.02)
            assert (await c.hold(scope, tenth, 20, "c2")).handle is not None  # the room left: 0.1
            with pytest.raises(BudgetExceeded):
                await b.hold(scope, Decimal("0.000001"), 1, "b9")
            for ticket in held_b:
                b.release(ticket)
            await asyncio.sleep(0.05)
            assert (await b.hold(scope, Decimal("0.4"), 20, "b10")).handle is not None
        finally:
            writer_a.wake()  # post A's journal now
            for one in (a, b, c):
                await one.close()
            await writer_a.stop()
            journal.close()
            await committer.stop()

    try:
        asyncio.run(run())
        assert ledger.balance(org.id).spent == Decimal("0.3")  # A's charges, posted at its stop
    finally:
        ledger.close()


@pytest.mark.parametrize("fail_open", [False, True])
def test_without_redis_requests_are_refused_or_admitted_as_configured(tmp_path, fail_open: bool) -> None:
    from kakin.gateway.accounting import AccountingHealth
    from kakin.gateway.committer import ThreadCommitter
    from kakin.gateway.journal import PostedCharges
    from kakin.gateway.shared_holds import AccountingUnavailable, RedisAccountant
    from kakin.ledger import Ledger

    from .test_crash import free_port

    ledger = Ledger.open(f"sqlite:///{tmp_path / 'k.db'}")
    org = ledger.create_org("gone", payment_method=True, payment_label="card")
    project = ledger.create_project(org.id, "p")
    scope = Scope(org.id, project.id, None, "gpt-4o-mini")
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there

    async def run() -> None:
        committer = ThreadCommitter(ledger)
        await committer.start()
        store = HoldStore(redis.asyncio.Redis.from_url(nowhere), "kakin:")
        accounts = RedisAccountant(
            store, committer, None, PostedCharges(), hold_seconds=900, fail_open=fail_open
        )
        try:
            await accounts.start()
            if fail_open:
                ticket = await accounts.hold(scope, Decimal("0.01"), 10, "r1")
                assert ticket.handle is None  # admitted, without a shared hold
                assert accounts.health() is AccountingHealth.FAILING_OPEN
            else:
                with pytest.raises(AccountingUnavailable) as refused:
                    await accounts.hold(scope, Decimal("0.01"), 10, "r1")
                assert refused.value.status == 503 and "retry shortly" in refused.value.message
                assert accounts.health() is AccountingHealth.FAILING_CLOSED
        finally:
            await accounts.close()
            await committer.stop()

    try:
        asyncio.run(run())
    finally:
        ledger.close()
