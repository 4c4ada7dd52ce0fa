"""Hard caps and credit: refused before spending, in each provider's error shape with a 402
and a message that says what ran out and how to continue; the ledger never passes the cap."""

from __future__ import annotations

from decimal import Decimal

import anthropic
import httpx
import openai
import pytest
from google.genai import errors as genai_errors
from google.genai import types

from .conftest import MakeTenant, Tenant

CHAT = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "one more, please"}],
    "max_tokens": 100,
}


def spend_until_refused(tenant: Tenant, limit: int = 100) -> openai.APIStatusError:
    client = tenant.openai()
    for _ in range(limit):
        try:
            client.chat.completions.create(**CHAT)
        except openai.APIStatusError as refused:
            return refused
    raise AssertionError(f"{limit} requests were all served")


def test_hard_cap_stops_spend_before_it_happens(tenant: Tenant) -> None:
    cap = Decimal("0.0003")
    budget = tenant.ledger.set_budget(tenant.org.id, period="month", limit=cap, hard_cap=True, name="monthly")
    refused = spend_until_refused(tenant)
    served = tenant.usage()
    assert len(served) >= 3
    assert refused.status_code == 402
    error = refused.body
    assert error["code"] == "budget_exceeded" and error["type"]
    message = error["message"]
    assert message.startswith("budget 'monthly' (organisation, month, hard cap $0.0003) has no room: spent $")
    assert "this request needs up to $" in message and "raise the limit with `kakin budget set`" in message
    balance = tenant.balance()
    assert balance.spent <= cap and balance.held == 0
    assert tenant.ledger.budget_status(budget.id).spent <= cap
    assert sum(r.cost for r in served) == balance.spent
    assert tenant.ledger.reconcile(tenant.org.id).ok


def test_hard_cap_refusal_in_anthropic_and_gemini_shapes(tenant: Tenant) -> None:
    tenant.ledger.set_budget(tenant.org.id, period="day", limit=Decimal("0.00001"), hard_cap=True)
    with pytest.raises(anthropic.APIStatusError) as anthropic_refusal:
        tenant.anthropic().messages.create(
            model="claude-sonnet-4-6", max_tokens=500, messages=[{"role": "user", "content": "hi"}]
        )
    assert anthropic_refusal.value.status_code == 402
    body = anthropic_refusal.value.body
    assert body["type"] == "error" and "has no room" in body["error"]["message"]

    gemini = tenant.genai()  # kept in a variable: the client closes its connections when collected
    with pytest.raises(genai_errors.ClientError) as gemini_refusal:
        gemini.models.generate_content(
            model="gemini-2.5-pro", contents="hi", config=types.GenerateContentConfig(max_output_tokens=2000)
        )
    assert gemini_refusal.value.code == 402 and "has no room" in gemini_refusal.value.message
    assert tenant.usage() == [] and tenant.balance().spent == 0


def test_credit_exhausted_without_payment_method(make_tenant: MakeTenant) -> None:
    tenant = make_tenant(credit="0.0003")
    refused = spend_until_refused(tenant)
    assert refused.status_code == 402 and refused.body["code"] == "insufficient_credit"
    message = refused.body["message"]
    assert f"organisation {tenant.org.name!r} is out of credit" in message
    assert "There is no payment method on file, so usage stops here" in message
    assert "--payment-method" in message and "this request needs up to $" in message
    balance = tenant.balance()
    assert len(tenant.usage()) >= 3
    assert balance.spent <= Decimal("0.0003") and balance.due == 0 and balance.held == 0
    assert balance.credit >= 0
    assert tenant.ledger.reconcile(tenant.org.id).ok


def test_no_credit_at_all_is_refused_at_the_first_request(make_tenant: MakeTenant) -> None:
    tenant = make_tenant(credit=None)
    with pytest.raises(openai.APIStatusError) as refused:
        tenant.openai().chat.completions.create(**CHAT)
    assert refused.value.status_code == 402 and "out of credit" in refused.value.message
    assert tenant.usage() == []


def test_payment_method_continues_on_postpaid(make_tenant: MakeTenant) -> None:
    tenant = make_tenant(credit="0.00005", payment_method=True)
    client = tenant.openai()
    for _ in range(8):
        client.chat.completions.create(**CHAT)
    balance = tenant.balance()
    records = tenant.usage()
    assert len(records) == 8
    assert balance.spent == sum(r.cost for r in records) > Decimal("0.00005")
    assert balance.credit == 0 and balance.due == balance.spent - Decimal("0.00005")
    assert tenant.ledger.reconcile(tenant.org.id).ok


LONG_PROMPT = "Please summarise the following notes for the weekly report. " * 600  # ~36 kB, ~7k tokens


def _long_request(max_tokens: int = 10) -> dict:
    return {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": LONG_PROMPT}],
        "max_tokens": max_tokens,
    }


def test_a_hold_too_large_on_the_quick_bound_is_retried_with_the_exact_count(make_tenant: MakeTenant) -> None:
    """Before forwarding, input is bounded by its UTF-8 length (no counting). When credit or
    a budget cannot take that bound but can take the exact count, the request is served."""
    from kakin.pricing import Usage, price
    from kakin.tokens import count_messages, quick_upper_bound

    request = _long_request()
    exact = count_messages(request["messages"], "gpt-4o").tokens
    quick = quick_upper_bound(request["messages"], "gpt-4o")
    assert quick is not None and quick > 3 * exact
    exact_bound = price(Usage(input_tokens=exact, output_tokens=10), "gpt-4o").total
    quick_bound = price(Usage(input_tokens=quick, output_tokens=10), "gpt-4o").total
    assert exact_bound * Decimal("1.5") < quick_bound
    tenant = make_tenant(credit=str(exact_bound * Decimal("1.5")))
    response = httpx.post(tenant.url + "/v1/chat/completions", json=request, headers=tenant.headers())
    assert response.status_code == 200, response.text
    assert Decimal(response.headers["x-kakin-reserved-usd"]) == exact_bound
    assert tenant.record(response.headers["x-kakin-request-id"]).input_tokens == exact
    # Then about half the exact bound is left: not enough even for the exact count.
    again = httpx.post(tenant.url + "/v1/chat/completions", json=request, headers=tenant.headers())
    assert again.status_code == 402 and again.json()["error"]["code"] == "insufficient_credit"


def test_a_token_rate_limit_is_checked_on_the_exact_count_when_the_quick_bound_is_over_it(
    make_tenant: MakeTenant,
) -> None:
    request = _long_request()
    tenant = make_tenant(tpm=12_000)  # above the exact count (~7k + 10), below the byte length (~36k)
    first = httpx.post(tenant.url + "/v1/chat/completions", json=request, headers=tenant.headers())
    assert first.status_code == 200, first.text
