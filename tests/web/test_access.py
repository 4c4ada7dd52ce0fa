"""Who sees what, over HTTP: sign-in with the admin key or a project key, the session
cookie's flags, the security headers, and a project key held to its project in pages, JSON
and CSV exports. A wrong or revoked key is refused."""

from __future__ import annotations

import csv
import io
import logging
import re
from contextlib import closing
from decimal import Decimal

import httpx
import pytest

from kakin.alerts import Alert
from kakin.alerts.store import AlertStore

from .conftest import ADMIN_KEY, NOW, OTHER_ORG_COST, TOTAL, WEB_TOTAL, Site


@pytest.fixture()
def site(any_site: Site) -> Site:
    """Every test here runs on SQLite and on PostgreSQL."""
    return any_site


PAGES = [
    "/",
    "/spend",
    "/spend?by=hour",
    "/breakdown",
    "/breakdown?by=unit",
    "/requests",
    "/alerts",
    "/savings",
]


def signed_in(site: Site, key: str) -> httpx.Client:
    client = httpx.Client(base_url=site.ui)
    answer = client.post("/signin", data={"key": key})
    assert answer.status_code == 303, answer.text
    return client


def test_root_leads_to_the_dashboard_and_signed_out_readers_to_the_form(site: Site) -> None:
    with httpx.Client(base_url=site.url) as client:
        assert client.get("/").headers["location"] == "/ui/"
        assert client.get("/ui").headers["location"].endswith("/ui/")
        assert client.get("/healthz").json() == {"status": "ok"}  # the gateway still answers beside it
        for page in PAGES:
            answer = client.get(f"/ui{page}")
            assert answer.status_code == 303 and answer.headers["location"] == "/ui/signin", page
        form = client.get("/ui/signin")
        assert form.status_code == 200 and 'type="password"' in form.text
        assert form.headers["content-security-policy"].startswith("default-src 'self'")


def test_the_session_cookie_is_httponly_samesite_strict_and_never_holds_the_key(site: Site) -> None:
    for key in (ADMIN_KEY, site.web_key):
        with httpx.Client(base_url=site.ui) as client:
            answer = client.post("/signin", data={"key": key})
            cookie = answer.headers["set-cookie"]
            assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
            assert key not in cookie and key.split("-")[-1] not in cookie
            page = client.get("/")
            assert page.status_code == 200 and key not in page.text
            assert key not in str(page.url)


def test_keys_never_reach_the_log(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        for key in (ADMIN_KEY, site.web_key, site.web_key + "x"):
            with httpx.Client(base_url=site.ui) as client:
                client.post("/signin", data={"key": key})
                client.get("/requests")
    assert "/ui/signin" in caplog.text  # the access log is on and was captured
    for key in (ADMIN_KEY, site.web_key):
        assert key not in caplog.text and key.split("-")[-1] not in caplog.text


def test_the_language_follows_the_browser_until_chosen(site: Site) -> None:
    with httpx.Client(base_url=site.ui, headers={"accept-language": "ja-JP,ja;q=0.9,en;q=0.5"}) as client:
        assert "サインイン" in client.get("/signin").text
        client.get("/prefs", params={"lang": "en", "next": "/ui/signin"})
        assert "Sign in" in client.get("/signin").text
        # The toggle only ever sends the reader back inside the dashboard.
        assert (
            client.get("/prefs", params={"next": "https://elsewhere.example/"}).headers["location"] == "/ui/"
        )


@pytest.mark.parametrize("key", ["", "wrong", "kk-aaaaaaaaaaaa-nottherightsecret", ADMIN_KEY + "x"])
def test_a_wrong_key_is_refused(site: Site, key: str) -> None:
    with httpx.Client(base_url=site.ui) as client:
        answer = client.post("/signin", data={"key": key})
        assert answer.status_code == 401 and "kakin_session" not in answer.headers.get("set-cookie", "")
        assert client.get("/").headers["location"] == "/ui/signin"


def test_an_oversized_sign_in_is_refused_unread(site: Site) -> None:
    with httpx.Client(base_url=site.ui) as client:
        answer = client.post("/signin", data={"key": ADMIN_KEY, "padding": "x" * 10_000})
        assert answer.status_code == 413 and "kakin_session" not in answer.headers.get("set-cookie", "")


def test_a_forged_cookie_is_refused(site: Site) -> None:
    with httpx.Client(base_url=site.ui, cookies={"kakin_session": "YWRtaW58OTk5OTk5OTk5OQ.AAAA"}) as client:
        assert client.get("/").headers["location"] == "/ui/signin"


def test_pages_send_the_content_security_policy(site: Site) -> None:
    with closing(signed_in(site, ADMIN_KEY)) as client:
        for page in [*PAGES, "/static/app.js", "/static/vendor/htmx.min.js"]:
            answer = client.get(page, params={"org": "tokyo"} if "static" not in page else None)
            assert answer.status_code == 200, page
            assert answer.headers["content-security-policy"].startswith("default-src 'self'"), page
            assert answer.headers["x-content-type-options"] == "nosniff"
            if "static" not in page:
                assert "<style" not in answer.text and " style=" not in answer.text, page
                assert "<script>" not in answer.text and "onclick" not in answer.text, page


def breakdown_csv(client: httpx.Client, **params: str) -> list[dict[str, str]]:
    answer = client.get("/breakdown", params={"format": "csv", **params})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(answer.text)))


def test_the_admin_sees_every_project_and_organisation(site: Site) -> None:
    with closing(signed_in(site, ADMIN_KEY)) as client:
        rows = breakdown_csv(client, org="tokyo", by="project")
        assert {r["name"] for r in rows} == {"web", "batch"}
        assert sum(Decimal(r["cost"]) for r in rows) == TOTAL
        assert {r["timezone"] for r in rows} == {"Asia/Tokyo"}
        far = breakdown_csv(
            client, org="elsewhere", by="project", **{"from": "2026-03-01", "to": "2026-03-15"}
        )
        assert [Decimal(r["cost"]) for r in far] == [OTHER_ORG_COST]


def test_a_project_key_sees_its_project_only(site: Site) -> None:
    with closing(signed_in(site, site.web_key)) as client:
        # Whatever the address asks for: another project, another organisation.
        for params in (
            {},
            {"project": "batch"},
            {"org": "elsewhere"},
            {"org": "elsewhere", "project": "far"},
        ):
            rows = breakdown_csv(client, by="project", **params)
            assert [(r["name"], Decimal(r["cost"])) for r in rows] == [("web", WEB_TOTAL)], params
            models = breakdown_csv(client, by="model", **params)
            assert {r["name"] for r in models} == {"gpt-4o"}, params
            document = client.get("/breakdown", params={"format": "json", "by": "key", **params}).json()
            assert [row["name"] for row in document["rows"]] == [
                f"server (kk-{site.web_key.split('-')[1]}-…)"
            ]
            assert document["timezone"] == "Asia/Tokyo"
        for page in PAGES:
            answer = client.get(page, params={"org": "elsewhere", "project": "batch"})
            assert answer.status_code == 200, page
            text = re.sub(r'href="[^"]*"', "", answer.text)  # links echo the address asked for
            for foreign in (
                "claude-sonnet",
                "elsewhere",
                "1.23",
                "worker",
                "0.0046",
                "tokyo at 80%",
                "starter",
            ):
                assert foreign not in text, (page, foreign)
        log = client.get("/requests", params={"format": "csv"}).text
        assert "req-1" not in log and "req-0" in log and "far-0" not in log
        # Another project's request, and another organisation's, are not found.
        assert client.get("/requests/req-1").status_code == 404
        assert client.get("/requests/far-0").status_code == 404
        assert client.get("/requests/req-0").status_code == 200
        overview = client.get("/").text
        assert "web monthly" in overview and "batch monthly" not in overview and ">monthly<" not in overview
        assert "starter" not in overview  # the organisation's credit


def test_a_project_key_sees_the_budgets_and_alerts_of_its_own_keys_only(site: Site) -> None:
    """A budget or an alert about a key belongs to the key's project: the web project's key
    sees the server key's, never the batch project's worker key's; the admin sees both."""
    worker = next(k for k in site.ledger.list_keys(site.tokyo_id) if k.name == "worker")
    store = AlertStore(site.ledger.engine)
    for key_id, name in ((site.web_key_id, "server cap"), (worker.id, "worker cap")):
        site.ledger.set_budget(site.tokyo_id, scope="key", scope_ref=key_id, limit="2", name=name)
        store.record_fired(
            Alert(
                kind="budget_threshold",
                org_id=site.tokyo_id,
                scope="key",
                scope_ref=key_id,
                dedupe_key=f"test:{name}",
                title=f"{name} at 80%",
                message=f"{name} at 80% of its monthly budget",
                occurred_at=NOW,
            )
        )
    with closing(signed_in(site, site.web_key)) as client:
        overview = client.get("/").text
        assert "server cap" in overview and "worker cap" not in overview
        alerts = client.get("/alerts").text
        assert "server cap at 80%" in alerts and "web at 80%" in alerts
        assert "worker cap at 80%" not in alerts and "tokyo at 80%" not in alerts
    with closing(signed_in(site, ADMIN_KEY)) as client:
        overview = client.get("/", params={"org": "tokyo"}).text
        assert "server cap" in overview and "worker cap" in overview
        assert "worker cap at 80%" in client.get("/alerts", params={"org": "tokyo"}).text


def test_a_revoked_key_is_refused_and_its_session_ends(site: Site) -> None:
    key, secret = site.ledger.create_key(site.ledger.get_project("web", site.tokyo_id).id, "short-lived")
    client = signed_in(site, secret)
    assert client.get("/").status_code == 200
    site.ledger.revoke_key(key.id)
    assert client.get("/").headers["location"] == "/ui/signin"
    with httpx.Client(base_url=site.ui) as fresh:
        assert fresh.post("/signin", data={"key": secret}).status_code == 401


def test_sign_out_ends_the_session(site: Site) -> None:
    client = signed_in(site, ADMIN_KEY)
    answer = client.post("/signout")
    assert answer.status_code == 303 and 'kakin_session=""' in answer.headers["set-cookie"]
    assert client.get("/").headers["location"] == "/ui/signin"


def test_bad_input_is_a_clear_400(site: Site) -> None:
    with closing(signed_in(site, ADMIN_KEY)) as client:
        answer = client.get("/breakdown", params={"org": "tokyo", "from": "yesterday"})
        assert answer.status_code == 400 and "YYYY-MM-DD" in answer.text
        assert client.get("/breakdown", params={"org": "tokyo", "by": "planet"}).status_code == 400
        assert client.get("/", params={"org": "nowhere"}).status_code == 404
