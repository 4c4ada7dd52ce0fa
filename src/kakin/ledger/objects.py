"""Ownership of provider-side objects created through the gateway.

The gateway forwards every project's requests with one provider key, so to the provider a
cached content or a stored response belongs to the whole account. This table says which
project created each one; the gateway lets only that project name it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from kakin.ledger import schema as s
from kakin.ledger.records import ObjectName, ProviderObject

_T = s.provider_objects


def to_record(row: Any) -> ProviderObject:
    m = row._mapping if hasattr(row, "_mapping") else row
    return ProviderObject(
        api=m["api"],
        kind=m["kind"],
        object_id=m["object_id"],
        org_id=m["org_id"],
        project_id=m["project_id"],
        model=m["model"],
        tokens=m["tokens"],
        created_at=m["created_at"],
    )


def _where(api: str, kind: str) -> Any:
    return (_T.c.api == api) & (_T.c.kind == kind)


def record(conn: Connection, now: datetime, org_id: str, project_id: str, names: Sequence[ObjectName]) -> int:
    """Record the objects as the project's; one already recorded keeps its first owner.
    Returns how many were new."""
    rows = [
        {
            "api": name.api,
            "kind": name.kind,
            "object_id": name.object_id,
            "org_id": org_id,
            "project_id": project_id,
            "model": name.model,
            "tokens": name.tokens,
            "created_at": now,
        }
        for name in names
        if find(conn, name.api, name.kind, name.object_id) is None
    ]
    if rows:
        conn.execute(insert(_T), rows)
    return len(rows)


def find(conn: Connection, api: str, kind: str, object_id: str) -> ProviderObject | None:
    found = conn.execute(select(_T).where(_where(api, kind) & (_T.c.object_id == object_id))).first()
    return None if found is None else to_record(found)


def owned(
    conn: Connection, project_id: str, api: str, kind: str, object_ids: Sequence[str]
) -> dict[str, ProviderObject]:
    """The records of those of ``object_ids`` the project owns, by id."""
    if not object_ids:
        return {}
    rows = conn.execute(
        select(_T).where(
            _where(api, kind) & _T.c.object_id.in_(list(object_ids)) & (_T.c.project_id == project_id)
        )
    )
    return {row.object_id: to_record(row) for row in rows}


def forget(conn: Connection, api: str, kind: str, object_id: str) -> bool:
    """Drop the record of a deleted object; False when there was none."""
    result = conn.execute(delete(_T).where(_where(api, kind) & (_T.c.object_id == object_id)))
    return bool(result.rowcount)
