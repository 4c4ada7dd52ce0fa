"""Provider-side objects in requests and responses: what a request names, creates, deletes
or lists, and what it refers to that kakin must refuse.

The gateway forwards every project's requests with one provider key, so to the provider
every stored object belongs to the same account. kakin therefore keeps the owner of each
object created through it (``kakin.gateway.ownership``) and lets only that project name it:

- Gemini ``cachedContents``: created by ``POST cachedContents``; named by the cache
  endpoints' path and by ``cachedContent`` in generateContent, streamGenerateContent and
  countTokens; listed by ``GET cachedContents``.
- OpenAI stored responses: created by ``POST /v1/responses`` unless ``store`` is false;
  named by ``previous_response_id`` and by ``/v1/responses/{id}`` (get, delete, input items).
  Their output items are stored too, and an input item can name one for the API to fetch:
  an ``item_reference``, or a ``reasoning`` item sent back without its ``encrypted_content``.

A stored object brings input the body of a request naming it does not show (the earlier
conversation, the cache's contents, the item), so each created object carries that size
(``ObjectRef.tokens``), which the gateway holds with every billed request that names it.

Objects kakin never creates — uploaded files, vector stores, containers and custom skills,
Gemini file-search stores, OpenAI conversations and prompts — can only be another tenant's
of the provider account, so a request referring to one is refused (``refusal``). This
module reads wire formats only; it does no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any

from kakin.errors import InvalidInput
from kakin.providers.adapter import as_int, sub
from kakin.providers.gemini import model_name
from kakin.providers.request import ParsedRequest

CACHED_CONTENT = "cached_content"
RESPONSE = "response"
RESPONSE_ITEM = "response_item"

_CACHE_PREFIX = "cachedContents/"
_CACHE_NAMING = frozenset({"cache_get", "cache_delete", "cache_update"})
_RESPONSE_NAMING = frozenset({"response_get", "response_delete", "response_input_items"})
# Endpoints whose answer creates, deletes or lists stored objects.
_ANSWER_KINDS = frozenset({"cache_create", "cache_delete", "cache_list", "responses", "response_delete"})


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """One provider-side object: the API it lives in, its kind and the provider's id."""

    api: str
    kind: str
    object_id: str
    model: str = field(default="", compare=False)  # what it was made with, when known
    # The input tokens it brings to a later request that names it (None: not known).
    tokens: int | None = field(default=None, compare=False)

    def not_found(self) -> str:
        """The provider's own words for a missing object (the same whether it does not exist
        or another project owns it, so nothing is learnt about other projects)."""
        if self.kind == CACHED_CONTENT:
            return f"CachedContent not found (or permission denied): {self.object_id}"
        if self.kind == RESPONSE_ITEM:
            return f"Item with id '{self.object_id}' not found."
        return f"Response with id '{self.object_id}' not found."


def cached_content(name: str) -> ObjectRef:
    """A Gemini cache by its name, with or without the ``cachedContents/`` prefix."""
    return ObjectRef(
        "google", CACHED_CONTENT, name if name.startswith(_CACHE_PREFIX) else _CACHE_PREFIX + name
    )


def stored_response(response_id: str) -> ObjectRef:
    return ObjectRef("openai", RESPONSE, response_id)


# ---------------------------------------------------------------- requests


def named(parsed: ParsedRequest) -> ObjectRef | None:
    """The stored object the request names, which the caller's project must own."""
    endpoint = parsed.endpoint
    if endpoint.api == "google":
        if endpoint.kind in _CACHE_NAMING:
            return cached_content(parsed.path_params["name"])
        return cached_content(parsed.cached_content) if parsed.cached_content else None
    if endpoint.api != "openai":
        return None
    if endpoint.kind in _RESPONSE_NAMING:
        return stored_response(parsed.path_params["name"])
    if endpoint.kind == "responses":
        previous = (parsed.doc or {}).get("previous_response_id")
        if previous is None:
            return None
        if not isinstance(previous, str) or not previous.strip():
            raise InvalidInput(
                "previous_response_id must be the id of a stored response, such as 'resp_abc123'"
            )
        return stored_response(previous)
    return None


def named_items(parsed: ParsedRequest) -> list[ObjectRef]:
    """Stored response items the request's input names for the API to fetch by id, which
    the caller's project must own (items sent whole are only their content)."""
    items = (parsed.doc or {}).get("input") if parsed.endpoint.kind == "responses" else None
    if not isinstance(items, list):
        return []
    refs = []
    for item in items:
        kind = item.get("type") if isinstance(item, dict) else None
        fetched = kind == "item_reference" or (kind == "reasoning" and not item.get("encrypted_content"))
        if fetched:
            ident = item.get("id")
            if not isinstance(ident, str) or not ident:
                raise InvalidInput(f"an input item of type {kind} needs the id of a stored item")
            refs.append(ObjectRef("openai", RESPONSE_ITEM, ident))
    return refs


def takes_stored_model(parsed: ParsedRequest) -> bool:
    """A Gemini cache update names no model, yet its storage is priced at the rates of the
    model the cache was made for: the one recorded with the cache."""
    return parsed.endpoint.kind == "cache_update"


def deleted(parsed: ParsedRequest) -> ObjectRef | None:
    """The object a successful answer to this request deletes."""
    kind = parsed.endpoint.kind
    return named(parsed) if kind in ("cache_delete", "response_delete") else None


def answer_matters(parsed: ParsedRequest) -> bool:
    """Whether the answer creates, deletes or lists stored objects (False for plain chat)."""
    return parsed.endpoint.kind in _ANSWER_KINDS


def created(parsed: ParsedRequest, doc: Any) -> list[ObjectRef]:
    """The objects a successful answer created: a Gemini cache, or a stored response and its
    output items (``doc`` is the response object: the whole answer, or the ``response`` of
    a stream event)."""
    if not isinstance(doc, dict):
        return []
    kind = parsed.endpoint.kind
    model = doc.get("model")
    model = model_name(model) if isinstance(model, str) and model else parsed.model
    if kind == "cache_create":
        name = doc.get("name")
        if isinstance(name, str) and name:
            tokens = _tokens(sub(doc, "usageMetadata"), "totalTokenCount")
            return [ObjectRef("google", CACHED_CONTENT, cached_content(name).object_id, model, tokens)]
    elif kind == "responses":
        ident = doc.get("id")
        asked = (parsed.doc or {}).get("store", True)  # the API stores responses by default
        if isinstance(ident, str) and ident and doc.get("store", asked) is not False:
            usage = sub(doc, "usage")
            # An output item fetched by id is at most the response's whole output.
            item_tokens = _tokens(usage, "output_tokens")
            output = doc.get("output")
            items = [
                ObjectRef("openai", RESPONSE_ITEM, item["id"], model, item_tokens)
                for item in (output if isinstance(output, list) else [])
                if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]
            ]
            # A follow-up's input starts with this response's whole input and output. Its
            # input already holds the earlier turns; its output may count reasoning the API
            # drops from later turns, so this may over-count, never under-count.
            tokens = _tokens(usage, "input_tokens", "output_tokens")
            return [ObjectRef("openai", RESPONSE, ident, model, tokens), *items]
    return []


def _tokens(usage: dict[str, Any], *counts: str) -> int | None:
    """The sum of the usage counts, or None when the answer reported no usage (a stream
    broken off before its final event)."""
    if not usage:
        return None
    return sum(as_int(usage.get(count)) for count in counts)


def listed(parsed: ParsedRequest, doc: Any) -> list[ObjectRef]:
    """The objects in a list answer (Gemini ``cachedContents``)."""
    if parsed.endpoint.kind != "cache_list" or not isinstance(doc, dict):
        return []
    items = doc.get("cachedContents")
    if not isinstance(items, list):
        return []
    return [
        cached_content(item["name"])
        for item in items
        if isinstance(item, dict) and isinstance(item.get("name"), str)
    ]


# A project's list is gathered from every page of the account's, in pages this large (the
# API's maximum); the page size must stay the same while following page tokens.
_LIST_PAGE_SIZE = "1000"


def whole_list_query(parsed: ParsedRequest) -> dict[str, str]:
    """The query that asks for the first page of the account's list, as large as it goes
    (the client's own pageSize and pageToken do not apply: it gets its list in one page)."""
    return {
        **{k: v for k, v in parsed.query.items() if k not in ("pageSize", "pageToken")},
        "pageSize": _LIST_PAGE_SIZE,
    }


def next_page(doc: dict[str, Any]) -> str | None:
    """The token of the page after this one, or None on the last page."""
    token = doc.get("nextPageToken")
    return token if isinstance(token, str) and token else None


def owned_list(items: list[Any]) -> dict[str, Any]:
    """A list answer of these objects, in one page (an empty list as Gemini answers it)."""
    return {"cachedContents": items} if items else {}


def keep_owned(doc: dict[str, Any], owned: Container[str]) -> list[Any]:
    """The objects of one page of the account's list that are in ``owned``."""
    return [
        item
        for item in doc.get("cachedContents") or []
        if isinstance(item, dict) and cached_content(str(item.get("name", ""))).object_id in owned
    ]


# ---------------------------------------------------------------- refusals

# Fields, anywhere in a body, that refer to a file or a store of files kept at the provider
# (whether they do depends on the value). Every one of them contains "file": a body without
# it is not walked (vector_store_ids come only with the file_search tool). A byte search
# costs far less than a walk of a long conversation's documents.
_FILE_MARKER = b"file"
_REFERENCE_KEYS = frozenset(
    {
        "file_id",
        "file_ids",
        "vector_store_ids",
        "fileUri",
        "file_uri",
        "fileSearchStoreNames",
        "file_search_store_names",
    }
)
# Gemini names uploaded files "files/abc" or by their URL ".../v1beta/files/abc".
_GEMINI_FILE = re.compile(r"^(?:https://generativelanguage\.googleapis\.com/[^/]+/)?files/")


def _unserved(what: str, api: str, where: str) -> str:
    return (
        f"{where} refers to {what}: kakin does not serve the {api} API, and with the provider "
        "key it shares between projects such an id can only name another tenant's object"
    )


def _reference(api: str, key: str, value: Any, where: str) -> str | None:
    """Why the field ``key`` (at ``where``) refers to an object kakin never created, or None."""
    if key in ("file_id", "file_ids") and value:
        return _unserved("an uploaded file", "Files", where) + "; send the content inline instead"
    if key == "vector_store_ids" and value:
        return _unserved("a vector store", "Vector stores", where)
    if api == "google":
        if key in ("fileUri", "file_uri") and isinstance(value, str) and _GEMINI_FILE.match(value):
            return _unserved("an uploaded file", "Files", where) + "; send the content inline instead"
        if key in ("fileSearchStoreNames", "file_search_store_names") and value:
            return _unserved("a file search store", "File search stores", where)
    return None


def _container(endpoint_kind: str, doc: dict[str, Any]) -> str | None:
    """Why the request names an existing container (Anthropic's ``container``, a Responses
    code interpreter's ``container``) or a custom skill to load in one, or None: a new
    container with the provider's own skills is fine."""
    places: list[tuple[str, Any]] = []
    if endpoint_kind in ("messages", "count_tokens"):
        places.append(("container", doc.get("container")))
    elif endpoint_kind == "responses" and isinstance(doc.get("tools"), list):
        places += [
            (f"tools[{index}].container", tool.get("container"))
            for index, tool in enumerate(doc["tools"])
            if isinstance(tool, dict)
        ]
    for where, value in places:
        if isinstance(value, str) or (isinstance(value, dict) and value.get("id")):
            return _unserved("an existing container", "Containers", where)
        skills = value.get("skills") if isinstance(value, dict) else None
        for index, skill in enumerate(skills if isinstance(skills, list) else []):
            if isinstance(skill, dict) and skill.get("type") == "custom":
                return _unserved("a custom skill", "Skills", f"{where}.skills[{index}]")
    return None


def _find(api: str, value: Any) -> tuple[list[str], str, Any] | None:
    """The first reference in ``value``: (its path, innermost part first; its field; the
    field's value), or None. Visits containers only: text is never scanned."""
    if isinstance(value, dict):
        if not _REFERENCE_KEYS.isdisjoint(value):
            for key in value.keys() & _REFERENCE_KEYS:
                if _reference(api, key, value[key], key):
                    return [f".{key}"], key, value[key]
        for key, item in value.items():
            if isinstance(item, dict | list) and (found := _find(api, item)):
                found[0].append(f".{key}")
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict | list) and (found := _find(api, item)):
                found[0].append(f"[{index}]")
                return found
    return None


def _refers(api: str, doc: dict[str, Any]) -> str | None:
    """Why ``doc`` refers to a file or a store of files kakin never created, or None."""
    found = _find(api, doc)
    if found is None:
        return None
    parts, key, value = found
    return _reference(api, key, value, "".join(reversed(parts)).lstrip("."))


def refusal(parsed: ParsedRequest) -> str | None:
    """Why kakin refuses this request because of a provider-side object it involves, or None."""
    endpoint, doc = parsed.endpoint, parsed.doc
    if endpoint.body != "json" or doc is None:
        return None
    if endpoint.kind == "chat" and doc.get("store") is True:
        return (
            "store: true keeps the completion at the provider, where kakin cannot scope it to "
            "your project (kakin does not serve the stored chat completions API); omit store, "
            "or use the Responses API, whose stored responses kakin keeps per project"
        )
    if endpoint.kind == "responses":
        if doc.get("conversation") is not None:
            return (
                "conversation refers to a conversation object: kakin does not serve the "
                "Conversations API; chain responses with previous_response_id instead"
            )
        if doc.get("background") is True:
            return (
                "background responses are not supported: kakin bills a response from the usage "
                "in its answer; send the request without background (streaming if it is long)"
            )
        prompt = doc.get("prompt")
        if isinstance(prompt, dict) and prompt.get("id") is not None:
            return _unserved("a stored prompt", "Prompts", "prompt.id") + "; send the instructions instead"
    reason = _container(endpoint.kind, doc)
    if reason is not None or _FILE_MARKER not in parsed.body:
        return reason
    return _refers(endpoint.api, doc)
