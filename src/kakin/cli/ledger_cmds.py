"""Ledger commands: ``kakin org``, ``project``, ``keys``, ``credits``, ``budget``, ``ledger``,
``tier``.

Every command opens the ledger database (``--database-url``, else ``KAKIN_DATABASE_URL`` /
kakin.toml, else ``./kakin-data/kakin.db``), migrating it if needed. Organisations and projects
are given by id or name. Errors are one line on stderr with exit code 2 (the root group turns
every ``KakinError`` into that).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kakin.cli.output import (
    Column,
    CurrencyOption,
    FormatOption,
    OutputFormat,
    Report,
    emit,
    resolve_currency,
)
from kakin.errors import InvalidInput

if TYPE_CHECKING:
    from kakin.ledger import Ledger

org_app = typer.Typer(help="Organisations (billing accounts): currency, timezone, identity, payment method.")
project_app = typer.Typer(help="Projects inside an organisation.")
keys_app = typer.Typer(help="Virtual API keys: shown once, stored hashed; rotate, revoke, suspend.")
credits_app = typer.Typer(help="Credit grants: free trial, welcome, prepaid, promotional; refunds.")
budget_app = typer.Typer(help="Budgets per organisation, project, key or model; soft thresholds, hard caps.")
ledger_app = typer.Typer(help="The append-only journal of grants, charges, expiries, refunds and payments.")
tier_app = typer.Typer(
    help="Usage tiers: rate limits and monthly ceilings that rise with payments and spend."
)

_GROUPS = (
    (org_app, "org"),
    (project_app, "project"),
    (keys_app, "keys"),
    (credits_app, "credits"),
    (budget_app, "budget"),
    (ledger_app, "ledger"),
    (tier_app, "tier"),
)


def register(app: typer.Typer) -> None:
    for group, name in _GROUPS:
        group.info.no_args_is_help = True
        app.add_typer(group, name=name)


DbOption = Annotated[
    str | None,
    typer.Option(
        "--database-url", help="ledger database (default: KAKIN_DATABASE_URL, kakin.toml, ./kakin-data)"
    ),
]
OrgArg = Annotated[str, typer.Argument(help="organisation id or name")]


@contextmanager
def _ledger(database_url: str | None) -> Iterator[Ledger]:
    from kakin.ledger import Ledger

    url = database_url
    if url is None:
        from kakin.config import load_settings

        url = load_settings().database.url
    ledger = Ledger.open(url)
    try:
        yield ledger
    finally:
        ledger.close()


_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(raw: str | None, what: str) -> timedelta | None:
    """``90d``, ``24h``, ``30m``, ``3600s`` or ``2w``."""
    if raw is None:
        return None
    found = _DURATION.match(raw)
    if found is None:
        raise InvalidInput(f"{what} must look like 90d, 24h, 30m, 3600s or 2w, got {raw!r}")
    return timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})


def _when(value: Any) -> str:
    return value.replace(microsecond=0).isoformat() if value is not None else "—"


def _time(value: Any) -> str | None:
    """A table-friendly timestamp (seconds precision); None stays empty."""
    return None if value is None else _when(value)


def _show(report: Report, fmt: OutputFormat, currency: str | None) -> None:
    emit(report, fmt, resolve_currency(currency))


# org ---------------------------------------------------------------------------------------


@org_app.command("create")
def org_create(
    name: Annotated[str, typer.Argument(help="a unique name")],
    currency: Annotated[str, typer.Option(help="display currency (ISO code)")] = "USD",
    timezone: Annotated[str, typer.Option(help="IANA timezone for budget periods, e.g. Asia/Tokyo")] = "UTC",
    phone: Annotated[str | None, typer.Option(help="verified phone number with country code (+81…)")] = None,
    payment_method: Annotated[str | None, typer.Option(help="label of a payment method on file")] = None,
    tier_rules: Annotated[
        str | None, typer.Option(help="usage tier rules: openai, gemini or a registered set")
    ] = None,
    database_url: DbOption = None,
) -> None:
    """Create an organisation."""
    with _ledger(database_url) as ledger:
        org = ledger.create_org(
            name,
            currency=currency,
            timezone=timezone,
            phone=phone,
            payment_label=payment_method,
            tier_rules=tier_rules,
        )
    typer.echo(
        f"organisation {org.id} ({org.name}) created; timezone {org.timezone}, currency {org.currency}"
    )


@org_app.command("update")
def org_update(
    org: OrgArg,
    currency: Annotated[str | None, typer.Option(help="display currency (ISO code)")] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA timezone")] = None,
    phone: Annotated[str | None, typer.Option(help="verified phone number with country code")] = None,
    payment_method: Annotated[
        str | None, typer.Option(help="put a payment method on file (its label)")
    ] = None,
    no_payment_method: Annotated[
        bool, typer.Option("--no-payment-method", help="remove the payment method")
    ] = False,
    tier_rules: Annotated[
        str | None, typer.Option(help="usage tier rules: openai, gemini or a registered set")
    ] = None,
    database_url: DbOption = None,
) -> None:
    """Change an organisation's settings or payment method."""
    if payment_method is not None and no_payment_method:
        raise InvalidInput("give either --payment-method or --no-payment-method, not both")
    given = {"currency": currency, "timezone": timezone, "phone": phone, "tier_rules": tier_rules}
    changes = {k: v for k, v in given.items() if v is not None}
    with _ledger(database_url) as ledger:
        record = ledger.update_org(org, **changes) if changes else ledger.get_org(org)
        if payment_method is not None or no_payment_method:
            record = ledger.set_payment_method(record.id, None if no_payment_method else payment_method)
    method = record.payment_label if record.payment_method else "none"
    typer.echo(f"organisation {record.id} ({record.name}) updated; payment method: {method}")


@org_app.command("list")
def org_list(fmt: FormatOption = OutputFormat.table, database_url: DbOption = None) -> None:
    """List organisations."""
    with _ledger(database_url) as ledger:
        orgs = ledger.list_orgs()
    report = Report(
        "Organisations",
        [
            Column("id", "id"),
            Column("name", "name"),
            Column("currency", "currency"),
            Column("timezone", "timezone"),
            Column("payment_method", "payment method"),
            Column("tier", "tier"),
        ],
        rows=[
            {
                "id": o.id,
                "name": o.name,
                "currency": o.currency,
                "timezone": o.timezone,
                "payment_method": o.payment_label if o.payment_method else "none",
                "tier": f"{o.tier} ({o.tier_rules})" if o.tier else None,
            }
            for o in orgs
        ],
    )
    _show(report, fmt, "USD")


@org_app.command("show")
def org_show(
    org: OrgArg,
    fmt: FormatOption = OutputFormat.table,
    currency: CurrencyOption = None,
    database_url: DbOption = None,
) -> None:
    """An organisation's balance, credit grants and budgets."""
    with _ledger(database_url) as ledger:
        record = ledger.get_org(org)
        balance = ledger.balance(record.id)
        statuses = ledger.budget_statuses(record.id)
        tier = ledger.tier_of(record.id)
    summary = Report(
        f"{record.name} ({record.id})",
        [Column("item", "item"), Column("amount", "amount", "money"), Column("detail", "detail", wrap=True)],
        rows=[
            {
                "item": "credit",
                "amount": balance.credit,
                "detail": f"{len(balance.grants)} grant{'' if len(balance.grants) == 1 else 's'} with credit left",
            },
            {"item": "held", "amount": balance.held, "detail": "by requests in flight"},
            {"item": "available", "amount": balance.available, "detail": "credit − held"},
            {"item": "amount due", "amount": balance.due, "detail": "postpaid usage not yet paid"},
            {"item": "spent", "amount": balance.spent, "detail": "all usage ever charged"},
            {"item": "paid", "amount": balance.paid, "detail": "prepayments and payments, less refunds"},
        ],
        notes=[
            f"timezone {record.timezone}; phone {record.phone or 'not verified'}; payment method "
            f"{record.payment_label if record.payment_method else 'none (usage stops when credit runs out)'}",
            f"tier: {tier.tier.name} ({tier.rules} rules)" if tier.tier else "tier: no tier rules",
        ],
        extra={"org": {"id": record.id, "name": record.name, "timezone": record.timezone}},
    )
    budgets = _budget_report(statuses)
    emit([summary, budgets], fmt, resolve_currency(currency or record.currency))


# project -----------------------------------------------------------------------------------


@project_app.command("create")
def project_create(
    org: OrgArg,
    name: Annotated[str, typer.Argument(help="unique within the organisation")],
    database_url: DbOption = None,
) -> None:
    """Create a project in an organisation."""
    with _ledger(database_url) as ledger:
        project = ledger.create_project(org, name)
    typer.echo(f"project {project.id} ({project.name}) created in {project.org_id}")


@project_app.command("list")
def project_list(org: OrgArg, fmt: FormatOption = OutputFormat.table, database_url: DbOption = None) -> None:
    """List an organisation's projects."""
    with _ledger(database_url) as ledger:
        projects = ledger.list_projects(org)
    report = Report(
        "Projects",
        [Column("id", "id"), Column("name", "name"), Column("created_at", "created")],
        rows=[{"id": p.id, "name": p.name, "created_at": _time(p.created_at)} for p in projects],
    )
    _show(report, fmt, "USD")


# keys --------------------------------------------------------------------------------------


@keys_app.command("create")
def keys_create(
    project: Annotated[str, typer.Argument(help="project id, or name with --org")],
    name: Annotated[str, typer.Argument(help="what the key is for")],
    org: Annotated[str | None, typer.Option(help="organisation, when the project is given by name")] = None,
    expires_in: Annotated[str | None, typer.Option(help="expire after e.g. 90d, 12h")] = None,
    model: Annotated[list[str] | None, typer.Option(help="allowed model (repeatable); default all")] = None,
    rpm: Annotated[int | None, typer.Option(help="requests per minute for this key")] = None,
    tpm: Annotated[int | None, typer.Option(help="tokens per minute for this key")] = None,
    fmt: FormatOption = OutputFormat.table,
    database_url: DbOption = None,
) -> None:
    """Create a key. The key is printed once and never stored in clear."""
    span = parse_duration(expires_in, "--expires-in")
    with _ledger(database_url) as ledger:
        project_id = _project_id(ledger, project, org)
        expires_at = None if span is None else ledger.now() + span
        record, plaintext = ledger.create_key(
            project_id, name, expires_at=expires_at, models=model, rpm=rpm, tpm=tpm
        )
        now = ledger.now()
    if fmt is not OutputFormat.table:
        report = _keys_report([record], now)
        report.columns.append(Column("key", "key"))
        report.rows[0]["key"] = plaintext
        report.notes.append("store the key now: kakin keeps only a hash and cannot show it again")
        _show(report, fmt, "USD")
        return
    typer.echo(f"key {record.id} ({record.name}) for project {record.project_id}")
    typer.echo(plaintext)
    typer.echo("store it now: kakin keeps only a hash and cannot show it again")


@keys_app.command("list")
def keys_list(
    org: Annotated[str | None, typer.Argument(help="only this organisation's keys (id or name)")] = None,
    org_option: Annotated[str | None, typer.Option("--org", help="the same as the ORG argument")] = None,
    project: Annotated[
        str | None, typer.Option(help="only this project's keys (id, or name with ORG)")
    ] = None,
    fmt: FormatOption = OutputFormat.table,
    database_url: DbOption = None,
) -> None:
    """List keys (prefixes only) with their status."""
    if org and org_option and org != org_option:
        raise InvalidInput(f"two organisations given: {org!r} and --org {org_option!r}; give one")
    with _ledger(database_url) as ledger:
        project_id = None if project is None else _project_id(ledger, project, org or org_option)
        records = ledger.list_keys(org=org or org_option, project_id=project_id)
        now = ledger.now()
    _show(_keys_report(records, now), fmt, "USD")


def _project_id(ledger: Ledger, project: str, org: str | None) -> str:
    """A project's id, from its id or from its name within ``org`` (names are unique only there)."""
    if org is None and not project.startswith("prj_"):
        raise InvalidInput(
            f"project {project!r} is given by name: name its organisation too (--org), or give its id (prj_…)"
        )
    return ledger.get_project(project, org).id


def _keys_report(records: list[Any], now: Any) -> Report:
    from kakin.ledger.keys import shown_key

    return Report(
        "Keys",
        [
            Column("id", "id"),
            Column("name", "name"),
            Column("prefix", "key"),
            Column("project_id", "project", optional=True),
            Column("status", "status"),
            Column("expires_at", "expires"),
            Column("limits", "limits", wrap=True),
        ],
        rows=[
            {
                "id": k.id,
                "name": k.name,
                "prefix": shown_key(k.prefix),
                "project_id": k.project_id,
                "status": k.status(now) + (f" ({k.suspend_reason})" if k.suspend_reason else ""),
                "expires_at": _time(k.expires_at),
                "limits": ", ".join(
                    part
                    for part in (
                        f"models {'/'.join(k.models)}" if k.models else "",
                        f"{k.rpm} rpm" if k.rpm else "",
                        f"{k.tpm:,} tpm" if k.tpm else "",
                    )
                    if part
                )
                or None,
            }
            for k in records
        ],
    )


@keys_app.command("rotate")
def keys_rotate(
    key_id: Annotated[str, typer.Argument(help="key id")],
    grace: Annotated[str, typer.Option(help="how long the old key keeps working, e.g. 24h, 0s")] = "24h",
    database_url: DbOption = None,
) -> None:
    """Issue a new key; the old one keeps working for the grace period."""
    span = parse_duration(grace, "--grace")
    with _ledger(database_url) as ledger:
        record, plaintext = ledger.rotate_key(key_id, grace=span or timedelta(0))
        old = ledger.get_key(key_id)
    typer.echo(f"key {record.id} replaces {key_id}; the old key works until {_when(old.expires_at)}")
    typer.echo(plaintext)
    typer.echo("store it now: kakin keeps only a hash and cannot show it again")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="key id")], database_url: DbOption = None) -> None:
    """Revoke a key now."""
    with _ledger(database_url) as ledger:
        record = ledger.revoke_key(key_id)
    typer.echo(f"key {record.id} revoked at {_when(record.revoked_at)}")


@keys_app.command("suspend")
def keys_suspend(
    key_id: Annotated[str, typer.Argument(help="key id")],
    reason: Annotated[str, typer.Option(help="why (shown to the caller)")],
    database_url: DbOption = None,
) -> None:
    """Suspend a key until it is unsuspended."""
    with _ledger(database_url) as ledger:
        record = ledger.suspend_key(key_id, reason)
    typer.echo(f"key {record.id} suspended: {record.suspend_reason}")


@keys_app.command("unsuspend")
def keys_unsuspend(
    key_id: Annotated[str, typer.Argument(help="key id")], database_url: DbOption = None
) -> None:
    """Lift a suspension."""
    with _ledger(database_url) as ledger:
        record = ledger.unsuspend_key(key_id)
    typer.echo(f"key {record.id} is active again")


# credits -----------------------------------------------------------------------------------


@credits_app.command("grant")
def credits_grant(
    org: OrgArg,
    kind: Annotated[str, typer.Option(help="free_trial, welcome, prepaid or promotional")],
    amount: Annotated[str, typer.Option(help="USD, e.g. 5 or 12.50")],
    expires_in: Annotated[str | None, typer.Option(help="e.g. 90d (free_trial defaults to 90d)")] = None,
    expires_at: Annotated[str | None, typer.Option(help="ISO date-time with offset")] = None,
    effective_at: Annotated[str | None, typer.Option(help="ISO date-time with offset; default now")] = None,
    priority: Annotated[int | None, typer.Option(help="lower is used first within a category")] = None,
    note: Annotated[str, typer.Option(help="free text")] = "",
    idempotency_key: Annotated[str | None, typer.Option(help="repeat-safe key; default a new one")] = None,
    database_url: DbOption = None,
) -> None:
    """Credit an organisation."""
    key = idempotency_key or f"cli-{uuid.uuid4().hex}"
    with _ledger(database_url) as ledger:
        grant = ledger.grant(
            org,
            kind,
            amount,
            idempotency_key=key,
            expires_in=parse_duration(expires_in, "--expires-in"),
            expires_at=expires_at,
            effective_at=effective_at,
            priority=priority,
            note=note,
        )
    state = "already granted (same idempotency key)" if grant.repeated else "granted"
    expiry = f"expires {_when(grant.expires_at)}" if grant.expires_at else "never expires"
    typer.echo(
        f"{grant.kind} credit ${grant.amount.normalize():f} {state}: {grant.id}, {expiry} (idempotency key {key})"
    )


@credits_app.command("list")
def credits_list(
    org: OrgArg,
    fmt: FormatOption = OutputFormat.table,
    currency: CurrencyOption = None,
    database_url: DbOption = None,
) -> None:
    """Grants in consumption order, with what is left and when it expires."""
    with _ledger(database_url) as ledger:
        grants = ledger.list_grants(org)
        now = ledger.now()
    report = Report(
        "Credit grants (usable ones in consumption order)",
        [
            Column("id", "id"),
            Column("kind", "kind"),
            Column("category", "category", optional=True),
            Column("priority", "priority", "int", optional=True),
            Column("amount", "amount", "money"),
            Column("remaining", "left", "money"),
            Column("refunded", "refunded", "money", optional=True),
            Column("effective_at", "from", optional=True),
            Column("expires_at", "expires"),
            Column("state", "state"),
        ],
        rows=[
            {
                "id": g.id,
                "kind": g.kind,
                "category": g.category,
                "priority": g.priority,
                "amount": g.amount,
                "remaining": g.remaining,
                "refunded": g.refunded,
                "effective_at": _time(g.effective_at),
                "expires_at": _time(g.expires_at),
                "state": _grant_state(g, now),
            }
            for g in grants
        ],
    )
    _show(report, fmt, currency)


def _grant_state(grant: Any, now: Any) -> str:
    if grant.effective_at > now:
        return "not yet effective"
    if grant.expires_at is not None and grant.expires_at <= now:
        return "expired"
    return "usable" if grant.remaining > 0 else "used up"


@credits_app.command("refund")
def credits_refund(
    grant_id: Annotated[str, typer.Argument(help="a prepaid grant")],
    amount: Annotated[str | None, typer.Option(help="USD; default everything left")] = None,
    database_url: DbOption = None,
) -> None:
    """Refund unused prepaid credit."""
    with _ledger(database_url) as ledger:
        refund = ledger.refund(grant_id, amount)
    state = "already refunded" if refund.repeated else "refunded"
    typer.echo(
        f"${refund.amount.normalize():f} {state} from {grant_id}; ${refund.remaining.normalize():f} left"
    )


# budget ------------------------------------------------------------------------------------


@budget_app.command("set")
def budget_set(
    org: OrgArg,
    limit: Annotated[str | None, typer.Option(help="USD limit per period")] = None,
    limit_tokens: Annotated[int | None, typer.Option(help="token limit per period")] = None,
    scope: Annotated[str, typer.Option(help="org, project, key or model")] = "org",
    ref: Annotated[
        str | None, typer.Option(help="the project (id or name), the key id or the model name")
    ] = None,
    period: Annotated[str, typer.Option(help="day, month or total")] = "month",
    thresholds: Annotated[str, typer.Option(help="soft thresholds in percent")] = "50,80,100",
    hard_cap: Annotated[
        bool, typer.Option("--hard-cap", help="refuse requests that would pass the limit")
    ] = False,
    name: Annotated[str | None, typer.Option(help="a label for alerts")] = None,
    database_url: DbOption = None,
) -> None:
    """Create or change a budget. Spend already made this period counts at once."""
    try:
        levels = [int(part) for part in thresholds.split(",") if part.strip()]
    except ValueError:
        raise InvalidInput(
            f"--thresholds must be whole percents separated by commas, got {thresholds!r}"
        ) from None
    if scope == "model" and ref:  # a model the gateway serves, by the catalog's name for it
        model, alias = _budget_model(ref)
        if alias:
            typer.echo(f"{ref.strip()!r} is a gateway alias: the budget is set on its model, {model}")
        elif model != ref.strip():
            typer.echo(
                f"the catalog prices {ref.strip()!r} as {model}: the budget is set on {model} and "
                "counts requests for either name"
            )
        ref = model
    with _ledger(database_url) as ledger:
        if scope == "project" and ref:  # a project by name, as every other command takes it
            ref = ledger.get_project(ref, org).id
        budget = ledger.set_budget(
            org,
            scope=scope,
            scope_ref=ref,
            period=period,
            limit=limit,
            limit_tokens=limit_tokens,
            thresholds=levels,
            hard_cap=hard_cap,
            name=name,
        )
        status = ledger.budget_status(budget.id)
    limit = f"${budget.limit.normalize():f}" if budget.unit == "usd" else f"{int(budget.limit):,} tokens"
    per = "in total" if budget.period == "total" else f"per {budget.period}"
    typer.echo(
        f"budget {budget.id} ({budget.name}): limit {limit} {per}, {status.percent}% used this period "
        f"({'hard cap' if budget.hard_cap else 'soft'}; thresholds {', '.join(map(str, budget.thresholds))}%)"
    )


def _budget_model(name: str) -> tuple[str, bool]:
    """The model a budget on ``name`` counts, as the gateway this configuration serves decides,
    and whether ``name`` is one of its aliases."""
    from kakin.catalog import Catalog
    from kakin.config import load_settings
    from kakin.gateway.routing import Router

    gateway = load_settings().gateway
    return Router(gateway, Catalog.default()).budget_model(name), name.strip() in gateway.aliases


@budget_app.command("list")
def budget_list(
    org: OrgArg,
    fmt: FormatOption = OutputFormat.table,
    currency: CurrencyOption = None,
    database_url: DbOption = None,
) -> None:
    """Budgets with this period's spend, holds and thresholds reached."""
    with _ledger(database_url) as ledger:
        statuses = ledger.budget_statuses(org)
    _show(_budget_report(statuses), fmt, currency)


def _budget_report(statuses: list[Any]) -> Report:
    rows = []
    for st in statuses:
        usd = st.budget.unit == "usd"
        rows.append(
            {
                "id": st.budget.id,
                "name": st.budget.name,
                "period": st.budget.period,
                "limit": st.limit if usd else None,
                "spent": st.spent if usd else None,
                "held": st.held if usd else None,
                "tokens": None if usd else f"{int(st.spent):,} + {int(st.held):,} held of {int(st.limit):,}",
                "percent": st.percent / 100,
                "cap": "hard" if st.budget.hard_cap else "soft",
                "fired": ", ".join(f"{t}%" for t in st.fired) or None,
                "period_end": _time(st.period_end),
            }
        )
    return Report(
        "Budgets",
        [
            Column("id", "id"),
            Column("name", "name", wrap=True),
            Column("period", "period"),
            Column("cap", "cap"),  # hard or soft: before the amounts, so a narrow screen keeps it
            Column("limit", "limit", "money"),
            Column("spent", "spent", "money"),
            Column("held", "held", "money", optional=True),
            Column("tokens", "tokens", wrap=True),
            Column("percent", "used", "percent"),
            Column("fired", "thresholds reached", optional=True),
            Column("period_end", "resets"),
        ],
        rows=rows,
    )


# ledger ------------------------------------------------------------------------------------


@ledger_app.command("migrate")
def ledger_migrate(database_url: DbOption = None) -> None:
    """Bring the database schema up to date, then say its revision. Every command and
    ``kakin serve`` do this on open (under a lock, so processes starting together agree);
    run it once before starting many gateway processes so none of them waits for it."""
    from alembic.migration import MigrationContext

    from kakin.ledger.db import make_engine, migrate

    url = database_url
    if url is None:
        from kakin.config import load_settings

        url = load_settings().database.url
    engine = make_engine(url)
    try:
        migrate(engine)
        with engine.connect() as connection:
            heads = sorted(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()
    typer.echo(f"ledger schema at {', '.join(heads)}")


@ledger_app.command("show")
def ledger_show(
    org: OrgArg,
    since: Annotated[str | None, typer.Option(help="ISO date-time with offset")] = None,
    until: Annotated[str | None, typer.Option(help="ISO date-time with offset")] = None,
    limit: Annotated[int | None, typer.Option(help="at most this many entries")] = None,
    reconcile: Annotated[
        bool, typer.Option("--reconcile", help="also prove counters = sums of entries")
    ] = False,
    fmt: FormatOption = OutputFormat.table,
    currency: CurrencyOption = None,
    database_url: DbOption = None,
) -> None:
    """The journal of one organisation, oldest first."""
    with _ledger(database_url) as ledger:
        entries = ledger.entries(org, since=since, until=until, limit=limit)
        proof = ledger.reconcile(org) if reconcile else None
        charged = _requests_of(ledger, [e.reservation_id for e in entries if e.kind == "charge"])
    report = Report(
        "Ledger entries",
        [
            Column("id", "#", "int"),
            Column("occurred_at", "when"),
            Column("kind", "kind"),
            Column("amount", "amount", "money"),
            Column("grant_id", "grant", optional=True),
            Column("reservation_id", "reservation", optional=True),
            Column("model", "model"),
            Column("tokens", "tokens (in/out)"),
            Column("input_tokens", "input tokens", "int", table=False),
            Column("output_tokens", "output tokens", "int", table=False),
            Column("request_id", "request", table=False),
            Column("detail", "detail", wrap=True),
        ],
        rows=[
            {
                "id": e.id,
                "occurred_at": _time(e.occurred_at),
                "kind": e.kind,
                "amount": e.amount,
                "grant_id": e.grant_id,
                "reservation_id": e.reservation_id,
                **_charge_columns(charged.get(e.reservation_id or "")),
                "detail": ", ".join(f"{k}={v}" for k, v in (e.detail or {}).items()) or None,
            }
            for e in entries
        ],
    )
    if proof is not None:
        if proof.ok:
            report.notes.append(f"reconciled: {len(proof.checks)} counters equal the sums of their entries")
        else:
            report.notes += [
                f"MISMATCH {c.name}: counter {c.counter} ≠ sum {c.computed}" for c in proof.mismatches
            ]
        report.extra["reconciled"] = proof.ok
    _show(report, fmt, currency)
    if proof is not None and not proof.ok:
        raise typer.Exit(1)


def _requests_of(ledger: Ledger, reservation_ids: list[Any]) -> dict[str, Any]:
    from kakin.reports import Reports

    return Reports(ledger).of_charges(reservation_ids)


def _charge_columns(request: Any) -> dict[str, Any]:
    """Model and tokens of the request a charge entry paid for (blank for other entries)."""
    if request is None:
        return {
            "model": None,
            "tokens": None,
            "input_tokens": None,
            "output_tokens": None,
            "request_id": None,
        }
    return {
        "model": request.model,
        "tokens": f"{request.input_tokens:,}/{request.output_tokens:,}",
        "input_tokens": request.input_tokens,
        "output_tokens": request.output_tokens,
        "request_id": request.request_id,
    }


# tier --------------------------------------------------------------------------------------


@tier_app.command("show")
def tier_show(org: OrgArg, fmt: FormatOption = OutputFormat.table, database_url: DbOption = None) -> None:
    """The organisation's tier, its limits, and what the next tier still needs."""
    with _ledger(database_url) as ledger:
        status = ledger.tier_of(org)
    rows = []
    for label, tier in (("current", status.tier), ("next", status.next_tier)):
        if tier is not None:
            rows.append(
                {
                    "which": label,
                    "tier": tier.name,
                    "rpm": tier.requests_per_minute,
                    "tpm": tier.tokens_per_minute,
                    "monthly_limit": tier.monthly_limit,
                }
            )
    report = Report(
        f"Usage tier ({status.rules} rules)" if status.rules else "Usage tier (no tier rules set)",
        [
            Column("which", ""),
            Column("tier", "tier"),
            Column("rpm", "requests/min", "int"),
            Column("tpm", "tokens/min", "int"),
            Column("monthly_limit", "monthly ceiling", "money"),
        ],
        rows=rows,
        notes=[f"next tier needs: {need}" for need in status.missing],
        extra={"since": status.since, "missing": list(status.missing)},
    )
    _show(report, fmt, "USD")


@tier_app.command("set")
def tier_set(
    org: OrgArg,
    rules: Annotated[
        str, typer.Argument(help="openai, gemini, a registered rule set, or none to remove tiers")
    ],
    database_url: DbOption = None,
) -> None:
    """Apply a tier rule set to an organisation (it starts at the tier it qualifies for)."""
    remove = rules.strip().lower() == "none"
    with _ledger(database_url) as ledger:
        status = ledger.set_tier_rules(org, None if remove else rules)
    if remove:
        typer.echo("tier rules removed: no tier rate limits or monthly ceiling")
    else:
        typer.echo(f"tier rules {status.rules}: now {status.tier.name if status.tier else '—'}")


@tier_app.command("register")
def tier_register(
    name: Annotated[str, typer.Argument(help="a new rule set name")],
    file: Annotated[str, typer.Argument(help="TOML file shaped like kakin/ledger/presets/openai.toml")],
    database_url: DbOption = None,
) -> None:
    """Register a tier rule set of your own."""
    from kakin.cli.inputs import read_text_file

    if name.strip().lower() == "none":
        raise InvalidInput("'none' removes tiers in `kakin tier set`; give the rule set another name")
    text = read_text_file(file, "tier rules file")
    with _ledger(database_url) as ledger:
        rules = ledger.register_tier_rules(name, text)
    typer.echo(f"tier rules {rules.name} registered: {', '.join(t.name for t in rules.tiers)}")
