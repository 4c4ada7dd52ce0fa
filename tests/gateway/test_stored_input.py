"""Input the request body does not show: a Responses request continuing a stored response
(``previous_response_id``) has the whole earlier conversation as input, and a Gemini request
reading a cached content (``cachedContent``) has the cache's tokens. The gateway records the
size of each such object when it is created and holds it with every request that names it,
so the hold covers the charge and a hard cap holds under concurrency, across processes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest
from google.genai import types

from kakin.ledger import Ledger
from kakin.server import RunningGateway

from . import expected
from .conftest import MakeTenant, Tenant, gateway_running, start_gateway, tenant_factory

MODEL = "gpt-4.1-mini"
GEMINI = "gemini-2.5-flash"


def _document(words: int) -> str:
    """About ``words`` tokens of text, different on every call (no prompt-cache hits)."""
    return uuid.uuid4().hex + " " + " ".join(f"clause{i % 97}" for i in range(words))


@pytest.fixture(scope="module")
def make(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeTenant]:
    with gateway_running(f"sqlite:///{tmp_path_factory.mktemp('stored') / 'kakin.db'}") as running:
        yield tenant_factory(*running)


def _reserved(headers: object) -> Decimal:
    return Decimal(headers["x-kakin-reserved-usd"])  # type: ignore[index]


def _stored_tokens(tenant: Tenant, kind: str, object_id: str) -> int | None:
    api = "google" if kind == "cached_content" else "openai"
    found = tenant.ledger.find_object(api, kind, object_id)
    assert found is not None and found.project_id == tenant.project.id
    return found.tokens


def test_a_follow_up_holds_the_whole_stored_conversation(make: MakeTenant) -> None:
    tenant = make()
    client = tenant.openai()
    turns = []
    for turn in range(3):  # each turn's stored size already holds the turns before it
        raw = client.responses.with_raw_response.create(
            model=MODEL,
            input=_document(3000),
            previous_response_id=turns[-1].id if turns else None,
            max_output_tokens=100,
        )
        turns.append(raw.parse())
        assert turns[-1].usage.input_tokens > 3000 * (turn + 1)  # the simulator counts the conversation
        assert tenant.record(raw.headers["x-kakin-request-id"]).cost <= _reserved(raw.headers)

    raw = client.responses.with_raw_response.create(
        model=MODEL, input="sum it up", previous_response_id=turns[-1].id, max_output_tokens=50
    )
    follow_up = raw.parse()
    assert follow_up.usage.input_tokens > 9000
    record = tenant.record(raw.headers["x-kakin-request-id"])
    expected.assert_billed(record, expected.openai_responses(follow_up.usage), MODEL, "openai")
    assert record.cost <= _reserved(raw.headers)
    for response in turns:
        size = response.usage.input_tokens + response.usage.output_tokens
        assert _stored_tokens(tenant, "response", response.id) == size
    tenant.assert_nothing_held()


def test_a_streamed_response_records_its_size_from_the_final_event(make: MakeTenant) -> None:
    tenant = make()
    client = tenant.openai()
    stream = client.responses.create(model=MODEL, input=_document(4000), max_output_tokens=100, stream=True)
    final = [event for event in stream if event.type == "response.completed"][-1].response
    size = final.usage.input_tokens + final.usage.output_tokens

    raw = client.responses.with_raw_response.create(
        model=MODEL, input="go on", previous_response_id=final.id, max_output_tokens=50, stream=True
    )
    events = list(raw.parse())
    assert events[-1].response.usage.input_tokens > size > 4000
    assert tenant.record(raw.headers["x-kakin-request-id"]).cost <= _reserved(raw.headers)
    assert _stored_tokens(tenant, "response", final.id) == size


def test_a_follow_up_counts_the_stored_conversation_toward_the_token_limit(make: MakeTenant) -> None:
    tenant = make()
    first = tenant.openai().responses.create(model=MODEL, input=_document(5000), max_output_tokens=50)
    assert first.usage.input_tokens > 8000
    _, plaintext = tenant.new_key(tpm=8000)  # another key of the project, which owns the response
    limited = openai.OpenAI(base_url=tenant.url + "/v1", api_key=plaintext, max_retries=0)
    with pytest.raises(openai.RateLimitError):
        limited.responses.create(
            model=MODEL, input="go on", previous_response_id=first.id, max_output_tokens=50
        )
    assert limited.responses.create(model=MODEL, input="start afresh", max_output_tokens=50).output_text


def test_stored_items_named_in_the_input_are_held(make: MakeTenant) -> None:
    """Output items sent back by id (an item_reference, a reasoning item without its
    encrypted_content) are fetched by the API: each is held at its response's output."""
    tenant = make()
    client = tenant.openai()
    first = client.responses.create(
        model="o4-mini",
        input="tell me everything",
        max_output_tokens=8000,
        extra_headers={"x-kakin-simulate": "tokens=3000"},
    )
    reasoning, message = (item.model_dump(exclude_none=True) for item in first.output)
    assert message["type"] == "message" and first.usage.output_tokens > 3000

    raw = client.responses.with_raw_response.create(
        model="o4-mini",
        input=[
            {"type": "item_reference", "id": message["id"]},
            {**reasoning, "summary": []},
            {"role": "user", "content": "go on"},
        ],
        max_output_tokens=50,
    )
    usage = raw.parse().usage
    assert usage.input_tokens > 3000  # the simulator counts the fetched items
    assert tenant.record(raw.headers["x-kakin-request-id"]).cost <= _reserved(raw.headers)
    assert _stored_tokens(tenant, "response_item", message["id"]) == first.usage.output_tokens


def test_a_generation_from_a_cached_content_holds_the_cache(make: MakeTenant) -> None:
    tenant = make()
    client = tenant.genai()
    cache = client.caches.create(
        model=GEMINI,
        config=types.CreateCachedContentConfig(
            contents=[types.Content(role="user", parts=[types.Part(text=_document(20_000))])],
            ttl="600s",
        ),
    )
    tokens = cache.usage_metadata.total_token_count
    assert tokens > 20_000

    config = types.GenerateContentConfig(cached_content=cache.name, max_output_tokens=50)
    answer = client.models.generate_content(model=GEMINI, contents="summarise it", config=config)
    assert answer.usage_metadata.cached_content_token_count == tokens
    headers = answer.sdk_http_response.headers
    record = tenant.record(headers["x-kakin-request-id"])
    expected.assert_billed(record, expected.gemini(answer.usage_metadata), GEMINI, "google")
    assert record.cost <= _reserved(headers)

    chunks = list(client.models.generate_content_stream(model=GEMINI, contents="again", config=config))
    headers = chunks[0].sdk_http_response.headers
    assert tenant.record(headers["x-kakin-request-id"]).cost <= _reserved(headers)

    # Extending the cache's TTL buys storage for the cache's tokens: held too.
    update = httpx.patch(
        f"{tenant.url}/v1beta/{cache.name}",
        json={"ttl": "3600s"},
        headers={"x-goog-api-key": tenant.plaintext},
    )
    assert update.status_code == 200, update.text
    assert 0 < tenant.record(update.headers["x-kakin-request-id"]).cost <= _reserved(update.headers)
    assert _stored_tokens(tenant, "cached_content", cache.name) == tokens
    tenant.assert_nothing_held()


# ---------------------------------------------------------------- the hard cap under concurrency

FOLLOW_UPS = 40


async def _follow_ups(client: openai.AsyncOpenAI, previous: str, count: int) -> list[object]:
    """``count`` requests at once, each continuing the same long stored conversation."""

    async def one(i: int) -> object:
        try:
            return await client.responses.create(
                model=MODEL,
                input=f"question {i}",
                previous_response_id=previous,
                max_output_tokens=50,
                extra_headers={"x-kakin-simulate": "latency=30ms"},
            )
        except openai.APIStatusError as refused:
            return refused

    return await asyncio.gather(*(one(i) for i in range(count)))


# A hard cap with room for the long conversation and about five follow-ups on it (each
# costs about $0.008 of gpt-4.1-mini input).
CAP = Decimal("0.05")


def _long_conversation(tenant: Tenant) -> str:
    """A hard cap of ``CAP`` (set before the gateway first loads the account) and a stored
    response of about 20,000 tokens under it; returns the response's id."""
    tenant.ledger.set_budget(tenant.org.id, period="month", limit=CAP, hard_cap=True)
    first = tenant.openai().responses.create(model=MODEL, input=_document(10_000), max_output_tokens=50)
    assert first.usage.input_tokens > 10_000
    return first.id


def _assert_cap_held(tenant: Tenant, results: list[object]) -> None:
    """SPEC: a hard cap is never exceeded when requests carry max_tokens."""
    served = [r for r in results if not isinstance(r, openai.APIStatusError)]
    refused = [r for r in results if isinstance(r, openai.APIStatusError)]
    assert served and refused, "the cap should let some follow-ups through and stop others"
    assert {r.status_code for r in refused} == {402}
    balance = tenant.balance()
    assert balance.spent == sum(r.cost for r in tenant.usage())
    assert balance.spent <= CAP
    assert balance.held == 0
    assert tenant.ledger.reconcile(tenant.org.id).ok


async def test_concurrent_follow_ups_on_a_long_conversation_keep_a_hard_cap(make: MakeTenant) -> None:
    tenant = make()
    previous = _long_conversation(tenant)
    results = await _follow_ups(tenant.async_openai(timeout=30), previous, FOLLOW_UPS)
    _assert_cap_held(tenant, results)


@pytest.mark.postgres
async def test_follow_ups_through_three_gateways_on_one_postgresql_ledger_keep_a_hard_cap(
    gateway_pg_url: str, tmp_path: Path
) -> None:
    """Three gateways (shared accounting) in front of one provider, which keeps the conversation."""
    running: list[tuple[Ledger, RunningGateway]] = [
        start_gateway(gateway_pg_url, KAKIN_GATEWAY__ACCOUNTING="shared")
    ]
    config = tmp_path / "kakin.toml"
    config.write_text(
        f'[[providers]]\nname = "sim"\nkind = "simulator"\nbase_url = "{running[0][1].simulator.url}"\n'
    )
    try:
        running += [
            start_gateway(gateway_pg_url, KAKIN_GATEWAY__ACCOUNTING="shared", KAKIN_CONFIG=str(config))
            for _ in range(2)
        ]
        tenant = tenant_factory(*running[0])()
        previous = _long_conversation(tenant)
        clients = [
            openai.AsyncOpenAI(
                base_url=gateway.url + "/v1", api_key=tenant.plaintext, max_retries=0, timeout=30
            )
            for _, gateway in running
        ]
        batches = await asyncio.gather(*(_follow_ups(c, previous, FOLLOW_UPS // 3) for c in clients))
        _assert_cap_held(tenant, [result for batch in batches for result in batch])
    finally:
        for ledger, gateway in running:
            gateway.stop()
            ledger.close()
