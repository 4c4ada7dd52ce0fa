"""Retries with the same Idempotency-Key are billed once and get the first answer back;
response-cache hits are free and recorded with the amount they saved."""

from __future__ import annotations

import threading
import time
import uuid

import httpx
import openai
import pytest

from .conftest import Tenant

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "bill me once"}], "max_tokens": 60}


def test_retry_with_same_idempotency_key_is_billed_once(tenant: Tenant) -> None:
    client = tenant.openai()
    key = {"Idempotency-Key": "retry-" + uuid.uuid4().hex}
    first = client.chat.completions.with_raw_response.create(**CHAT, extra_headers=key)
    again = client.chat.completions.with_raw_response.create(**CHAT, extra_headers=key)
    assert again.headers["x-kakin-idempotent-replay"] == "true"
    assert again.http_response.content == first.http_response.content
    assert again.parse().id == first.parse().id
    [record] = tenant.usage()
    assert record.request_id == first.headers["x-kakin-request-id"]
    assert tenant.balance().spent == record.cost > 0

    other = client.chat.completions.with_raw_response.create(
        **CHAT, extra_headers={"Idempotency-Key": "other-" + uuid.uuid4().hex}
    )
    assert "x-kakin-idempotent-replay" not in other.headers
    assert len(tenant.usage()) == 2


def test_streamed_retry_replays_the_stream(tenant: Tenant) -> None:
    client = tenant.openai()
    key = {"Idempotency-Key": "stream-" + uuid.uuid4().hex}
    request = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    first = list(client.chat.completions.create(**request, extra_headers=key))
    again = list(client.chat.completions.create(**request, extra_headers=key))
    assert [c.model_dump() for c in again] == [c.model_dump() for c in first]
    assert len(tenant.usage()) == 1


def test_concurrent_duplicate_is_refused_while_the_first_runs(tenant: Tenant) -> None:
    headers = {
        **tenant.headers(),
        "Idempotency-Key": "dup-" + uuid.uuid4().hex,
        "x-kakin-simulate": "latency=400ms",
    }
    statuses: list[int] = []

    def send() -> None:
        response = httpx.post(tenant.url + "/v1/chat/completions", json=CHAT, headers=headers, timeout=10)
        statuses.append(response.status_code)

    first = threading.Thread(target=send)
    first.start()
    time.sleep(0.15)  # the first is now waiting on the upstream
    send()
    first.join()
    assert sorted(statuses) == [200, 409]
    assert len(tenant.usage()) == 1


def test_cache_hits_are_free_and_record_the_saving(tenant: Tenant) -> None:
    client = tenant.openai()
    cached = {"x-kakin-cache": "on"}
    request = {**CHAT, "messages": [{"role": "user", "content": "FAQ " + uuid.uuid4().hex}]}
    miss = client.chat.completions.with_raw_response.create(**request, extra_headers=cached)
    hit = client.chat.completions.with_raw_response.create(**request, extra_headers=cached)
    assert "x-kakin-cache" not in miss.headers and hit.headers["x-kakin-cache"] == "hit"
    assert hit.parse().choices[0].message.content == miss.parse().choices[0].message.content
    assert hit.headers["x-kakin-cost-usd"] == "0"
    billed = tenant.record(miss.headers["x-kakin-request-id"])
    free = tenant.record(hit.headers["x-kakin-request-id"])
    assert free.cache_hit and free.cost == 0 and free.cache_saved == billed.cost > 0
    assert tenant.balance().spent == billed.cost

    # Without the header the same request goes upstream and is billed again.
    client.chat.completions.create(**request)
    assert len(tenant.usage()) == 3 and tenant.balance().spent == 2 * billed.cost


def test_streamed_cache_hit(tenant: Tenant) -> None:
    client = tenant.openai()
    request = {
        **CHAT,
        "messages": [{"role": "user", "content": "stream FAQ " + uuid.uuid4().hex}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    first = list(client.chat.completions.create(**request, extra_headers={"x-kakin-cache": "on"}))
    second = list(client.chat.completions.create(**request, extra_headers={"x-kakin-cache": "on"}))
    # The same answer, without the first one's receipt (the hit is free: it has none).
    answer = [c.model_dump() for c in first]
    assert answer[-1].pop("kakin")["cost_usd"] != "0"
    assert [c.model_dump() for c in second] == answer
    billed, free = tenant.usage()
    assert free.cache_hit and free.cost == 0 and free.cache_saved == billed.cost > 0


def test_cache_is_per_project(make_tenant, tenant: Tenant) -> None:  # type: ignore[no-untyped-def]
    neighbour = make_tenant()
    request = {**CHAT, "messages": [{"role": "user", "content": "private " + uuid.uuid4().hex}]}
    tenant.openai().chat.completions.create(**request, extra_headers={"x-kakin-cache": "on"})
    raw = neighbour.openai().chat.completions.with_raw_response.create(
        **request, extra_headers={"x-kakin-cache": "on"}
    )
    assert "x-kakin-cache" not in raw.headers
    assert neighbour.usage()[0].cost > 0


def test_cache_hit_is_refused_to_a_key_that_may_not_spend(tenant: Tenant) -> None:
    client = tenant.openai()
    request = {**CHAT, "messages": [{"role": "user", "content": "cached " + uuid.uuid4().hex}]}
    client.chat.completions.create(**request, extra_headers={"x-kakin-cache": "on"})
    tenant.ledger.revoke_key(tenant.key.id)
    tenant.gateway.gateway.changed("key", tenant.key.id)
    with pytest.raises(openai.AuthenticationError) as refused:
        client.chat.completions.create(**request, extra_headers={"x-kakin-cache": "on"})
    assert "revoked" in refused.value.message and len(tenant.usage()) == 1


def test_retry_after_a_failed_upstream_call_is_served_and_billed_once(tenant: Tenant) -> None:
    client = tenant.openai()
    key = {"Idempotency-Key": "after-failure-" + uuid.uuid4().hex}
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(**CHAT, extra_headers={**key, "x-kakin-simulate": "status=500"})
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(**CHAT, extra_headers={**key, "x-kakin-simulate": "status=503"})
    assert tenant.usage() == []  # failed attempts are free, and do not use the key up
    served = client.chat.completions.with_raw_response.create(**CHAT, extra_headers=key)
    replayed = client.chat.completions.with_raw_response.create(**CHAT, extra_headers=key)
    assert replayed.headers["x-kakin-idempotent-replay"] == "true"
    assert replayed.http_response.content == served.http_response.content
    [record] = tenant.usage()
    assert record.request_id == served.headers["x-kakin-request-id"]
    assert tenant.ledger.reconcile(tenant.org.id).ok


def test_same_key_for_a_different_request_is_a_conflict(tenant: Tenant) -> None:
    client = tenant.openai()
    key = {"Idempotency-Key": "reused-" + uuid.uuid4().hex}
    first = client.chat.completions.create(**CHAT, extra_headers=key)
    other = {**CHAT, "messages": [{"role": "user", "content": "a different question entirely"}]}
    with pytest.raises(openai.ConflictError) as conflict:
        client.chat.completions.create(**other, extra_headers=key)
    assert "different request" in conflict.value.message and "use a new key" in conflict.value.message
    assert client.chat.completions.create(**CHAT, extra_headers=key).id == first.id
    assert len(tenant.usage()) == 1


def test_a_key_whose_answer_is_no_longer_kept_is_refused_not_served_again(tenant: Tenant) -> None:
    """Once the answer to a key is gone (past the replay window, evicted, or a restart of the
    gateway that kept it in memory), a retry with the key is refused: serving it again would
    pay the provider for a request the ledger, which has the key's charge, could not bill."""
    client = tenant.openai()
    key = {"Idempotency-Key": "forgotten-" + uuid.uuid4().hex}
    first = client.chat.completions.with_raw_response.create(**CHAT, extra_headers=key)
    tenant.gateway.gateway.settled()
    tenant.gateway.gateway.answers.replays._entries.clear()  # type: ignore[attr-defined]
    with pytest.raises(openai.ConflictError) as refused:
        client.chat.completions.create(**CHAT, extra_headers=key)
    assert "already served" in refused.value.message and "use a new key" in refused.value.message
    tenant.gateway.gateway.settled()
    [record] = tenant.usage()
    assert record.request_id == first.headers["x-kakin-request-id"]
    assert tenant.balance().spent == record.cost
    assert tenant.ledger.reconcile(tenant.org.id).ok
