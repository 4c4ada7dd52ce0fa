"""Two-phase charges for custom integrations: reserve → settle (actual cost) or void.

The gateway does this on every request; these routes let other metered services (a batch
job, an in-house model server) spend from the same budgets and credit with the same
guarantees: a hold refused with 402 when credit or a hard cap has no room, an idempotent
retry charged once.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Response

from kakin.admin.context import AdminContext
from kakin.admin.errors import declare
from kakin.admin.routes.params import IdempotencyHeader, ReservationId, idempotency_key
from kakin.admin.schemas.charges import ReservationOut, ReserveCreate, SettleCreate, SettlementOut
from kakin.ledger.records import Scope, UsageDetail


def router(ctx: AdminContext) -> APIRouter:
    api = APIRouter(tags=["reservations"])
    ledger = ctx.ledger

    @api.post(
        "/reservations",
        status_code=201,
        response_model=ReservationOut,
        summary="Reserve",
        description="Hold an upper bound of a request's cost against the project's organisation: credit (402 "
        "when none is left and no payment method is on file), hard-capped budgets and tier ceilings (402), "
        "and the key's state (401 revoked or expired, 403 suspended or not allowed the model). Needs an "
        "idempotency key (header or body); a retry with the same key and parameters answers 200 with the "
        "first reservation, with other parameters 409.",
        responses={
            200: {"model": ReservationOut, "description": "idempotent repeat"},
            **declare(402, 403, 404, 409),
        },
    )
    def reserve(
        body: ReserveCreate, response: Response, idempotency: IdempotencyHeader = None
    ) -> ReservationOut:
        key = idempotency_key(idempotency, body.idempotency_key)
        project = ledger.get_project(body.project_id)
        scope = Scope(org_id=project.org_id, project_id=project.id, key_id=body.key_id, model=body.model)
        expires_in = None if body.expires_in_seconds is None else timedelta(seconds=body.expires_in_seconds)
        held = ledger.reserve(scope, body.amount, body.tokens, idempotency_key=key, expires_in=expires_in)
        if held.repeated:
            response.status_code = 200
        ctx.changed("org", held.org_id)
        return ReservationOut.of(held)

    @api.get(
        "/reservations/{reservation_id}",
        response_model=ReservationOut,
        summary="Get a reservation",
        description="Its status: held, settled, voided or expired (an unsettled hold expires and releases "
        "its room).",
        responses=declare(404, 409),
    )
    def get_reservation(reservation_id: ReservationId) -> ReservationOut:
        return ReservationOut.of(ledger.get_reservation(reservation_id))

    @api.post(
        "/reservations/{reservation_id}/settle",
        response_model=SettlementOut,
        summary="Settle",
        description="Charge the actual cost (lower or higher than the hold): grants burn in consumption "
        "order, the rest is postpaid; a usage record is written; budget thresholds reached for the first "
        "time are returned. Settling again with the same figures returns the first result; with other "
        "figures, or after a void, 409. A hold that expired is still charged in full (reported as late).",
        responses=declare(404, 409),
    )
    def settle(reservation_id: ReservationId, body: SettleCreate) -> SettlementOut:
        cache_saved, routing_saved = body.savings()
        usage = UsageDetail(
            provider=body.provider,
            input_tokens=body.input_tokens,
            output_tokens=body.output_tokens,
            cached_tokens=body.cached_tokens,
            reasoning_tokens=body.reasoning_tokens,
            cost_items=body.cost_items,
            request_id=body.request_id,
            cache_hit=body.cache_hit,
            cache_saved=cache_saved,
            routed_from=body.routed_from,
            routing_saved=routing_saved,
        )
        settlement = ledger.settle(reservation_id, body.amount, usage)
        ctx.changed("org", settlement.org_id)
        return SettlementOut.of(settlement)

    @api.post(
        "/reservations/{reservation_id}/void",
        response_model=ReservationOut,
        summary="Void",
        description="Release the hold without charging (the request was not sent or failed upstream). "
        "Voiding twice changes nothing; a settled or expired reservation cannot be voided (409).",
        responses=declare(404, 409),
    )
    def void(reservation_id: ReservationId) -> ReservationOut:
        released = ledger.void(reservation_id)
        ctx.changed("org", released.org_id)
        return ReservationOut.of(released)

    return api
