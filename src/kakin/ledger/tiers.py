"""Usage tiers: rate limits and a monthly spend ceiling that rise as an organisation pays
and spends, promoted automatically by configurable rules.

Rule sets are data (TOML): the shipped presets ``openai`` and ``gemini`` live in
``kakin/ledger/presets/``; others are registered by name and stored in the database (a name,
once registered, always means the same rules, so every process can cache them). An
organisation is promoted, never demoted, to the highest tier whose requirements it meets;
the check runs whenever the organisation is touched (so "7 days after the first payment"
takes effect at the first request after that instant) and each promotion is a ``tier``
entry in the journal. The current tier's monthly ceiling is enforced as a hard-capped
monthly budget with source ``tier``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from importlib import resources
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from kakin.errors import Conflict, InvalidInput, NotFound
from kakin.ledger import budgets
from kakin.ledger import schema as s
from kakin.ledger.records import Tier, TierStatus
from kakin.ledger.validate import usd
from kakin.ledger.work import Context, Row, Work
from kakin.money import MoneyError, to_decimal, to_pico

PRESETS = ("openai", "gemini")
REQUIREMENTS = ("billing_account", "paid_usd", "spent_usd", "days_since_first_payment")
CEILING_THRESHOLDS = [80, 100]


@dataclass(frozen=True, slots=True)
class TierRules:
    name: str
    description: str
    tiers: tuple[Tier, ...]

    def index(self, tier_name: str | None) -> int:
        for i, tier in enumerate(self.tiers):
            if tier.name == tier_name:
                return i
        return -1


def parse(name: str, data: dict[str, Any]) -> TierRules:
    """Validate a rule set (the TOML structure of the presets)."""
    raw_tiers = data.get("tiers")
    if not isinstance(raw_tiers, list) or not raw_tiers:
        raise InvalidInput(f"tier rules {name!r}: need a non-empty [[tiers]] list")
    tiers = []
    for position, raw in enumerate(raw_tiers):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"].strip():
            raise InvalidInput(f"tier rules {name!r}: tier #{position + 1} needs a name")
        where = f"tier rules {name!r}, tier {raw['name']!r}"
        unknown = set(raw) - {
            "name",
            "requests_per_minute",
            "tokens_per_minute",
            "monthly_limit_usd",
            "requires",
        }
        if unknown:
            raise InvalidInput(f"{where}: unknown fields {', '.join(sorted(unknown))}")
        requires = raw.get("requires", {})
        if not isinstance(requires, dict) or set(requires) - set(REQUIREMENTS):
            raise InvalidInput(f"{where}: requires may only use {', '.join(REQUIREMENTS)}")
        if position == 0 and requires:
            raise InvalidInput(f"{where}: the first tier is the starting tier and cannot have requirements")
        for key, value in requires.items():
            _requirement(where, key, value)
        tiers.append(
            Tier(
                name=raw["name"].strip(),
                requests_per_minute=_count(where, "requests_per_minute", raw.get("requests_per_minute")),
                tokens_per_minute=_count(where, "tokens_per_minute", raw.get("tokens_per_minute")),
                monthly_limit=_usd(where, "monthly_limit_usd", raw.get("monthly_limit_usd")),
                requires=dict(requires),
            )
        )
    if len({t.name for t in tiers}) != len(tiers):
        raise InvalidInput(f"tier rules {name!r}: tier names must be unique")
    return TierRules(name=name, description=str(data.get("description", "")), tiers=tuple(tiers))


def _count(where: str, field: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidInput(f"{where}: {field} must be a positive whole number, got {value!r}")
    return value


def _usd(where: str, field: str, value: object) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = to_decimal(value, what=f"{where}: {field}")
    except MoneyError as exc:
        raise InvalidInput(str(exc)) from None
    if amount <= 0 or amount > 9_000_000:
        raise InvalidInput(f"{where}: {field} must be between 0 and 9,000,000 USD, got {value!r}")
    return amount


def _requirement(where: str, key: str, value: object) -> None:
    if key == "billing_account":
        if value is not True:
            raise InvalidInput(f"{where}: billing_account can only be true")
    elif key == "days_since_first_payment":
        _count(where, key, value)
    else:
        _usd(where, key, value)


def parse_toml(name: str, text: str) -> TierRules:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"tier rules {name!r} are not valid TOML: {exc}") from None
    return parse(name, data)


def preset(name: str) -> TierRules:
    text = resources.files("kakin.ledger").joinpath("presets", f"{name}.toml").read_text(encoding="utf-8")
    return parse_toml(name, text)


def rules(conn: Connection, context: Context, name: str) -> TierRules:
    cached = context.tier_rules.get(name)
    if cached is not None:
        return cached
    if name in PRESETS:
        found = preset(name)
    else:
        row = conn.execute(
            select(s.tier_rule_sets.c.definition).where(s.tier_rule_sets.c.name == name)
        ).first()
        if row is None:
            known = ", ".join([*PRESETS, *registered_names(conn)])
            raise NotFound(f"no tier rules named {name!r}; known: {known}")
        found = parse(name, row.definition)
    context.tier_rules[name] = found
    return found


def registered_names(conn: Connection) -> list[str]:
    return [
        row.name for row in conn.execute(select(s.tier_rule_sets.c.name).order_by(s.tier_rule_sets.c.name))
    ]


def register(work: Work, name: str, text: str) -> TierRules:
    """Store a rule set under a new name. Re-registering the same rules is a no-op."""
    if name in PRESETS:
        raise Conflict(f"{name!r} is a built-in preset; register your rules under another name")
    parsed = parse_toml(name, text)
    definition = tomllib.loads(text)
    existing = work.conn.execute(
        select(s.tier_rule_sets.c.definition).where(s.tier_rule_sets.c.name == name)
    ).first()
    if existing is not None:
        if parse(name, existing.definition) != parsed:
            raise Conflict(f"tier rules {name!r} already exist with other content; register under a new name")
        return parsed
    work.conn.execute(
        insert(s.tier_rule_sets), [{"name": name, "definition": definition, "created_at": work.now}]
    )
    return parsed


# Evaluation ----------------------------------------------------------------------------


def missing(tier: Tier, org: Row, now: Any) -> list[str]:
    """What ``org`` still lacks for ``tier``, in words (empty: it qualifies)."""
    out = []
    req = tier.requires
    if req.get("billing_account") and not (org["payment_method"] or org["billing_since"]):
        out.append("a billing account (a payment method on file or a prepayment)")
    if "paid_usd" in req and org["paid_pico"] < to_pico(Decimal(str(req["paid_usd"]))):
        out.append(f"${req['paid_usd']} paid in total (so far {usd(org['paid_pico'])})")
    if "spent_usd" in req and org["spent_pico"] < to_pico(Decimal(str(req["spent_usd"]))):
        out.append(f"${req['spent_usd']} spent in total (so far {usd(org['spent_pico'])})")
    days = req.get("days_since_first_payment")
    if days:
        first = org["first_payment_at"]
        if first is None:
            out.append(f"{days} days since the first payment (no payment yet)")
        elif now - first < timedelta(days=days):
            out.append(
                f"{days} days since the first payment (reached at {(first + timedelta(days=days)).isoformat()})"
            )
    return out


def evaluate(work: Work, org: Row) -> None:
    """Promote ``org`` to the highest tier it qualifies for (never demote)."""
    if not org["tier_rules"]:
        return
    rule_set = rules(work.conn, work.context, org["tier_rules"])
    current = rule_set.index(org["tier"])
    target = current
    for i in range(len(rule_set.tiers) - 1, current, -1):
        if not missing(rule_set.tiers[i], org, work.now):
            target = i
            break
    if target > current:
        promote(work, org, rule_set, rule_set.tiers[target])


def promote(work: Work, org: Row, rule_set: TierRules, tier: Tier) -> None:
    previous = org["tier"]
    org["tier"] = tier.name
    org["tier_since"] = work.now
    work.touch_org(org)
    work.add_entry(
        org["id"], "tier", 0, work.now, detail={"from": previous, "to": tier.name, "rules": rule_set.name}
    )
    apply_ceiling(work, org, tier)


def apply_ceiling(work: Work, org: Row, tier: Tier | None) -> None:
    """Make the tier budget match ``tier``'s monthly ceiling (or remove it)."""
    current = next((b for b in work.budgets_of(org["id"]) if b["source"] == "tier"), None)
    if tier is None or tier.monthly_limit is None:
        if current is not None:
            work.conn.execute(delete(s.budget_periods).where(s.budget_periods.c.budget_id == current["id"]))
            work.conn.execute(delete(s.budgets).where(s.budgets.c.id == current["id"]))
            work.budgets[org["id"]] = [b for b in work.budgets_of(org["id"]) if b is not current]
            for key in [k for k in work.periods if k[0] == current["id"]]:
                work.periods[key] = None
                work.new_periods.discard(key)
                work.dirty_periods.discard(key)
        return
    budgets.set_budget(
        work,
        org,
        scope="org",
        scope_ref="",
        period="month",
        unit="usd",
        limit_value=to_pico(tier.monthly_limit),
        thresholds=CEILING_THRESHOLDS,
        hard_cap=True,
        name=f"{tier.name} monthly ceiling",
        source="tier",
    )


def status(work: Work, org: Row) -> TierStatus:
    if not org["tier_rules"]:
        return TierStatus(org_id=org["id"], rules=None, tier=None, since=None, next_tier=None, missing=())
    rule_set = rules(work.conn, work.context, org["tier_rules"])
    index = rule_set.index(org["tier"])
    tier = rule_set.tiers[index] if index >= 0 else None
    following = rule_set.tiers[index + 1] if index + 1 < len(rule_set.tiers) else None
    lacking = tuple(missing(following, org, work.now)) if following else ()
    return TierStatus(
        org_id=org["id"],
        rules=rule_set.name,
        tier=tier,
        since=org["tier_since"],
        next_tier=following,
        missing=lacking,
    )
