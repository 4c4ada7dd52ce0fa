"""The simulated provider as a raw ASGI application.

It routes with the same endpoint table and parses with the same adapters as the gateway
(so it refuses what they refuse, in the provider's error shape), then answers from
``openai_api``, ``anthropic_api`` or ``gemini_api``. No framework sits in between: the
simulator is the baseline of the gateway benchmark, so its per-request work is one body
read, one (memoised) parse and one ``orjson.dumps``.

A paced stream (``chunk-delay``) stops the moment its client disconnects, as a provider stops
generating; ``Simulator.streams`` records how much of each stream was written.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from kakin.errors import KakinError
from kakin.providers.credentials import extract_credential
from kakin.providers.dispatch import parse
from kakin.providers.endpoints import Endpoint, match_endpoint
from kakin.providers.errors import error_for, error_response
from kakin.providers.request import ParsedRequest
from kakin.providers.simulator import anthropic_api, gemini_api, openai_api
from kakin.providers.simulator.config import SimulatorConfig
from kakin.providers.simulator.faults import HEADER, NO_FAULTS, Faults, parse_faults
from kakin.providers.simulator.prompt_cache import AnthropicCache, GeminiCaches, OpenAICache
from kakin.providers.simulator.reply import Reply

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_HANDLERS: dict[str, Callable[[Call], Reply]] = {}


@dataclass(slots=True)
class Call:
    """One request as the handlers see it."""

    parsed: ParsedRequest
    faults: Faults
    headers: dict[bytes, bytes]
    sim: Simulator


@dataclass(slots=True)
class StreamRecord:
    """One streamed answer: how many of its events were written before it ended."""

    events: int  # in the whole answer
    sent: int = 0
    hung_up: bool = False  # the client disconnected before the last event


class Simulator:
    """State shared by all requests: configuration, prompt caches, stored responses,
    memoised parses, and a record of the latest streams."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.openai_cache = OpenAICache(
            config.openai_cache_min_tokens, config.openai_cache_step, config.memory_entries
        )
        self.anthropic_cache = AnthropicCache(config.anthropic_cache_min_tokens, config.memory_entries)
        self.gemini_caches = GeminiCaches(config.memory_entries)
        self.stored_responses = openai_api.StoredResponses(config.memory_entries)
        self._parsed: OrderedDict[tuple[str, str, bytes], ParsedRequest] = OrderedDict()
        self._random = random.Random(config.seed)
        self._fault_specs: dict[bytes, Faults] = {}
        self.streams: deque[StreamRecord] = deque(maxlen=1024)

    def parse(
        self, endpoint: Endpoint, path: str, query: str, body: bytes, params: dict[str, str]
    ) -> ParsedRequest:
        key = (path, query, body)
        cached = self._parsed.get(key)
        if cached is not None:
            return cached
        parsed = parse(endpoint, body, params, dict(parse_qsl(query)))
        if len(body) <= 65536:
            self._parsed[key] = parsed
            if len(self._parsed) > self.config.memory_entries:
                self._parsed.popitem(last=False)
        return parsed

    def faults(self, header: bytes | None) -> Faults:
        if not header:
            return self.config.faults
        found = self._fault_specs.get(header)
        if found is None:
            found = self.config.faults.merged(parse_faults(header.decode("latin-1")))
            if len(self._fault_specs) < 1024:
                self._fault_specs[header] = found
        return found

    def roll(self, rate: float) -> bool:
        return rate > 0 and self._random.random() < rate


def _api_of(path: str) -> str:
    if path.startswith("/openai/"):
        return "azure"
    if path.startswith(("/v1beta/", "/v1/models/", "/v1/cachedContents")):
        return "google"
    if path.startswith("/v1/messages"):
        return "anthropic"
    return "openai"


def create_app(config: SimulatorConfig | None = None) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The simulator as an ASGI app (serve it with uvicorn, or use ``kakin simulate``)."""
    return asgi_app(Simulator(config or SimulatorConfig()))


def asgi_app(sim: Simulator) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The ASGI app answering with ``sim``'s state."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        api = _api_of(path)
        headers = dict(scope["headers"])
        body = await _read_body(receive)
        match = match_endpoint(scope["method"], path)
        if match is None:
            await _send_error(send, api, 404, f"no such endpoint: {scope['method']} {path}")
            return
        api = match.endpoint.api
        try:
            faults = sim.faults(headers.get(HEADER.encode()))
        except KakinError as exc:
            await _send_error(send, api, 400, exc.message)
            return
        if sim.config.required_key:
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            presented = extract_credential(
                {k.decode("latin-1"): v.decode("latin-1") for k, v in headers.items()}, query
            )
            if presented is None or presented.value != sim.config.required_key:
                await _send_error(
                    send, api, 401, "invalid API key: present the key the simulator was started with"
                )
                return
        if faults.latency_s:
            await asyncio.sleep(faults.latency_s)
        if faults.timeout_s is not None:
            await _hold(receive, faults.timeout_s)
            await _send_error(send, api, 504, "simulated timeout (x-kakin-simulate: timeout)")
            return
        if faults.status is not None:
            await _send_error(
                send, api, faults.status, f"simulated failure (x-kakin-simulate: status={faults.status})"
            )
            return
        if sim.roll(faults.error_rate):
            await _send_error(
                send, api, faults.error_status, f"simulated failure (error-rate={faults.error_rate})"
            )
            return
        try:
            parsed = sim.parse(
                match.endpoint,
                path,
                scope.get("query_string", b"").decode("latin-1"),
                body,
                match.path_params,
            )
            reply = _handler(match.endpoint)(Call(parsed, faults, headers, sim))
        except KakinError as exc:
            status, payload = error_for(api, exc)
            await _send(send, status, payload)
            return
        await _respond(send, receive, reply, faults, sim)

    return app


def _handler(endpoint: Endpoint) -> Callable[[Call], Reply]:
    if not _HANDLERS:
        _HANDLERS.update(
            {
                "chat": openai_api.chat,
                "responses": openai_api.responses,
                "response_get": openai_api.response_get,
                "response_delete": openai_api.response_delete,
                "response_input_items": openai_api.response_input_items,
                "embeddings": openai_api.embeddings,
                "images": openai_api.images,
                "transcriptions": openai_api.transcriptions,
                "openai.models": openai_api.models,
                "azure.models": openai_api.models,
                "messages": anthropic_api.messages,
                "anthropic.count_tokens": anthropic_api.count_tokens,
                "google.count_tokens": gemini_api.count_tokens,
                "generate": gemini_api.generate,
                "cache_create": gemini_api.cache_create,
                "cache_get": gemini_api.cache_get,
                "cache_list": gemini_api.cache_list,
                "cache_update": gemini_api.cache_update,
                "cache_delete": gemini_api.cache_delete,
                "google.models": gemini_api.models,
            }
        )
    return _HANDLERS.get(endpoint.name) or _HANDLERS[endpoint.kind]


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body"):
        return body
    parts = [body]
    while message.get("more_body"):
        message = await receive()
        parts.append(message.get("body", b""))
    return b"".join(parts)


async def _hold(receive: Receive, seconds: float) -> None:
    """Wait ``seconds`` or until the client hangs up, whichever comes first."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(_until_disconnect(receive, asyncio.Event()), seconds)


async def _send(send: Send, status: int, body: bytes, content_type: bytes = b"application/json") -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _send_error(send: Send, api: str, status: int, message: str) -> None:
    await _send(send, status, error_response(api, status, message))


async def _respond(send: Send, receive: Receive, reply: Reply, faults: Faults, sim: Simulator) -> None:
    if reply.events is None:
        await _send(send, reply.status, reply.body, reply.content_type)
        return
    events = reply.events if faults.truncate is None else reply.events[: faults.truncate]
    record = StreamRecord(events=len(events))
    sim.streams.append(record)
    headers = [(b"content-type", reply.content_type), (b"cache-control", b"no-cache"), *reply.headers]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    delay = faults.chunk_delay_s
    if not delay:
        # One write for the whole stream: what a fast upstream looks like to the gateway.
        await send({"type": "http.response.body", "body": b"".join(events)})
        record.sent = len(events)
        return
    gone = asyncio.Event()
    watcher = asyncio.ensure_future(_until_disconnect(receive, gone))
    try:
        for event in events:
            await send({"type": "http.response.body", "body": event, "more_body": True})
            record.sent += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await gone.wait()
            if gone.is_set():  # nobody reads on: stop generating
                record.hung_up = record.sent < len(events)
                return
    finally:
        watcher.cancel()
    await send({"type": "http.response.body", "body": b""})


async def _until_disconnect(receive: Receive, gone: asyncio.Event) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    gone.set()


__all__ = ["NO_FAULTS", "Call", "Simulator", "StreamRecord", "asgi_app", "create_app"]
