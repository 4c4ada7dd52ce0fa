"""Read-side queries: listings of organisations, projects, keys, grants, entries and usage.

These only read; anything time-driven (expiries, expired holds) is brought up to date by
the caller first, inside the same transaction, so what they return is exact as of now."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, or_, select

from kakin.errors import InvalidInput, NotFound
from kakin.ledger import schema as s
from kakin.ledger import validate as v
from kakin.ledger.records import Entry, UsageRecord
from kakin.ledger.work import Row
from kakin.money import from_pico

MAX_ROWS = 100_000


def org_row(conn: Connection, ref: object) -> Row:
    """An organisation by id or by name."""
    if not isinstance(ref, str) or not ref.strip():
        raise NotFound(f"organisation must be given by id or name, got {ref!r}")
    ref = ref.strip()
    row = conn.execute(select(s.orgs).where(or_(s.orgs.c.id == ref, s.orgs.c.name == ref))).first()
    if row is None:
        raise NotFound(f"no organisation with id or name {ref!r} (see `kakin org list`)")
    return dict(row._mapping)


def project_row(conn: Connection, ref: object, org_id: str | None = None) -> Row:
    """A project by id, or by name within ``org_id``."""
    if not isinstance(ref, str) or not ref.strip():
        raise NotFound(f"project must be given by id or name, got {ref!r}")
    ref = ref.strip()
    p = s.projects
    query = select(p).where(p.c.id == ref)
    if org_id is not None:
        query = select(p).where(p.c.org_id == org_id, or_(p.c.id == ref, p.c.name == ref))
    row = conn.execute(query).first()
    if row is None:
        where = "" if org_id is None else f" in organisation {org_id}"
        raise NotFound(f"no project {ref!r}{where} (see `kakin project list`)")
    return dict(row._mapping)


def _limit(limit: object) -> int:
    if limit is None:
        return MAX_ROWS
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        raise InvalidInput(f"limit must be a positive whole number, got {limit!r}")
    return min(limit, MAX_ROWS)


def _window(column: Any, since: object, until: object) -> list[Any]:
    conditions = []
    if since is not None:
        conditions.append(column >= v.moment(since, "since"))
    if until is not None:
        conditions.append(column < v.moment(until, "until"))
    return conditions


def entries(conn: Connection, org_id: str, *, since: object, until: object, limit: object) -> list[Entry]:
    e = s.entries
    query = (
        select(e)
        .where(e.c.org_id == org_id, *_window(e.c.occurred_at, since, until))
        .order_by(e.c.occurred_at, e.c.id)
        .limit(_limit(limit))
    )
    return [entry_record(dict(row._mapping)) for row in conn.execute(query)]


def entry_record(row: Row) -> Entry:
    return Entry(
        id=row["id"],
        org_id=row["org_id"],
        kind=row["kind"],
        grant_id=row["grant_id"],
        reservation_id=row["reservation_id"],
        amount=from_pico(row["amount_pico"]),
        occurred_at=row["occurred_at"],
        recorded_at=row["recorded_at"],
        detail=row["detail"],
    )


def usage(
    conn: Connection,
    org_id: str,
    *,
    since: object,
    until: object,
    project_id: str | None,
    key_id: str | None,
    model: str | None,
    limit: object,
) -> list[UsageRecord]:
    u = s.usage_records
    conditions = [u.c.org_id == org_id, *_window(u.c.occurred_at, since, until)]
    if project_id is not None:
        conditions.append(u.c.project_id == project_id)
    if key_id is not None:
        conditions.append(u.c.key_id == key_id)
    if model is not None:
        conditions.append(u.c.model == model)
    query = select(u).where(*conditions).order_by(u.c.occurred_at, u.c.id).limit(_limit(limit))
    return [usage_record(dict(row._mapping)) for row in conn.execute(query)]


def usage_record(row: Row) -> UsageRecord:
    return UsageRecord(
        id=row["id"],
        org_id=row["org_id"],
        project_id=row["project_id"],
        key_id=row["key_id"],
        reservation_id=row["reservation_id"],
        request_id=row["request_id"],
        model=row["model"],
        provider=row["provider"],
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        cached_tokens=row["cached_tokens"],
        cost=from_pico(row["cost_pico"]),
        cost_items=row["cost_items"],
        occurred_at=row["occurred_at"],
        settled_at=row["settled_at"],
        cache_hit=row["cache_hit"],
        cache_saved=from_pico(row["cache_saved_pico"]),
        routed_from=row["routed_from"],
        routing_saved=from_pico(row["routing_saved_pico"]),
        reasoning_tokens=row["reasoning_tokens"],
    )


def all_grants(conn: Connection, org_id: str) -> list[Row]:
    return [dict(row._mapping) for row in conn.execute(select(s.grants).where(s.grants.c.org_id == org_id))]


def reservation_row(conn: Connection, reservation_id: object) -> Row:
    if not isinstance(reservation_id, str):
        raise NotFound(f"reservation id must be text, got {reservation_id!r}")
    row = conn.execute(select(s.reservations).where(s.reservations.c.id == reservation_id)).first()
    if row is None:
        raise NotFound(f"no reservation with id {reservation_id!r}")
    return dict(row._mapping)


def orgs_with_expired_holds(conn: Connection, now: datetime) -> list[str]:
    r = s.reservations
    query = select(r.c.org_id).where(r.c.status == s.HELD, r.c.expires_at <= now).distinct()
    return [row.org_id for row in conn.execute(query)]
