"""The :class:`Ledger` facade: one method per operation, each in its own transaction.

Methods validate input, take the locks they need and write everything an operation implies
(entries, counters, usage records) in one transaction, or raise a
:class:`~kakin.errors.KakinError` and write nothing. Methods that report balances, budgets
or tiers first bring time-driven state up to date (expiries, expired holds, promotions), so
they are exact as of the ledger's clock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError

from kakin.errors import Conflict, InvalidInput, KakinError, NotFound
from kakin.ledger import budgets, charges, credit, keys, objects, ops, orgs, queries, snapshots, tiers, views
from kakin.ledger import schema as s
from kakin.ledger import validate as v
from kakin.ledger.db import READ_ONLY, make_engine, migrate
from kakin.ledger.reconcile import reconcile as _reconcile
from kakin.ledger.records import (
    Balance,
    Budget,
    BudgetStatus,
    Entry,
    Grant,
    KeyRecord,
    ObjectName,
    OpResult,
    Org,
    PostOp,
    Project,
    ProviderObject,
    Reconciliation,
    Refund,
    Reservation,
    ReserveOp,
    Scope,
    Settlement,
    SettleOp,
    TierStatus,
    UsageDetail,
    UsageRecord,
    VoidOp,
)
from kakin.ledger.resident import Resident
from kakin.ledger.work import Context, Work
from kakin.money import from_pico

T = TypeVar("T")
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


class Ledger:
    """kakin's ledger on one database. Thread-safe: each call uses its own connection."""

    def __init__(self, engine: Engine, *, clock: Clock | None = None, hold_seconds: int = 900) -> None:
        if isinstance(hold_seconds, bool) or not isinstance(hold_seconds, int) or hold_seconds <= 0:
            raise InvalidInput(f"hold_seconds must be a positive whole number, got {hold_seconds!r}")
        self.engine = engine
        self.clock = clock or system_clock
        self.context = Context(hold_seconds=hold_seconds)
        # SQLite has one writer at a time. Queueing this process's writers on a lock is fair
        # and immediate; leaving them to SQLite's busy handler makes them sleep and poll.
        self._writer: AbstractContextManager[Any] = (
            threading.Lock() if engine.dialect.name == "sqlite" else nullcontext()
        )
        # SQLite: batches run on one kept connection with a row cache (kakin.ledger.resident).
        self._resident = Resident(engine, self.context) if engine.dialect.name == "sqlite" else None

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        clock: Clock | None = None,
        migrate: bool = True,
        hold_seconds: int = 900,
        pool_size: int = 10,
        max_overflow: int = 70,
    ) -> Ledger:
        """Open (and by default migrate) the database at ``url`` (see kakin.ledger.db.database_url)."""
        engine = make_engine(url, pool_size=pool_size, max_overflow=max_overflow)
        if migrate:
            _migrate(engine)
        return cls(engine, clock=clock, hold_seconds=hold_seconds)

    def close(self) -> None:
        if self._resident is not None:
            with self._writer:
                self._resident.close()
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def now(self) -> datetime:
        moment = self.clock()
        if moment.tzinfo is UTC:
            return moment
        if moment.tzinfo is None:
            raise InvalidInput("the ledger clock must return timezone-aware datetimes")
        return moment.astimezone(UTC)

    # Transactions ------------------------------------------------------------------------

    def write(self, fn: Callable[[Work], T]) -> T:
        """Run ``fn`` in one write transaction (locks, housekeeping, flush, commit)."""
        try:
            with self._writer, self.engine.begin() as conn:
                work = Work(conn, self.now(), self.context)
                result = fn(work)
                work.flush()
                return result
        except IntegrityError as exc:
            detail = str(exc.orig).splitlines()[0] if exc.orig else "unique constraint"
            raise Conflict(
                f"the change collided with a concurrent one ({detail}); nothing was written, retry"
            ) from None

    def read(self, fn: Callable[[Connection], T]) -> T:
        with self.engine.connect().execution_options(**READ_ONLY) as conn, conn.begin():
            return fn(conn)

    def _org_id(self, conn: Connection, ref: object) -> str:
        return queries.org_row(conn, ref)["id"]

    # Organisations and projects ----------------------------------------------------------

    def create_org(
        self,
        name: str,
        *,
        currency: str = "USD",
        timezone: str = "UTC",
        phone: str | None = None,
        payment_method: bool = False,
        payment_label: str | None = None,
        tier_rules: str | None = None,
    ) -> Org:
        row = self.write(
            lambda w: orgs.create(
                w,
                name,
                currency=currency,
                timezone=timezone,
                phone=phone,
                payment_method=payment_method or payment_label is not None,
                payment_label=payment_label,
                tier_rules=tier_rules,
            )
        )
        return orgs.to_record(row)

    def get_org(self, ref: str) -> Org:
        return orgs.to_record(self.read(lambda c: queries.org_row(c, ref)))

    def list_orgs(self) -> list[Org]:
        rows = self.read(lambda c: c.execute(select(s.orgs).order_by(s.orgs.c.name)).all())
        return [orgs.to_record(dict(r._mapping)) for r in rows]

    def update_org(self, ref: str, **changes: Any) -> Org:
        """Change currency, timezone, phone or tier_rules (keyword arguments)."""
        allowed = {"currency", "timezone", "phone", "tier_rules"}
        if set(changes) - allowed:
            raise InvalidInput(f"update_org can change only {', '.join(sorted(allowed))}")
        row = self.write(lambda w: orgs.update(w, self._org_id(w.conn, ref), **changes))
        return orgs.to_record(row)

    def set_payment_method(self, ref: str, label: str | None) -> Org:
        """Put a payment method on file (``label`` such as "visa 4242"), or remove it (None)."""
        return orgs.to_record(
            self.write(lambda w: orgs.set_payment_method(w, self._org_id(w.conn, ref), label))
        )

    def create_project(self, org: str, name: str) -> Project:
        return orgs.project_record(
            self.write(lambda w: orgs.create_project(w, self._org_id(w.conn, org), name))
        )

    def get_project(self, ref: str, org: str | None = None) -> Project:
        def find(conn: Connection) -> dict[str, Any]:
            return queries.project_row(conn, ref, None if org is None else self._org_id(conn, org))

        return orgs.project_record(self.read(find))

    def list_projects(self, org: str) -> list[Project]:
        def find(conn: Connection) -> list[Any]:
            org_id = self._org_id(conn, org)
            p = s.projects
            return conn.execute(select(p).where(p.c.org_id == org_id).order_by(p.c.name)).all()

        return [orgs.project_record(dict(r._mapping)) for r in self.read(find)]

    # Keys --------------------------------------------------------------------------------

    def create_key(
        self,
        project_id: str,
        name: str,
        expires_at: datetime | str | None = None,
        models: Sequence[str] | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
    ) -> tuple[KeyRecord, str]:
        """A new key for ``project_id``. The plaintext is returned here and never again."""
        row, plaintext = self.write(
            lambda w: keys.create(
                w.conn, w.now, project_id, name, expires_at=expires_at, models=models, rpm=rpm, tpm=tpm
            )
        )
        return keys.to_record(row), plaintext

    def verify_key(self, plaintext: str) -> KeyRecord:
        now = self.now()
        return keys.to_record(self.read(lambda c: keys.verify(c, now, plaintext)))

    def rotate_key(self, key_id: str, grace: timedelta | int = timedelta(hours=24)) -> tuple[KeyRecord, str]:
        row, plaintext = self.write(lambda w: keys.rotate(w.conn, w.now, key_id, grace))
        return keys.to_record(row), plaintext

    def revoke_key(self, key_id: str) -> KeyRecord:
        return keys.to_record(self.write(lambda w: keys.revoke(w.conn, w.now, key_id)))

    def suspend_key(self, key_id: str, reason: str) -> KeyRecord:
        return keys.to_record(self.write(lambda w: keys.suspend(w.conn, w.now, key_id, reason)))

    def unsuspend_key(self, key_id: str) -> KeyRecord:
        return keys.to_record(self.write(lambda w: keys.unsuspend(w.conn, key_id)))

    def get_key(self, key_id: str) -> KeyRecord:
        return keys.to_record(self.read(lambda c: keys.get(c, key_id)))

    def get_keys(self, key_ids: Iterable[str]) -> dict[str, KeyRecord]:
        """The keys of ``key_ids`` that exist, by id, in one read."""
        wanted = sorted(set(key_ids))
        if not wanted:
            return {}
        k = s.api_keys
        found = self.read(lambda c: c.execute(select(k).where(k.c.id.in_(wanted))).all())
        return {row.id: keys.to_record(dict(row._mapping)) for row in found}

    def list_keys(self, org: str | None = None, project_id: str | None = None) -> list[KeyRecord]:
        def find(conn: Connection) -> list[Any]:
            k = s.api_keys
            query = select(k).order_by(k.c.created_at, k.c.id)
            if org is not None:
                query = query.where(k.c.org_id == self._org_id(conn, org))
            if project_id is not None:
                query = query.where(k.c.project_id == project_id)
            return conn.execute(query).all()

        return [keys.to_record(dict(r._mapping)) for r in self.read(find)]

    # Credit ------------------------------------------------------------------------------

    def grant(
        self,
        org: str,
        kind: str,
        amount: Any,
        *,
        idempotency_key: str,
        expires_at: datetime | str | None = None,
        expires_in: timedelta | int | None = None,
        effective_at: datetime | str | None = None,
        priority: int | None = None,
        note: str = "",
    ) -> Grant:
        """Credit an organisation (idempotent on ``idempotency_key``). A free_trial without an
        expiry expires after 90 days; welcome and free_trial need a verified phone number."""
        pico = v.amount_pico(amount, "grant amount", positive=True, exact=True)
        key = v.text(idempotency_key, "idempotency key")
        expiry = None if expires_at is None else v.moment(expires_at, "grant expires_at")
        span = None if expires_in is None else v.duration(expires_in, "grant expires_in")
        start = None if effective_at is None else v.moment(effective_at, "grant effective_at")
        clean_note = v.text(note, "note", max_length=500, allow_empty=True)

        def run(work: Work) -> dict[str, Any]:
            org_row = work.org(self._org_id(work.conn, org))
            return credit.create(
                work,
                org_row,
                kind=kind,
                amount_pico=pico,
                idempotency_key=key,
                effective_at=start,
                expires_at=expiry,
                expires_in=span,
                priority=priority,
                note=clean_note,
            )

        return credit.to_record(self.write(run))

    def refund(self, grant_id: str, amount: Any = None, *, idempotency_key: str | None = None) -> Refund:
        """Refund unused prepaid credit (all that is left unless ``amount`` is given).

        Without an ``idempotency_key`` the same call repeated is taken for a retry and refunds
        once; give distinct keys for distinct refunds of the same amount."""
        pico = None if amount is None else v.amount_pico(amount, "refund amount", positive=True, exact=True)
        key = v.text(
            idempotency_key or f"refund:{grant_id}:{'all' if pico is None else pico}", "idempotency key"
        )
        grant, refunded, repeated = self.write(lambda w: credit.refund(w, grant_id, pico, key))
        return Refund(
            grant_id=grant["id"],
            amount=from_pico(refunded),
            remaining=from_pico(grant["remaining_pico"]),
            repeated=repeated,
        )

    def record_payment(self, org: str, amount: Any, *, idempotency_key: str) -> Entry:
        """Record a payment of postpaid charges (e.g. an invoice paid)."""
        pico = v.amount_pico(amount, "payment amount", positive=True, exact=True)
        key = v.text(idempotency_key, "idempotency key")

        def run(work: Work) -> str:
            org_row = work.org(self._org_id(work.conn, org))
            credit.record_payment(work, org_row, pico, key)
            tiers.evaluate(work, org_row)
            return org_row["id"]

        org_id = self.write(run)
        e = s.entries
        query = select(e).where(e.c.org_id == org_id, e.c.idempotency_key == key, e.c.kind == "payment")
        return self.read(lambda c: queries.entry_record(dict(c.execute(query).one()._mapping)))

    def balance(self, org: str) -> Balance:
        def run(work: Work) -> Balance:
            row = work.org(self._org_id(work.conn, org))
            usable = [
                credit.to_record(g)
                for g in work.grants_of(row["id"])
                if g["activated_at"] is not None and g["remaining_pico"] > 0
            ]
            return Balance(
                org_id=row["id"],
                credit=from_pico(row["credit_pico"]),
                held=from_pico(row["held_pico"]),
                available=from_pico(max(row["credit_pico"] - row["held_pico"], 0)),
                due=from_pico(row["due_pico"]),
                spent=from_pico(row["spent_pico"]),
                paid=from_pico(row["paid_pico"]),
                payment_method=row["payment_method"],
                grants=tuple(usable),
                as_of=work.now,
            )

        return self.write(run)

    def list_grants(self, org: str) -> list[Grant]:
        """Every grant, usable ones first in consumption order, then the rest newest first."""

        def run(work: Work) -> list[Grant]:
            org_id = self._org_id(work.conn, org)
            work.org(org_id)
            work.flush()
            from kakin.ledger.work import consumption_key

            rows = queries.all_grants(work.conn, org_id)
            live = sorted(
                (g for g in rows if g["remaining_pico"] > 0 or g["activated_at"] is None), key=consumption_key
            )
            done = sorted((g for g in rows if g not in live), key=lambda g: g["created_at"], reverse=True)
            return [credit.to_record(g) for g in live + done]

        return self.write(run)

    def entries(
        self, org: str, *, since: Any = None, until: Any = None, limit: int | None = None
    ) -> list[Entry]:
        def run(work: Work) -> list[Entry]:
            org_id = self._org_id(work.conn, org)
            work.org(org_id)
            work.flush()
            return queries.entries(work.conn, org_id, since=since, until=until, limit=limit)

        return self.write(run)

    # Two-phase charges -------------------------------------------------------------------

    def batch(
        self, operations: Sequence[ReserveOp | SettleOp | VoidOp | PostOp]
    ) -> list[OpResult | KakinError]:
        """Run many operations in one transaction; a refused one returns its error in place."""
        if self._resident is not None:
            with self._writer:
                return self._resident.batch(operations, self.now())
        with self._writer, self.engine.begin() as conn:
            return ops.execute(conn, operations, now=self.now(), context=self.context)

    def _one(self, op: ReserveOp | SettleOp | VoidOp | PostOp) -> Any:
        result = self.batch([op])[0]
        if isinstance(result, KakinError):
            raise result
        return result

    def reserve(
        self,
        scope: Scope,
        amount: Any,
        tokens: int = 0,
        *,
        idempotency_key: str,
        expires_in: timedelta | int | None = None,
        unbounded: bool = False,
    ) -> Reservation:
        """Hold ``amount``; ``unbounded``: the request's output is not limited, so it may cost
        more than it holds (one such hold at a time under a cap: kakin.ledger.admission)."""
        return self._one(ReserveOp(scope, amount, tokens, idempotency_key, expires_in, unbounded))

    def settle(self, reservation_id: str, actual_amount: Any, usage: UsageDetail) -> Settlement:
        return self._one(SettleOp(reservation_id, actual_amount, usage))

    def void(self, reservation_id: str) -> Reservation:
        return self._one(VoidOp(reservation_id))

    def charge(self, scope: Scope, amount: Any, usage: UsageDetail, *, idempotency_key: str) -> Settlement:
        """Reserve and settle ``amount`` at once (usage known up front, e.g. an import)."""

        def run(work: Work) -> Settlement:
            held = charges.reserve(
                work,
                ReserveOp(
                    scope, amount, usage.tokens if isinstance(usage, UsageDetail) else 0, idempotency_key
                ),
            )
            return charges.settle(work, SettleOp(held.id, amount, usage))

        return self.write(run)

    def post(
        self, scope: Scope, amount: Any, usage: UsageDetail, *, idempotency_key: str, tokens: int = 0
    ) -> Settlement:
        """Record a request already served without a reservation (see :class:`PostOp`)."""
        return self._one(PostOp(scope, amount, usage, idempotency_key, tokens))

    def account_view(self, org: str, max_age: timedelta = views.DEFAULT_MAX_AGE) -> views.AccountView:
        """The organisation's spending room, to decide holds in memory (see kakin.ledger.views)."""

        def run(work: Work) -> views.AccountView:
            org_id = self._org_id(work.conn, org)
            journal = lambda: self.read(lambda c: charges.last_credit_event(c, org_id))  # noqa: E731
            return views.load(work, org_id, max_age, journal)

        return self.write(run)

    def account_snapshot(
        self, org: str, charge_keys: Sequence[str] = (), max_age: timedelta = snapshots.DEFAULT_MAX_AGE
    ) -> snapshots.AccountSnapshot:
        """The organisation's room as numbers, for a shared hold store to rebuild from; which of
        ``charge_keys`` (idempotency keys) the ledger already holds (see kakin.ledger.snapshots)."""
        return self.write(
            lambda work: snapshots.load(work, self._org_id(work.conn, org), charge_keys, max_age)
        )

    def last_credit_event(self, org_id: str) -> Any:
        """The journal's last entry that took credit away (kind, occurred_at, grant_id), or None:
        what a refusal for want of credit says ran out."""
        row = self.read(lambda conn: charges.last_credit_event(conn, org_id))
        return None if row is None else charges.CreditEvent(row.kind, row.occurred_at, row.grant_id)

    def was_charged(self, org_id: str, idempotency_key: str) -> bool:
        """Whether a request was charged under ``idempotency_key`` (settled, or posted in one step)."""
        return self.read(lambda conn: charges.charged_under(conn, org_id, idempotency_key))

    def get_reservation(self, reservation_id: str) -> Reservation:
        return self.write(lambda w: charges.to_record(w.reservation(reservation_id)))

    def expire_holds(self) -> int:
        """Release every hold past its expiry now; returns how many."""
        now = self.now()
        org_ids = self.read(lambda c: queries.orgs_with_expired_holds(c, now))

        def run(work: Work) -> int:
            work.lock_orgs(org_ids)
            return sum(1 for r in work.dirty_reservations.values() if r["status"] == "expired")

        return self.write(run) if org_ids else 0

    # Budgets and tiers -------------------------------------------------------------------

    def set_budget(
        self,
        org: str,
        *,
        scope: str = "org",
        scope_ref: str | None = None,
        period: str = "month",
        limit: Any = None,
        limit_tokens: int | None = None,
        thresholds: Sequence[int] = budgets.DEFAULT_THRESHOLDS,
        hard_cap: bool = False,
        name: str | None = None,
    ) -> Budget:
        """Create or change the budget for (scope, scope_ref, period, unit). Give ``limit`` (USD)
        or ``limit_tokens``. A budget created mid-period counts the period's spend so far."""
        if (limit is None) == (limit_tokens is None):
            raise InvalidInput("give exactly one of limit (USD) or limit_tokens for a budget")
        if limit is not None:
            unit, value = (
                "usd",
                v.amount_pico(limit, "budget limit", maximum=v.MAX_LIMIT, positive=True, exact=True),
            )
        else:
            unit, value = "tokens", v.tokens(limit_tokens, "budget limit_tokens")
        levels = budgets.validate_thresholds(thresholds)
        ref = "" if scope_ref is None else v.text(scope_ref, "budget scope_ref")
        label = None if name is None else v.text(name, "budget name")

        def run(work: Work) -> dict[str, Any]:
            org_row = work.org(self._org_id(work.conn, org))
            return budgets.set_budget(
                work,
                org_row,
                scope=scope,
                scope_ref=ref,
                period=period,
                unit=unit,
                limit_value=value,
                thresholds=levels,
                hard_cap=bool(hard_cap),
                name=label,
            )

        return budgets.to_record(self.write(run))

    def list_budgets(self, org: str) -> list[Budget]:
        def run(work: Work) -> list[Budget]:
            org_id = self._org_id(work.conn, org)
            return [
                budgets.to_record(b) for b in sorted(work.budgets_of(org_id), key=lambda b: b["created_at"])
            ]

        return self.write(run)

    def delete_budget(self, budget_id: str) -> Budget:
        return budgets.to_record(self.write(lambda w: budgets.delete_budget(w, budget_id)))

    def budget_status(self, budget_id: str) -> BudgetStatus:
        def run(work: Work) -> BudgetStatus:
            row = work.conn.execute(select(s.budgets.c.org_id).where(s.budgets.c.id == budget_id)).first()
            if row is None:
                raise NotFound(f"no budget with id {budget_id!r} (see `kakin budget list`)")
            org_row = work.org(row.org_id)
            budget = next((b for b in work.budgets_of(org_row["id"]) if b["id"] == budget_id), None)
            if budget is None:
                raise NotFound(f"budget {budget_id!r} was removed")
            return budgets.status(work, org_row, budget)

        return self.write(run)

    def budget_statuses(self, org: str) -> list[BudgetStatus]:
        def run(work: Work) -> list[BudgetStatus]:
            org_row = work.org(self._org_id(work.conn, org))
            rows = sorted(work.budgets_of(org_row["id"]), key=lambda b: b["created_at"])
            return [budgets.status(work, org_row, b) for b in rows]

        return self.write(run)

    def tier_of(self, org: str) -> TierStatus:
        return self.write(lambda w: tiers.status(w, w.org(self._org_id(w.conn, org))))

    def set_tier_rules(self, org: str, name: str | None) -> TierStatus:
        """Apply a tier rule set (a preset such as "openai" / "gemini", or a registered one)."""

        def run(work: Work) -> TierStatus:
            row = orgs.update(work, self._org_id(work.conn, org), tier_rules=name)
            return tiers.status(work, row)

        return self.write(run)

    def register_tier_rules(self, name: str, toml_text: str) -> tiers.TierRules:
        clean = v.text(name, "tier rules name", max_length=64)
        return self.write(lambda w: tiers.register(w, clean, toml_text))

    # Provider-side objects ---------------------------------------------------------------

    def record_objects(self, org_id: str, project_id: str, names: Sequence[ObjectName]) -> int:
        """Record that ``project_id`` created these provider objects (idempotent: an object
        already recorded keeps its first owner). Returns how many were new."""
        for name in names:
            v.text(name.object_id, "object id", max_length=300)
        return self.write(lambda w: objects.record(w.conn, w.now, org_id, project_id, names))

    def find_object(self, api: str, kind: str, object_id: str) -> ProviderObject | None:
        """The record of a provider's object created through the gateway, or None."""
        return self.read(lambda c: objects.find(c, api, kind, object_id))

    def owned_objects(
        self, project_id: str, api: str, kind: str, object_ids: Sequence[str]
    ) -> dict[str, ProviderObject]:
        """The records of the objects among ``object_ids`` that ``project_id`` created, by id."""
        return self.read(lambda c: objects.owned(c, project_id, api, kind, object_ids))

    def forget_object(self, api: str, kind: str, object_id: str) -> bool:
        """The provider deleted the object: drop its record. False when there was none."""
        return self.write(lambda w: objects.forget(w.conn, api, kind, object_id))

    # Reading and proving -----------------------------------------------------------------

    def usage(
        self,
        org: str,
        *,
        since: Any = None,
        until: Any = None,
        project_id: str | None = None,
        key_id: str | None = None,
        model: str | None = None,
        limit: int | None = None,
    ) -> list[UsageRecord]:
        return self.read(
            lambda c: queries.usage(
                c,
                self._org_id(c, org),
                since=since,
                until=until,
                project_id=project_id,
                key_id=key_id,
                model=model,
                limit=limit,
            )
        )

    def reconcile(self, org: str) -> Reconciliation:
        return self.write(lambda w: _reconcile(w, self._org_id(w.conn, org)))


def _migrate(engine: Engine) -> None:
    migrate(engine)
