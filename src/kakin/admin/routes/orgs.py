"""Organisations (billing accounts), their projects, payment method and usage tier."""

from __future__ import annotations

from fastapi import APIRouter

from kakin.admin.context import AdminContext
from kakin.admin.errors import declare
from kakin.admin.routes.params import OrgRef
from kakin.admin.schemas.common import Items
from kakin.admin.schemas.orgs import (
    OrgCreate,
    OrgOut,
    OrgUpdate,
    PaymentMethodSet,
    ProjectCreate,
    ProjectOut,
    TierOut,
    TierRulesOut,
    TierRulesRegister,
    TierRulesSet,
    TierStatusOut,
)
from kakin.ledger import tiers


def router(ctx: AdminContext) -> APIRouter:
    api = APIRouter()
    ledger = ctx.ledger

    @api.post(
        "/orgs",
        status_code=201,
        response_model=OrgOut,
        summary="Create an organisation",
        description="A billing account: display currency, the timezone budget periods follow, an optional "
        "verified phone number (one free grant per number), payment method and tier rules.",
        responses=declare(404, 409),
        tags=["organisations"],
    )
    def create_org(body: OrgCreate) -> OrgOut:
        org = ledger.create_org(
            body.name,
            currency=body.currency,
            timezone=body.timezone,
            phone=body.phone,
            payment_label=body.payment_method,
            tier_rules=body.tier_rules,
        )
        ctx.changed("org", org.id)
        return OrgOut.of(org)

    @api.get(
        "/orgs",
        response_model=Items[OrgOut],
        summary="List organisations",
        description="Every organisation, by name.",
        responses=declare(validation=False),
        tags=["organisations"],
    )
    def list_orgs() -> Items[OrgOut]:
        return Items[OrgOut](items=[OrgOut.of(o) for o in ledger.list_orgs()])

    @api.get(
        "/orgs/{org}",
        response_model=OrgOut,
        summary="Get an organisation",
        description="By id (org_…) or by name.",
        responses=declare(404),
        tags=["organisations"],
    )
    def get_org(org: OrgRef) -> OrgOut:
        return OrgOut.of(ledger.get_org(org))

    @api.patch(
        "/orgs/{org}",
        response_model=OrgOut,
        summary="Update an organisation",
        description="Change currency, timezone, phone number or tier rules. Only fields present in the body "
        "change; `null` removes the phone number or the tier rules.",
        responses=declare(404, 409),
        tags=["organisations"],
    )
    def update_org(org: OrgRef, body: OrgUpdate) -> OrgOut:
        changes = {name: getattr(body, name) for name in body.model_fields_set}
        for name in ("currency", "timezone"):
            if name in changes and changes[name] is None:
                del changes[name]  # null means "leave as is" for fields that cannot be empty
        updated = ledger.update_org(org, **changes) if changes else ledger.get_org(org)
        ctx.changed("org", updated.id)
        return OrgOut.of(updated)

    @api.put(
        "/orgs/{org}/payment-method",
        response_model=OrgOut,
        summary="Put a payment method on file",
        description="With a payment method, usage continues on postpaid billing when credit runs out; "
        "without one it stops with 402.",
        responses=declare(404, 409),
        tags=["organisations"],
    )
    def set_payment_method(org: OrgRef, body: PaymentMethodSet) -> OrgOut:
        updated = ledger.set_payment_method(org, body.label)
        ctx.changed("org", updated.id)
        return OrgOut.of(updated)

    @api.delete(
        "/orgs/{org}/payment-method",
        response_model=OrgOut,
        summary="Remove the payment method",
        description="From now on, usage stops when credit runs out.",
        responses=declare(404, 409),
        tags=["organisations"],
    )
    def remove_payment_method(org: OrgRef) -> OrgOut:
        updated = ledger.set_payment_method(org, None)
        ctx.changed("org", updated.id)
        return OrgOut.of(updated)

    @api.post(
        "/orgs/{org}/projects",
        status_code=201,
        response_model=ProjectOut,
        summary="Create a project",
        description="Projects group keys and usage; names are unique within the organisation.",
        responses=declare(404, 409),
        tags=["projects"],
    )
    def create_project(org: OrgRef, body: ProjectCreate) -> ProjectOut:
        project = ledger.create_project(org, body.name)
        ctx.changed("project", project.id)
        return ProjectOut.of(project)

    @api.get(
        "/orgs/{org}/projects",
        response_model=Items[ProjectOut],
        summary="List projects",
        description="The organisation's projects, by name.",
        responses=declare(404),
        tags=["projects"],
    )
    def list_projects(org: OrgRef) -> Items[ProjectOut]:
        return Items[ProjectOut](items=[ProjectOut.of(p) for p in ledger.list_projects(org)])

    @api.get(
        "/orgs/{org}/tier",
        response_model=TierStatusOut,
        summary="Show the usage tier",
        description="The current tier, its limits, the next tier and what it still needs.",
        responses=declare(404, 409),
        tags=["tiers"],
    )
    def show_tier(org: OrgRef) -> TierStatusOut:
        return TierStatusOut.of(ledger.tier_of(org))

    @api.put(
        "/orgs/{org}/tier",
        response_model=TierStatusOut,
        summary="Set the tier rules",
        description="Apply a rule set (preset `openai` or `gemini`, or a registered one); the organisation "
        "is promoted at once to the highest tier it qualifies for. `null` removes tiers.",
        responses=declare(404, 409),
        tags=["tiers"],
    )
    def set_tier(org: OrgRef, body: TierRulesSet) -> TierStatusOut:
        status = ledger.set_tier_rules(org, body.rules)
        ctx.changed("org", status.org_id)
        return TierStatusOut.of(status)

    @api.get(
        "/tier-rules",
        response_model=Items[TierRulesOut],
        summary="List tier rule sets",
        description="The shipped presets, then registered rule sets by name.",
        responses=declare(validation=False),
        tags=["tiers"],
    )
    def list_tier_rules() -> Items[TierRulesOut]:
        names = ledger.read(lambda conn: [*tiers.PRESETS, *tiers.registered_names(conn)])
        found = ledger.read(lambda conn: [tiers.rules(conn, ledger.context, name) for name in names])
        return Items[TierRulesOut](items=[_rules_out(r) for r in found])

    @api.post(
        "/tier-rules",
        status_code=201,
        response_model=TierRulesOut,
        summary="Register a tier rule set",
        description="Store rules under a new name (TOML, the form of the presets). A name always means the "
        "same rules: registering other content under a used name is refused with 409.",
        responses=declare(409),
        tags=["tiers"],
    )
    def register_tier_rules(body: TierRulesRegister) -> TierRulesOut:
        rules = ledger.register_tier_rules(body.name, body.toml)
        ctx.changed("tier_rules", rules.name)
        return _rules_out(rules)

    return api


def _rules_out(rules: tiers.TierRules) -> TierRulesOut:
    return TierRulesOut(
        name=rules.name, description=rules.description, tiers=[TierOut.of(t) for t in rules.tiers]
    )
