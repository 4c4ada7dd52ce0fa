"""With Redis configured, two gateway processes share the response cache and idempotent
replays: a response cached or billed through one is served free by the other."""

from __future__ import annotations

import uuid
from decimal import Decimal

import openai

from kakin.config import load_settings
from kakin.ledger import Ledger
from kakin.server import start_in_thread


def test_two_gateways_share_cache_and_replays_through_redis(tmp_path, redis_prefix) -> None:
    url, prefix = redis_prefix
    database = f"sqlite:///{tmp_path / 'kakin.db'}"
    settings = load_settings(
        env={
            "KAKIN_DATABASE_URL": database,
            "KAKIN_REDIS_URL": url,
            "KAKIN_REDIS__PREFIX": prefix,
            "KAKIN_GATEWAY__ACCOUNTING": "shared",
        }
    )
    ledger = Ledger.open(database)
    org = ledger.create_org("redis-co", payment_method=True)
    project = ledger.create_project(org.id, "p")
    _, key = ledger.create_key(project.id, "k")
    ledger.grant(org.id, "prepaid", Decimal("5"), idempotency_key="p")
    first = start_in_thread(settings, ledger)
    second = start_in_thread(settings, ledger)
    try:
        one = openai.OpenAI(base_url=first.url + "/v1", api_key=key, max_retries=0)
        two = openai.OpenAI(base_url=second.url + "/v1", api_key=key, max_retries=0)
        request = {
            "model": "gpt-4o-mini",
            "max_tokens": 40,
            "messages": [{"role": "user", "content": "shared " + uuid.uuid4().hex}],
        }

        miss = one.chat.completions.with_raw_response.create(**request, extra_headers={"x-kakin-cache": "on"})
        hit = two.chat.completions.with_raw_response.create(**request, extra_headers={"x-kakin-cache": "on"})
        assert hit.headers["x-kakin-cache"] == "hit" and hit.headers["x-kakin-cost-usd"] == "0"
        assert hit.parse().choices[0].message.content == miss.parse().choices[0].message.content

        retry = {"Idempotency-Key": "order-" + uuid.uuid4().hex}
        billed = one.chat.completions.with_raw_response.create(**request, extra_headers=retry)
        replay = two.chat.completions.with_raw_response.create(**request, extra_headers=retry)
        assert replay.headers["x-kakin-idempotent-replay"] == "true"
        assert replay.parse().id == billed.parse().id

        first.gateway.settled()  # each gateway's charges are posted from its journal a moment later
        second.gateway.settled()
        records = ledger.usage(org.id)
        assert sorted(r.cache_hit for r in records) == [False, False, True]  # miss, billed, hit
        assert ledger.reconcile(org.id).ok
    finally:
        first.stop()
        second.stop()
        ledger.close()
