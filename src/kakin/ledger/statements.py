"""Statements the hot path runs, built once per backend.

Building a SQLAlchemy statement and computing its cache key costs more than running a small
query, so every query a transaction needs is constructed here once. On PostgreSQL, lists are
passed as one array parameter (``= ANY(:ids)``) and multi-row writes go through
``unnest(array, …)``: the statement text is the same whatever the number of rows, so neither
SQLAlchemy nor the driver re-parses it, and the server runs one statement per table instead
of one per row. SQLite, which runs in-process, uses expanding ``IN`` lists and executemany.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    Boolean,
    String,
    and_,
    any_,
    bindparam,
    func,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import Select
from sqlalchemy.types import TypeDecorator

from kakin.ledger import schema as s


@dataclass(frozen=True)
class Queries:
    lock_orgs: Select[Any]
    lock_orgs_of: Select[Any]
    live_grants: Select[Any]
    budgets: Select[Any]
    periods: Select[Any]
    reservations: Select[Any]
    reservations_by_key: Select[Any]
    keys: Select[Any]
    projects: Select[Any]


class _Joined(TypeDecorator[list[str]]):
    """A list of strings bound as one text parameter, split again by the server.

    The driver adapts a Python list element by element in Python; one joined string costs a
    single C-level copy. The separator (unit separator, U+001F) is a control character, which
    kakin never accepts in names, keys or ids."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str:
        return SEPARATOR.join(value)


SEPARATOR = "\x1f"


def _build(postgres: bool) -> Queries:
    if postgres:

        def among(column: Any, name: str, item: Any = None) -> Any:
            if item is not None:
                return column == any_(bindparam(name, type_=ARRAY(item)))
            return column == any_(func.string_to_array(bindparam(name, type_=_Joined()), SEPARATOR))
    else:

        def among(column: Any, name: str, item: Any = None) -> Any:
            return column.in_(bindparam(name, expanding=True, type_=item or String()))

    r = s.reservations
    lock = select(s.orgs).where(among(s.orgs.c.id, "ids")).order_by(s.orgs.c.id)
    # The organisations named, and those of the reservations named, in one locking query.
    owners = select(r.c.org_id).where(among(r.c.id, "rids"))
    if postgres:  # a semi-join on the primary key, whatever the size of orgs
        named = select(func.unnest(func.string_to_array(bindparam("ids", type_=_Joined()), SEPARATOR)))
        lock_of = select(s.orgs).where(s.orgs.c.id.in_(named.union(owners))).order_by(s.orgs.c.id)
    else:
        lock_of = (
            select(s.orgs)
            .where(or_(among(s.orgs.c.id, "ids"), s.orgs.c.id.in_(owners)))
            .order_by(s.orgs.c.id)
        )
    if postgres:
        # (organisation, key) pairs from two parallel lists, joined on the unique index: one
        # index probe per pair whatever the table's size (lists on each column separately
        # let a generic plan scan all of an organisation's reservations).
        def unnested(name: str) -> Any:
            return func.unnest(func.string_to_array(bindparam(name, type_=_Joined()), SEPARATOR))

        pairs = select(unnested("ids").label("org_id"), unnested("keys").label("key")).subquery("pairs")
        on = and_(r.c.org_id == pairs.c.org_id, r.c.idempotency_key == pairs.c.key)
        by_key = select(r).select_from(pairs.join(r, on))
    else:
        by_key = select(r).where(among(r.c.org_id, "ids"), among(r.c.idempotency_key, "keys"))
    return Queries(
        lock_orgs=lock.with_for_update() if postgres else lock,
        lock_orgs_of=lock_of.with_for_update(of=s.orgs) if postgres else lock_of,
        live_grants=select(s.grants).where(
            among(s.grants.c.org_id, "ids"),
            or_(s.grants.c.remaining_pico > 0, s.grants.c.activated_at.is_(None)),
        ),
        budgets=select(s.budgets).where(among(s.budgets.c.org_id, "ids")),
        periods=select(s.budget_periods).where(
            among(s.budget_periods.c.budget_id, "ids"),
            among(s.budget_periods.c.period_start, "starts", s.UTCDateTime()),
        ),
        reservations=select(r).where(among(r.c.id, "ids")),
        reservations_by_key=by_key,
        keys=select(s.api_keys).where(among(s.api_keys.c.id, "ids")),
        projects=select(s.projects.c.id, s.projects.c.org_id).where(among(s.projects.c.id, "ids")),
    )


@cache
def queries(dialect: str) -> Queries:
    return _build(dialect == "postgresql")


# The reservations a batch settles or voids, read without SQLAlchemy's row processing: the
# driver already returns JSON as Python values and timestamps as aware datetimes.
_RES_COLUMNS = tuple(c.name for c in s.reservations.columns)
_RES_TIMES = tuple(i for i, c in enumerate(s.reservations.columns) if isinstance(c.type, s.UTCDateTime))
PG_RESERVATIONS = (
    f"SELECT {', '.join(_RES_COLUMNS)} FROM reservations WHERE id = ANY(string_to_array(%(ids)s, E'\\x1f'))"
)


def pg_reservation(row: Any) -> dict[str, Any]:
    values = list(row)
    for i in _RES_TIMES:
        if values[i] is not None:
            values[i] = values[i].astimezone(UTC)
    return dict(zip(_RES_COLUMNS, values, strict=True))


# Multi-row writes ---------------------------------------------------------------------


# SQLite: the same writes as plain executemany on the driver, with values converted the way
# SQLAlchemy stores them (timestamps as UTC text, JSON as text), skipping its per-row work.


_times: dict[datetime, str] = {}  # recent timestamps as text: most repeat within a batch


def _sqlite_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    text = _times.get(value)
    if text is None:
        if len(_times) > 4096:
            _times.clear()
        if value.tzinfo is UTC:  # the ledger's own instants: drop the "+00:00"
            text = value.isoformat(" ", "microseconds")[:26]
        else:
            text = value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        _times[value] = text
    return text


def _sqlite_json(value: Any) -> str:
    """JSON text as SQLAlchemy stores it; :class:`JsonText` is already serialised."""
    if type(value) is JsonText:
        return str(value)
    if value is None:
        return "null"
    if value == []:
        return "[]"
    return json.dumps(value)


class JsonText(str):
    """A JSON document already serialised and checked (a usage record's cost items): stored
    as it is, without a parse and a re-serialisation."""

    __slots__ = ()


def loaded(value: Any) -> Any:
    """``value`` as a Python value (parses :class:`JsonText`)."""
    return json.loads(value) if type(value) is JsonText else value


@cache
def _sqlite_converter(table_name: str, names: tuple[str, ...]) -> Any:
    """A function turning a row dict into the parameter list for ``names``. Values are given
    to the driver as exact ``str`` and ``int``: a subclass (``JsonText``, ``bool``) makes it
    look for an adapter on every bind before storing the very same text or integer."""
    table = s.metadata.tables[table_name]
    kinds = [table.c[name].type for name in names]
    times = tuple(i for i, kind in enumerate(kinds) if isinstance(kind, s.UTCDateTime))
    documents = tuple(i for i, kind in enumerate(kinds) if isinstance(kind, JSON))
    flags = tuple(i for i, kind in enumerate(kinds) if isinstance(kind, Boolean))
    pick = itemgetter(*names)
    known = _times

    def convert(row: dict[str, Any]) -> list[Any]:
        values = list(pick(row)) if len(names) > 1 else [pick(row)]
        for i in times:  # inline: a row has up to six, and most are None or already known
            value = values[i]
            if value is not None:
                values[i] = known.get(value) or _sqlite_time(value)
        for i in documents:
            values[i] = _sqlite_json(values[i])
        for i in flags:
            if values[i] is not None:
                values[i] = int(values[i])
        return values

    return convert


@cache
def insert_columns(table_name: str) -> tuple[str, ...]:
    """The columns an INSERT names: all but an auto-incremented primary key."""
    table = s.metadata.tables[table_name]
    return tuple(c.name for c in table.columns if not (c.primary_key and c.autoincrement is True))


@cache
def sqlite_insert(table_name: str) -> tuple[str, Any]:
    """The INSERT of ``table_name`` and the function turning a row dict into its parameters."""
    columns = insert_columns(table_name)
    sql = f"INSERT INTO {table_name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    return sql, _sqlite_converter(table_name, columns)


@cache
def sqlite_update(table_name: str, columns: tuple[str, ...], keys: tuple[str, ...]) -> tuple[str, Any]:
    """The UPDATE of ``columns`` by ``keys`` and the function turning a row dict into its parameters."""
    sets = ", ".join(f"{c} = ?" for c in columns)
    sql = f"UPDATE {table_name} SET {sets} WHERE {' AND '.join(f'{k} = ?' for k in keys)}"
    return sql, _sqlite_converter(table_name, (*columns, *keys))


# SQLite reads on the hot path, straight from the driver: rows converted the way SQLAlchemy
# reads them (UTC text to aware datetimes, JSON text to values, 0/1 to booleans).


@cache
def _sqlite_reader(table_name: str) -> tuple[str, Any]:
    """The column list of ``table_name`` and a function turning a driver row into a dict."""
    table = s.metadata.tables[table_name]
    names = tuple(c.name for c in table.columns)
    special: list[tuple[int, Any]] = []
    for i, column in enumerate(table.columns):
        kind = column.type
        if isinstance(kind, s.UTCDateTime):
            special.append((i, _read_time))
        elif isinstance(kind, JSON):
            special.append((i, json.loads))
        elif isinstance(kind, Boolean):
            special.append((i, bool))

    def convert(row: tuple[Any, ...]) -> dict[str, Any]:
        values = list(row)
        for i, function in special:
            if values[i] is not None:
                values[i] = function(values[i])
        return dict(zip(names, values, strict=True))

    return ", ".join(names), convert


def _read_time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def sqlite_reservations_by_key(driver: Any, pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Reservations by (organisation, idempotency key), one probe of the unique index each."""
    convert = _sqlite_reader("reservations")[1]
    found: list[dict[str, Any]] = []
    for start in range(0, len(pairs), 400):  # SQLite allows 32,766 parameters per statement
        chunk = pairs[start : start + 400]
        flat = [item for pair in chunk for item in pair]
        found += [convert(row) for row in driver.execute(_by_key_sql(len(chunk)), flat)]
    return found


@lru_cache(maxsize=64)
def _by_key_sql(count: int) -> str:
    columns = ", ".join(f"r.{c.name}" for c in s.reservations.columns)
    if count == 1:  # a batch of one: a plain probe, cheaper to run than a join
        return f"SELECT {columns} FROM reservations AS r WHERE r.org_id = ? AND r.idempotency_key = ?"
    # The pairs drive the join: one probe of the unique index each ("(a, b) IN (VALUES …)"
    # would scan the table).
    values = ", ".join(["(?, ?)"] * count)
    return (
        f"SELECT {columns} FROM (VALUES {values}) AS p JOIN reservations AS r "
        "ON r.org_id = p.column1 AND r.idempotency_key = p.column2"
    )


def pg_rows(rows: list[dict[str, Any]], names: tuple[str, ...]) -> dict[str, str]:
    """All rows as one JSON document: the only parameter of :func:`pg_insert` and
    :func:`pg_update`. orjson encodes it (aware datetimes in ISO 8601, as the server reads
    them), in a fifth of the stdlib encoder's time; the server turns it back into typed rows."""
    # json_populate_recordset takes the keys it has columns for and ignores the others, so
    # rows go as they are (every name in ``names`` is one of their keys).
    # Column names can be str subclasses (SQLAlchemy's quoted_name): OPT_NON_STR_KEYS takes them.
    return {"rows": orjson.dumps(rows, option=orjson.OPT_NON_STR_KEYS).decode()}


# Columns the document carries as JSON text (JsonText, serialised once), parsed by the server.
_PG_TEXT_JSON = {("usage_records", "cost_items")}


@lru_cache(maxsize=32)
def pg_insert(table_name: str, columns: tuple[str, ...]) -> str:
    names = ", ".join(columns)
    values = ", ".join(f"({c} #>> '{{}}')::json" if (table_name, c) in _PG_TEXT_JSON else c for c in columns)
    return f"INSERT INTO {table_name} ({names}) SELECT {values} FROM json_populate_recordset(null::{table_name}, %(rows)s)"


@lru_cache(maxsize=32)
def pg_update(table_name: str, columns: tuple[str, ...], keys: tuple[str, ...]) -> str:
    sets = ", ".join(f"{c} = x.{c}" for c in columns)
    where = " AND ".join(f"t.{k} = x.{k}" for k in keys)
    source = f"json_populate_recordset(null::{table_name}, %(rows)s)"
    return f"UPDATE {table_name} AS t SET {sets} FROM {source} AS x WHERE {where}"


# Rollups: rows added to the ones already there (kakin.ledger.rollups), one statement per table.


@cache
def sqlite_upsert(table_name: str, keys: tuple[str, ...], measures: tuple[str, ...]) -> str:
    """INSERT … ON CONFLICT (``keys``) DO UPDATE adding ``measures``."""
    columns = (*keys, *measures)
    adds = ", ".join(f"{m} = {m} + excluded.{m}" for m in measures)
    return (
        f"INSERT INTO {table_name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {adds}"
    )


def sqlite_rollup_rows(rollup: dict[Any, list[int]]) -> list[list[Any]]:
    """Rollup entries (org, start, the table's other dimensions) → measures as parameter lists."""
    known = _times
    return [
        [org, known.get(start) or _sqlite_time(start), *rest, *values]
        for (org, start, *rest), values in rollup.items()
    ]


def pg_rollup_rows(rollup: dict[Any, list[int]], names: tuple[str, ...]) -> dict[str, str]:
    """Rollup entries as the one JSON document :func:`pg_upsert` reads (``names``: the key's
    columns, then the measures'). orjson writes the aware datetimes itself."""
    return {
        "rows": orjson.dumps(
            [dict(zip(names, (*key, *values), strict=True)) for key, values in rollup.items()]
        ).decode()
    }


@lru_cache(maxsize=8)
def pg_upsert(table_name: str, keys: tuple[str, ...], measures: tuple[str, ...]) -> str:
    """The same on PostgreSQL, from one JSON document of rows with distinct keys."""
    columns = ", ".join((*keys, *measures))
    adds = ", ".join(f"{m} = t.{m} + excluded.{m}" for m in measures)
    return (
        f"INSERT INTO {table_name} AS t ({columns}) SELECT {columns} "
        f"FROM json_populate_recordset(null::{table_name}, %(rows)s) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {adds}"
    )
