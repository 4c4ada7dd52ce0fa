"""The ledger's command groups, end to end through the real CLI app and database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kakin.cli import app

runner = CliRunner()


def kakin(db_url: str, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--database-url", db_url])
    return result.exit_code, result.output


def test_org_project_key_credit_budget_and_ledger_commands(db_url: str) -> None:
    ok = lambda *args: kakin(db_url, *args)  # noqa: E731
    code, out = ok(
        "org",
        "create",
        "acme",
        "--timezone",
        "Asia/Tokyo",
        "--phone",
        "+81 90-1234-5678",
        "--tier-rules",
        "gemini",
    )
    assert code == 0 and "acme" in out, out
    assert ok("project", "create", "acme", "web")[0] == 0
    code, out = ok("keys", "create", "web", "server", "--org", "acme", "--rpm", "60", "--expires-in", "30d")
    assert code == 0, out
    plaintext = next(line for line in out.splitlines() if line.startswith("kk-"))
    code, out = ok("keys", "list", "--org", "acme", "--format", "json")
    listed = json.loads(out)["rows"]
    assert code == 0 and len(listed) == 1 and plaintext not in out and listed[0]["status"] == "active"
    assert ok("credits", "grant", "acme", "--kind", "free_trial", "--amount", "5")[0] == 0
    code, out = ok(
        "credits", "grant", "acme", "--kind", "prepaid", "--amount", "10", "--idempotency-key", "p1"
    )
    assert code == 0 and "granted" in out
    code, out = ok(
        "credits", "grant", "acme", "--kind", "prepaid", "--amount", "10", "--idempotency-key", "p1"
    )
    assert "already granted" in out
    code, out = ok("credits", "list", "acme", "--format", "json")
    grants = json.loads(out)["rows"]
    assert [g["kind"] for g in grants] == ["free_trial", "prepaid"]  # consumption order
    code, out = ok("budget", "set", "acme", "--limit", "20", "--hard-cap", "--thresholds", "50,90")
    assert code == 0 and "hard cap" in out and "limit $20 per month" in out, out
    code, out = ok("budget", "list", "acme", "--format", "json")
    assert json.loads(out)["rows"][0]["limit"] == "20"
    code, out = ok("tier", "show", "acme", "--format", "json")
    assert json.loads(out)["rows"][0]["tier"] == "Tier 1"  # the prepayment did it
    code, out = ok("credits", "refund", grants[1]["id"])
    assert code == 0 and "$10 refunded" in out
    code, out = ok("ledger", "show", "acme", "--reconcile", "--format", "json")
    shown = json.loads(out)
    assert code == 0 and shown["reconciled"] is True
    assert [row["kind"] for row in shown["rows"]] == ["tier", "grant", "grant", "tier", "refund"]
    code, out = ok("org", "show", "acme", "--format", "json")
    credit = json.loads(out)[0]["rows"][0]
    assert code == 0 and credit["amount"] == "5" and credit["detail"] == "1 grant with credit left"


def test_user_errors_are_one_line_and_exit_2(db_url: str) -> None:
    assert kakin(db_url, "org", "create", "acme")[0] == 0
    for args, fragment in [
        (("org", "create", "acme"), "already exists"),
        (("org", "create", "tz", "--timezone", "Mars/Base"), "IANA"),
        (("credits", "grant", "acme", "--kind", "gift", "--amount", "5"), "not one of"),
        (("credits", "grant", "acme", "--kind", "promotional", "--amount", "-5"), "negative"),
        (("credits", "grant", "acme", "--kind", "free_trial", "--amount", "5"), "verified identity"),
        (("keys", "revoke", "key_missing"), "no key"),
        (("keys", "create", "prj_missing", "k"), "no project"),
        (("budget", "set", "acme", "--limit", "5", "--thresholds", "fifty"), "thresholds"),
        # finer than a picodollar: refused, not silently rounded
        (
            ("credits", "grant", "acme", "--kind", "prepaid", "--amount", "1.123456789012345"),
            "12 decimal places",
        ),
        (("budget", "set", "acme", "--limit", "0.0000000000001"), "12 decimal places"),
        (("keys", "rotate", "key_missing", "--grace", "forever"), "--grace"),
        (("org", "show", "nobody"), "no organisation"),
    ]:
        code, out = kakin(db_url, *args)
        assert code == 2, (args, out)
        assert fragment in out and out.count("\n") == 1, (args, out)
    code, out = kakin(db_url, "credits", "list", "acme", "--format", "json")
    assert json.loads(out)["rows"] == []  # the refused grants changed nothing
    code, out = kakin(
        db_url, "credits", "grant", "acme", "--kind", "prepaid", "--amount", "1.100000000000000"
    )
    assert code == 0 and "$1.1 granted" in out, out  # trailing zeros are not finer
    assert "never expires" in out and "—" not in out  # prepaid credit without an expiry


def test_second_org_with_the_same_phone_gets_no_free_grant_of_any_kind(db_url: str) -> None:
    """The issue's sequence through the CLI: free trial refused, then welcome credit refused
    too — the second organisation has no billing account and the phone had its free grant."""
    assert kakin(db_url, "org", "create", "main", "--phone", "+81 90-1234-5678")[0] == 0
    assert kakin(db_url, "credits", "grant", "main", "--kind", "free_trial", "--amount", "5")[0] == 0
    assert kakin(db_url, "org", "create", "alias", "--phone", "+819012345678")[0] == 0
    code, out = kakin(db_url, "credits", "grant", "alias", "--kind", "free_trial", "--amount", "5")
    assert code == 2 and "already received free trial credit with organisation 'main'" in out
    code, out = kakin(db_url, "credits", "grant", "alias", "--kind", "welcome", "--amount", "5")
    assert code == 2 and "one free grant per verified identity" in out, out
    code, out = kakin(db_url, "credits", "list", "alias", "--format", "json")
    assert code == 0 and json.loads(out)["rows"] == []
    # With a payment method on file the refusal does not ask for one.
    assert (
        kakin(db_url, "org", "create", "paying", "--phone", "+819012345678", "--payment-method", "visa")[0]
        == 0
    )
    code, out = kakin(db_url, "credits", "grant", "paying", "--kind", "welcome", "--amount", "5")
    assert code == 2 and "billed to its payment method" in out and "add a payment method" not in out, out
    # Another person, no payment method and no prepayment yet: no welcome credit either.
    assert kakin(db_url, "org", "create", "solo", "--phone", "+81 80-1111-2222")[0] == 0
    code, out = kakin(db_url, "credits", "grant", "solo", "--kind", "welcome", "--amount", "5")
    assert code == 2 and "no payment method on file, no prepayment" in out, out
    assert kakin(db_url, "org", "update", "solo", "--payment-method", "visa 4242")[0] == 0
    code, out = kakin(db_url, "credits", "grant", "solo", "--kind", "welcome", "--amount", "5")
    assert code == 0 and "welcome credit $5 granted" in out, out


def test_a_project_budget_takes_the_project_by_name(db_url: str) -> None:
    assert kakin(db_url, "org", "create", "acme")[0] == 0
    assert kakin(db_url, "org", "create", "other")[0] == 0
    code, out = kakin(db_url, "project", "create", "acme", "support-bot")
    project_id = out.split()[1]
    code, out = kakin(
        db_url, "budget", "set", "acme", "--limit", "5", "--scope", "project", "--ref", "support-bot"
    )
    assert code == 0 and project_id in out, out
    code, out = kakin(db_url, "budget", "list", "acme", "--format", "json")
    [budget] = json.loads(out)["rows"]
    assert budget["name"] == f"project {project_id} month spend" and budget["limit"] == "5"
    # another organisation's project by that name is not found there
    code, out = kakin(
        db_url, "budget", "set", "other", "--limit", "5", "--scope", "project", "--ref", "support-bot"
    )
    assert code == 2 and "no project 'support-bot'" in out, out


def test_tier_rules_can_be_removed_from_the_command_line(db_url: str) -> None:
    assert kakin(db_url, "org", "create", "acme", "--tier-rules", "openai")[0] == 0
    code, out = kakin(db_url, "tier", "set", "acme", "none")
    assert code == 0 and "removed" in out, out
    code, out = kakin(db_url, "org", "list", "--format", "json")
    assert json.loads(out)["rows"][0]["tier"] is None
    code, out = kakin(db_url, "budget", "list", "acme", "--format", "json")
    assert json.loads(out)["rows"] == []  # the tier's monthly ceiling went with it
    assert kakin(db_url, "tier", "set", "acme", "openai")[1].startswith("tier rules openai: now Free")


def test_keys_take_a_project_by_name_within_its_organisation(db_url: str) -> None:
    assert kakin(db_url, "org", "create", "acme")[0] == 0
    assert kakin(db_url, "project", "create", "acme", "web")[0] == 0
    assert kakin(db_url, "project", "create", "acme", "batch")[0] == 0
    assert kakin(db_url, "keys", "create", "web", "server", "--org", "acme")[0] == 0
    assert kakin(db_url, "keys", "create", "batch", "nightly", "--org", "acme")[0] == 0
    code, out = kakin(db_url, "keys", "list", "acme", "--project", "web", "--format", "json")
    assert code == 0 and [k["name"] for k in json.loads(out)["rows"]] == ["server"], out  # not an empty list
    for args in (("keys", "create", "web", "other"), ("keys", "list", "--project", "web")):
        code, out = kakin(db_url, *args)  # a name without its organisation: say so, not "no project"
        assert code == 2 and "name its organisation too (--org)" in out, (args, out)


def test_a_model_budget_names_a_model_the_gateway_serves(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KAKIN_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # the gateway's configuration: ./kakin.toml
    (tmp_path / "kakin.toml").write_text(
        '[gateway.aliases]\nfast = "gpt-4o-mini"\n\n'
        '[[gateway.routes]]\nalias = "cheap-chat"\ncheapest_of = ["gpt-4o-mini", "gpt-4.1-mini"]\n'
    )
    assert kakin(db_url, "org", "create", "acme")[0] == 0
    model_budget = ("budget", "set", "acme", "--limit", "5", "--scope", "model", "--ref")
    code, out = kakin(db_url, *model_budget, "gpt-4oo")
    assert code == 2 and out.count("\n") == 1, out
    assert "unknown model 'gpt-4oo'" in out and "closest known: gpt-4o" in out
    code, out = kakin(db_url, *model_budget, "fsat")
    assert code == 2 and "closest known: fast" in out, out  # the gateway's aliases are known names
    code, out = kakin(db_url, *model_budget, "cheap-chat")
    assert code == 2 and "routing rule" in out and "gpt-4o-mini, gpt-4.1-mini" in out, out
    code, out = kakin(db_url, "budget", "list", "acme", "--format", "json")
    assert json.loads(out)["rows"] == []  # nothing was written

    code, out = kakin(db_url, *model_budget, "gpt-4o-2024-08-06")
    assert code == 0 and "the catalog prices 'gpt-4o-2024-08-06' as gpt-4o" in out, out
    code, out = kakin(db_url, *model_budget, "fast")
    assert code == 0 and "'fast' is a gateway alias: the budget is set on its model, gpt-4o-mini" in out
    code, out = kakin(db_url, "budget", "list", "acme", "--format", "json")
    assert [row["name"] for row in json.loads(out)["rows"]] == [
        "model gpt-4o month spend",
        "model gpt-4o-mini month spend",
    ]
