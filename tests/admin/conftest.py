"""Admin API fixtures: the app over a real ledger on SQLite (a temporary file) and on
PostgreSQL (a schema of its own in the session's test database), driven through Starlette's
TestClient. ``changes`` records every ``on_change(kind, id)`` call."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kakin.admin import create_admin_app
from kakin.ledger import Ledger

ADMIN_KEY = "test-admin-key-5f1c0b"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="session")
def admin_pg_url(migrated_pg_schema: Callable[[str], str]) -> str:
    """A schema of our own in the session's PostgreSQL database, migrated once."""
    return migrated_pg_schema("admin")


def open_ledger(backend: str, request: pytest.FixtureRequest, folder: Path) -> Ledger:
    if backend == "sqlite":
        path = folder / "kakin.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return Ledger.open(f"sqlite:///{path}", migrate=False)
    return Ledger.open(request.getfixturevalue("admin_pg_url"), migrate=False)


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    with open_ledger(request.param, request, tmp_path) as opened:
        yield opened


@pytest.fixture()
def changes() -> list[tuple[str, str]]:
    return []


@pytest.fixture()
def client(ledger: Ledger, changes: list[tuple[str, str]]) -> Iterator[TestClient]:
    app = create_admin_app(
        ledger, admin_key=ADMIN_KEY, on_change=lambda kind, ident: changes.append((kind, ident))
    )
    with TestClient(app, headers=AUTH, raise_server_exceptions=True) as test_client:
        yield test_client


def unique(prefix: str) -> str:
    """A name no other test uses (PostgreSQL tests share one schema)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
