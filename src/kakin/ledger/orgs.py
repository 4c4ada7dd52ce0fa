"""Organisations (billing accounts) and their projects.

An organisation carries what billing needs: display currency, the timezone its budget
periods follow, whether a payment method is on file (without one, usage stops when credit
runs out), and a verified identity — a phone number in E.164 — that free-credit rules key on.
"""

from __future__ import annotations

from sqlalchemy import insert, select

from kakin.errors import Conflict, InvalidInput
from kakin.ledger import credit, tiers
from kakin.ledger import schema as s
from kakin.ledger import validate as v
from kakin.ledger.ids import new_id
from kakin.ledger.records import Org, Project
from kakin.ledger.work import Row, Work

UNSET = object()


def create(
    work: Work,
    name: str,
    *,
    currency: str,
    timezone: str,
    phone: str | None,
    payment_method: bool,
    payment_label: str | None,
    tier_rules: str | None,
) -> Row:
    clean = v.text(name, "organisation name")
    if clean.startswith(("org_", "prj_", "key_")):
        raise InvalidInput(f"organisation name {clean!r} must not look like an id (org_…, prj_…, key_…)")
    row = {
        "id": new_id("org"),
        "name": clean,
        "currency": v.currency(currency),
        "timezone": v.timezone(timezone),
        "phone": None if phone is None else v.phone(phone),
        "payment_method": bool(payment_method),
        "payment_label": None
        if payment_label is None
        else v.text(payment_label, "payment method label", max_length=100),
        "billing_since": None,
        "first_payment_at": None,
        "tier_rules": None,
        "tier": None,
        "tier_since": None,
        "credit_pico": 0,
        "held_pico": 0,
        "held_tokens": 0,
        "held_unbounded": 0,
        "spent_pico": 0,
        "spent_tokens": 0,
        "due_pico": 0,
        "paid_pico": 0,
        "next_grant_event": None,
        "next_hold_expiry": None,
        "created_at": work.now,
    }
    if tier_rules is not None:
        tiers.rules(work.conn, work.context, v.text(tier_rules, "tier rules", max_length=64))
    if work.conn.execute(select(s.orgs.c.id).where(s.orgs.c.name == clean)).first() is not None:
        raise Conflict(f"an organisation named {clean!r} already exists; pick another name")
    work.conn.execute(insert(s.orgs), [row])
    work.orgs[row["id"]] = row
    work.budgets[row["id"]] = []
    work.grants[row["id"]] = []
    if row["payment_method"]:
        credit.mark_billing(work, row)
    if tier_rules is not None:
        row["tier_rules"] = tier_rules.strip()
        tiers.evaluate(work, row)
    work.touch_org(row)
    return row


def update(
    work: Work,
    org_id: str,
    *,
    currency: object = UNSET,
    timezone: object = UNSET,
    phone: object = UNSET,
    tier_rules: object = UNSET,
) -> Row:
    org = work.org(org_id)
    new_currency = org["currency"] if currency is UNSET else v.currency(currency)
    new_timezone = org["timezone"] if timezone is UNSET else v.timezone(timezone)
    new_phone = org["phone"] if phone is UNSET else (None if phone is None else v.phone(phone))
    new_rules = org["tier_rules"]
    if tier_rules is not UNSET:
        new_rules = None if tier_rules is None else v.text(tier_rules, "tier rules", max_length=64)
        if new_rules is not None:
            tiers.rules(work.conn, work.context, new_rules)
    org.update(currency=new_currency, timezone=new_timezone, phone=new_phone)
    work.touch_org(org)
    if new_phone is not None and org["billing_since"] is not None:
        credit.mark_billing(work, org)
    if new_rules != org["tier_rules"]:
        org["tier_rules"] = new_rules
        org["tier"] = None
        if new_rules is None:
            tiers.apply_ceiling(work, org, None)
        else:
            tiers.evaluate(work, org)
    return org


def set_payment_method(work: Work, org_id: str, label: str | None) -> Row:
    org = work.org(org_id)
    if label is None:
        org.update(payment_method=False, payment_label=None)
        work.touch_org(org)
        return org
    org.update(payment_method=True, payment_label=v.text(label, "payment method label", max_length=100))
    work.touch_org(org)
    credit.mark_billing(work, org)
    tiers.evaluate(work, org)
    return org


def create_project(work: Work, org_id: str, name: str) -> Row:
    org = work.org(org_id)
    clean = v.text(name, "project name")
    p = s.projects
    if (
        work.conn.execute(select(p.c.id).where(p.c.org_id == org["id"], p.c.name == clean)).first()
        is not None
    ):
        raise Conflict(f"organisation {org['name']!r} already has a project named {clean!r}")
    row = {"id": new_id("prj"), "org_id": org["id"], "name": clean, "created_at": work.now}
    work.conn.execute(insert(p), [row])
    return row


def to_record(row: Row) -> Org:
    return Org(
        id=row["id"],
        name=row["name"],
        currency=row["currency"],
        timezone=row["timezone"],
        phone=row["phone"],
        payment_method=row["payment_method"],
        payment_label=row["payment_label"],
        billing_since=row["billing_since"],
        first_payment_at=row["first_payment_at"],
        tier_rules=row["tier_rules"],
        tier=row["tier"],
        created_at=row["created_at"],
    )


def project_record(row: Row) -> Project:
    return Project(id=row["id"], org_id=row["org_id"], name=row["name"], created_at=row["created_at"])
