"""Credit: grants (idempotent), prepaid refunds, payments, balance and ledger entries."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import select
from sqlalchemy.exc import MultipleResultsFound

from kakin.admin.context import AdminContext
from kakin.admin.errors import declare
from kakin.admin.routes.params import GrantId, IdempotencyHeader, Limit, OrgRef, Since, Until, idempotency_key
from kakin.admin.schemas.common import Items
from kakin.admin.schemas.credits import (
    BalanceOut,
    EntryOut,
    GrantCreate,
    GrantOut,
    PaymentCreate,
    RefundCreate,
    RefundOut,
)
from kakin.ledger import queries, schema
from kakin.ledger.records import Entry

_REPEAT = "An idempotent retry (same key, same parameters) answers 200 with the first result."


def router(ctx: AdminContext) -> APIRouter:
    api = APIRouter(tags=["credits"])
    ledger = ctx.ledger

    @api.post(
        "/orgs/{org}/grants",
        status_code=201,
        response_model=GrantOut,
        summary="Grant credit",
        description="Credit an organisation: free_trial (default expiry 90 days), welcome (new billing "
        "accounts only: a payment method on file or a prepayment), prepaid (refundable) or promotional. Free "
        "grants need a verified phone number, which gets one free grant of either kind (409 otherwise). Needs an idempotency key (header or body); the same key "
        f"with other parameters is refused with 409. {_REPEAT}",
        responses={200: {"model": GrantOut, "description": "idempotent repeat"}, **declare(404, 409)},
    )
    def grant(
        org: OrgRef, body: GrantCreate, response: Response, idempotency: IdempotencyHeader = None
    ) -> GrantOut:
        key = idempotency_key(idempotency, body.idempotency_key)
        created = ledger.grant(
            org,
            body.kind,
            body.amount,
            idempotency_key=key,
            expires_at=body.expires_at,
            expires_in=body.expires_in_seconds,
            effective_at=body.effective_at,
            priority=body.priority,
            note=body.note or "",
        )
        if created.repeated:
            response.status_code = 200
        ctx.changed("org", created.org_id)
        return GrantOut.of(created)

    @api.get(
        "/orgs/{org}/grants",
        response_model=Items[GrantOut],
        summary="List grants",
        description="Every grant: usable ones first in consumption order (free before paid, soonest expiry "
        "first), then used-up, expired and refunded ones, newest first.",
        responses=declare(404, 409),
    )
    def list_grants(org: OrgRef) -> Items[GrantOut]:
        return Items[GrantOut](items=[GrantOut.of(g) for g in ledger.list_grants(org)])

    @api.post(
        "/grants/{grant_id}/refund",
        response_model=RefundOut,
        summary="Refund prepaid credit",
        description="Return unused prepaid credit (all that is left unless `amount` is given). Other kinds of "
        "credit are not refundable (422). The idempotency key (header or body) is optional here: without "
        f"one, the same grant and amount are refunded once. {_REPEAT}",
        responses=declare(404, 409),
    )
    def refund(
        grant_id: GrantId, body: RefundCreate | None = None, idempotency: IdempotencyHeader = None
    ) -> RefundOut:
        body = body or RefundCreate()
        given = idempotency is not None or body.idempotency_key is not None
        key = idempotency_key(idempotency, body.idempotency_key) if given else None
        result = ledger.refund(grant_id, body.amount, idempotency_key=key)
        ctx.changed("org", _grant_org(ctx, grant_id))
        return RefundOut.of(result)

    @api.post(
        "/orgs/{org}/payments",
        response_model=EntryOut,
        summary="Record a payment",
        description="A payment of postpaid charges (e.g. a paid invoice), at most the amount due; to pay in "
        f"advance grant prepaid credit instead. Needs an idempotency key (header or body). {_REPEAT}",
        responses=declare(404, 409),
    )
    def record_payment(org: OrgRef, body: PaymentCreate, idempotency: IdempotencyHeader = None) -> EntryOut:
        key = idempotency_key(idempotency, body.idempotency_key)
        org_id = ledger.get_org(org).id
        try:
            entry = ledger.record_payment(org_id, body.amount, idempotency_key=key)
        except MultipleResultsFound:
            # The payment is committed, but Ledger.record_payment reads it back by key across
            # every organisation; read it back within this one.
            entry = _payment_entry(ctx, org_id, key)
        ctx.changed("org", entry.org_id)
        return EntryOut.of(entry)

    @api.get(
        "/orgs/{org}/balance",
        response_model=BalanceOut,
        summary="Balance",
        description="Credit, holds, available credit, amount due, total spent and paid, and the grants with "
        "credit left — exact as of now (expiries applied).",
        responses=declare(404, 409),
    )
    def balance(org: OrgRef) -> BalanceOut:
        return BalanceOut.of(ctx.balance(ledger.balance(org)))

    @api.get(
        "/orgs/{org}/entries",
        response_model=Items[EntryOut],
        summary="Ledger entries",
        description="The append-only journal (grants, charges, expiries, refunds, payments, tier changes), "
        "oldest first, optionally within [since, until).",
        responses=declare(404, 409),
    )
    def entries(
        org: OrgRef, since: Since = None, until: Until = None, limit: Limit = 1000
    ) -> Items[EntryOut]:
        rows = ledger.entries(org, since=since, until=until, limit=limit)
        return Items[EntryOut](items=[EntryOut.of(e) for e in rows])

    return api


def _payment_entry(ctx: AdminContext, org_id: str, key: str) -> Entry:
    e = schema.entries
    query = select(e).where(e.c.org_id == org_id, e.c.idempotency_key == key, e.c.kind == "payment")
    return ctx.ledger.read(lambda conn: queries.entry_record(dict(conn.execute(query).one()._mapping)))


def _grant_org(ctx: AdminContext, grant_id: str) -> str:
    """The organisation a grant belongs to (a refund's result names only the grant)."""
    g = schema.grants
    return ctx.ledger.read(
        lambda conn: conn.execute(select(g.c.org_id).where(g.c.id == grant_id)).scalar_one()
    )
