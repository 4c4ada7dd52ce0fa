"""The record of provider-side objects: each is its first recorder's, on both backends."""

from __future__ import annotations

from kakin.ledger import Ledger, ObjectName


def test_an_object_is_owned_by_the_project_that_recorded_it_first(ledger: Ledger, setup) -> None:  # type: ignore[no-untyped-def]
    org, project, _key, _scope = setup
    other = ledger.create_project(org.id, "batch")
    cache = ObjectName("google", "cached_content", "cachedContents/abc", "gemini-2.5-flash", 40_000)
    response = ObjectName("openai", "response", "resp_1")
    assert ledger.record_objects(org.id, project.id, [cache, response]) == 2
    assert ledger.record_objects(org.id, other.id, [cache]) == 0  # the first owner stays

    found = ledger.find_object("google", "cached_content", "cachedContents/abc")
    assert found is not None
    assert (found.org_id, found.project_id, found.model) == (org.id, project.id, "gemini-2.5-flash")
    assert found.tokens == 40_000
    assert ledger.find_object("openai", "cached_content", "cachedContents/abc") is None  # kinds apart
    owned = ledger.owned_objects(project.id, "openai", "response", ["resp_1", "resp_2"])
    assert list(owned) == ["resp_1"] and owned["resp_1"].tokens is None  # its size not given
    assert ledger.owned_objects(other.id, "openai", "response", ["resp_1"]) == {}

    assert ledger.forget_object("openai", "response", "resp_1") is True
    assert ledger.forget_object("openai", "response", "resp_1") is False
    assert ledger.owned_objects(project.id, "openai", "response", ["resp_1"]) == {}
    # Forgotten, the id can be recorded again (a provider never reuses one, but it is free).
    assert ledger.record_objects(org.id, other.id, [response]) == 1
