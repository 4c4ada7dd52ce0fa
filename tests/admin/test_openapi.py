"""The OpenAPI document is complete and true.

Complete: every operation has a summary, a description, typed request and response models
with examples, and declares its error statuses with the shared error model. True:
schemathesis generates requests from the document (valid and invalid ones) against a ledger
holding real data, on SQLite and PostgreSQL, and checks that nothing answers 5xx and that
every response's status code, content type and body are the ones documented.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from sqlalchemy import create_engine

from kakin.admin import create_admin_app
from kakin.ledger import Ledger

from .conftest import ADMIN_KEY, AUTH, open_ledger
from .helpers import grant, ok, tenant

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    with Ledger.open(f"sqlite:///{tmp_path_factory.mktemp('doc') / 'kakin.db'}") as ledger:
        return TestClient(create_admin_app(ledger, admin_key=ADMIN_KEY)).get("/openapi.json").json()


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield method, path, item[method]


def test_every_operation_is_documented(document: dict[str, Any]) -> None:
    operations = list(_operations(document))
    assert len(operations) >= 35
    for method, path, operation in operations:
        where = f"{method.upper()} {path}"
        assert operation.get("summary") and len(operation.get("description", "")) > 20, where
        responses = operation["responses"]
        successes = [status for status in responses if status.startswith("2")]
        assert successes, where
        for status in successes:
            assert responses[status]["content"]["application/json"]["schema"], where
        for status in ("401", "503"):
            assert status in responses, where
        has_input = bool(operation.get("parameters") or operation.get("requestBody"))
        assert ("422" in responses) == has_input, where
        for status, response in responses.items():
            if status[0] in "45":
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (where, status)
                assert response["description"], (where, status)
        assert "HTTPValidationError" not in str(responses), where


def test_models_carry_examples(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    bodies = {
        _ref(op["requestBody"]["content"]["application/json"]["schema"])
        for _method, _path, op in _operations(document)
        if "requestBody" in op and "application/json" in op["requestBody"]["content"]  # not file uploads
    }
    assert len(bodies) >= 17
    for name in bodies:
        assert schemas[name]["examples"], name
        assert schemas[name]["additionalProperties"] is False, name
    for name, schema in schemas.items():
        if name.endswith("Out"):
            assert any("examples" in field for field in schema["properties"].values()), name
    amount = schemas["GrantCreate"]["properties"]["amount"]
    assert amount["type"] == "string" and amount["pattern"]
    assert schemas["ErrorResponse"]["properties"]["error"] == {"$ref": "#/components/schemas/ErrorDetail"}
    assert set(schemas["ErrorDetail"]["required"]) == {"type", "message"}


def _ref(schema: dict[str, Any]) -> str:
    """The component a body refers to (optional bodies wrap it in anyOf with null)."""
    for candidate in [schema, *schema.get("anyOf", [])]:
        if "$ref" in candidate:
            return candidate["$ref"].rsplit("/", 1)[1]
    raise AssertionError(f"request body without a model: {schema}")


# -- property-based conformance (schemathesis) ------------------------------------------------


class Seeded:
    """Real ids substituted into every other generated request, so generated calls reach the
    code behind the 404s: an organisation named like the document's example, a project, a
    key, a prepaid grant, a held reservation, a budget and an alert channel."""

    def __init__(self, client: TestClient) -> None:
        t = tenant(client, payment_method="card")
        self.org = t.org["id"]
        first = grant(client, self.org, "50", "seed-grant")
        held = ok(
            client.post(
                "/reservations",
                json={"project_id": t.project["id"], "model": "m", "amount": "0.5"},
                headers={"Idempotency-Key": "seed-res"},
            ),
            201,
        )
        budget = ok(client.post(f"/orgs/{self.org}/budgets", json={"limit": "100"}))
        channel = ok(
            client.post(
                f"/orgs/{self.org}/alerts/channels",
                json={"kind": "webhook", "name": "seed", "target": "http://127.0.0.1:9/hook"},
            ),
            201,
        )
        self.ids = {
            "org": self.org,
            "project_id": t.project["id"],
            "key_id": t.key["id"],
            "grant_id": first["id"],
            "reservation_id": held["id"],
            "budget_id": budget["id"],
            "channel_id": channel["id"],
        }
        self._turn = itertools.count()

    def apply(self, case: schemathesis.Case) -> None:
        negative = case.meta is not None and case.meta.generation.mode.is_negative
        if negative or next(self._turn) % 2:
            return  # a real id would make an invalid request valid
        for name in list(case.path_parameters or {}):
            if name in self.ids:
                case.path_parameters[name] = self.ids[name]
        if isinstance(case.body, dict):
            for name in ("project_id", "key_id"):
                if isinstance(case.body.get(name), str):
                    case.body[name] = self.ids[name]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def admin_app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One seeded app per backend, shared by every operation's generated requests (what one
    operation changes, e.g. a revoked key, is simply the state the next one meets)."""
    with open_ledger(request.param, request, tmp_path_factory.mktemp("fuzz")) as ledger:
        app = create_admin_app(ledger, admin_key=ADMIN_KEY)
        with TestClient(app, headers=AUTH) as client:
            app.state.seeded = Seeded(client)
        yield app


# Not positive_data_acceptance: valid-looking input the ledger refuses on meaning (an unknown
# timezone, a payment above the amount due) is a documented 422, not a failure.
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
]

# The document does not depend on the data, so it is loaded once from an app over a ledger
# that is never used; each test then calls an app over a real, seeded ledger.
schema = schemathesis.openapi.from_dict(
    create_admin_app(Ledger(create_engine("sqlite://")), admin_key=ADMIN_KEY).openapi()
)
# Unknown query parameters are ignored, as most HTTP APIs do, so they are not generated as
# "negative" data; generation is deterministic so a run is repeatable.
schema.config.generation.update(
    max_examples=8, database="none", deterministic=True, allow_extra_parameters=False
)
schema.config.checks.update(included_check_names=CHECKS)


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_generated_requests_conform(case: schemathesis.Case, admin_app: Any) -> None:
    admin_app.state.seeded.apply(case)
    case.call_and_validate(app=admin_app, headers=AUTH)


def test_every_operation_is_in_the_guide(document: dict[str, Any]) -> None:
    guide = (Path(__file__).parents[2] / "docs" / "admin.md").read_text(encoding="utf-8")
    missing = [f"{m.upper()} {p}" for m, p, _op in _operations(document) if f"{m.upper()} {p}" not in guide]
    assert not missing, f"docs/admin.md does not describe {missing}"
