"""Changes made through one process's admin API take effect on every other process at its
very next request: a revoked or suspended key is refused there, an unsuspended key served, a
lowered budget and an added grant honoured.

Each case first sends a request through gateway B, so whatever B remembers about the key,
the organisation and its budgets is fresh; then changes it through gateway A's admin API; then
sends B's next request at once. A gateway that answered from what it remembered (a key or an
account view kept for a while) would serve the revoked key, pass the lowered budget or refuse
the new credit, and the test would fail."""

from __future__ import annotations

from decimal import Decimal

import openai
import pytest

from .conftest import MakeTenant
from .tenants import Tenant

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

A, B = 0, 1


def ask(tenant: Tenant, gateway: int, max_tokens: int = 20) -> object:
    """One request through ``gateway``: the raw response, or the APIStatusError refusing it."""
    client = tenant.sync_client(gateway)
    try:
        return client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}], max_tokens=max_tokens
        )
    except openai.APIStatusError as refused:
        return refused
    finally:
        client.close()


def list_models(tenant: Tenant, gateway: int) -> object:
    """A request that is not billed (it takes no hold): the model list, or its refusal."""
    client = tenant.sync_client(gateway)
    try:
        return client.models.list()
    except openai.APIStatusError as refused:
        return refused
    finally:
        client.close()


def fresh(tenant: Tenant, gateway: int) -> str:
    """Two requests through ``gateway``: the first may be slow (a process's first request loads
    what it needs), so the second is the one after which what it remembers is fresh."""
    served(ask(tenant, gateway))
    return served(ask(tenant, gateway))


def served(result: object) -> str:
    assert not isinstance(result, openai.APIStatusError), f"refused: {result.status_code} {result.message}"
    return result.headers["x-kakin-request-id"]  # type: ignore[attr-defined]


def refused(result: object, status: int) -> openai.APIStatusError:
    assert isinstance(result, openai.APIStatusError), "served, but the change should have refused it"
    assert result.status_code == status, result.message
    return result


def test_a_key_revoked_on_one_process_is_refused_on_another_at_once(tenant_of: MakeTenant) -> None:
    tenant = tenant_of()
    first = fresh(tenant, B)
    with tenant.cluster.admin(A) as admin:
        admin.post(f"/keys/{tenant.key.id}/revoke").raise_for_status()
    # B's next request, billed or not, is refused.
    assert "revoked" in refused(list_models(tenant, B), 401).message
    assert "revoked" in refused(ask(tenant, B), 401).message
    # Nothing was billed for the refused request.
    assert len(tenant.recorded([first])) == 2  # the two before the revocation
    tenant.assert_reconciles()


def test_a_key_suspended_on_one_process_is_refused_on_another_and_unsuspended_at_once(
    tenant_of: MakeTenant,
) -> None:
    tenant = tenant_of()
    first = fresh(tenant, B)
    with tenant.cluster.admin(A) as admin:
        admin.post(f"/keys/{tenant.key.id}/suspend", json={"reason": "spend spike under review"})
        assert "spend spike under review" in refused(list_models(tenant, B), 403).message
        assert "spend spike under review" in refused(ask(tenant, B), 403).message
        admin.post(f"/keys/{tenant.key.id}/unsuspend").raise_for_status()
    last = served(ask(tenant, B))
    assert {first, last} <= {r.request_id for r in tenant.recorded([first, last])}
    assert len(tenant.usage()) == 3  # the two before the suspension, the one after
    tenant.assert_reconciles()


def test_a_budget_lowered_on_one_process_is_honoured_by_another_at_once(tenant_of: MakeTenant) -> None:
    tenant = tenant_of()
    budget = {"scope": "project", "scope_ref": tenant.project.id, "period": "month", "hard_cap": True}
    with tenant.cluster.admin(A) as admin:
        admin.post(f"/orgs/{tenant.org.id}/budgets", json={**budget, "limit": "1"}).raise_for_status()
        first = fresh(tenant, B)
        # Lowered to what was spent plus less than one more request's hold (about $0.000014).
        spent = sum(r.cost for r in tenant.recorded([first]))
        lowered = str(spent + Decimal("0.000005"))
        admin.post(f"/orgs/{tenant.org.id}/budgets", json={**budget, "limit": lowered}).raise_for_status()
    refusal = refused(ask(tenant, B), 402)
    assert "no room" in refusal.message
    assert tenant.balance().spent == spent <= Decimal(lowered)
    tenant.assert_reconciles()


def test_a_grant_added_on_one_process_is_honoured_by_another_at_once(tenant_of: MakeTenant) -> None:
    tenant = tenant_of(credit="0.000001")  # less than one request's hold, no payment method
    refused(ask(tenant, B), 402)
    refused(ask(tenant, B), 402)
    with tenant.cluster.admin(A) as admin:
        admin.post(
            f"/orgs/{tenant.org.id}/grants",
            json={"kind": "promotional", "amount": "1"},
            headers={"Idempotency-Key": "top-up"},
        ).raise_for_status()
    request_id = served(ask(tenant, B))
    [record] = tenant.recorded([request_id])
    assert record.request_id == request_id and record.cost > 0
    tenant.assert_reconciles()
