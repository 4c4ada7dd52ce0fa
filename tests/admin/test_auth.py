"""The admin key: required on every call, compared in constant time, and an API that
refuses everything (503) when no key is configured. Also: mounting under /admin."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.routing import Mount

from kakin.admin import create_admin_app
from kakin.ledger import Ledger

from .conftest import ADMIN_KEY, AUTH
from .helpers import error_of, ok


@pytest.fixture()
def sqlite_ledger(tmp_path) -> Ledger:
    with Ledger.open(f"sqlite:///{tmp_path / 'kakin.db'}") as ledger:
        yield ledger


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": f"Basic {ADMIN_KEY}"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Bearer {ADMIN_KEY}x"},
    ],
    ids=["missing", "wrong", "not-bearer", "empty", "longer"],
)
def test_calls_without_the_admin_key_get_401_and_change_nothing(sqlite_ledger: Ledger, headers: dict) -> None:
    client = TestClient(create_admin_app(sqlite_ledger, admin_key=ADMIN_KEY))
    response = client.post("/orgs", json={"name": "acme"}, headers=headers)
    error = error_of(response, 401)
    assert error["type"] == "invalid_admin_key" and "KAKIN_ADMIN_KEY" in error["message"]
    assert response.headers["www-authenticate"].startswith("Bearer")
    # Even malformed bodies and unknown routes say 401 first: nothing is learnt without the key.
    error_of(client.post("/orgs", content=b"{not json", headers=headers), 401)
    error_of(client.get("/no-such-route", headers=headers), 401)
    assert sqlite_ledger.list_orgs() == []


def test_the_right_key_is_accepted(sqlite_ledger: Ledger) -> None:
    client = TestClient(create_admin_app(sqlite_ledger, admin_key=ADMIN_KEY))
    ok(client.post("/orgs", json={"name": "acme"}, headers=AUTH), 201)
    ok(client.get("/orgs", headers={"Authorization": f"bearer {ADMIN_KEY}"}))


def test_no_admin_key_configured_refuses_everything_with_503(sqlite_ledger: Ledger) -> None:
    client = TestClient(create_admin_app(sqlite_ledger, admin_key=""))
    for headers in ({}, {"Authorization": "Bearer "}, AUTH):
        error = error_of(client.post("/orgs", json={"name": "acme"}, headers=headers), 503)
        assert error["type"] == "admin_api_disabled" and "KAKIN_ADMIN_KEY" in error["message"]
    assert sqlite_ledger.list_orgs() == []
    # The document describes the API and holds no data: still served.
    assert client.get("/openapi.json").status_code == 200


def test_openapi_is_public_and_unknown_routes_are_404_in_the_error_shape(sqlite_ledger: Ledger) -> None:
    client = TestClient(create_admin_app(sqlite_ledger, admin_key=ADMIN_KEY))
    document = ok(client.get("/openapi.json"))
    assert document["components"]["securitySchemes"]["AdminKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "the admin key configured as KAKIN_ADMIN_KEY",
    }
    error = error_of(client.get("/nothing/here", headers=AUTH), 404)
    assert error["type"] == "not_found" and "/nothing/here" in error["message"]
    error = error_of(client.put("/orgs", headers=AUTH), 405)
    assert error["type"] == "method_not_allowed"


def test_mounted_under_admin(sqlite_ledger: Ledger) -> None:
    """How the gateway serves it: everything, the document included, lives under /admin."""
    admin = create_admin_app(sqlite_ledger, admin_key=ADMIN_KEY)
    outer = Starlette(routes=[Mount("/admin", app=admin)])
    client = TestClient(outer)
    document = ok(client.get("/admin/openapi.json"))
    assert document["servers"] == [{"url": "/admin"}]
    assert "/orgs" in document["paths"]
    error_of(client.get("/admin/orgs"), 401)
    created = ok(client.post("/admin/orgs", json={"name": "acme"}, headers=AUTH), 201)
    assert ok(client.get(f"/admin/orgs/{created['id']}", headers=AUTH))["name"] == "acme"
    error = error_of(client.get("/admin/nope", headers=AUTH), 404)
    assert "/admin/nope" in error["message"]
