"""``kakin alerts``: add channels and rules, list them, send a test alert to a real local
receiver, read the delivery log; bad input exits 2 with one line and writes nothing."""

from __future__ import annotations

import orjson
import pytest
import typer
from typer.testing import CliRunner

from kakin.alerts.signing import verify
from kakin.cli.alerts_cmds import register
from kakin.ledger.db import make_engine, migrate

from .conftest import add_org
from .servers import free_port, start_http_receiver, start_smtp

runner = CliRunner()


@pytest.fixture()
def cli(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = make_engine(url)
    migrate(engine)
    add_org(engine, "org_1")
    engine.dispose()
    app = typer.Typer()
    register(app)

    @app.callback()
    def root() -> None:
        """kakin"""

    def run(*args: str):
        return runner.invoke(app, ["alerts", *args, "--database-url", url])

    return run


def test_webhook_channel_test_and_delivery_log(cli):
    state, server = start_http_receiver([503, 200])
    added = cli("add-webhook", "org_1", state.url, "--name", "ops", "--kind", "runaway", "--kind", "test")
    assert added.exit_code == 0, added.output
    channel_id = added.output.split()[1]
    secret = added.output.split("signing secret: ")[1].split()[0]

    listed = cli("list", "org_1", "--json")
    channels = orjson.loads(listed.output)["channels"]
    assert channels == [
        {
            "id": channel_id,
            "kind": "webhook",
            "name": "ops",
            "target": state.url,
            "kinds": ["runaway", "test"],
        }
    ]

    tested = cli("test", channel_id)
    server.shutdown()
    assert tested.exit_code == 0, tested.output
    assert "attempt 1: 503 HTTP 503: nope" in tested.output
    assert "attempt 2: 200 ok" in tested.output
    assert tested.output.strip().endswith("delivered")
    body = state.received[-1].body
    verify(secret, state.received[-1].headers["Kakin-Signature"], body)
    assert orjson.loads(body)["type"] == "alert.test"

    log = cli("deliveries", "org_1")
    assert "delivered  attempts=2  code=200  ops ← test: test alert for channel ops" in log.output


def test_email_channel_receives_the_test_alert(cli):
    inbox, controller = start_smtp()
    try:
        added = cli(
            "add-email", "org_1", "ops@example.test", "--name", "mail", "--smtp-port", str(controller.port)
        )
        assert added.exit_code == 0, added.output
        tested = cli("test", added.output.split()[1])
    finally:
        controller.stop()
    assert tested.exit_code == 0, tested.output
    assert inbox.messages[0][1] == ["ops@example.test"]


def test_unreachable_channel_reports_failure_with_exit_1(cli):
    added = cli("add-webhook", "org_1", f"http://127.0.0.1:{free_port()}/x")
    tested = cli("test", added.output.split()[1], "--attempts", "1")
    assert tested.exit_code == 1
    assert "ConnectError" in tested.output and tested.output.strip().endswith("failed")
    failed = orjson.loads(cli("deliveries", "org_1", "--status", "failed", "--json").output)
    assert [d["status"] for d in failed] == ["failed"]
    assert orjson.loads(cli("deliveries", "org_1", "--status", "failed", "--format", "json").output) == failed
    typo = cli("deliveries", "org_1", "--status", "faild")  # not an empty log that hides the typo
    assert typo.exit_code == 2 and "'faild' is not one of" in typo.output


def test_rules_and_bad_input(cli):
    ok = cli(
        "add-rule", "org_1", "runaway", "--param", "factor=15", "--param", "floor_usd=2", "--auto-suspend"
    )
    assert ok.exit_code == 0, ok.output
    credit = cli("add-rule", "org_1", "credit_low", "--param", "min_usd=10")
    assert credit.exit_code == 0, credit.output
    listed = cli("list", "org_1").output
    assert "runaway" in listed and "auto-suspend" in listed and "credit_low" in listed

    bad = cli("add-rule", "org_1", "runaway", "--param", "window_minutes=soon")
    assert bad.exit_code == 2
    assert "window_minutes must be a whole number" in bad.output
    bad_url = cli("add-webhook", "org_1", "not a url")
    assert bad_url.exit_code == 2 and "webhook URL must be http(s)://host/path" in bad_url.output
    missing = cli("test", "ach_nope")
    assert missing.exit_code == 2 and "no alert channel 'ach_nope'" in missing.output
    assert len(orjson.loads(cli("list", "org_1", "--json").output)["rules"]) == 2
    # the --format every other listing takes
    assert orjson.loads(cli("list", "org_1", "-f", "json").output) == orjson.loads(
        cli("list", "org_1", "--json").output
    )


def test_an_organisation_is_found_by_its_name_too(tmp_path) -> None:
    from kakin.cli import app

    url = f"sqlite:///{tmp_path / 'named.db'}"
    assert runner.invoke(app, ["org", "create", "acme", "--database-url", url]).exit_code == 0
    added = runner.invoke(
        app, ["alerts", "add-webhook", "acme", "https://example.test/k", "--database-url", url]
    )
    assert added.exit_code == 0, added.output
    listed = orjson.loads(
        runner.invoke(app, ["alerts", "list", "acme", "--json", "--database-url", url]).output
    )
    assert [c["target"] for c in listed["channels"]] == ["https://example.test/k"]
    unknown = runner.invoke(app, ["alerts", "list", "acne", "--database-url", url])
    assert unknown.exit_code == 2 and "no organisation with id or name 'acne'" in unknown.output
