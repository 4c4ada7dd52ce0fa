"""Small steps the admin tests share: make an organisation with a project and a key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

from .conftest import unique


@dataclass
class Tenant:
    org: dict[str, Any]
    project: dict[str, Any]
    key: dict[str, Any]
    plaintext: str


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def tenant(client: TestClient, **org_fields: Any) -> Tenant:
    org = ok(client.post("/orgs", json={"name": unique("org"), **org_fields}), 201)
    project = ok(client.post(f"/orgs/{org['id']}/projects", json={"name": "chatbot"}), 201)
    created = ok(client.post(f"/projects/{project['id']}/keys", json={"name": "prod"}), 201)
    return Tenant(org, project, created["key"], created["plaintext"])


def grant(client: TestClient, org_id: str, amount: str, key: str, kind: str = "prepaid") -> dict[str, Any]:
    return ok(
        client.post(
            f"/orgs/{org_id}/grants", json={"kind": kind, "amount": amount}, headers={"Idempotency-Key": key}
        ),
        201,
    )


def error_of(response: Any, status: int) -> dict[str, str]:
    """The error body, after checking the status and the shared shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}, body
    assert body["error"]["message"]
    return body["error"]
