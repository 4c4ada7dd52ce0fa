"""Key states take effect on the very next request: revoked and expired keys are 401,
suspended keys and models outside a key's list are 403, and none of them is billed."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import anthropic
import openai
import pytest
from google.genai import errors as genai_errors

from .conftest import MakeTenant, Tenant

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}


def test_revoked_key_is_refused_at_once(tenant: Tenant) -> None:
    client = tenant.openai()
    client.chat.completions.create(**CHAT)  # the gateway now remembers the key
    tenant.ledger.revoke_key(tenant.key.id)
    tenant.gateway.gateway.changed("key", tenant.key.id)  # what the admin API does after a revoke
    with pytest.raises(openai.AuthenticationError) as refused:
        client.chat.completions.create(**CHAT)
    assert refused.value.status_code == 401
    assert refused.value.body["code"] == "api_key_revoked"
    assert tenant.key.prefix in refused.value.message and "was revoked at" in refused.value.message
    assert len(tenant.usage()) == 1


def test_revoked_key_is_refused_in_every_api_shape(tenant: Tenant) -> None:
    tenant.ledger.revoke_key(tenant.key.id)
    tenant.gateway.gateway.changed("key", tenant.key.id)
    with pytest.raises(anthropic.AuthenticationError) as anthropic_refusal:
        tenant.anthropic().messages.create(
            model="claude-haiku-4-5", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        )
    assert anthropic_refusal.value.body["error"]["type"] == "authentication_error"
    gemini = tenant.genai()
    with pytest.raises(genai_errors.ClientError) as gemini_refusal:
        gemini.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert gemini_refusal.value.code == 401 and "revoked" in gemini_refusal.value.message
    assert tenant.usage() == []


def test_suspended_key_is_forbidden(tenant: Tenant) -> None:
    client = tenant.openai()
    client.chat.completions.create(**CHAT)
    tenant.ledger.suspend_key(tenant.key.id, "spend spike")
    tenant.gateway.gateway.changed("key", tenant.key.id)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.chat.completions.create(**CHAT)
    assert refused.value.status_code == 403 and refused.value.body["code"] == "api_key_suspended"
    assert "is suspended since" in refused.value.message and "spend spike" in refused.value.message
    tenant.ledger.unsuspend_key(tenant.key.id)
    tenant.gateway.gateway.changed("key", tenant.key.id)
    client.chat.completions.create(**CHAT)
    assert len(tenant.usage()) == 2


def test_expired_key_is_unauthenticated(tenant: Tenant) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=0.8)
    _key, plaintext = tenant.new_key(expires_at=expires)
    client = openai.OpenAI(base_url=tenant.url + "/v1", api_key=plaintext, max_retries=0)
    client.chat.completions.create(**CHAT)  # valid, and now remembered by the gateway
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.05)
    with pytest.raises(openai.AuthenticationError) as refused:
        client.chat.completions.create(**CHAT)
    assert refused.value.status_code == 401 and refused.value.body["code"] == "api_key_expired"
    assert "expired at" in refused.value.message
    assert len(tenant.usage()) == 1


def test_key_restricted_to_models(make_tenant: MakeTenant) -> None:
    tenant = make_tenant(models=["gpt-4o-mini"])
    client = tenant.openai()
    client.chat.completions.create(**CHAT)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.chat.completions.create(**{**CHAT, "model": "gpt-4o"})
    assert refused.value.status_code == 403
    assert "may use gpt-4o-mini; 'gpt-4o' is not among them" in refused.value.message
    assert len(tenant.usage()) == 1


def test_unknown_keys_are_unauthenticated(tenant: Tenant) -> None:
    stranger = openai.OpenAI(base_url=tenant.url + "/v1", api_key="kk-notakey-000000", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        stranger.chat.completions.create(**CHAT)
    provider_key = openai.OpenAI(base_url=tenant.url + "/v1", api_key="sk-proj-abc", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        provider_key.chat.completions.create(**CHAT)
    assert "not a kakin API key" in refused.value.message


def test_an_expired_cache_entry_is_verified_once_for_concurrent_requests(tenant: Tenant) -> None:
    """A burst arriving when a key's entry expires waits for one ledger read, not one each."""
    import asyncio

    from kakin.gateway.keys import KeyCache
    from kakin.ledger import Ledger

    calls = []

    async def counted(fn: Any, *args: Any) -> Any:
        calls.append(fn)
        return await asyncio.to_thread(fn, tenant.ledger, *args)

    cache = KeyCache(tenant.ledger, ttl=60, call=counted)

    async def burst() -> set[str]:
        callers = await asyncio.gather(*(cache.caller(tenant.plaintext) for _ in range(20)))
        return {caller.key.id for caller in callers}

    assert asyncio.run(burst()) == {tenant.key.id}
    assert calls.count(Ledger.verify_key) == 1
    assert asyncio.run(burst()) == {tenant.key.id}  # remembered
    assert calls.count(Ledger.verify_key) == 1


def test_the_tier_is_read_once_per_organisation_not_once_per_key(tenant: Tenant) -> None:
    """Reading the tier may promote the organisation (a ledger write): with many keys in use,
    it is read once per organisation per ``ttl``, not once per key."""
    import asyncio

    from kakin.gateway.keys import KeyCache
    from kakin.ledger import Ledger

    calls = []

    async def counted(fn: Any, *args: Any) -> Any:
        calls.append(fn)
        return await asyncio.to_thread(fn, tenant.ledger, *args)

    keys = [tenant.ledger.create_key(tenant.project.id, f"k{i}")[1] for i in range(5)]
    cache = KeyCache(tenant.ledger, ttl=60, call=counted)

    async def each_key() -> set[str]:
        return {(await cache.caller(key)).key.org_id for key in keys}

    assert asyncio.run(each_key()) == {tenant.org.id}
    assert (calls.count(Ledger.verify_key), calls.count(Ledger.tier_of)) == (5, 1)
    cache.forget("org", tenant.org.id)  # an admin change: read again
    assert asyncio.run(each_key()) == {tenant.org.id}
    assert calls.count(Ledger.tier_of) == 2
