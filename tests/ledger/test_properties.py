"""Random sequences of grant / reserve / settle / void / refund / time passing, checked after
every step: the balance is the sum of the grants, no grant goes below zero, a hard cap is
never passed except by recorded overruns, an idempotency key never charges twice, a refused
operation changes nothing, thresholds fire once per period — and at the end every counter
reconciles with the entries it summarises."""

from __future__ import annotations

import itertools
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kakin.errors import Conflict, KakinError
from kakin.ledger import Ledger, Scope, UsageDetail

CAP = Decimal("5")
_names = itertools.count()

grant_op = st.tuples(
    st.just("grant"),
    st.sampled_from(["promotional", "prepaid"]),
    st.integers(1, 300),  # cents
    st.one_of(st.none(), st.integers(1, 40)),  # expiry in days
)
reserve_op = st.tuples(
    st.just("reserve"),
    st.integers(0, 200),  # cents
    st.integers(0, 3000),  # tokens
    st.integers(0, 6),  # idempotency key number: small, so keys repeat
    st.integers(1, 60),  # hold minutes
)
settle_op = st.tuples(st.just("settle"), st.integers(0, 20), st.sampled_from(["0", "0.5", "1", "1.25"]))
void_op = st.tuples(st.just("void"), st.integers(0, 20))
resettle_op = st.tuples(st.just("resettle"), st.integers(0, 20))
refund_op = st.tuples(st.just("refund"), st.integers(0, 5), st.one_of(st.none(), st.integers(1, 200)))
advance_op = st.tuples(st.just("advance"), st.sampled_from([1, 30, 90, 60 * 24, 60 * 24 * 20]))
payment_op = st.tuples(st.just("payment_method"), st.booleans())
operations = st.lists(
    st.one_of(
        grant_op,
        reserve_op,
        reserve_op,
        settle_op,
        settle_op,
        void_op,
        resettle_op,
        refund_op,
        advance_op,
        payment_op,
    ),
    min_size=1,
    max_size=20,
)


def cents(value: int) -> Decimal:
    return Decimal(value) / 100


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=operations)
def test_random_sequences_keep_every_invariant(ledger: Ledger, clock, steps) -> None:  # type: ignore[no-untyped-def]
    org = ledger.create_org(f"prop-{next(_names)}", timezone="Asia/Tokyo")
    project = ledger.create_project(org.id, "p")
    scope = Scope(org.id, project.id, None, "m")
    cap = ledger.set_budget(org.id, period="total", limit=CAP, hard_cap=True, name="cap")
    ledger.set_budget(org.id, period="day", limit="1", name="daily soft")
    reservations: list[str] = []
    keys: dict[str, tuple[Decimal, int, str]] = {}
    settled: dict[str, tuple[Decimal, UsageDetail]] = {}
    grants: list[str] = []
    overruns = Decimal(0)
    fired: list[tuple[str, object, int]] = []

    before = ledger.balance(org.id)
    for step in steps:
        try:
            kind = step[0]
            if kind == "grant":
                _, grant_kind, amount, days = step
                grant = ledger.grant(
                    org.id,
                    grant_kind,
                    cents(amount),
                    idempotency_key=f"g{len(grants)}",
                    expires_in=days and days * 86400,
                )
                grants.append(grant.id)
            elif kind == "reserve":
                _, amount, tokens, key_no, minutes = step
                key = f"k{key_no}"
                result = ledger.reserve(
                    scope, cents(amount), tokens, idempotency_key=key, expires_in=minutes * 60
                )
                if key in keys:
                    assert (
                        (cents(amount), tokens) == keys[key][:2]
                        and result.id == keys[key][2]
                        and result.repeated
                    )
                else:
                    keys[key] = (cents(amount), tokens, result.id)
                    reservations.append(result.id)
            elif kind in ("settle", "resettle") and reservations:
                reservation_id = reservations[step[1] % len(reservations)]
                if kind == "resettle" and reservation_id in settled:
                    actual, usage = settled[reservation_id]
                else:
                    held = next(v for v in keys.values() if v[2] == reservation_id)
                    actual = held[0] * Decimal(step[2]) if kind == "settle" else held[0]
                    usage = UsageDetail(provider="sim", input_tokens=held[1], output_tokens=len(settled))
                result = ledger.settle(reservation_id, actual, usage)
                if reservation_id in settled:
                    assert result.repeated and settled[reservation_id][0] == actual
                else:
                    settled[reservation_id] = (actual, usage)
                    overruns += result.overrun
                    fired += [(t.budget_id, t.period_start, t.threshold) for t in result.thresholds]
            elif kind == "void" and reservations:
                ledger.void(reservations[step[1] % len(reservations)])
            elif kind == "refund" and grants:
                ledger.refund(grants[step[1] % len(grants)], None if step[2] is None else cents(step[2]))
            elif kind == "advance":
                clock.advance(minutes=step[1])
            elif kind == "payment_method":
                ledger.set_payment_method(org.id, "card" if step[1] else None)
        except Conflict as conflict:
            # A repeated key with other parameters, or closing a closed reservation: refused.
            after = ledger.balance(org.id)
            assert (after.credit, after.held, after.spent) == (before.credit, before.held, before.spent), (
                conflict
            )
        except KakinError:
            after = ledger.balance(org.id)
            assert (after.credit, after.held, after.spent) == (before.credit, before.held, before.spent)

        balance = ledger.balance(org.id)
        assert all(g.remaining > 0 for g in balance.grants)
        assert balance.credit == sum((g.remaining for g in balance.grants), Decimal(0))
        assert balance.spent == sum((a for a, _ in settled.values()), Decimal(0))  # never charged twice
        status = ledger.budget_status(cap.id)
        assert status.spent + status.held <= CAP + overruns
        before = ledger.balance(org.id) if step[0] == "advance" else balance

    assert len(fired) == len(set(fired))  # each threshold once per period
    report = ledger.reconcile(org.id)
    assert report.ok, report.mismatches
