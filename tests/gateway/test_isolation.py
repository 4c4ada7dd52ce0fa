"""Provider-side objects are their creator project's: another organisation cannot read, list,
use or delete them (404 in the provider's shape), and references to objects kakin never
creates (files, vector stores, containers …) are refused. Refused requests cost nothing."""

from __future__ import annotations

import uuid
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from kakin.pricing import Usage

from . import expected
from .conftest import MakeTenant, Tenant, start_gateway, tenant_factory

GEMINI = "gemini-2.5-flash"


def _cache(client: genai.Client, secret: str) -> types.CachedContent:
    text = secret + " " + "A document only its owner may read. " * 150
    return client.caches.create(
        model=GEMINI,
        config=types.CreateCachedContentConfig(
            contents=[types.Content(role="user", parts=[types.Part(text=text)])],
            ttl="600s",
            display_name="owned-" + secret[:8],
        ),
    )


def _assert_not_found(action: object) -> genai_errors.ClientError:
    with pytest.raises(genai_errors.ClientError) as raised:
        action()  # type: ignore[operator]
    assert raised.value.code == 404 and raised.value.status == "NOT_FOUND"
    return raised.value


def _assert_untouched(tenant: Tenant) -> None:
    """Nothing billed, nothing recorded, nothing held."""
    assert tenant.usage() == []
    balance = tenant.balance()
    assert balance.spent == 0 and balance.held == 0


def test_gemini_cached_contents_are_invisible_to_another_organisation(make_tenant: MakeTenant) -> None:
    owner, other = make_tenant(), make_tenant()
    mine, theirs = owner.genai(), other.genai()
    cache = _cache(mine, uuid.uuid4().hex)

    error = _assert_not_found(lambda: theirs.caches.get(name=cache.name))
    assert cache.name in error.message
    _assert_not_found(lambda: theirs.caches.delete(name=cache.name))
    _assert_not_found(
        lambda: theirs.caches.update(name=cache.name, config=types.UpdateCachedContentConfig(ttl="60s"))
    )
    uses_cache = types.GenerateContentConfig(cached_content=cache.name, max_output_tokens=50)
    _assert_not_found(
        lambda: theirs.models.generate_content(model=GEMINI, contents="summarise it", config=uses_cache)
    )
    _assert_not_found(
        lambda: list(
            theirs.models.generate_content_stream(model=GEMINI, contents="summarise it", config=uses_cache)
        )
    )
    counted = httpx.post(
        f"{other.url}/v1beta/models/{GEMINI}:countTokens",
        json={"generateContentRequest": {"cachedContent": cache.name, "contents": []}},
        headers={"x-goog-api-key": other.plaintext},
    )
    assert counted.status_code == 404 and counted.json()["error"]["status"] == "NOT_FOUND"
    assert cache.name not in [c.name for c in theirs.caches.list()]
    _assert_untouched(other)

    # Each organisation lists only its own caches.
    own = _cache(theirs, uuid.uuid4().hex)
    assert [c.name for c in theirs.caches.list()] == [own.name]
    assert [c.name for c in mine.caches.list()] == [cache.name]

    # The owner still has full use of its cache; the attempts above changed nothing.
    assert mine.caches.get(name=cache.name).display_name == cache.display_name
    answer = mine.models.generate_content(model=GEMINI, contents="summarise it", config=uses_cache)
    tokens = cache.usage_metadata.total_token_count
    assert answer.usage_metadata.cached_content_token_count == tokens
    before = {r.request_id for r in owner.usage()}
    mine.caches.update(name=cache.name, config=types.UpdateCachedContentConfig(ttl="60s"))
    # An update is billed for the new TTL's storage at the rates of the cache's own model.
    [update] = [r for r in owner.usage() if r.request_id not in before]
    storage = Usage(input_tokens=0, cache_storage_token_hours=Decimal(tokens) / 60)
    expected.assert_billed(update, storage, GEMINI, "google")
    mine.caches.delete(name=cache.name)
    _assert_not_found(lambda: mine.caches.get(name=cache.name))
    assert [c.name for c in mine.caches.list()] == []
    owner.assert_nothing_held()


def test_stored_responses_are_invisible_to_another_organisation(make_tenant: MakeTenant) -> None:
    owner, other = make_tenant(), make_tenant()
    mine, theirs = owner.openai(), other.openai()
    first = mine.responses.create(model="gpt-4.1-mini", input="my secret plan " + uuid.uuid4().hex)

    with pytest.raises(openai.NotFoundError) as raised:
        theirs.responses.retrieve(first.id)
    assert first.id in raised.value.message
    with pytest.raises(openai.NotFoundError):
        theirs.responses.input_items.list(first.id)
    with pytest.raises(openai.NotFoundError):
        theirs.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        theirs.responses.create(model="gpt-4.1-mini", input="repeat it", previous_response_id=first.id)
    with pytest.raises(openai.NotFoundError):
        theirs.responses.create(
            model="gpt-4.1-mini", input="repeat it", previous_response_id=first.id, stream=True
        )
    _assert_untouched(other)

    # The owner reads and continues its responses, streamed ones included.
    assert mine.responses.retrieve(first.id).output_text == first.output_text
    assert mine.responses.input_items.list(first.id).data
    second = mine.responses.create(model="gpt-4.1-mini", input="go on", previous_response_id=first.id)
    with mine.responses.stream(model="gpt-4.1-mini", input="and then", previous_response_id=second.id) as s:
        streamed = s.get_final_response()
    assert mine.responses.retrieve(streamed.id).id == streamed.id
    with pytest.raises(openai.NotFoundError):
        theirs.responses.retrieve(streamed.id)

    # store=False keeps nothing, so there is nothing to read or continue.
    unstored = mine.responses.create(model="gpt-4.1-mini", input="forget me", store=False)
    with pytest.raises(openai.NotFoundError):
        mine.responses.retrieve(unstored.id)

    mine.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        mine.responses.retrieve(first.id)
    assert len(owner.usage()) == 4  # the four created responses; reads and deletes are free
    owner.assert_nothing_held()


def test_stored_response_items_are_invisible_to_another_organisation(make_tenant: MakeTenant) -> None:
    owner, other = make_tenant(), make_tenant()
    mine, theirs = owner.openai(), other.openai()
    first = mine.responses.create(model="o4-mini", input="think it over " + uuid.uuid4().hex)
    reasoning, message = (item.model_dump(exclude_none=True) for item in first.output)
    assert reasoning["type"] == "reasoning" and message["type"] == "message"

    # The API would fetch these by id from the shared account: only their owner may name them.
    for item in ({"type": "item_reference", "id": message["id"]}, {**reasoning, "summary": []}):
        with pytest.raises(openai.NotFoundError) as raised:
            theirs.responses.create(model="o4-mini", input=[item, {"role": "user", "content": "go on"}])
        assert raised.value.body["message"] == f"Item with id '{item['id']}' not found."
    _assert_untouched(other)

    # The owner sends its output back as input (the manual way of keeping a conversation).
    again = mine.responses.create(
        model="o4-mini", input=[*first.output, {"role": "user", "content": "go on"}]
    )
    assert again.output_text
    owner.assert_nothing_held()


def test_a_cache_list_shows_only_the_callers_caches_page_by_page(make_tenant: MakeTenant) -> None:
    owner, other = make_tenant(), make_tenant()
    mine, theirs = owner.genai(), other.genai()
    own = {_cache(mine, uuid.uuid4().hex).name for _ in range(2)}
    foreign = _cache(theirs, uuid.uuid4().hex).name
    one_per_page = types.ListCachedContentsConfig(page_size=1)
    assert {c.name for c in mine.caches.list(config=one_per_page)} == own
    assert [c.name for c in theirs.caches.list(config=one_per_page)] == [foreign]
    for name in [*own, foreign]:
        (mine if name in own else theirs).caches.delete(name=name)
    assert list(mine.caches.list(config=one_per_page)) == []


def test_another_project_of_the_same_organisation_is_another_owner(tenant: Tenant) -> None:
    project = tenant.ledger.create_project(tenant.org.id, "other-bot")
    _, plaintext = tenant.ledger.create_key(project.id, "other")
    created = tenant.openai().responses.create(model="gpt-4.1-mini", input="project secret")
    sibling = openai.OpenAI(base_url=tenant.url + "/v1", api_key=plaintext, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        sibling.responses.retrieve(created.id)
    # Another key of the same project is the same owner.
    _, same_project = tenant.new_key()
    colleague = openai.OpenAI(base_url=tenant.url + "/v1", api_key=same_project, max_retries=0)
    assert colleague.responses.retrieve(created.id).id == created.id


FILE_REFERENCES = [
    pytest.param(
        "openai.responses",
        {
            "model": "gpt-4.1-mini",
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "summarise"},
                        {"type": "input_file", "file_id": "file-abc123"},
                    ],
                }
            ],
        },
        "Files",
        id="responses-input-file",
    ),
    pytest.param(
        "openai.responses",
        {
            "model": "gpt-4.1-mini",
            "input": "search",
            "tools": [{"type": "file_search", "vector_store_ids": ["vs_abc"]}],
        },
        "Vector stores",
        id="responses-file-search",
    ),
    pytest.param(
        "openai.responses",
        {
            "model": "gpt-4.1-mini",
            "input": "run it",
            "tools": [{"type": "code_interpreter", "container": "cntr_abc"}],
        },
        "Containers",
        id="responses-container",
    ),
    pytest.param(
        "openai.responses",
        {"model": "gpt-4.1-mini", "input": "hi", "conversation": "conv_abc"},
        "Conversations",
        id="responses-conversation",
    ),
    pytest.param(
        "openai.responses",
        {"model": "gpt-4.1-mini", "input": "hi", "prompt": {"id": "pmpt_abc"}},
        "Prompts",
        id="responses-prompt",
    ),
    pytest.param(
        "openai.responses",
        {"model": "gpt-4.1-mini", "input": "hi", "background": True},
        "background",
        id="responses-background",
    ),
    pytest.param(
        "openai.chat",
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-abc123"}}]}],
        },
        "Files",
        id="chat-file",
    ),
    pytest.param(
        "openai.chat",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "store": True},
        "stored chat completions",
        id="chat-store",
    ),
]


@pytest.mark.parametrize(("endpoint", "body", "named"), FILE_REFERENCES)
def test_openai_references_to_objects_kakin_never_creates_are_refused(
    tenant: Tenant, endpoint: str, body: dict, named: str
) -> None:
    client = tenant.openai()
    create = client.responses.create if endpoint == "openai.responses" else client.chat.completions.create
    with pytest.raises(openai.BadRequestError) as raised:
        create(**body)
    assert raised.value.status_code == 400
    assert named in raised.value.message
    _assert_untouched(tenant)


def test_anthropic_file_and_container_references_are_refused(tenant: Tenant) -> None:
    client = tenant.anthropic()
    document = {"type": "document", "source": {"type": "file", "file_id": "file_011abc"}}
    with pytest.raises(anthropic.BadRequestError) as raised:
        client.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=50,
            messages=[{"role": "user", "content": [document, {"type": "text", "text": "summarise"}]}],
        )
    assert "messages[0].content[0].source.file_id" in raised.value.message
    assert "kakin does not serve the Files API" in raised.value.message
    with pytest.raises(anthropic.BadRequestError, match="Containers"):
        client.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=50,
            messages=[{"role": "user", "content": "run it"}],
            extra_body={"container": "container_011abc"},
        )
    with pytest.raises(anthropic.BadRequestError, match="Skills"):
        client.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=50,
            messages=[{"role": "user", "content": "make slides"}],
            extra_body={"container": {"skills": [{"type": "custom", "skill_id": "skill_01abc"}]}},
        )
    _assert_untouched(tenant)


def test_gemini_uploaded_file_references_are_refused(tenant: Tenant) -> None:
    client = tenant.genai()
    uploaded = types.Part(file_data=types.FileData(file_uri="files/abc123", mime_type="application/pdf"))
    with pytest.raises(genai_errors.ClientError) as raised:
        client.models.generate_content(model=GEMINI, contents=[uploaded, "summarise"])
    assert raised.value.code == 400 and "Files API" in raised.value.message
    _assert_untouched(tenant)
    # A public URL is not a provider-side object, and words in a prompt are only words.
    answer = client.models.generate_content(
        model=GEMINI, contents="what is a file_id, a fileUri and a vector_store_ids list?"
    )
    assert answer.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/files"),
        ("POST", "/v1/files"),
        ("POST", "/v1/uploads"),
        ("POST", "/v1/batches"),
        ("POST", "/v1/vector_stores"),
        ("POST", "/v1/conversations"),
        ("GET", "/v1/chat/completions/chatcmpl-abc"),
        ("POST", "/v1/responses/resp_abc/cancel"),
        ("POST", "/v1/containers"),
        ("POST", "/v1/messages/batches"),
        ("GET", "/v1beta/files"),
        ("POST", "/upload/v1beta/files"),
        ("POST", "/v1beta/batches"),
    ],
)
def test_object_apis_kakin_does_not_serve_are_404(tenant: Tenant, method: str, path: str) -> None:
    response = httpx.request(method, tenant.url + path, headers=tenant.headers(), json={})
    assert response.status_code == 404
    assert "kakin does not serve" in response.text
    _assert_untouched(tenant)


def test_idempotency_keys_are_per_project(make_tenant: MakeTenant) -> None:
    first, second = make_tenant(), make_tenant()
    key = {"Idempotency-Key": "shared-" + uuid.uuid4().hex}
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "bill each of us"}]}
    one = first.openai().chat.completions.with_raw_response.create(**chat, extra_headers=key)
    two = second.openai().chat.completions.with_raw_response.create(**chat, extra_headers=key)
    assert "x-kakin-idempotent-replay" not in two.headers
    assert one.headers["x-kakin-request-id"] != two.headers["x-kakin-request-id"]
    assert [r.request_id for r in second.usage()] == [two.headers["x-kakin-request-id"]]
    assert len(first.usage()) == 1


@pytest.mark.postgres
def test_objects_are_kept_per_project_on_postgresql(gateway_pg_url: str) -> None:
    ledger, gateway = start_gateway(gateway_pg_url, KAKIN_GATEWAY__ACCOUNTING="shared")
    try:
        make = tenant_factory(ledger, gateway)
        owner, other = make(), make()
        mine, theirs = owner.openai(), other.openai()
        created = mine.responses.create(model="gpt-4.1-mini", input="kept on postgresql")
        with pytest.raises(openai.NotFoundError):
            theirs.responses.retrieve(created.id)
        assert mine.responses.retrieve(created.id).id == created.id
        their_genai, owner_genai = other.genai(), owner.genai()
        cache = _cache(owner_genai, uuid.uuid4().hex)
        _assert_not_found(lambda: their_genai.caches.get(name=cache.name))
        assert [c.name for c in owner_genai.caches.list()] == [cache.name]
        _assert_untouched(other)
    finally:
        gateway.stop()
        ledger.close()
