"""Gateway fixtures: a real ledger, a running gateway on 127.0.0.1 in front of the built-in
simulator, and tenants (organisation with a phone and credit, project, key) to call it with.

One gateway per test module keeps the suite fast; every test gets tenants of its own, so
``ledger.usage(org)`` and ``ledger.balance(org)`` only ever show that test's traffic.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import types as genai_types

from kakin.config import load_settings
from kakin.ledger import Balance, KeyRecord, Ledger, Org, Project, UsageRecord
from kakin.server import RunningGateway, start_in_thread


@dataclass
class Tenant:
    """One organisation's view of the gateway: its ids, its key, and SDK clients using it."""

    ledger: Ledger
    gateway: RunningGateway
    org: Org
    project: Project
    key: KeyRecord
    plaintext: str

    @property
    def url(self) -> str:
        return self.gateway.url

    def openai(self, **options: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=self.plaintext, max_retries=0, **options)

    def async_openai(self, **options: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=self.plaintext, max_retries=0, **options)

    def anthropic(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key=self.plaintext, max_retries=0)

    def async_anthropic(self) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(base_url=self.url, api_key=self.plaintext, max_retries=0)

    def genai(self) -> genai.Client:
        options = genai_types.HttpOptions(base_url=self.url, api_version="v1beta")
        return genai.Client(api_key=self.plaintext, http_options=options)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.plaintext}"}

    def usage(self) -> list[UsageRecord]:
        return self.ledger.usage(self.org.id)

    def record(self, request_id: str) -> UsageRecord:
        """The usage record of one request, by the x-kakin-request-id the gateway answered with."""
        found = [r for r in self.usage() if r.request_id == request_id]
        assert len(found) == 1, f"expected one usage record for {request_id}, found {len(found)}"
        return found[0]

    def balance(self) -> Balance:
        return self.ledger.balance(self.org.id)

    def assert_nothing_held(self) -> None:
        """No hold is left behind, in the ledger or in the gateway's memory.

        First the ledger shows nothing held (a voided hold is released without waiting for its
        commit, hence the wait). Then a probe request whose worst case needs all the credit but
        $0.0001 must be served: any hold left in the gateway's memory larger than that would
        make it refuse. Call it last: the probe is billed (one output token)."""
        deadline = time.monotonic() + 5
        while self.balance().held != 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        balance = self.balance()
        assert balance.held == 0
        assert not balance.payment_method, "the probe needs credit to be the limit"
        # gpt-4o output is $10 per million tokens; the probe's few input tokens cost < $0.0001.
        max_tokens = int((balance.credit - Decimal("0.0001")) / Decimal("0.00001"))
        probe = httpx.post(
            self.url + "/v1/chat/completions",
            json={
                "model": "gpt-4o",
                "messages": [{"role": "user", "content": "probe"}],
                "max_tokens": max_tokens,
            },
            headers={**self.headers(), "x-kakin-simulate": "tokens=1"},
            timeout=10,
        )
        assert probe.status_code == 200, probe.text

    def new_key(self, name: str = "", **options: Any) -> tuple[KeyRecord, str]:
        return self.ledger.create_key(self.project.id, name or "key-" + uuid.uuid4().hex[:8], **options)


MakeTenant = Callable[..., Tenant]


def random_phone() -> str:
    """A valid Japanese mobile number nobody else in the test run uses (one free grant each)."""
    return f"+81 90-{secrets.randbelow(9000) + 1000}-{secrets.randbelow(9000) + 1000}"


def tenant_factory(ledger: Ledger, gateway: RunningGateway) -> MakeTenant:
    def make(
        credit: Decimal | str | None = "5",
        *,
        payment_method: bool = False,
        **key_options: Any,
    ) -> Tenant:
        name = "org-" + uuid.uuid4().hex[:10]
        org = ledger.create_org(
            name,
            phone=random_phone(),
            payment_method=payment_method,
            payment_label="visa 4242" if payment_method else None,
        )
        if credit is not None:
            ledger.grant(
                org.id, "free_trial", Decimal(credit), idempotency_key="trial", expires_in=90 * 86400
            )
        project = ledger.create_project(org.id, "bot")
        key, plaintext = ledger.create_key(project.id, "server", **key_options)
        return Tenant(ledger, gateway, org, project, key, plaintext)

    return make


class SettledLedger:
    """The test's ledger, read only after the gateway has posted every charge it made: in
    local accounting a charge is durable in the journal when the response ends and reaches
    the ledger moments later."""

    def __init__(self, ledger: Ledger, gateway: RunningGateway) -> None:
        self._ledger = ledger
        self._gateway = gateway

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._ledger, name)
        if not callable(attribute) or name == "close":
            return attribute

        def settled_first(*args: Any, **kwargs: Any) -> Any:
            if self._gateway._thread.is_alive():
                self._gateway.gateway.settled()
            return attribute(*args, **kwargs)

        return settled_first


def start_gateway(database_url: str, **env: str) -> tuple[Ledger, RunningGateway]:
    settings = load_settings(env={"KAKIN_DATABASE_URL": database_url, **env})
    ledger = Ledger.open(database_url, hold_seconds=settings.gateway.hold_seconds)
    gateway = start_in_thread(settings, ledger)
    return SettledLedger(ledger, gateway), gateway  # type: ignore[return-value]


@contextmanager
def gateway_running(database_url: str, **env: str) -> Iterator[tuple[Ledger, RunningGateway]]:
    """``start_gateway``, stopped and its ledger closed on leaving."""
    ledger, gateway = start_gateway(database_url, **env)
    try:
        yield ledger, gateway
    finally:
        gateway.stop()
        ledger.close()


@pytest.fixture(scope="module", params=["local", "shared"])
def running(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Ledger, RunningGateway]]:
    """A SQLite ledger of this module's own and a gateway over it, once per accounting mode
    (local: holds in the gateway's memory; shared: holds are ledger reservations). A 64 KiB
    body limit (for 413s); an upstream silent for 1.5 s counts as timed out (for 504s), or for
    the module's ``UPSTREAM_TIMEOUT_SECONDS`` when it sets one."""
    path: Path = tmp_path_factory.mktemp("gateway") / "kakin.db"
    with gateway_running(
        f"sqlite:///{path}",
        KAKIN_GATEWAY__ACCOUNTING=request.param,
        KAKIN_SERVER__MAX_BODY_BYTES="65536",
        KAKIN_GATEWAY__UPSTREAM_TIMEOUT_SECONDS=str(getattr(request.module, "UPSTREAM_TIMEOUT_SECONDS", 1.5)),
    ) as running:
        yield running


@pytest.fixture()
def make_tenant(running: tuple[Ledger, RunningGateway]) -> MakeTenant:
    """``make_tenant(credit="5", payment_method=False, **create_key_options)``."""
    return tenant_factory(*running)


@pytest.fixture()
def tenant(make_tenant: MakeTenant) -> Tenant:
    """An organisation with a phone, $5 of free-trial credit, no payment method; a project; a key."""
    return make_tenant()


@pytest.fixture(scope="session")
def gateway_pg_url(migrated_pg_schema: Callable[[str], str]) -> str:
    """A schema of our own in the session's PostgreSQL database, migrated once."""
    return migrated_pg_schema("gateway")
