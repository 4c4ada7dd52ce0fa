"""Provider-side objects belong to the project that created them through the gateway.

Every project's requests reach the provider with the same provider key, so the provider
would show any project's cached contents and stored responses to any other. The gateway
therefore records the owner of each object created through it (in the ledger's
``provider_objects``), answers 404 in the provider's error shape when a project names an
object it does not own, shows each project only its own objects in a list, and refuses
references to objects kakin never creates (uploaded files, vector stores …). What counts as
creating, naming or referring is read from the wire formats by ``kakin.providers.objects``.

Only requests that involve stored objects touch the ledger here; a plain chat request costs
a byte search of its body and a few dictionary lookups. Ledger calls go through the ledger writer (the
``call`` given), like key verification, so no ledger transaction runs on the event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import orjson

from kakin.errors import InvalidInput, NotFound
from kakin.gateway.committer import LedgerCall
from kakin.ledger import Ledger
from kakin.ledger.records import KeyRecord, ObjectName, ProviderObject
from kakin.providers import objects
from kakin.providers.adapter import StreamState
from kakin.providers.objects import ObjectRef
from kakin.providers.request import MAX_TOKENS_LIMIT, ParsedRequest

# A model's context window, by API and model (None when the catalog does not know it).
ContextWindow = Callable[[str, str], int | None]
# Sends a request upstream as it is and returns (status, body): a list's next page.
Fetch = Callable[[ParsedRequest], Awaitable[tuple[int, bytes]]]


class ObjectGuard:
    """``call(Ledger.method, *args)`` runs a ledger method (the gateway passes its writer's);
    ``context_window`` bounds an object whose size was not recorded."""

    def __init__(self, call: LedgerCall, context_window: ContextWindow) -> None:
        self._call = call
        self._context_window = context_window

    async def admit(self, key: KeyRecord, parsed: ParsedRequest) -> None:
        """Before anything is held or forwarded: refuse a reference to an object kakin never
        creates (400), or to a stored object the caller's project does not own (404). A
        request priced at its object's model gets that model (``parsed.model``), and a billed
        request the size of the objects it names and the provider adds to it — a stored
        conversation, a cache, fetched items (``parsed.stored_tokens``); a list asks for the
        account's whole list (``parsed.query``), to be filtered in ``answered``."""
        reason = objects.refusal(parsed)
        if reason is not None:
            raise InvalidInput(reason)
        stored: list[ProviderObject] = []
        items = objects.named_items(parsed)
        if items:
            owned = await self._owned(key, items)
            for item in items:
                if item.object_id not in owned:
                    raise NotFound(item.not_found())
                stored.append(owned[item.object_id])
        if parsed.endpoint.kind == "cache_list":
            parsed.query = objects.whole_list_query(parsed)
        ref = objects.named(parsed)
        if ref is not None:
            found = await self._call(Ledger.find_object, ref.api, ref.kind, ref.object_id)
            if found is None or found.project_id != key.project_id:
                raise NotFound(ref.not_found())
            if objects.takes_stored_model(parsed):
                parsed.model = found.model
            stored.append(found)
        if parsed.billable:
            parsed.stored_tokens = sum(self._size(found) for found in stored)

    def _size(self, found: ProviderObject) -> int:
        """The tokens the object brings to a request. One recorded without its size (before
        sizes were recorded, or from a stream broken off before its usage) is held at the
        context window of the model it was made with, which its conversation or contents
        cannot exceed; at the largest window any model has when that is not known."""
        if found.tokens is not None:
            return found.tokens
        window = self._context_window(found.api, found.model) if found.model else None
        return window or MAX_TOKENS_LIMIT

    async def answered(
        self, key: KeyRecord, parsed: ParsedRequest, status: int, body: bytes, fetch: Fetch | None = None
    ) -> bytes:
        """After a complete answer: record the objects it created, forget the one it deleted,
        keep only the project's own objects in a list (``fetch`` asks the provider for a
        further page). Returns the body to send."""
        if status >= 300 or not objects.answer_matters(parsed):
            return body
        gone = objects.deleted(parsed)
        if gone is not None:
            await self._call(Ledger.forget_object, gone.api, gone.kind, gone.object_id)
            return body
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            doc = None
        if parsed.endpoint.kind == "cache_list":
            assert fetch is not None, "a list is gathered from every page"
            return orjson.dumps(await self._own_list(key, parsed, doc, fetch))
        await self._record(key, objects.created(parsed, doc))
        return body

    async def _own_list(
        self, key: KeyRecord, parsed: ParsedRequest, doc: Any, fetch: Fetch
    ) -> dict[str, Any]:
        """The project's objects from every page of the account's list, in one page. (Pages
        filtered one by one could be empty while more follow, which SDK pagers take for the
        end.) A page the provider fails to give ends the list."""
        items: list[Any] = []
        while isinstance(doc, dict):
            items += objects.keep_owned(doc, await self._owned(key, objects.listed(parsed, doc)))
            token = objects.next_page(doc)
            if token is None:
                break
            status, body = await fetch(replace(parsed, query={**parsed.query, "pageToken": token}))
            try:
                doc = orjson.loads(body) if status < 300 else None
            except orjson.JSONDecodeError:
                doc = None
        return objects.owned_list(items)

    async def streamed(self, key: KeyRecord, parsed: ParsedRequest, state: StreamState) -> None:
        """After a stream: record the stored response it created (its id came in the stream)."""
        await self._record(key, objects.created(parsed, state.extra.get("response")))

    async def _owned(self, key: KeyRecord, refs: list[ObjectRef]) -> dict[str, ProviderObject]:
        """The records of those of ``refs`` (all of one API and kind) the caller's project
        owns, by id."""
        if not refs:
            return {}
        first = refs[0]
        ids = [ref.object_id for ref in refs]
        return await self._call(Ledger.owned_objects, key.project_id, first.api, first.kind, ids)

    async def _record(self, key: KeyRecord, refs: list[ObjectRef]) -> None:
        if refs:
            names = [ObjectName(ref.api, ref.kind, ref.object_id, ref.model, ref.tokens) for ref in refs]
            await self._call(Ledger.record_objects, key.org_id, key.project_id, names)
