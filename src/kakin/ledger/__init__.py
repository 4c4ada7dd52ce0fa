"""kakin's ledger: organisations, projects, virtual keys, credit grants, two-phase charges,
budgets, usage tiers and usage records — SQLite (default) or PostgreSQL.

Public API (everything below is importable from ``kakin.ledger``)
================================================================

Opening::

    Ledger.open(url: str | None = None, *, clock=None, migrate=True, hold_seconds=900) -> Ledger
        url: sqlite:///path | postgresql://…; default $KAKIN_DATABASE_URL or ./kakin-data/kakin.db.
        clock: () -> aware UTC datetime (tests move time). Runs Alembic migrations on open.
    ledger.close();  with Ledger.open(...) as ledger: ...
    ledger.engine                                   SQLAlchemy Engine (readers may query the tables)
    kakin.ledger.schema.metadata                    shared MetaData (other packages add tables to it)
    kakin.ledger.db.migrate(engine)                 upgrade to heads; revisions chain after "0001_ledger"
                                                    and live in kakin/<package>/migrations/versions/

Organisations and projects::

    ledger.create_org(name, *, currency="USD", timezone="UTC", phone=None, payment_method=False,
                      payment_label=None, tier_rules=None) -> Org
    ledger.get_org(id_or_name) -> Org;  ledger.list_orgs() -> list[Org]
    ledger.update_org(org_id, *, currency=…, timezone=…, phone=…, tier_rules=…) -> Org
    ledger.set_payment_method(org_id, label: str | None) -> Org     (None removes it)
    ledger.create_project(org_id, name) -> Project;  ledger.get_project(id_or_name, org_id=None)
    ledger.list_projects(org_id) -> list[Project]

Virtual keys (plaintext returned once; only a sha256 hash is stored)::

    ledger.create_key(project_id, name, expires_at=None, models=None, rpm=None, tpm=None)
        -> tuple[KeyRecord, str]
    ledger.verify_key(plaintext) -> KeyRecord     raises InvalidKey/KeyRevoked/KeyExpired (401),
                                                  KeySuspended (403)
    ledger.rotate_key(key_id, grace=timedelta(hours=24)) -> tuple[KeyRecord, str]
    ledger.revoke_key(key_id) -> KeyRecord;  ledger.suspend_key(key_id, reason) -> KeyRecord
    ledger.unsuspend_key(key_id) -> KeyRecord;  ledger.get_key(key_id);  ledger.list_keys(org_id=None, project_id=None)

Credit::

    ledger.grant(org_id, kind, amount, *, idempotency_key, expires_at=None, expires_in=None,
                 effective_at=None, priority=None, note="") -> Grant
        kind: free_trial | welcome | prepaid | promotional
    ledger.refund(grant_id, amount=None, *, idempotency_key=None) -> Refund   (prepaid only)
    ledger.record_payment(org_id, amount, *, idempotency_key) -> Entry         (pays postpaid due)
    ledger.balance(org_id) -> Balance;  ledger.list_grants(org_id) -> list[Grant]
    ledger.entries(org_id, *, since=None, until=None, limit=None) -> list[Entry]

Two-phase charges (each call is one transaction; ``batch`` runs many in one)::

    ledger.reserve(scope: Scope, amount, tokens=0, *, idempotency_key, expires_in=None) -> Reservation
        raises CreditExhausted (402), BudgetExceeded / TierLimitExceeded (402), PermissionDenied (403)
    ledger.settle(reservation_id, actual_amount, usage: UsageDetail) -> Settlement
        Settlement.thresholds: budget thresholds first reached this period (fire alerts on these)
    ledger.void(reservation_id) -> Reservation
    ledger.charge(scope, amount, usage, *, idempotency_key) -> Settlement   (reserve + settle)
    ledger.post(scope, amount, usage, *, idempotency_key, tokens=0) -> Settlement
        one-phase charge of a request already served (no reservation, never refused for room)
    ledger.batch(ops: Sequence[ReserveOp | SettleOp | VoidOp | PostOp])
        -> list[Reservation | Settlement | KakinError]
        one transaction; each op's own KakinError is returned in its slot, the others proceed
    kakin.ledger.ops.execute(conn, ops, *, now, context=None, cache=None) -> same list, on a
        caller's open transaction. On SQLite, Ledger.batch keeps one connection and a row cache
        between its transactions (kakin.ledger.resident), batches queued on its writer lock,
        and checkpoints its write-ahead log on a thread of its own (kakin.ledger.checkpoints).
    UsageDetail.cost_items: JSON-able values, or a str already holding a JSON document
    UsageDetail.reasoning_tokens: the part of output_tokens the model spent reasoning
    ledger.expire_holds() -> int                   release every hold past its expiry now
    ledger.account_view(org_id, max_age=60s) -> AccountView   (kakin.ledger.views) in-memory holds
        for a process that owns the ledger: view.hold(scope, amount, tokens) -> Hold (same
        rules and errors as reserve), view.release(hold), view.posted(hold, settlement, tokens)
        after a PostOp, view.stale(now), view.expire(), new_view.adopt_holds(old_view)

Budgets and tiers::

    ledger.set_budget(org_id, *, scope="org", scope_ref=None, period="month", limit=None,
                      limit_tokens=None, thresholds=(50, 80, 100), hard_cap=False, name=None) -> Budget
    ledger.list_budgets(org_id) -> list[Budget];  ledger.delete_budget(budget_id)
    ledger.budget_status(budget_id) -> BudgetStatus;  ledger.budget_statuses(org_id) -> list[BudgetStatus]
    ledger.tier_of(org_id) -> TierStatus;  ledger.set_tier_rules(org_id, name)
    ledger.register_tier_rules(name, toml_text);  kakin.ledger.tiers.PRESETS ("openai", "gemini")

Provider-side objects (see kakin.ledger.objects)::

    ledger.record_objects(org_id, project_id, names: Sequence[ObjectName]) -> int
        the project created these provider objects (idempotent; the first owner stays)
    ledger.find_object(api, kind, object_id) -> ProviderObject | None
    ledger.owned_objects(project_id, api, kind, object_ids) -> dict[str, ProviderObject]
        those it owns, by id
    ledger.forget_object(api, kind, object_id) -> bool                    it was deleted

Reading and proving::

    ledger.usage(org_id, *, since=None, until=None, project_id=None, key_id=None, model=None,
                 limit=None) -> list[UsageRecord]
    ledger.reconcile(org_id) -> Reconciliation     every counter == SUM(its entries), the spend
        rollups (kakin.ledger.rollups, read by kakin.reports) == SUM(the usage records)

Errors are in ``kakin.ledger.errors`` (subclasses of ``kakin.errors.KakinError``, each with an
HTTP ``status``); record types in ``kakin.ledger.records``. Amounts are Decimal USD in, Decimal
USD out; see docs/ledger.md for the model, consumption order and durability.
"""

from kakin.ledger.credit import FreeCreditRefused
from kakin.ledger.errors import (
    BudgetExceeded,
    CreditExhausted,
    InvalidKey,
    KeyExpired,
    KeyRevoked,
    KeySuspended,
    PermissionDenied,
    TierLimitExceeded,
)
from kakin.ledger.ledger import Ledger
from kakin.ledger.records import (
    Balance,
    Budget,
    BudgetStatus,
    Entry,
    Grant,
    KeyRecord,
    ObjectName,
    Op,
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
    ThresholdCrossed,
    Tier,
    TierStatus,
    UsageDetail,
    UsageRecord,
    VoidOp,
)
from kakin.ledger.schema import metadata

__all__ = [
    "Balance",
    "Budget",
    "BudgetExceeded",
    "BudgetStatus",
    "CreditExhausted",
    "Entry",
    "FreeCreditRefused",
    "Grant",
    "InvalidKey",
    "KeyExpired",
    "KeyRecord",
    "KeyRevoked",
    "KeySuspended",
    "Ledger",
    "ObjectName",
    "Op",
    "OpResult",
    "Org",
    "PermissionDenied",
    "PostOp",
    "Project",
    "ProviderObject",
    "Reconciliation",
    "Refund",
    "Reservation",
    "ReserveOp",
    "Scope",
    "SettleOp",
    "Settlement",
    "ThresholdCrossed",
    "Tier",
    "TierLimitExceeded",
    "TierStatus",
    "UsageDetail",
    "UsageRecord",
    "VoidOp",
    "metadata",
]
