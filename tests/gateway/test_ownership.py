"""The gateway's record of provider-side objects, below the HTTP layer: a project's list is
gathered from every page of the account's list, and the record keeps its first owner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from kakin.gateway.committer import in_thread
from kakin.gateway.ownership import ObjectGuard
from kakin.ledger import Ledger, ObjectName
from kakin.providers import endpoint_named, parse
from kakin.providers.request import MAX_TOKENS_LIMIT, ParsedRequest


def _guard(ledger: Ledger, windows: dict[str, int] | None = None) -> ObjectGuard:
    """A guard over ``ledger``; ``windows``: the context window of each model known."""
    return ObjectGuard(
        in_thread(ledger),
        lambda api, model: (windows or {}).get(model),
    )


async def test_a_list_gathers_the_projects_caches_from_every_page(tmp_path: Path) -> None:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'kakin.db'}")
    org = ledger.create_org("acme")
    mine, theirs = ledger.create_project(org.id, "mine"), ledger.create_project(org.id, "theirs")
    key, _ = ledger.create_key(mine.id, "k")
    ledger.record_objects(org.id, mine.id, [ObjectName("google", "cached_content", "cachedContents/a2")])
    ledger.record_objects(org.id, theirs.id, [ObjectName("google", "cached_content", "cachedContents/b1")])
    # The first owner stays: recording b1 again for another project changes nothing.
    assert (
        ledger.record_objects(org.id, mine.id, [ObjectName("google", "cached_content", "cachedContents/b1")])
        == 0
    )
    pages = {
        "": {"cachedContents": [{"name": "cachedContents/b1"}], "nextPageToken": "p2"},
        "p2": {"nextPageToken": "p3"},
        "p3": {"cachedContents": [{"name": "cachedContents/a2"}, {"name": "cachedContents/c3"}]},
    }
    asked: list[dict[str, Any]] = []

    async def fetch(parsed: ParsedRequest) -> tuple[int, bytes]:
        asked.append(dict(parsed.query))
        return 200, orjson.dumps(pages[parsed.query.get("pageToken", "")])

    guard = _guard(ledger)
    parsed = parse(endpoint_named("google.cache_list"), b"", {}, {"pageSize": "1", "pageToken": "x"})
    await guard.admit(key, parsed)
    status, body = await fetch(parsed)
    answer = orjson.loads(await guard.answered(key, parsed, status, body, fetch))
    assert answer == {"cachedContents": [{"name": "cachedContents/a2"}]}  # one page, no token
    # The client's page size and token give way to the largest page, kept while paging.
    assert asked == [
        {"pageSize": "1000"},
        {"pageSize": "1000", "pageToken": "p2"},
        {"pageSize": "1000", "pageToken": "p3"},
    ]
    ledger.close()


async def test_a_request_naming_a_stored_object_is_bounded_by_its_recorded_size(tmp_path: Path) -> None:
    """A follow-up's input holds the stored conversation or cache it names. One recorded
    without its size counts as the context window of the model it was made with, or as the
    largest a request may carry when the catalog does not know that window."""
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'kakin.db'}")
    org = ledger.create_org("acme")
    project = ledger.create_project(org.id, "bot")
    key, _ = ledger.create_key(project.id, "k")
    ledger.record_objects(
        org.id,
        project.id,
        [
            ObjectName("openai", "response", "resp_sized", "gpt-4.1-mini", 12_345),
            ObjectName("openai", "response", "resp_known_model", "gpt-4.1-mini"),
            ObjectName("openai", "response", "resp_unknown_model", "some-model"),
            ObjectName("google", "cached_content", "cachedContents/c1", "gemini-2.5-flash", 4_000),
        ],
    )
    guard = _guard(ledger, {"gpt-4.1-mini": 1_047_576})

    async def stored(name: str, previous: str) -> int:
        body = orjson.dumps({"model": "gpt-4.1-mini", "input": "go on", "previous_response_id": previous})
        parsed = parse(endpoint_named(name), body, {}, {})
        await guard.admit(key, parsed)
        return parsed.stored_tokens

    assert await stored("openai.responses", "resp_sized") == 12_345
    assert await stored("openai.responses", "resp_known_model") == 1_047_576
    assert await stored("openai.responses", "resp_unknown_model") == MAX_TOKENS_LIMIT
    # Reading a stored response is free: nothing is held for its size.
    get = parse(endpoint_named("openai.response_get"), b"", {"name": "resp_sized"}, {})
    await guard.admit(key, get)
    assert get.stored_tokens == 0

    generate = parse(
        endpoint_named("google.generate"),
        orjson.dumps({"cachedContent": "cachedContents/c1", "contents": [{"parts": [{"text": "hi"}]}]}),
        {"model": "gemini-2.5-flash"},
        {},
    )
    await guard.admit(key, generate)
    assert generate.stored_tokens == 4_000
    assert generate.bound_usage(100).input_tokens == generate.input_tokens_bound + 4_000
    ledger.close()
