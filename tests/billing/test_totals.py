"""Invoice totals equal the ledger's charges minus credits, exactly, over random histories:
charges, two-phase requests settled late (after their cycle's invoice was issued), grants
that expire, refunds of prepaid credit, and cycles closed at random moments. A model kept by
the test says on which invoice, and in which section, every charge must land."""

from __future__ import annotations

import contextlib
import itertools
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kakin.billing import Billing
from kakin.billing.cycles import cycle_at, cycle_of
from kakin.errors import KakinError
from kakin.ledger import Ledger, Scope, UsageDetail
from kakin.money import to_pico

from .conftest import Clock, token_items

PRICES = ("0.0000025", "0.00000015", "0.000003", "0.0000004")
ZONES = ("Asia/Tokyo", "America/New_York", "UTC")

step = st.one_of(
    st.tuples(st.just("advance"), st.integers(1, 24 * 12)),
    st.tuples(st.just("post"), st.sampled_from(PRICES), st.integers(0, 2_000_000), st.integers(0, 50_000)),
    st.tuples(st.just("unitemised"), st.integers(1, 10**9)),  # picodollars, no cost lines
    st.tuples(st.just("reserve"), st.integers(1, 10**10)),
    st.tuples(st.just("settle"), st.integers(0, 20), st.sampled_from(PRICES), st.integers(0, 1_000_000)),
    st.tuples(st.just("grant"), st.sampled_from(("promotional", "prepaid")), st.integers(1, 10**12), st.sampled_from((None, 24, 24 * 20))),
    st.tuples(st.just("refund"), st.integers(0, 10)),
    st.tuples(st.just("close"),),
)  # fmt: skip
_names = itertools.count()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(zone=st.sampled_from(ZONES), steps=st.lists(step, min_size=5, max_size=40))
def test_invoices_add_up_to_the_ledger(ledger: Ledger, clock: Clock, zone: str, steps: list[tuple]) -> None:
    billing = Billing(ledger)
    org = ledger.create_org(f"org-{next(_names)}", timezone=zone, payment_label="card")
    project = ledger.create_project(org.id, "p")
    key, _ = ledger.create_key(project.id, "k")
    scope = Scope(org.id, project.id, key.id, "gpt-4o")
    issued: list[str] = []  # months issued, in order
    lands: dict[str, tuple[str, str]] = {}  # reservation id -> (invoice month, section)
    expected: dict[tuple[str, str], int] = defaultdict(int)  # (month, section) -> picodollars
    open_holds: list[tuple[str, str]] = []  # (reservation id, its cycle)
    grants: list[str] = []
    n = itertools.count()

    def landed(reservation_id: str, cycle: str, cost: Decimal) -> None:
        if issued and cycle <= issued[-1]:  # its cycle's invoice is out: the next one carries it
            place = (cycle_of(zone, issued[-1]).following(zone).month, "prior")
        else:
            place = (cycle, "current")
        lands[reservation_id] = place
        expected[place] += to_pico(cost)

    def close() -> None:
        issued.extend(done.invoice.month for done in billing.close_due(org.id) if not done.repeated)

    for action, *args in steps:
        now = ledger.now()
        cycle = cycle_at(zone, now).month
        if action == "advance":
            clock.advance(hours=args[0])
        elif action in ("post", "unitemised"):
            if action == "post":
                items = token_items(args[0], args[1], output=args[2])
                cost = sum((Decimal(i["amount"]) for i in items), Decimal(0))
            else:
                items, cost = [], Decimal(args[0]).scaleb(-12)
            usage = UsageDetail(provider="openai", input_tokens=0, output_tokens=0, cost_items=items)
            done = ledger.post(scope, cost, usage, idempotency_key=f"p{next(n)}")
            landed(done.reservation_id, cycle, cost)
        elif action == "reserve":
            held = ledger.reserve(
                scope,
                Decimal(args[0]).scaleb(-12),
                idempotency_key=f"r{next(n)}",
                expires_in=timedelta(days=7),
            )
            open_holds.append((held.id, cycle))
        elif action == "settle" and open_holds:
            reservation_id, its_cycle = open_holds.pop(args[0] % len(open_holds))
            items = token_items(args[1], args[2])
            cost = sum((Decimal(i["amount"]) for i in items), Decimal(0))
            usage = UsageDetail(provider="openai", input_tokens=args[2], output_tokens=0, cost_items=items)
            ledger.settle(reservation_id, cost, usage)
            landed(reservation_id, its_cycle, cost)
        elif action == "grant":
            expires = None if args[2] is None else timedelta(hours=args[2])
            grant = ledger.grant(
                org.id,
                args[0],
                Decimal(args[1]).scaleb(-12),
                idempotency_key=f"g{next(n)}",
                expires_in=expires,
            )
            if args[0] == "prepaid":
                grants.append(grant.id)
        elif action == "refund" and grants:
            with contextlib.suppress(KakinError):  # nothing left to refund
                ledger.refund(grants[args[0] % len(grants)], idempotency_key=f"f{next(n)}")
        elif action == "close":
            close()
    for reservation_id, _cycle in open_holds:  # settle what is still open, after its grace
        clock.advance(days=3)
        cost = Decimal("0.000123")
        ledger.settle(reservation_id, cost, UsageDetail(provider="openai", input_tokens=1, output_tokens=0))
        landed(reservation_id, _cycle, cost)
    clock.advance(days=70)
    close()

    invoices = billing.invoices(org.id)
    assert [i.month for i in invoices if i.status == "issued"] == issued
    balance = ledger.balance(org.id)
    # Every charge is on exactly one invoice.
    assert sum(i.charges_pico for i in invoices) == to_pico(balance.spent)
    # Each where the model says, in the section it says.
    found: dict[tuple[str, str], int] = defaultdict(int)
    for invoice in invoices:
        assert sum(line.amount_pico for line in invoice.lines) == invoice.charges_pico
        assert invoice.charges_pico == invoice.credits_pico + invoice.due_pico
        for line in invoice.lines:
            found[(invoice.month, line.section)] += line.amount_pico
    assert {k: v for k, v in found.items() if v} == {k: v for k, v in expected.items() if v}
    # Credits by grant and the postpaid rest: the ledger's own charge entries of the charges
    # each invoice carries.
    by_invoice: dict[str, dict[str | None, int]] = defaultdict(lambda: defaultdict(int))
    for entry in ledger.entries(org.id):
        if entry.kind == "charge":
            by_invoice[lands[entry.reservation_id][0]][entry.grant_id] -= to_pico(entry.amount)
    for invoice in invoices:
        ledger_side = {g: a for g, a in by_invoice[invoice.month].items() if a}
        postpaid = ledger_side.pop(None, 0)
        assert invoice.due_pico == postpaid
        assert {c.grant_id: c.amount_pico for c in invoice.credits} == ledger_side
    assert ledger.reconcile(org.id).ok
