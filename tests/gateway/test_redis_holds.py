"""The Redis hold store's Lua copy of the admission rule decides as kakin.ledger.admission does:
same numbers in, same decision (and so the same refusal, word for word) out — amounts up to
the ledger's largest, past what a Lua number holds exactly."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis.asyncio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from kakin.gateway.holds import Held, HoldStore
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
)
def test_lua_rule_decides_as_the_python_rule(
    store, payment_method, credit, held, budget_list, amount, tokens, project, key, model
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
        budgets=tuple(budget_list),
        blocked=(),
        taken_ms=0,
        valid_until_ms=FAR,
        posted=(),
    )
    applicable = [b for b in budget_list if scope_matches(b.scope, b.scope_ref, project, key, model)]
    room = admission.Room(
        payment_method,
        credit,
        held,
        tuple(admission.BudgetRoom(b.id, b.hard_cap, b.unit, b.limit, b.spent, b.held) for b in applicable),
    )
    expected = admission.decide(room, admission.Ask(amount, tokens))
    event(type(expected).__name__)

    async def lua() -> object:
        token = uuid.uuid4().hex
        await holds.begin_rebuild(org_id, token, 10_000)
        await holds.install(org_id, token, snapshot)
        return await holds.hold(org_id, "h1", scope, amount, tokens, 60_000)

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
