"""The gateway's record of provider-side objects, below the HTTP layer: a project's list is
gathered from every page of the account's list, and the record keeps its first owner."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from kakin.gateway.ownership import ObjectGuard
from kakin.ledger import Ledger, ObjectName
from kakin.providers import endpoint_named, parse
from kakin.providers.request import ParsedRequest


def _guard(ledger: Ledger) -> ObjectGuard:
    return ObjectGuard(lambda fn, *args: asyncio.to_thread(fn, ledger, *args))


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
