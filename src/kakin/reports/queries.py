"""The report queries every face uses (CLI, admin API, pages): pure reads.

Spend reports read the rollups (:mod:`kakin.ledger.rollups`), never the usage records: a day
table for whole local days, an hour table for hours, and of those the narrowest one that holds
the report's grouping and filters (by model, by key, or the organisation's total). One request's detail and the
request log read the usage records, through their indexes. Every range is ``[start, end)``
in the organisation's own timezone, and every result states that zone.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from itertools import islice
from operator import add
from typing import Any, Final, Literal, NamedTuple
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import Connection, bindparam, func, literal_column, null, or_, select, type_coerce, union_all
from sqlalchemy.types import NullType

from kakin.errors import InvalidInput, NotFound, UnknownModel
from kakin.ledger import Ledger, Org, orgs
from kakin.ledger import queries as ledger_queries
from kakin.ledger import rollups as r
from kakin.ledger import schema as s
from kakin.money import from_pico
from kakin.reports.results import (
    GROUPINGS,
    CostLine,
    Grouping,
    Repriced,
    RequestDetail,
    RequestLine,
    RequestPage,
    Spend,
    SpendLine,
    SpendReport,
    UnitLine,
    WhatIf,
)

MAX_PAGE = 500

# What each unit's quantity is counted in, and the rollup column that counts it.
_QUANTITY: dict[str, tuple[str, str]] = {
    "input": ("input_tokens", "token"),
    "cached_input": ("cached_tokens", "token"),
    "cache_write": ("cache_write_tokens", "token"),
    "output": ("output_tokens", "token"),
    "reasoning": ("reasoning_tokens", "token"),
    "images": ("images", "image"),
    "audio": ("audio_ms", "second"),
    "requests": ("requests", "request"),
}
_SPEND: Final = Spend._fields
"""The rollup columns a :class:`Spend` is made of, in its order."""
_WIDTH: Final = len(_SPEND)
_UNITS: Final = tuple(f"{unit}_pico" for unit in r.UNITS)
_READ: Final = _SPEND + _UNITS
"""What a spend report reads: each group's :class:`Spend`, and the money by unit it totals."""
_GROUP_COLUMN: dict[str, str | None] = {  # the rollup column a grouping needs
    "day": None,
    "hour": None,
    "unit": None,
    "model": "model",
    "project": "project_id",
    "key": "key_id",
}
_GRAIN: Final = {table.name: table.grain for table in r.TABLES}
Range = date | datetime | str | None


class Reports:
    """Report queries over one ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    # Spend -------------------------------------------------------------------------------

    def spend(
        self,
        org: str,
        *,
        by: Grouping = "day",
        start: Range = None,
        end: Range = None,
        project: str | None = None,
        key: str | None = None,
        model: str | None = None,
    ) -> SpendReport:
        """Spend of ``org`` over ``[start, end)`` (default: this local month so far, today
        included), grouped ``by`` day, hour, model, project, key or unit."""
        if by not in GROUPINGS:
            raise InvalidInput(f"reports group by {', '.join(GROUPINGS)}; not {by!r}")
        return self.ledger.read(lambda c: self._spend(c, org, by, start, end, project, key, model))

    def _spend(
        self,
        c: Connection,
        org: str,
        by: Grouping,
        start: Range,
        end: Range,
        project: str | None,
        key: str | None,
        model: str | None,
    ) -> SpendReport:
        # One transaction for the whole report: one state of the ledger, and on PostgreSQL
        # one round trip per statement and no more.
        record = _org(c, org)
        zone = ZoneInfo(record.timezone)
        begin, finish = self._window(record, start, end)
        filters = _filters(c, record, project, key, model)
        found, total = self._summed(c, record, by, begin, finish, filters)
        lines: tuple[SpendLine, ...]
        if by in ("day", "hour"):
            names = _Buckets(zone, by)
            buckets: dict[str, SpendLine] = {}
            for row in found:
                name, local = names(row[0])
                line = SpendLine(name, name, Spend._make(row[1 : 1 + _WIDTH]), local)
                known = buckets.setdefault(name, line)
                if known is not line:  # a second bucket of one local day (see _Buckets)
                    added = Spend._make(map(add, known.spend, line.spend))
                    buckets[name] = SpendLine(name, name, added, known.start)
            lines = tuple(buckets.values())
        elif by == "unit":
            lines = ()
        else:
            labels = _labels(c, record, by)
            lines = tuple(
                sorted(
                    (
                        SpendLine(row[0], labels.get(row[0], row[0]), Spend._make(row[1 : 1 + _WIDTH]))
                        for row in found
                    ),
                    key=lambda line: (-line.spend.cost_pico, line.group),
                )
            )
        return SpendReport(
            org_id=record.id,
            org_name=record.name,
            timezone=record.timezone,
            by=by,
            start=begin.astimezone(zone),
            end=finish.astimezone(zone),
            project_id=filters["project_id"],
            key_id=filters["key_id"],
            model=model,
            lines=lines,
            units=units_of(dict(zip(_READ, total, strict=True))),
            total=Spend._make(total[:_WIDTH]),
        )

    def spend_by_model(
        self,
        org: str,
        models: Sequence[str],
        *,
        by: Literal["day", "hour"] = "day",
        start: Range = None,
        end: Range = None,
        project: str | None = None,
        key: str | None = None,
    ) -> dict[str, dict[str, Spend]]:
        """Spend over time of each of ``models`` in one read: model → local day or hour (as
        :meth:`spend` names its lines; buckets without spend left out) → spend."""
        if by not in ("day", "hour"):
            raise InvalidInput(f"spend by model over time is by day or hour, not {by!r}")
        wanted = tuple(dict.fromkeys(models))

        def read(c: Connection) -> tuple[Org, list[Any]]:
            record = _org(c, org)
            begin, finish = self._window(record, start, end)
            filters = _filters(c, record, project, key, None)
            return record, self._summed(c, record, by, begin, finish, filters, wanted)[0]

        record, rows = self.ledger.read(read)
        out: dict[str, dict[str, Spend]] = {name: {} for name in wanted}
        names = _Buckets(ZoneInfo(record.timezone), by)
        bucket = name = None
        for row in rows:
            if row[0] != bucket:  # the rows come bucket by bucket: one name for each
                bucket = row[0]
                name = names(bucket)[0]
            spent = out[row[1]]
            measures = Spend._make(row[2:])
            known = spent.setdefault(name, measures)
            if known is not measures:  # a second bucket of one local day (see _Buckets)
                spent[name] = Spend._make(map(add, known, measures))
        return out

    def _summed(
        self,
        c: Connection,
        org: Org,
        by: Grouping,
        begin: datetime,
        finish: datetime,
        filters: dict[str, str | None],
        models: Sequence[str] | None = None,
    ) -> tuple[list[Any], list[int]]:
        """Each group's :class:`Spend` measures (integers, in its order), the group first: a
        bucket's start as stored (see :class:`_Buckets`), or a model, project or key id; read
        from the narrowest rollup table that holds the grouping and the filters. With
        ``models``, per bucket and model, for those models only; otherwise also the total of
        every measure, money by unit included, in :data:`_READ` order."""
        column = "model" if models is not None else _GROUP_COLUMN[by]
        given = {name: value for name, value in filters.items() if value is not None}
        table = self._table(org, by, begin, finish, set(given) | ({column} if column else set()))
        shape = _Shape(table.name, by, frozenset(given), models is not None, self.ledger.backend == "sqlite")
        query, form = _statement(shape)
        found = c.execute(query, {"org": org.id, "begin": begin, "finish": finish, "models": models, **given})
        if form == "rows":  # one row per group already: read as they are
            rows = found.all()
            return rows, ([] if models is not None else _total(rows, 1))
        if form == "unit":
            return [], _total(_integers(found, 0), 0)
        rows = _integers(found, 2 if models is not None else 1)
        if form == "sums":
            return rows, ([] if models is not None else _total(rows, 1))
        whole = rows.pop(next(i for i, row in enumerate(rows) if row[0] is None))  # form "apart"
        return rows, list(whole[1:])

    def _window(self, org: Org, start: Range, end: Range) -> tuple[datetime, datetime]:
        zone = ZoneInfo(org.timezone)
        now = self.ledger.now().astimezone(zone)
        begin = _instant(start, zone, "start") or datetime.combine(now.date().replace(day=1), time(0), zone)
        finish = _instant(end, zone, "end") or datetime.combine(now.date() + timedelta(days=1), time(0), zone)
        begin, finish = begin.astimezone(UTC), finish.astimezone(UTC)
        if finish <= begin:
            raise InvalidInput(
                f"the report's end ({finish.isoformat()}) must be after its start ({begin.isoformat()})"
            )
        return begin, finish

    def _table(self, org: Org, by: Grouping, begin: datetime, finish: datetime, needed: set[str]) -> Any:
        """The rollups that answer with the fewest rows: by day when the range is whole
        local days, else by hour; of those, the narrowest table with the ``needed`` columns."""
        day_aligned = all(r.buckets(org.timezone, t)[1] == t for t in (begin, finish))
        if by != "hour" and day_aligned:
            return s.ROLLUPS[r.narrowest("day", needed).name]
        if by != "day" and all(r.buckets(org.timezone, t)[0] == t for t in (begin, finish)):
            return s.ROLLUPS[r.narrowest("hour", needed).name]
        zone = ZoneInfo(org.timezone)
        whole = "days" if by == "day" else "hours"
        raise InvalidInput(
            f"a report by {by} covers whole {whole} of {org.timezone}; "
            f"{begin.astimezone(zone).isoformat()} to {finish.astimezone(zone).isoformat()} "
            f"does not start and end on whole {whole}"
        )

    # What if ------------------------------------------------------------------------------

    def whatif(
        self,
        org: str,
        models: Sequence[str],
        *,
        start: Range = None,
        end: Range = None,
        project: str | None = None,
        key: str | None = None,
        catalog: Any = None,
    ) -> WhatIf:
        """The period's usage, model by model, repriced on each of ``models`` (prices in force
        at the period's end, or now if sooner). Each request is taken to be its model's
        average request of the period, which picks the context tier; requests, tokens by
        kind (uncached, cached, cache-written input; output with reasoning) are repriced."""
        from kakin.pricing import Usage, price

        targets = tuple(dict.fromkeys(m.strip() for m in models if m and m.strip()))
        if not targets:
            raise InvalidInput("name at least one model to reprice the usage on")
        report = self.spend(org, by="model", start=start, end=end, project=project, key=key)
        at = min(report.end, self.ledger.now()).astimezone(UTC)
        for target in targets:  # an unknown model is refused even when there is nothing to reprice
            price(Usage(requests=0), target, at=at, catalog=catalog)
        lines = []
        totals = dict.fromkeys(targets, Decimal(0))
        for line in report.lines:
            spent = line.spend
            counts = Usage(
                input_tokens=spent.input_tokens + spent.cached_tokens + spent.cache_write_tokens,
                cache_read_tokens=spent.cached_tokens,
                cache_write_tokens=spent.cache_write_tokens,
                output_tokens=spent.output_tokens + spent.reasoning_tokens,
                output_reasoning_tokens=spent.reasoning_tokens,
                requests=spent.requests,
            )
            on = {target: _reprice(counts, target, at, catalog, price, Usage) for target in targets}
            for target, amount in on.items():
                totals[target] += amount
            lines.append(
                Repriced(
                    line.group, spent.requests, counts.input_tokens, counts.output_tokens, spent.cost, on
                )
            )
        left_out = tuple(u.unit for u in report.units if u.unit in ("images", "audio", "other") and u.cost)
        return WhatIf(
            org_id=report.org_id,
            org_name=report.org_name,
            timezone=report.timezone,
            start=report.start,
            end=report.end,
            targets=targets,
            priced_at=at,
            lines=tuple(lines),
            cost=report.total.cost,
            totals=totals,
            unpriced=left_out,
        )

    # One request -------------------------------------------------------------------------

    def request(self, ref: str, *, org: str | None = None) -> RequestDetail:
        """One request by its request id (``x-kakin-request-id``) or reservation id."""
        if not isinstance(ref, str) or not ref.strip():
            raise InvalidInput("give a request id or a reservation id")
        ref = ref.strip()
        u = s.usage_records
        query = select(u).where(or_(u.c.request_id == ref, u.c.reservation_id == ref))
        org_record = self.ledger.get_org(org) if org is not None else None
        if org_record is not None:
            query = query.where(u.c.org_id == org_record.id)
        found = self.ledger.read(lambda c: [dict(row._mapping) for row in c.execute(query.limit(2))])
        if not found:
            raise NotFound(f"no request with id {ref!r}" + (f" in {org_record.name!r}" if org_record else ""))
        if len(found) > 1:
            raise InvalidInput(
                f"request id {ref!r} was used in more than one organisation; give the organisation"
            )
        row = found[0]
        owner = org_record or self.ledger.get_org(row["org_id"])
        zone = ZoneInfo(owner.timezone)
        project = self.ledger.get_project(row["project_id"])
        label = None
        if row["key_id"] is not None:
            key = self.ledger.get_key(row["key_id"])
            label = key_label(key.name, key.prefix)
        items, notes = _items(row["cost_items"])
        held_for = row["settled_at"] - row["occurred_at"]
        return RequestDetail(
            request_id=row["request_id"],
            reservation_id=row["reservation_id"],
            org_id=row["org_id"],
            timezone=owner.timezone,
            project_id=project.id,
            project_name=project.name,
            key_id=row["key_id"],
            key_label=label,
            model=row["model"],
            provider=row["provider"],
            started_at=row["occurred_at"].astimezone(zone),
            settled_at=row["settled_at"].astimezone(zone),
            latency=held_for if held_for > timedelta(0) else None,
            input_tokens=row["input_tokens"],
            cached_tokens=row["cached_tokens"],
            output_tokens=row["output_tokens"],
            units=units_of(dict(zip(r.MEASURES, r.measures(row), strict=True))),
            cost=from_pico(row["cost_pico"]),
            items=items,
            notes=notes,
            cache_hit=bool(row["cache_hit"]),
            cache_saved=from_pico(row["cache_saved_pico"]),
            routed_from=row["routed_from"],
            routing_saved=from_pico(row["routing_saved_pico"]),
        )

    def of_charges(self, reservation_ids: Sequence[str]) -> dict[str, RequestLine]:
        """The requests behind charges (journal entries name their reservation)."""
        wanted = sorted({rid for rid in reservation_ids if rid})
        u = s.usage_records
        found: dict[str, RequestLine] = {}
        for first in range(0, len(wanted), 500):
            chunk = wanted[first : first + 500]
            query = select(*_LOG_COLUMNS).where(u.c.reservation_id.in_(chunk))
            for row in self.ledger.read(lambda c, q=query: c.execute(q).all()):
                found[row.reservation_id] = _request_line(row, UTC)
        return found

    # The request log ---------------------------------------------------------------------

    def requests(
        self,
        org: str,
        *,
        start: Range = None,
        end: Range = None,
        project: str | None = None,
        key: str | None = None,
        model: str | None = None,
        limit: int = 50,
        after: str | None = None,
        request_id: str | None = None,
    ) -> RequestPage:
        """Requests newest first, ``limit`` at a time; ``after`` is the previous page's ``next``;
        ``request_id`` keeps the request with that request id or reservation id."""
        if not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"a page holds 1 to {MAX_PAGE} requests, not {limit!r}")

        def read(c: Connection) -> tuple[Org, list[Any]]:
            record = _org(c, org)
            u = s.usage_records
            conditions = [u.c.org_id == record.id]
            if start is not None or end is not None:
                begin, finish = self._window(record, start, end)
                conditions += [u.c.occurred_at >= begin, u.c.occurred_at < finish]
            conditions += [
                u.c[name] == value
                for name, value in _filters(c, record, project, key, model).items()
                if value is not None
            ]
            if request_id is not None:
                conditions.append(or_(u.c.request_id == request_id, u.c.reservation_id == request_id))
            if after is not None:
                at, last_id = _cursor(after)
                # A range on the (organisation, time) index, then the tie on the same instant.
                conditions += [u.c.occurred_at <= at, or_(u.c.occurred_at < at, u.c.id < last_id)]
            query = select(*_LOG_COLUMNS).where(*conditions).order_by(u.c.occurred_at.desc(), u.c.id.desc())
            return record, c.execute(query.limit(limit + 1)).all()

        record, rows = self.ledger.read(read)
        zone = ZoneInfo(record.timezone)
        lines = [_request_line(row, zone) for row in rows[:limit]]
        more = len(rows) > limit
        return RequestPage(
            org_id=record.id,
            timezone=record.timezone,
            lines=tuple(lines),
            next=_encode(lines[-1]) if more and lines else None,
        )


_u = s.usage_records
_LOG_COLUMNS = (
    _u.c.id,
    _u.c.request_id,
    _u.c.reservation_id,
    _u.c.occurred_at,
    _u.c.project_id,
    _u.c.key_id,
    _u.c.model,
    _u.c.input_tokens,
    _u.c.cached_tokens,
    _u.c.output_tokens,
    _u.c.cost_pico,
    _u.c.cache_hit,
    _u.c.routed_from,
)


def _request_line(row: Any, zone: Any) -> RequestLine:
    return RequestLine(
        id=row.id,
        request_id=row.request_id,
        reservation_id=row.reservation_id,
        started_at=row.occurred_at.astimezone(zone),
        project_id=row.project_id,
        key_id=row.key_id,
        model=row.model,
        input_tokens=row.input_tokens,
        cached_tokens=row.cached_tokens,
        output_tokens=row.output_tokens,
        cost=from_pico(row.cost_pico),
        cache_hit=bool(row.cache_hit),
        routed_from=row.routed_from,
    )


def key_label(name: str, prefix: str) -> str:
    """A key as people recognise it: its name and public prefix, never the secret."""
    return f"{name} (kk-{prefix}-…)"


def _reprice(counts: Any, model: str, at: datetime, catalog: Any, price: Any, usage: Any) -> Decimal:
    """``counts`` (summed over many requests) on ``model``: n times the average request,
    plus what is left of each count over n, priced with it (pricing is linear in counts)."""
    n = counts.requests
    if n == 0:
        return Decimal(0)
    # Divided part by part (the counts of a Usage include one another: the rest of the input
    # tokens over n can be smaller than the rest of the cached ones).
    parts = (
        counts.input_tokens - counts.cache_read_tokens - counts.cache_write_tokens,
        counts.cache_read_tokens,
        counts.cache_write_tokens,
        counts.output_tokens - counts.output_reasoning_tokens,
        counts.output_reasoning_tokens,
    )

    def usage_of(split: list[int], requests: int) -> Any:
        uncached, cached, written, output, reasoning = split
        return usage(
            input_tokens=uncached + cached + written,
            cache_read_tokens=cached,
            cache_write_tokens=written,
            output_tokens=output + reasoning,
            output_reasoning_tokens=reasoning,
            requests=requests,
        )

    rest = [part % n for part in parts]
    each = price(usage_of([part // n for part in parts], 1), model, at=at, catalog=catalog).total
    left = price(usage_of(rest, 0), model, at=at, catalog=catalog).total if any(rest) else 0
    return each * n + left


# Building results -----------------------------------------------------------------------


def units_of(measures: Mapping[str, int]) -> tuple[UnitLine, ...]:
    """Money and quantity by unit, for the units with either, from rollup measures by name."""
    lines = []
    for unit in r.UNITS:
        cost = measures[f"{unit}_pico"]
        counted = _QUANTITY.get(unit)
        quantity = None
        if counted is not None:
            raw = measures[counted[0]]
            quantity = Decimal(raw).scaleb(-3) if unit == "audio" else Decimal(raw)
        if cost or quantity:
            lines.append(UnitLine(unit, quantity, counted[1] if counted else None, from_pico(cost)))
    return tuple(lines)


def _org(c: Connection, ref: str) -> Org:
    """An organisation by id or name."""
    return orgs.to_record(ledger_queries.org_row(c, ref))


def _filters(
    c: Connection, org: Org, project: str | None, key: str | None, model: str | None
) -> dict[str, str | None]:
    """A report's filters as the columns (of the rollups and the usage records) and the
    values they must equal: a project by id or name, a key by id or prefix."""
    return {
        "project_id": ledger_queries.project_row(c, project, org.id)["id"] if project else None,
        "key_id": _key_id(c, org, key) if key else None,
        "model": _recorded_name(model) if model else None,
    }


def _recorded_name(model: str) -> str:
    """A model as usage is recorded under it: the catalog's name for one it prices (a filter
    on ``gpt-4o-2024-08-06`` finds ``gpt-4o``'s usage), else the name as given."""
    from kakin.catalog import Catalog

    try:
        return Catalog.default().resolve(model).model
    except UnknownModel:
        return model


def _key_id(c: Connection, org: Org, ref: str) -> str:
    k = s.api_keys
    query = select(k.c.id).where(k.c.org_id == org.id, or_(k.c.id == ref, k.c.prefix == ref))
    found = c.execute(query.order_by(k.c.created_at, k.c.id).limit(1)).scalar()
    if found is None:
        raise NotFound(f"organisation {org.name!r} has no key {ref!r} (see `kakin keys list {org.name}`)")
    return str(found)


def _labels(c: Connection, org: Org, by: Grouping) -> dict[str, str]:
    """What a reader sees for each project or key id of a report by project or key."""
    if by == "project":
        p = s.projects
        return {id_: name for id_, name in c.execute(select(p.c.id, p.c.name).where(p.c.org_id == org.id))}
    if by == "key":
        k = s.api_keys
        found = c.execute(select(k.c.id, k.c.name, k.c.prefix).where(k.c.org_id == org.id))
        return {id_: key_label(name, prefix) for id_, name, prefix in found} | {r.NO_KEY: "no key"}
    return {}


class _Shape(NamedTuple):
    """What decides a spend query's statement (the values it compares with are bound)."""

    table: str  # the rollup table read
    by: Grouping
    filtered: frozenset[str]  # the columns filtered on
    charted: bool  # per bucket and model, for some models (Reports.spend_by_model)
    sqlite: bool


@lru_cache(maxsize=512)
def _statement(shape: _Shape) -> tuple[Any, str]:
    """A spend query's statement, built once per shape (its parameters: ``org``, ``begin``,
    ``finish``, ``models`` and each filtered column by name), and the form of its rows:
    ``rows`` as they are, ``sums`` per group, ``unit`` one total, or ``apart``: sums per
    group and one more row, its group None, with the total of every measure."""
    table = s.ROLLUPS[shape.table]
    column = "model" if shape.charted else _GROUP_COLUMN[shape.by]
    conditions = _where(table, shape.filtered)
    if shape.charted:
        conditions.append(table.c.model.in_(bindparam("models", expanding=True)))
    # The organisation's spend by model, project or key sums only the measures its lines
    # show and reads its total apart, from the total table (a row a day or hour): adding up
    # fewer columns per key and day costs less than the total's own read. Other reports
    # total what their lines carry (with a filter the total table cannot answer).
    apart = column is not None and not shape.charted and not shape.filtered
    read = _SPEND if apart or shape.charted else _READ
    start = type_coerce(table.c.start, NullType())  # as stored: see _Buckets
    varying = set(table.primary_key.columns.keys()[2:])  # the key past org and start
    if shape.by in ("day", "hour") and varying - shape.filtered <= ({"model"} if shape.charted else set()):
        # One row per group already (every key column but the start is filtered on, or is the
        # model charted): nothing to add up, the rows are read as they are, in key order.
        groups = [start, *([table.c.model] if shape.charted else [])]
        query = select(*groups, *(table.c[m] for m in read)).where(*conditions)
        return query.order_by(table.c.start, *groups[1:]), "rows"
    if shape.by == "unit":
        return select(*_sums(table, read)).where(*conditions), "unit"
    sums = [func.sum(table.c[m]) for m in read]  # a group is never empty: never NULL
    if shape.charted:
        keys = [table.c.start, table.c.model]
        query = select(start, table.c.model, *sums).where(*conditions).group_by(*keys).order_by(*keys)
    elif column is None:
        query = select(start, *sums).where(*conditions).group_by(table.c.start).order_by(table.c.start)
    elif shape.by == "project" and shape.sqlite:
        # SQLite groups by sorting: by a column out of the key's order it sorts every row.
        # The project follows the start in the key, so summing by (start, project) first
        # reads the range in key order with no sort and leaves one row per project and
        # bucket to group. (PostgreSQL groups by hashing; there the extra stage costs.)
        labelled = [func.sum(table.c[m]).label(m) for m in read]
        buckets = (
            select(table.c.start, table.c.project_id, *labelled)
            .where(*conditions)
            .group_by(table.c.start, table.c.project_id)
            .subquery()
        )
        query = select(buckets.c.project_id, *(func.sum(buckets.c[m]) for m in read))
        query = query.group_by(buckets.c.project_id)
    else:
        query = select(table.c[column], *sums).where(*conditions).group_by(table.c[column])
    if not apart:
        return query, "sums"
    # Read in the same statement as the lines (one statement reads one state of the ledger),
    # the lines as wide: their money by unit is the total's.
    whole = s.ROLLUPS[r.narrowest(_GRAIN[shape.table], set()).name]
    total = select(null(), *_sums(whole, _READ)).where(*_where(whole, shape.filtered))
    padded = query.add_columns(*(literal_column("0") for _ in _UNITS))
    return union_all(padded, total), "apart"


def _where(table: Any, filtered: frozenset[str]) -> list[Any]:
    """A report's range and filters on one rollup table, as bound parameters."""
    conditions = [
        table.c.org_id == bindparam("org"),
        table.c.start >= bindparam("begin"),
        table.c.start < bindparam("finish"),
    ]
    return conditions + [table.c[name] == bindparam(name) for name in sorted(filtered)]


def _sums(table: Any, measures: Sequence[str]) -> list[Any]:
    """``measures`` summed over rows that may be none (0 then, not NULL)."""
    return [func.coalesce(func.sum(table.c[m]), literal_column("0")) for m in measures]


def _integers(result: Any, keys: int) -> list[Any]:
    """A result's rows, the ``keys`` group columns first, with integer sums (PostgreSQL adds
    BIGINTs up as numeric; SQLite as integers)."""
    return [(*row[:keys], *map(int, row[keys:])) for row in result]


def _total(rows: Sequence[Any], keys: int) -> list[int]:
    """Every measure of ``rows`` (in :data:`_READ` order after ``keys`` group columns) added up."""
    return [sum(column) for column in islice(zip(*rows, strict=True), keys, None)] or [0] * len(_READ)


class _Buckets:
    """The local days or hours of rollup buckets, by each bucket's start as the database
    returns it (SQLite's text, PostgreSQL's datetime: read without the column type's
    conversion of every row), each start worked out once however many rows share it (six
    models' rows of one hour are one conversion). A day bucket written before the
    organisation changed its timezone counts in the local day its start falls in."""

    def __init__(self, zone: ZoneInfo, by: Literal["day", "hour"]) -> None:
        self.zone = zone
        self.by = by
        self.known: dict[Any, tuple[str, datetime]] = {}

    def __call__(self, stored: Any) -> tuple[str, datetime]:
        """The group's name (ISO local date, or the local hour's start to the minute with its
        offset) and the local instant it begins."""
        found = self.known.get(stored)
        if found is None:
            local = s.utc_datetime(stored).astimezone(self.zone)
            if self.by == "day":
                found = (local.date().isoformat(), datetime.combine(local.date(), time(0), self.zone))
            else:
                found = (local.isoformat(timespec="minutes"), local)
            self.known[stored] = found
        return found


def _instant(value: Range, zone: ZoneInfo, what: str) -> datetime | None:
    """A range bound: a date is its local midnight; a datetime without offset is local."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            raise InvalidInput(
                f"report {what} must be a date (YYYY-MM-DD) or an ISO date-time, not {text!r}"
            ) from None
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=zone)
    if isinstance(value, date):
        return datetime.combine(value, time(0), zone)
    raise InvalidInput(f"report {what} must be a date or a date-time, not {value!r}")


def _items(cost_items: Any) -> tuple[tuple[CostLine, ...], tuple[str, ...]]:
    """A usage record's stored cost lines (and any notes next to them)."""
    if isinstance(cost_items, str):
        cost_items = orjson.loads(cost_items)
    if isinstance(cost_items, dict):
        cost_items = [cost_items]
    lines: list[CostLine] = []
    notes: list[str] = []
    for item in cost_items or ():
        if not isinstance(item, dict):
            continue
        if "component" not in item:
            notes += [f"{k}: {v}" for k, v in item.items()]
            continue
        lines.append(
            CostLine(
                component=str(item["component"]),
                quantity=Decimal(str(item.get("quantity", "0"))),
                unit=str(item.get("unit", "")),
                unit_price=Decimal(str(item.get("unit_price", "0"))),
                amount=Decimal(str(item.get("amount", "0"))),
                tier=item.get("tier"),
                effective_from=item.get("effective_from"),
                source=str(item.get("source", "")),
            )
        )
    return tuple(lines), tuple(notes)


def _encode(line: RequestLine) -> str:
    raw = f"{line.started_at.astimezone(UTC).isoformat()}|{line.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor(text: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        at, _, last = raw.partition("|")
        moment = datetime.fromisoformat(at)
        number = int(last)
        # A row id is a positive BIGINT; a page never starts outside the years usage can have.
        if moment.tzinfo is None or not 0 < number < 2**63 or not 1970 <= moment.year <= 9000:
            raise ValueError(at)
        return moment, number
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput(
            f"{text!r} is not a request log cursor; pass the `next` of the previous page"
        ) from None
