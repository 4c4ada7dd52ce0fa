"""Alert channels (signed webhooks, e-mail), detector rules, fired alerts and deliveries.

Channels and rules are stored by :class:`kakin.alerts.store.AlertStore` in the ledger's
database; a running :class:`kakin.alerts.engine.AlertEngine` (when the app was given one)
reloads its rules at once, and ``on_change("alerts", org_id)`` tells the gateway.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from kakin.admin.context import AdminContext
from kakin.admin.errors import declare
from kakin.admin.routes.params import ChannelId, OrgRef
from kakin.admin.schemas.alerts import (
    RULE_PARAMS,
    ChannelCreate,
    ChannelCreated,
    ChannelOut,
    DeliveryOut,
    FiredAlertOut,
    RuleCreate,
    RuleOut,
)
from kakin.admin.schemas.common import Items
from kakin.errors import InvalidInput

RecentLimit = Annotated[int, Query(ge=1, le=1000, description="at most this many, newest first")]
DeliveryStatus = Annotated[
    Literal["pending", "retrying", "delivered", "failed"] | None, Query(description="only this status")
]


def router(ctx: AdminContext) -> APIRouter:
    api = APIRouter(tags=["alerts"])
    ledger, store = ctx.ledger, ctx.alert_store

    @api.post(
        "/orgs/{org}/alerts/channels",
        status_code=201,
        response_model=ChannelCreated,
        summary="Add an alert channel",
        description="A webhook (POSTed JSON signed with the Kakin-Signature header; the signing secret is in "
        "this response only) or e-mail addresses sent through an SMTP server. `kinds` limits which alerts "
        "the channel receives.",
        responses=declare(404, 409),
    )
    def add_channel(org: OrgRef, body: ChannelCreate) -> ChannelCreated:
        org_id = ledger.get_org(org).id
        if body.kind == "webhook" and body.smtp is not None:
            raise InvalidInput("smtp settings apply to email channels only; remove them for a webhook")
        smtp = None if body.smtp is None else body.smtp.model_dump()
        channel = store.add_channel(
            org_id, body.kind, body.name, body.target, settings=smtp, kinds=body.kinds
        )
        ctx.changed("alerts", org_id)
        out = ChannelOut.of(channel)
        return ChannelCreated(**out.model_dump(), secret=channel.secret or None)

    @api.get(
        "/orgs/{org}/alerts/channels",
        response_model=Items[ChannelOut],
        summary="List alert channels",
        description="Active channels, oldest first (never the webhook signing secrets).",
        responses=declare(404),
    )
    def list_channels(org: OrgRef) -> Items[ChannelOut]:
        org_id = ledger.get_org(org).id
        return Items[ChannelOut](items=[ChannelOut.of(c) for c in store.channels(org_id)])

    @api.delete(
        "/alerts/channels/{channel_id}",
        response_model=ChannelOut,
        summary="Disable an alert channel",
        description="The channel receives nothing from now on; its delivery log is kept.",
        responses=declare(404),
    )
    def disable_channel(channel_id: ChannelId) -> ChannelOut:
        channel = store.channel(channel_id)
        store.disable_channel(channel_id, now=ledger.now())
        ctx.changed("alerts", channel.org_id)
        return ChannelOut.of(channel)

    @api.post(
        "/orgs/{org}/alerts/rules",
        status_code=201,
        response_model=RuleOut,
        summary="Add an alert rule",
        description="Tune a detector for the organisation: `runaway` (spend rate far above the baseline; "
        "with `auto_suspend` on keys, the key is suspended too), `credit_low` or `credit_expiring`. A rule "
        "of a kind replaces kakin's defaults for that kind.",
        responses=declare(404),
    )
    def add_rule(org: OrgRef, body: RuleCreate) -> RuleOut:
        org_id = ledger.get_org(org).id
        params = body.params.as_dict()
        foreign = sorted(set(params) - set(RULE_PARAMS[body.kind]))
        if foreign:
            raise InvalidInput(
                f"{', '.join(foreign)} do not apply to {body.kind} rules; "
                f"{body.kind} takes {', '.join(RULE_PARAMS[body.kind])}"
            )
        rule = store.add_rule(
            org_id,
            body.kind,
            scope=body.scope,
            scope_ref=body.scope_ref or "",
            params=params,
            auto_suspend=body.auto_suspend,
            now=ledger.now(),
        )
        ctx.alert_rules_changed(org_id)
        return RuleOut.of(rule)

    @api.get(
        "/orgs/{org}/alerts/rules",
        response_model=Items[RuleOut],
        summary="List alert rules",
        description="Active rules, oldest first.",
        responses=declare(404),
    )
    def list_rules(org: OrgRef) -> Items[RuleOut]:
        org_id = ledger.get_org(org).id
        return Items[RuleOut](items=[RuleOut.of(r) for r in store.rules(org_id)])

    @api.get(
        "/orgs/{org}/alerts",
        response_model=Items[FiredAlertOut],
        summary="Fired alerts",
        description="Alerts recorded for the organisation, newest first.",
        responses=declare(404),
    )
    def fired(org: OrgRef, limit: RecentLimit = 50) -> Items[FiredAlertOut]:
        org_id = ledger.get_org(org).id
        return Items[FiredAlertOut](
            items=[FiredAlertOut.of(i, a) for i, a in store.fired(org_id, limit=limit)]
        )

    @api.get(
        "/orgs/{org}/alerts/deliveries",
        response_model=Items[DeliveryOut],
        summary="Alert deliveries",
        description="The delivery log, newest first: one row per alert and channel, with attempts, last "
        "response code and error.",
        responses=declare(404),
    )
    def deliveries(org: OrgRef, status: DeliveryStatus = None, limit: RecentLimit = 50) -> Items[DeliveryOut]:
        org_id = ledger.get_org(org).id
        views = store.deliveries(org_id, status=status, limit=limit)
        return Items[DeliveryOut](items=[DeliveryOut.of(v) for v in views])

    return api
