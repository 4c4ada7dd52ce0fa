"""One ledger transaction's state: locked organisations, their grants, budgets, period
counters and reservations, plus the rows to write.

Why a unit of work: the gateway commits many reserve/settle/void operations in one
transaction (group commit). Loading everything the batch touches with a handful of
``IN (…)`` queries, running the operations in memory, then writing with one multi-row
statement per table keeps the per-operation cost to Python work instead of round trips.
A single call is simply a batch of one.

Rules every operation follows so a batch stays correct:

* organisations are locked (``SELECT … FOR UPDATE`` in id order on PostgreSQL; SQLite's
  ``BEGIN IMMEDIATE`` already holds the database) before anything of theirs is read;
* time-driven work (grant activation and expiry, expired holds, tier promotion) happens once
  per organisation when it is locked, dated at the instant it became due;
* an operation checks everything before it changes anything, so a refused operation
  (a :class:`~kakin.errors.KakinError`) leaves no trace and the others proceed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection

from kakin.errors import NotFound
from kakin.ledger import rollups
from kakin.ledger import schema as s
from kakin.ledger import statements as q
from kakin.ledger.periods import period_bounds

FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)

# What an organisation's charges change, and what they never do. The settings (among them the
# indexed phone: on SQLite, naming a column in an UPDATE rewrites its index page even when the
# value is the same) are written only when they changed.
_ORG_COUNTERS = (
    "credit_pico",
    "held_pico",
    "held_tokens",
    "held_unbounded",
    "spent_pico",
    "spent_tokens",
    "due_pico",
    "paid_pico",
    "next_grant_event",
    "next_hold_expiry",
)
_ORG_SETTINGS = (
    "currency",
    "timezone",
    "phone",
    "payment_method",
    "payment_label",
    "billing_since",
    "first_payment_at",
    "tier_rules",
    "tier",
    "tier_since",
)
_ORG_MUTABLE = _ORG_SETTINGS + _ORG_COUNTERS
_org_settings = itemgetter(*_ORG_SETTINGS)
_GRANT_MUTABLE = ("remaining_pico", "refunded_pico", "activated_at", "expired_at")
_RES_MUTABLE = (
    "status",
    "closed_at",
    "actual_pico",
    "actual_tokens",
    "overrun_pico",
    "late",
    "settle_hash",
    "holds",
    "result",
)
_PERIOD_MUTABLE = ("spent_pico", "spent_tokens", "held_pico", "held_tokens", "fired")

Row = dict[str, Any]
MAX_CACHED_HOLDS = 100_000
PeriodKey = tuple[str, datetime]


@dataclass
class Context:
    """Facts shared by a ledger's transactions. Only immutable facts are cached here:
    a project's organisation never changes, and a registered tier rule set never changes."""

    hold_seconds: int = 900
    project_org: dict[str, str] = field(default_factory=dict)
    tier_rules: dict[str, Any] = field(default_factory=dict)


@dataclass
class Cache:
    """Rows kept from one transaction to the next by the one connection that writes them.

    Valid only while no other connection has committed in between (the owner checks SQLite's
    ``PRAGMA data_version`` inside each transaction and clears the cache when it moved), and
    only after a commit: a transaction that fails may have changed the rows in memory, so its
    owner clears the cache then too. Kept: organisations, their budgets, live grants, budget
    period counters and keys — everything a charge reads besides the reservations. A
    transaction given the cache reads and writes budgets, grants, periods, keys and stored
    organisation settings in these very dicts; organisations are taken over one by one when
    it locks them (see :meth:`Work.lock_orgs`), and handed back with the open holds by
    :meth:`absorb`."""

    orgs: dict[str, Row] = field(default_factory=dict)
    budgets: dict[str, list[Row]] = field(default_factory=dict)
    grants: dict[str, list[Row]] = field(default_factory=dict)
    periods: dict[PeriodKey, Row | None] = field(default_factory=dict)
    keys: dict[str, Row | None] = field(default_factory=dict)
    settings: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # see Work.stored_settings
    held: dict[str, Row] = field(default_factory=dict)  # open reservations, for their settles
    bounds: dict[tuple[str, str], tuple[datetime, datetime | None]] = field(default_factory=dict)
    touched: int = 0  # organisations the last transaction locked (for kakin.ledger.checkpoints)

    def clear(self) -> None:
        for rows in (self.orgs, self.budgets, self.grants, self.periods, self.keys, self.settings, self.held):
            rows.clear()

    def absorb(self, work: Work) -> None:
        """Keep the organisations and open holds a committed transaction loaded or wrote."""
        self.orgs.update(work.orgs)
        self.touched = len(work.orgs)
        held = self.held
        for row in work.reservations.values():
            if row["status"] == "held":
                held[row["id"]] = row
            else:
                held.pop(row["id"], None)
        if len(held) > MAX_CACHED_HOLDS:  # holds never settled wait for their expiry in the database
            held.clear()


class Work:
    """The state of one transaction on ``conn`` at the instant ``now``."""

    def __init__(self, conn: Connection, now: datetime, context: Context, cache: Cache | None = None) -> None:
        self.conn = conn
        self.now = now
        self.context = context
        self.cache = cache
        dialect = conn.dialect.name
        self.postgres = dialect == "postgresql"
        # SQLite: the hot statements go straight to the driver connection, in this transaction.
        self.driver: Any = None if self.postgres else conn.connection.driver_connection
        self.q = q.queries(dialect)
        self.orgs: dict[str, Row] = {}
        self.dirty_orgs: set[str] = set()
        # Each organisation's settings as stored, taken when it is read from the database.
        self.stored_settings: dict[str, tuple[Any, ...]] = {} if cache is None else cache.settings
        # org id → grants with credit or pending events
        self.grants: dict[str, list[Row]] = {} if cache is None else cache.grants
        self.new_grants: list[Row] = []
        self.new_grant_ids: set[str] = set()
        self.dirty_grants: dict[str, Row] = {}
        self.budgets: dict[str, list[Row]] = {} if cache is None else cache.budgets
        self.periods: dict[PeriodKey, Row | None] = {} if cache is None else cache.periods
        self.new_periods: set[PeriodKey] = set()
        self.dirty_periods: set[PeriodKey] = set()
        self.reservations: dict[str, Row] = {}
        self.by_idempotency: dict[tuple[str, str], Row] = {}
        self.idempotency_checked: set[tuple[str, str]] = set()
        self.new_reservations: list[Row] = []
        self.new_reservation_ids: set[str] = set()
        self.dirty_reservations: dict[str, Row] = {}
        self.keys: dict[str, Row | None] = {} if cache is None else cache.keys
        self.entries: list[Row] = []
        self.usage: list[Row] = []
        self.usage_items: list[Any] = []  # each usage record's cost items, parsed (or None)
        self._bounds: dict[tuple[str, str], tuple[datetime, datetime | None]] = (
            {} if cache is None else cache.bounds
        )

    # Organisations -----------------------------------------------------------------------

    def lock_orgs(self, org_ids: Iterable[str], reservation_ids: Iterable[str] = ()) -> None:
        """Lock and load organisations — those named, and those owning the reservations
        named — then run their time-driven housekeeping. Unknown ids are simply absent."""
        wanted = sorted({o for o in org_ids if isinstance(o, str) and o not in self.orgs})
        of = (
            sorted({r for r in reservation_ids if isinstance(r, str) and r not in self.reservations})
            if reservation_ids
            else []
        )
        if not wanted and not of:
            return
        loaded: list[Row] = []
        cached = self.cache.orgs if self.cache is not None else {}
        if cached:  # SQLite only: BEGIN IMMEDIATE already holds every organisation
            loaded = [cached[o] for o in wanted if o in cached]
            wanted = [o for o in wanted if o not in cached]
            for org in loaded:
                self.orgs[org["id"]] = org
        if wanted or of:
            if of:
                rows = self.conn.execute(self.q.lock_orgs_of, {"ids": wanted, "rids": of})
            else:
                rows = self.conn.execute(self.q.lock_orgs, {"ids": wanted})
            for row in rows:
                if row.id not in self.orgs:
                    org = cached.get(row.id)
                    if org is None:
                        org = dict(row._mapping)
                        self.stored_settings[org["id"]] = _org_settings(org)
                    self.orgs[org["id"]] = org
                    loaded.append(org)
        # Late (housekeeping uses Work); this form skips importlib's Python-level fromlist step.
        import kakin.ledger.housekeeping as housekeeping

        self.load_budgets([org["id"] for org in loaded])
        for org in loaded:
            housekeeping.run(self, org)

    def org(self, org_id: object) -> Row:
        if not isinstance(org_id, str):
            raise NotFound(f"organisation id must be text, got {org_id!r}")
        if org_id not in self.orgs:
            self.lock_orgs([org_id])
        org = self.orgs.get(org_id)
        if org is None:
            raise NotFound(f"no organisation with id {org_id!r} (see `kakin org list`)")
        return org

    def touch_org(self, org: Row) -> None:
        self.dirty_orgs.add(org["id"])

    # Grants ------------------------------------------------------------------------------

    def load_grants(self, org_ids: Iterable[str]) -> None:
        wanted = [o for o in set(org_ids) if o not in self.grants]
        if not wanted:
            return
        rows = self.conn.execute(self.q.live_grants, {"ids": wanted})
        for org_id in wanted:
            self.grants[org_id] = []
        for row in rows:
            grant = dict(row._mapping)
            self.grants[grant["org_id"]].append(grant)
        for org_id in wanted:
            self.grants[org_id].sort(key=consumption_key)

    def grants_of(self, org_id: str) -> list[Row]:
        """Grants with credit left or an activation still to come, in consumption order."""
        found = self.grants.get(org_id)
        if found is None:
            self.load_grants([org_id])
            found = self.grants[org_id]
        return found

    def add_grant(self, grant: Row) -> None:
        self.new_grants.append(grant)
        self.new_grant_ids.add(grant["id"])
        grants = self.grants_of(grant["org_id"])
        grants.append(grant)
        grants.sort(key=consumption_key)

    def touch_grant(self, grant: Row) -> None:
        if grant["id"] not in self.new_grant_ids:
            self.dirty_grants[grant["id"]] = grant

    # Budgets and their period counters ---------------------------------------------------

    def load_budgets(self, org_ids: Iterable[str]) -> None:
        wanted = [o for o in set(org_ids) if o not in self.budgets]
        if not wanted:
            return
        for org_id in wanted:
            self.budgets[org_id] = []
        for row in self.conn.execute(self.q.budgets, {"ids": wanted}):
            budget = dict(row._mapping)
            self.budgets[budget["org_id"]].append(budget)

    def budgets_of(self, org_id: str) -> list[Row]:
        found = self.budgets.get(org_id)
        if found is None:
            self.load_budgets([org_id])
            found = self.budgets[org_id]
        return found

    def period_bounds(self, period: str, timezone: str, at: datetime) -> tuple[datetime, datetime | None]:
        """kakin.ledger.periods.period_bounds, remembering the last period of each kind."""
        cache_key = (period, timezone)
        known = self._bounds.get(cache_key)
        if known is not None and known[0] <= at and (known[1] is None or at < known[1]):
            return known
        bounds = period_bounds(period, timezone, at)
        self._bounds[cache_key] = bounds
        return bounds

    def prefetch_periods(self, keys: Iterable[PeriodKey]) -> None:
        wanted = {k for k in keys if k not in self.periods}
        if not wanted:
            return
        params = {"ids": sorted({k[0] for k in wanted}), "starts": sorted({k[1] for k in wanted})}
        rows = self.conn.execute(self.q.periods, params)
        for row in rows:
            period = dict(row._mapping)
            self.periods[(period["budget_id"], period["period_start"])] = period

    def period(self, budget_id: str, start: datetime, *, create: bool = True) -> Row | None:
        """The counter row of one budget period; a period never seen starts at zero."""
        key = (budget_id, start)
        if key not in self.periods:
            self.prefetch_periods([key])
        row = self.periods.get(key)
        if row is None and create:
            row = {
                "budget_id": budget_id,
                "period_start": start,
                "spent_pico": 0,
                "spent_tokens": 0,
                "held_pico": 0,
                "held_tokens": 0,
                "fired": [],
            }
            self.periods[key] = row
            self.new_periods.add(key)
        return row

    def touch_period(self, period: Row) -> None:
        key = (period["budget_id"], period["period_start"])
        if key not in self.new_periods:
            self.dirty_periods.add(key)

    # Reservations ------------------------------------------------------------------------

    def adopt_reservation(self, row: Row) -> Row:
        """Keep the first copy of a reservation this transaction loaded."""
        known = self.reservations.get(row["id"])
        if known is not None:
            return known
        self.reservations[row["id"]] = row
        self.by_idempotency[(row["org_id"], row["idempotency_key"])] = row
        return row

    def load_reservations(self, reservation_ids: Iterable[str]) -> None:
        """Load reservations (call after their organisations are locked)."""
        wanted = [r for r in set(reservation_ids) if isinstance(r, str) and r not in self.reservations]
        if not wanted:
            return
        if self.postgres:  # the settle path's biggest read: rows straight from the driver
            for row in self.conn.exec_driver_sql(q.PG_RESERVATIONS, {"ids": q.SEPARATOR.join(wanted)}):
                self.adopt_reservation(q.pg_reservation(row))
            return
        for row in self.conn.execute(self.q.reservations, {"ids": wanted}):
            self.adopt_reservation(dict(row._mapping))

    def reservation(self, reservation_id: object) -> Row:
        if not isinstance(reservation_id, str):
            raise NotFound(f"reservation id must be text, got {reservation_id!r}")
        if reservation_id not in self.reservations:
            self.lock_orgs((), [reservation_id])
            self.load_reservations([reservation_id])
        found = self.reservations.get(reservation_id)
        if found is None:
            raise NotFound(f"no reservation with id {reservation_id!r}")
        return found

    def load_idempotency(self, pairs: Iterable[tuple[str, str]]) -> None:
        wanted = {p for p in pairs if p not in self.idempotency_checked}
        if not wanted:
            return
        self.idempotency_checked |= wanted
        pairs = sorted(wanted)
        if self.driver is not None:  # one probe of the unique index per pair
            for found in q.sqlite_reservations_by_key(self.driver, pairs):
                self.adopt_reservation(found)
            return
        params = {"ids": [p[0] for p in pairs], "keys": [p[1] for p in pairs]}  # parallel lists
        rows = self.conn.execute(self.q.reservations_by_key, params)
        for row in rows:
            self.adopt_reservation(dict(row._mapping))

    def by_key(self, org_id: str, idempotency_key: str) -> Row | None:
        pair = (org_id, idempotency_key)
        if pair not in self.idempotency_checked:
            self.load_idempotency([pair])
        return self.by_idempotency.get(pair)

    def add_reservation(self, row: Row) -> None:
        self.adopt_reservation(row)
        self.new_reservations.append(row)
        self.new_reservation_ids.add(row["id"])

    def touch_reservation(self, row: Row) -> None:
        if row["id"] not in self.new_reservation_ids:
            self.dirty_reservations[row["id"]] = row

    # Keys and projects -------------------------------------------------------------------

    def load_keys(self, key_ids: Iterable[str]) -> None:
        wanted = [k for k in set(key_ids) if isinstance(k, str) and k not in self.keys]
        if not wanted:
            return
        for key_id in wanted:
            self.keys[key_id] = None
        for row in self.conn.execute(self.q.keys, {"ids": wanted}):
            self.keys[row.id] = dict(row._mapping)

    def key(self, key_id: str) -> Row | None:
        if key_id not in self.keys:
            self.load_keys([key_id])
        return self.keys.get(key_id)

    def load_projects(self, project_ids: Iterable[str]) -> None:
        cache = self.context.project_org
        wanted = [p for p in set(project_ids) if isinstance(p, str) and p not in cache]
        if wanted:
            rows = self.conn.execute(self.q.projects, {"ids": wanted})
            for row in rows:
                cache[row.id] = row.org_id

    def project_org(self, project_id: str) -> str | None:
        found = self.context.project_org.get(project_id)
        if found is None:
            self.load_projects([project_id])
            found = self.context.project_org.get(project_id)
        return found

    # Journal -----------------------------------------------------------------------------

    def add_entry(
        self,
        org_id: str,
        kind: str,
        amount_pico: int,
        occurred_at: datetime,
        *,
        grant_id: str | None = None,
        reservation_id: str | None = None,
        detail: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Row:
        entry = {
            "org_id": org_id,
            "kind": kind,
            "grant_id": grant_id,
            "reservation_id": reservation_id,
            "amount_pico": amount_pico,
            "occurred_at": occurred_at,
            "recorded_at": self.now,
            "detail": detail,
            "idempotency_key": idempotency_key,
        }
        self.entries.append(entry)
        return entry

    def add_usage(self, record: Row, cost_items: Any = None) -> None:
        """A usage record to write; ``cost_items``: its cost items already parsed from its
        JSON text, or None (the rollups then parse them)."""
        self.usage.append(record)
        self.usage_items.append(cost_items)

    # Writing -----------------------------------------------------------------------------

    def flush(self) -> None:
        """Write everything this transaction changed: one statement per table and kind.
        On PostgreSQL the statements are pipelined: one round trip for all of them."""
        if self.postgres and (self.dirty_orgs or self.entries or self.new_reservations):
            with self.conn.connection.driver_connection.pipeline():  # type: ignore[union-attr]
                self._flush()
        else:
            self._flush()

    def _flush(self) -> None:
        periods = self.periods
        self._insert(s.reservations, self.new_reservations)
        self._insert(s.grants, self.new_grants)
        self._insert(s.entries, self.entries)
        if self.usage:
            self._insert(s.usage_records, self.usage)
            self._roll_up(self.usage, self.usage_items)
        if self.new_periods:
            rows = [periods[k] for k in self.new_periods if periods.get(k) is not None]
            self._insert(s.budget_periods, rows)
        if self.dirty_reservations:
            self._update(s.reservations, list(self.dirty_reservations.values()), _RES_MUTABLE, ("id",))
        if self.dirty_grants:
            self._update(s.grants, list(self.dirty_grants.values()), _GRANT_MUTABLE, ("id",))
        if self.dirty_periods:
            rows = [periods[k] for k in self.dirty_periods if periods.get(k) is not None]
            self._update(s.budget_periods, rows, _PERIOD_MUTABLE, ("budget_id", "period_start"))
        if self.dirty_orgs:
            self._update_orgs([self.orgs[o] for o in self.dirty_orgs])
        self.new_reservations, self.new_grants, self.entries, self.usage = [], [], [], []
        self.usage_items = []
        self.new_reservation_ids, self.new_grant_ids = set(), set()
        self.new_periods, self.dirty_periods = set(), set()
        self.dirty_reservations, self.dirty_grants, self.dirty_orgs = {}, {}, set()

    def _roll_up(self, usage: list[Row], cost_items: list[Any]) -> None:
        """Add the usage records to every rollup table, in this same transaction."""
        timezone_of = {org_id: org["timezone"] for org_id, org in self.orgs.items()}
        for table, rollup in rollups.roll_up_tables(usage, timezone_of, cost_items):
            keys = table.dimensions
            if self.postgres:
                sql = q.pg_upsert(table.name, keys, rollups.MEASURES)
                self.conn.exec_driver_sql(sql, q.pg_rollup_rows(rollup, (*keys, *rollups.MEASURES)))
            else:
                sql = q.sqlite_upsert(table.name, keys, rollups.MEASURES)
                self.driver.executemany(sql, q.sqlite_rollup_rows(rollup))

    def _update_orgs(self, orgs: list[Row]) -> None:
        stored = self.stored_settings
        counters_only: list[Row] = []
        changed: list[Row] = []
        for org in orgs:
            (counters_only if stored.get(org["id"]) == _org_settings(org) else changed).append(org)
        self._update(s.orgs, counters_only, _ORG_COUNTERS, ("id",))
        self._update(s.orgs, changed, _ORG_MUTABLE, ("id",))
        stored.update((org["id"], _org_settings(org)) for org in changed)

    def _insert(self, table: Any, rows: list[Row]) -> None:
        if not rows:
            return
        if self.postgres:
            columns = q.insert_columns(table.name)
            self.conn.exec_driver_sql(q.pg_insert(table.name, columns), q.pg_rows(rows, columns))
        else:
            sql, convert = q.sqlite_insert(table.name)
            self.driver.executemany(sql, map(convert, rows))

    def _update(self, table: Any, rows: list[Row], columns: tuple[str, ...], keys: tuple[str, ...]) -> None:
        if not rows:
            return
        if self.postgres:
            self.conn.exec_driver_sql(
                q.pg_update(table.name, columns, keys), q.pg_rows(rows, (*keys, *columns))
            )
        else:
            sql, convert = q.sqlite_update(table.name, columns, keys)
            self.driver.executemany(sql, map(convert, rows))


def consumption_key(grant: Row) -> tuple[Any, ...]:
    """Free and promotional before paid, then priority, soonest expiry, oldest grant."""
    return (
        grant["rank"],
        grant["priority"],
        grant["expires_at"] or FAR_FUTURE,
        grant["effective_at"],
        grant["created_at"],
        grant["id"],
    )


def min_time(*values: datetime | None) -> datetime | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None
