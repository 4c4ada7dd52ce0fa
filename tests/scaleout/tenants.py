"""Tenants of a scale-out cluster: an organisation, a project and a key in the shared ledger,
SDK clients pointed at any gateway of the cluster, and the ledger's numbers read back."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import openai

from kakin.ledger import Balance, KeyRecord, Ledger, Org, Project, UsageRecord

from .cluster import Cluster


@dataclass
class Tenant:
    ledger: Ledger
    cluster: Cluster
    org: Org
    project: Project
    key: KeyRecord
    plaintext: str

    def client(self, gateway: int, **options: Any) -> openai.AsyncOpenAI:
        """The official OpenAI SDK, pointed at gateway ``gateway`` of the cluster."""
        options.setdefault("max_retries", 0)
        options.setdefault("timeout", 60)
        return openai.AsyncOpenAI(
            base_url=self.cluster[gateway].url + "/v1", api_key=self.plaintext, **options
        )

    def sync_client(self, gateway: int, **options: Any) -> openai.OpenAI:
        options.setdefault("max_retries", 0)
        options.setdefault("timeout", 60)
        return openai.OpenAI(base_url=self.cluster[gateway].url + "/v1", api_key=self.plaintext, **options)

    def usage(self) -> list[UsageRecord]:
        return self.ledger.usage(self.org.id)

    def balance(self) -> Balance:
        return self.ledger.balance(self.org.id)

    def recorded(self, request_ids: Iterable[str], timeout: float = 20) -> list[UsageRecord]:
        """The organisation's usage records once every one of ``request_ids`` is among them.

        A gateway may post a charge a moment after its response (from a journal), so the
        ledger is read until they are all there or ``timeout`` passes; then one more read
        after a short pause, so a charge posted twice would be seen too."""
        wanted = set(request_ids)
        deadline = time.monotonic() + timeout
        while True:
            records = self.usage()
            if wanted <= {r.request_id for r in records} or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        time.sleep(0.3)
        return self.usage()

    def probe(self, gateway: int, margin: Decimal) -> Any:
        """A request through ``gateway`` whose hold is all the organisation's credit but
        ``margin`` (gpt-4o output is $10 per million tokens; the probe's own input must cost
        less than the margin). Raises (402) if a hold of ``margin`` or more is still counted
        anywhere; the organisation needs no payment method, so that credit is its limit."""
        credit = self.balance().credit
        with self.sync_client(gateway) as client:
            return client.chat.completions.with_raw_response.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": "probe"}],
                max_tokens=int((credit - margin) / Decimal("0.00001")),
                extra_headers={"x-kakin-simulate": "tokens=1"},
            )

    def assert_reconciles(self) -> None:
        reconciliation = self.ledger.reconcile(self.org.id)
        assert reconciliation.ok, f"the ledger does not balance: {reconciliation.mismatches}"


def make_tenant(
    ledger: Ledger,
    cluster: Cluster,
    credit: Decimal | str | None = "5",
    *,
    payment_method: bool = False,
) -> Tenant:
    """An organisation (with ``credit`` of promotional credit), a project and a key."""
    org = ledger.create_org(
        "org-" + uuid.uuid4().hex[:10],
        payment_method=payment_method,
        payment_label="visa 4242" if payment_method else None,
    )
    if credit is not None:
        ledger.grant(org.id, "promotional", Decimal(credit), idempotency_key="start")
    project = ledger.create_project(org.id, "app")
    key, plaintext = ledger.create_key(project.id, "server")
    return Tenant(ledger, cluster, org, project, key, plaintext)
