"""Budgets: spend or token limits per organisation, project, key or model, per calendar
day / month (in the organisation's timezone) or in total.

Each budget keeps one counter row per period (spent and held, money and tokens). A
reservation adds its hold to every applicable budget's current period and remembers which
rows it held in; settle releases exactly those and posts the actual cost to the period the
request started in — so holds and spend always meet in the same row, even across a reset.
A budget added mid-period starts from the spend already recorded in that period and adopts
the holds already open, so a hard cap is exact from the moment it exists.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from kakin.errors import InvalidInput, NotFound
from kakin.ledger import admission
from kakin.ledger import schema as s
from kakin.ledger.ids import new_id
from kakin.ledger.records import Budget, BudgetStatus, ThresholdCrossed
from kakin.ledger.work import Row, Work
from kakin.money import from_pico

SCOPES = ("org", "project", "key", "model")
PERIODS = ("day", "month", "total")
UNITS = ("usd", "tokens")
DEFAULT_THRESHOLDS = (50, 80, 100)


def matches(budget: Row, project_id: str, key_id: str | None, model: str) -> bool:
    return scope_matches(budget["scope"], budget["scope_ref"], project_id, key_id, model)


def scope_matches(scope: str, scope_ref: str, project_id: str, key_id: str | None, model: str) -> bool:
    """Whether a budget of ``scope`` / ``scope_ref`` counts a request of this project, key and model."""
    if scope == "org":
        return True
    if scope == "project":
        return scope_ref == project_id
    if scope == "key":
        return scope_ref == key_id
    return scope_ref == model


def applicable(work: Work, org: Row, project_id: str, key_id: str | None, model: str) -> list[Row]:
    return [b for b in work.budgets_of(org["id"]) if matches(b, project_id, key_id, model)]


def start_of(work: Work, org: Row, budget: Row, at: datetime) -> datetime:
    return work.period_bounds(budget["period"], org["timezone"], at)[0]


def counter(budget: Row, period: Row | None, *, held: bool) -> int:
    if period is None:
        return 0
    if budget["unit"] == "usd":
        return period["spent_pico"] + (period["held_pico"] if held else 0)
    return period["spent_tokens"] + (period["held_tokens"] if held else 0)


def rooms(work: Work, org: Row, budgets: list[Row]) -> tuple[admission.BudgetRoom, ...]:
    """The admission rule's view of ``budgets``: each one's counters in its current period."""
    return tuple(
        admission.budget_room(b, work.period(b["id"], start_of(work, org, b, work.now), create=False))
        for b in budgets
    )


def hold(work: Work, org: Row, reservation: Row, budgets: list[Row]) -> None:
    holds = []
    for budget in budgets:
        start = start_of(work, org, budget, reservation["created_at"])
        period = work.period(budget["id"], start)
        assert period is not None
        period["held_pico"] += reservation["amount_pico"]
        period["held_tokens"] += reservation["tokens"]
        work.touch_period(period)
        holds.append([budget["id"], start.isoformat()])
    reservation["holds"] = holds


def release(work: Work, reservation: Row) -> None:
    for budget_id, start in reservation["holds"] or ():
        period = work.period(budget_id, datetime.fromisoformat(start), create=False)
        if period is None:  # the budget was deleted meanwhile
            continue
        period["held_pico"] -= reservation["amount_pico"]
        period["held_tokens"] -= reservation["tokens"]
        work.touch_period(period)


def spend(work: Work, org: Row, reservation: Row, amount_pico: int, tokens: int) -> list[ThresholdCrossed]:
    """Post actual spend to every applicable budget's period of the request; return the
    thresholds reached for the first time in those periods."""
    crossed: list[ThresholdCrossed] = []
    for budget in applicable(
        work, org, reservation["project_id"], reservation["key_id"], reservation["model"]
    ):
        start, end = work.period_bounds(budget["period"], org["timezone"], reservation["created_at"])
        period = work.period(budget["id"], start)
        assert period is not None
        period["spent_pico"] += amount_pico
        period["spent_tokens"] += tokens
        work.touch_period(period)
        crossed.extend(_newly_crossed(org, budget, period, start, end))
    return crossed


def _newly_crossed(
    org: Row, budget: Row, period: Row, start: datetime, end: datetime | None
) -> list[ThresholdCrossed]:
    spent = counter(budget, period, held=False)
    limit = budget["limit_value"]
    thresholds = budget["thresholds"]
    if not thresholds or spent * 100 < min(thresholds) * limit:  # below every threshold
        return []
    fired = list(period["fired"])
    out = []
    for threshold in sorted(thresholds):
        if threshold not in fired and spent * 100 >= threshold * limit:
            fired.append(threshold)
            out.append(
                ThresholdCrossed(
                    budget_id=budget["id"],
                    budget_name=budget["name"],
                    org_id=org["id"],
                    scope=budget["scope"],
                    scope_ref=budget["scope_ref"],
                    period=budget["period"],
                    period_start=start,
                    period_end=end,
                    unit=budget["unit"],
                    threshold=threshold,
                    spent=_amount(budget["unit"], spent),
                    limit=_amount(budget["unit"], limit),
                )
            )
    if out:
        period["fired"] = fired
    return out


def _amount(unit: str, value: int) -> Decimal:
    return from_pico(value) if unit == "usd" else Decimal(value)


# Defining budgets ----------------------------------------------------------------------


def validate_thresholds(thresholds: object) -> list[int]:
    if isinstance(thresholds, str | bytes) or not hasattr(thresholds, "__iter__"):
        raise InvalidInput(f"thresholds must be a list of percents such as [50, 80, 100], got {thresholds!r}")
    values = list(thresholds)  # type: ignore[call-overload]
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
            raise InvalidInput(f"each threshold must be a whole percent from 1 to 1000, got {value!r}")
    return sorted(set(values))


def set_budget(
    work: Work,
    org: Row,
    *,
    scope: str,
    scope_ref: str,
    period: str,
    unit: str,
    limit_value: int,
    thresholds: list[int],
    hard_cap: bool,
    name: str | None,
    source: str = "user",
) -> Row:
    """Create or change the budget for (scope, period, unit). Checked before written."""
    if scope not in SCOPES:
        raise InvalidInput(f"budget scope {scope!r} is not one of: {', '.join(SCOPES)}")
    if period not in PERIODS:
        raise InvalidInput(f"budget period {period!r} is not one of: {', '.join(PERIODS)}")
    if limit_value <= 0:
        raise InvalidInput("a budget limit must be greater than zero")
    _check_ref(work, org, scope, scope_ref)
    label = name or _default_name(scope, scope_ref, period, unit)
    for budget in work.budgets_of(org["id"]):
        if (budget["scope"], budget["scope_ref"], budget["period"], budget["unit"], budget["source"]) == (
            scope,
            scope_ref,
            period,
            unit,
            source,
        ):
            changes = {
                "limit_value": limit_value,
                "thresholds": thresholds,
                "hard_cap": hard_cap,
                "name": label,
                "updated_at": work.now,
            }
            work.conn.execute(update(s.budgets).where(s.budgets.c.id == budget["id"]).values(changes))
            budget.update(changes)
            return budget
    budget = {
        "id": new_id("bud"),
        "org_id": org["id"],
        "name": label,
        "scope": scope,
        "scope_ref": scope_ref,
        "period": period,
        "unit": unit,
        "limit_value": limit_value,
        "thresholds": thresholds,
        "hard_cap": hard_cap,
        "source": source,
        "created_at": work.now,
        "updated_at": work.now,
    }
    work.conn.execute(insert(s.budgets), [budget])
    work.budgets_of(org["id"]).append(budget)
    _start_mid_period(work, org, budget)
    return budget


def _default_name(scope: str, scope_ref: str, period: str, unit: str) -> str:
    where = "org" if scope == "org" else f"{scope} {scope_ref}"
    return f"{where} {period} {'spend' if unit == 'usd' else 'tokens'}"


def _check_ref(work: Work, org: Row, scope: str, scope_ref: str) -> None:
    if scope == "org":
        if scope_ref:
            raise InvalidInput("an organisation budget takes no scope reference")
        return
    if not scope_ref:
        raise InvalidInput(f"a {scope} budget needs the {scope} it applies to")
    if scope == "project" and work.project_org(scope_ref) != org["id"]:
        raise NotFound(f"organisation {org['name']!r} has no project {scope_ref!r}")
    if scope == "key":
        key = work.key(scope_ref)
        if key is None or key["org_id"] != org["id"]:
            raise NotFound(f"organisation {org['name']!r} has no key {scope_ref!r}")


def _start_mid_period(work: Work, org: Row, budget: Row) -> None:
    """Count the spend already recorded this period and adopt the holds already open."""
    start, end = work.period_bounds(budget["period"], org["timezone"], work.now)
    u = s.usage_records
    query = select(
        func.coalesce(func.sum(u.c.cost_pico), 0),
        func.coalesce(func.sum(u.c.input_tokens + u.c.output_tokens), 0),
    ).where(u.c.org_id == org["id"], u.c.occurred_at >= start, _scope_filter(u, budget))
    if end is not None:
        query = query.where(u.c.occurred_at < end)
    spent_pico, spent_tokens = work.conn.execute(query).one()
    period = work.period(budget["id"], start)
    assert period is not None
    period["spent_pico"] = int(spent_pico)
    period["spent_tokens"] = int(spent_tokens)
    r = s.reservations
    held = work.conn.execute(
        select(r).where(
            r.c.org_id == org["id"], r.c.status == s.HELD, r.c.created_at >= start, _scope_filter(r, budget)
        )
    )
    for row in held:
        reservation = work.adopt_reservation(dict(row._mapping))
        if reservation["status"] != "held":
            continue
        period["held_pico"] += reservation["amount_pico"]
        period["held_tokens"] += reservation["tokens"]
        reservation["holds"] = [*(reservation["holds"] or []), [budget["id"], start.isoformat()]]
        work.touch_reservation(reservation)
    period["fired"] = []
    work.touch_period(period)


def _scope_filter(table: Any, budget: Row) -> Any:
    scope, ref = budget["scope"], budget["scope_ref"]
    if scope == "org":
        return table.c.org_id == budget["org_id"]
    column = {"project": table.c.project_id, "key": table.c.key_id, "model": table.c.model}[scope]
    return column == ref


def delete_budget(work: Work, budget_id: str) -> Row:
    row = work.conn.execute(select(s.budgets).where(s.budgets.c.id == budget_id)).first()
    if row is None:
        raise NotFound(f"no budget with id {budget_id!r} (see `kakin budget list`)")
    if row.source != "user":
        raise InvalidInput(
            f"budget {budget_id} is the usage tier's monthly ceiling; change the tier rules instead"
        )
    work.org(row.org_id)
    work.conn.execute(delete(s.budget_periods).where(s.budget_periods.c.budget_id == budget_id))
    work.conn.execute(delete(s.budgets).where(s.budgets.c.id == budget_id))
    work.budgets[row.org_id] = [b for b in work.budgets_of(row.org_id) if b["id"] != budget_id]
    for key in [k for k in work.periods if k[0] == budget_id]:
        work.periods[key] = None
        work.new_periods.discard(key)
        work.dirty_periods.discard(key)
    return dict(row._mapping)


# Reading -------------------------------------------------------------------------------


def to_record(row: Row) -> Budget:
    return Budget(
        id=row["id"],
        org_id=row["org_id"],
        name=row["name"],
        scope=row["scope"],
        scope_ref=row["scope_ref"],
        period=row["period"],
        unit=row["unit"],
        limit=_amount(row["unit"], row["limit_value"]),
        thresholds=tuple(row["thresholds"]),
        hard_cap=row["hard_cap"],
        source=row["source"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def status(work: Work, org: Row, budget: Row) -> BudgetStatus:
    start, end = work.period_bounds(budget["period"], org["timezone"], work.now)
    period = work.period(budget["id"], start, create=False)
    spent = counter(budget, period, held=False)
    held = counter(budget, period, held=True) - spent
    limit = budget["limit_value"]
    unit = budget["unit"]
    return BudgetStatus(
        budget=to_record(budget),
        period_start=start,
        period_end=end,
        spent=_amount(unit, spent),
        held=_amount(unit, held),
        limit=_amount(unit, limit),
        percent=(Decimal(spent) * 100 / Decimal(limit)).quantize(Decimal("0.01")),
        remaining=_amount(unit, max(limit - spent - held, 0)),
        fired=tuple(period["fired"]) if period else (),
    )
