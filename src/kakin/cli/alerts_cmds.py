"""``kakin alerts …``: register webhook and e-mail channels and detector rules, list them,
send a test alert, and read the delivery log.

Registered on the main CLI as the ``alerts`` group. Every command opens the ledger database
(``--database-url``, else the configured one), migrating it if needed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kakin.errors import InvalidInput, KakinError

if TYPE_CHECKING:
    from kakin.alerts.store import AlertStore

group = typer.Typer(
    help="Alert channels (webhook, e-mail), rules and the delivery log.", no_args_is_help=True
)
_KINDS = "budget_threshold, token_threshold, model_threshold, credit_low, credit_expiring, runaway, test"


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="alerts")


DbOption = Annotated[
    str | None,
    typer.Option("--database-url", help="ledger database (default: configured KAKIN_DATABASE_URL)"),
]
KindOption = Annotated[
    list[str] | None,
    typer.Option("--kind", help=f"only these alert kinds (repeatable): {_KINDS}"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


class AlertsFormat(StrEnum):
    table = "table"
    json = "json"


# The --format every other listing takes (no CSV here: channels and rules nest).
FormatOption = Annotated[
    AlertsFormat, typer.Option("--format", "-f", help="table (for reading) or json (as --json)")
]


class DeliveryStatus(StrEnum):
    pending = "pending"
    retrying = "retrying"
    delivered = "delivered"
    failed = "failed"


def _store(database_url: str | None) -> AlertStore:
    from kakin.alerts.store import AlertStore
    from kakin.config import load_settings
    from kakin.ledger.db import make_engine, migrate

    url = database_url or load_settings().database.url
    engine = make_engine(url)
    migrate(engine)
    return AlertStore(engine)


def _org_store(database_url: str | None, org: str) -> tuple[AlertStore, str]:
    """The store, and the organisation's id given its id or its name (as every command takes it)."""
    from kakin.ledger.queries import org_row

    store = _store(database_url)
    with store.engine.connect() as conn:
        return store, org_row(conn, org)["id"]


def _fail(error: KakinError) -> typer.Exit:
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(2)


@group.command("add-webhook")
def add_webhook(
    org: Annotated[str, typer.Argument(help="organisation id or name")],
    url: Annotated[str, typer.Argument(help="http(s) URL that receives POSTed JSON")],
    name: Annotated[str, typer.Option(help="channel name, unique in the org")] = "webhook",
    kind: KindOption = None,
    database_url: DbOption = None,
) -> None:
    """Add a signed webhook. Prints the signing secret: store it in the receiver."""
    try:
        store, org_id = _org_store(database_url, org)
        channel = store.add_channel(org_id, "webhook", name, url, kinds=kind or ())
    except KakinError as error:
        raise _fail(error) from None
    typer.echo(f"channel {channel.id} ({channel.name}) → {channel.target}")
    typer.echo(f"signing secret: {channel.secret}")
    typer.echo("verify the Kakin-Signature header with it (see docs/alerts.md)")


@group.command("add-email")
def add_email(
    org: Annotated[str, typer.Argument(help="organisation id or name")],
    to: Annotated[str, typer.Argument(help="comma-separated recipient addresses")],
    name: Annotated[str, typer.Option(help="channel name, unique in the org")] = "email",
    smtp_host: Annotated[str, typer.Option(help="SMTP server")] = "127.0.0.1",
    smtp_port: Annotated[int, typer.Option(help="SMTP port")] = 25,
    sender: Annotated[str, typer.Option(help="From address")] = "kakin@localhost",
    starttls: Annotated[bool, typer.Option(help="upgrade with STARTTLS")] = False,
    username: Annotated[str | None, typer.Option(help="SMTP login")] = None,
    password_env: Annotated[
        str | None, typer.Option(help="environment variable holding the SMTP password (never stored)")
    ] = None,
    kind: KindOption = None,
    database_url: DbOption = None,
) -> None:
    """Add an e-mail channel sent through an SMTP server."""
    settings = {
        "host": smtp_host,
        "port": smtp_port,
        "sender": sender,
        "starttls": starttls,
        "username": username,
        "password_env": password_env,
    }
    try:
        store, org_id = _org_store(database_url, org)
        channel = store.add_channel(org_id, "email", name, to, settings=settings, kinds=kind or ())
    except KakinError as error:
        raise _fail(error) from None
    typer.echo(f"channel {channel.id} ({channel.name}) → {channel.target} via {smtp_host}:{smtp_port}")


@group.command("add-rule")
def add_rule(
    org: Annotated[str, typer.Argument(help="organisation id or name")],
    kind: Annotated[str, typer.Argument(help="runaway | credit_low | credit_expiring")],
    scope: Annotated[str, typer.Option(help="key | project | org (credit rules: org)")] = "key",
    ref: Annotated[str, typer.Option(help="one key/project id; empty = each of them")] = "",
    param: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=VALUE, repeatable: runaway window_minutes, baseline_hours, factor, floor_usd; "
            "credit_low min_usd, min_days; credit_expiring within_days"
        ),
    ] = None,
    auto_suspend: Annotated[bool, typer.Option(help="runaway on a key: suspend the key too")] = False,
    database_url: DbOption = None,
) -> None:
    """Add a detector rule (overrides kakin's defaults for that kind in this org)."""
    try:
        params = _params(param or [])
        if kind != "runaway" and scope == "key":
            scope = "org"
        store, org_id = _org_store(database_url, org)
        rule = store.add_rule(
            org_id, kind, scope=scope, scope_ref=ref, params=params, auto_suspend=auto_suspend
        )
    except KakinError as error:
        raise _fail(error) from None
    typer.echo(f"rule {rule.id}: {rule.kind} on {rule.scope} {rule.scope_ref or '(each)'} {rule.params}")


@group.command("list")
def list_(
    org: Annotated[str, typer.Argument(help="organisation id or name")],
    database_url: DbOption = None,
    as_json: JsonOption = False,
    fmt: FormatOption = AlertsFormat.table,
) -> None:
    """Channels and rules of an organisation."""
    import orjson

    store, org_id = _org_store(database_url, org)
    channels, rules = store.channels(org_id), store.rules(org_id)
    if as_json or fmt is AlertsFormat.json:
        out = {
            "channels": [
                {"id": c.id, "kind": c.kind, "name": c.name, "target": c.target, "kinds": list(c.kinds)}
                for c in channels
            ],
            "rules": [
                {
                    "id": r.id,
                    "kind": r.kind,
                    "scope": r.scope,
                    "scope_ref": r.scope_ref,
                    "params": r.params,
                    "auto_suspend": r.auto_suspend,
                }
                for r in rules
            ],
        }
        typer.echo(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
        return
    typer.echo(f"channels ({len(channels)}):")
    for c in channels:
        kinds = ",".join(c.kinds) or "all"
        typer.echo(f"  {c.id}  {c.kind:<7}  {c.name:<16}  {c.target}  [{kinds}]")
    typer.echo(f"rules ({len(rules)}; kinds without a rule use the defaults in docs/alerts.md):")
    for r in rules:
        suspend = "  auto-suspend" if r.auto_suspend else ""
        typer.echo(f"  {r.id}  {r.kind:<15}  {r.scope} {r.scope_ref or '(each)'}  {r.params}{suspend}")


@group.command("test")
def test(
    channel_id: Annotated[str, typer.Argument(help="channel id from `kakin alerts list`")],
    attempts: Annotated[int, typer.Option(min=1, max=10, help="attempts before giving up")] = 3,
    database_url: DbOption = None,
) -> None:
    """Send a test alert to one channel now and report each attempt."""
    from kakin.alerts.delivery import Dispatcher, RetryPolicy
    from kakin.alerts.model import Alert

    store = _store(database_url)
    try:
        channel = store.channel(channel_id)
    except KakinError as error:
        raise _fail(error) from None
    now = datetime.now(UTC)
    alert = Alert(
        kind="test",
        org_id=channel.org_id,
        scope="org",
        scope_ref="",
        dedupe_key=f"test:{channel.id}:{now.isoformat()}",
        title=f"test alert for channel {channel.name}",
        message=f"This is a test alert from kakin to channel {channel.name} ({channel.kind}).",
        occurred_at=now,
        severity="info",
    )
    dispatcher = Dispatcher(store, policy=RetryPolicy(max_attempts=attempts, base_seconds=1, max_seconds=4))
    alert_id = store.record_fired(alert)
    assert alert_id is not None  # the dedupe key is unique per call
    [delivery_id] = store.create_deliveries(alert_id, [channel])
    dispatcher.submit(delivery_id, channel, alert_id, alert)
    dispatcher.idle(timeout=120)
    dispatcher.close()
    for row in store.attempts(delivery_id):
        code = row["response_code"] if row["response_code"] is not None else "-"
        result = "ok" if row["ok"] else row["error"]
        typer.echo(f"attempt {row['attempt']}: {code} {result} ({row['duration_ms']} ms)")
    final = next(d for d in store.deliveries(channel.org_id, limit=20) if d.id == delivery_id)
    typer.echo(f"delivery {delivery_id}: {final.status}")
    if final.status != "delivered":
        raise typer.Exit(1)


@group.command("deliveries")
def deliveries(
    org: Annotated[str, typer.Argument(help="organisation id or name")],
    status: Annotated[DeliveryStatus | None, typer.Option(help="only deliveries in this state")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    database_url: DbOption = None,
    as_json: JsonOption = False,
    fmt: FormatOption = AlertsFormat.table,
) -> None:
    """The delivery log: newest first, with attempts, last response code and error."""
    import orjson

    from kakin.alerts.model import jsonable

    store, org_id = _org_store(database_url, org)
    rows = store.deliveries(org_id, status=status.value if status else None, limit=limit)
    if as_json or fmt is AlertsFormat.json:
        typer.echo(orjson.dumps([jsonable(_row(d)) for d in rows], option=orjson.OPT_INDENT_2).decode())
        return
    if not rows:
        typer.echo("no deliveries")
    for d in rows:
        code = d.last_code if d.last_code is not None else "-"
        error = f"  {d.last_error}" if d.last_error else ""
        typer.echo(
            f"{d.created_at:%Y-%m-%d %H:%M:%S}  {d.id}  {d.status:<9}  attempts={d.attempts}  code={code}  "
            f"{d.channel_name} ← {d.alert_kind}: {d.alert_title}{error}"
        )


def _row(d: Any) -> dict[str, Any]:
    return {name: getattr(d, name) for name in d.__slots__}


def _params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InvalidInput(f"--param must be NAME=VALUE, got {pair!r}")
        params[name.strip()] = value.strip()
    for name in ("window_minutes", "baseline_hours", "within_days"):
        if name in params:
            try:
                params[name] = int(params[name])
            except ValueError:
                raise InvalidInput(f"--param {name} must be a whole number, got {params[name]!r}") from None
    for name in ("factor", "floor_usd", "min_usd", "min_days"):
        if name in params:
            params[name] = str(Decimal(params[name])) if _is_number(params[name]) else params[name]
    return params


def _is_number(text: str) -> bool:
    try:
        Decimal(text)
    except ArithmeticError:
        return False
    return True
