"""The simulated OpenAI API (also served at Azure deployment paths)."""

from __future__ import annotations

import base64
import hashlib
import math
import secrets
import struct
import time
from collections import OrderedDict
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import orjson

from kakin.pricing import image_dimensions
from kakin.providers.openai_audio import wav_seconds
from kakin.providers.openai_images import family
from kakin.providers.simulator.reply import SSE, Reply, data_event, json_reply, named_event
from kakin.providers.simulator.text import (
    Completion,
    complete,
    digest,
    is_reasoning_model,
    reasoning_tokens,
    split,
)

if TYPE_CHECKING:
    from kakin.providers.simulator.app import Call

MODELS = (
    "gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-5", "gpt-5-mini", "gpt-5-nano",
    "o3", "o3-mini", "o4-mini", "text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002",
    "dall-e-2", "dall-e-3", "gpt-image-1", "whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe",
)  # fmt: skip


def _cap(doc: dict[str, Any], *keys: str) -> int | None:
    values = [doc[k] for k in keys if isinstance(doc.get(k), int)]
    return min(values) if values else None


def _answer(call: Call, seed: bytes, cap: int | None, effort: str | None) -> tuple[Completion, int, bool]:
    """(visible completion, reasoning tokens, cut by the cap)."""
    model = call.parsed.model
    reasoning = reasoning_tokens(seed, effort) if is_reasoning_model(model) else 0
    if cap is not None:
        reasoning = min(reasoning, cap)
    budget = None if cap is None else cap - reasoning
    text = complete(seed, model, budget, call.faults.words)
    return text, reasoning, text.truncated or budget == 0


def _ident(prefix: str, seed: bytes) -> str:
    return prefix + seed.hex()[:24]


# ---------------------------------------------------------------- chat completions


def chat(call: Call) -> Reply:
    parsed, doc = call.parsed, call.parsed.doc or {}
    model = parsed.model
    messages = doc.get("messages") or []
    seed = digest(model.encode(), orjson.dumps(messages), orjson.dumps(doc.get("tools")))
    cap = _cap(doc, "max_completion_tokens", "max_tokens")
    n = doc.get("n") if isinstance(doc.get("n"), int) else 1
    answers = [
        _answer(call, digest(seed, bytes([i])) if i else seed, cap, doc.get("reasoning_effort"))
        for i in range(n)
    ]
    prompt = parsed.input_tokens
    cached = call.sim.openai_cache.cached_tokens(model, messages, doc.get("tools"), prompt)
    completion = sum(text.tokens + reasoning for text, reasoning, _ in answers)
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": sum(r for _, r, _ in answers),
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    ident, created = _ident("chatcmpl-", seed), int(time.time())
    common = {
        "id": ident,
        "created": created,
        "model": model,
        "system_fingerprint": "fp_kakin_sim",
        "service_tier": served_tier(doc),
    }
    if not parsed.stream:
        choices = [
            {
                "index": i,
                "message": {"role": "assistant", "content": text.text, "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": "length" if cut else "stop",
            }
            for i, (text, _, cut) in enumerate(answers)
        ]
        body: dict[str, Any] = {
            "object": "chat.completion",
            **common,
            "choices": choices,
        }
        if not call.faults.no_usage:
            body["usage"] = usage
        return json_reply(body)
    include_usage = bool((doc.get("stream_options") or {}).get("include_usage")) and not call.faults.no_usage
    chunk = {"object": "chat.completion.chunk", **common}
    if include_usage:
        chunk["usage"] = None
    events: list[bytes] = []
    for i, (text, _, cut) in enumerate(answers):
        first = {"role": "assistant", "content": "", "refusal": None}
        events.append(data_event({**chunk, "choices": [_delta(i, first, None)]}))
        for piece in split(text.pieces, call.faults.chunks):
            events.append(data_event({**chunk, "choices": [_delta(i, {"content": piece}, None)]}))
        events.append(data_event({**chunk, "choices": [_delta(i, {}, "length" if cut else "stop")]}))
    if include_usage:
        events.append(data_event({**chunk, "choices": [], "usage": usage}))
    events.append(b"data: [DONE]\n\n")
    return Reply(events=events, content_type=SSE)


def served_tier(doc: dict[str, Any]) -> str:
    """The tier that serves a request: the flex, priority or scale tier it asks for, else
    the default one (OpenAI answers "auto" with the tier it chose)."""
    asked = doc.get("service_tier")
    return asked if asked in ("flex", "priority", "scale") else "default"


def _delta(index: int, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}


# ---------------------------------------------------------------- responses


class StoredResponses:
    """Responses created with ``store`` (the default), as the Responses API keeps them: read,
    listed by input items, deleted, and continued with ``previous_response_id``: a response
    that continues one has the whole conversation so far as input, its own input and output
    tokens added to those of the request. An output item named by id in a later input
    (``item_reference``, a ``reasoning`` item without ``encrypted_content``) adds its tokens."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._entries: OrderedDict[str, tuple[dict[str, Any], list[Any]]] = OrderedDict()
        self._conversations: dict[str, int] = {}  # tokens of the conversation up to each response
        self._items: dict[str, int] = {}  # tokens of each output item

    def put(
        self,
        response: dict[str, Any],
        input_items: list[Any],
        conversation_tokens: int,
        item_tokens: dict[str, int],
    ) -> None:
        self._entries[response["id"]] = (response, input_items)
        self._conversations[response["id"]] = conversation_tokens
        self._items.update(item_tokens)
        if len(self._entries) > self.limit:
            self.delete(next(iter(self._entries)))

    def fetched_tokens(self, items: list[Any]) -> int:
        """The tokens of the stored output items an input names by id (0 for unknown ids)."""
        return sum(
            self._items.get(item.get("id"), 0)
            for item in items
            if isinstance(item, dict)
            and (
                item.get("type") == "item_reference"
                or (item.get("type") == "reasoning" and not item.get("encrypted_content"))
            )
        )

    def get(self, response_id: str) -> tuple[dict[str, Any], list[Any]] | None:
        return self._entries.get(response_id)

    def conversation_tokens(self, response_id: str | None) -> int:
        """The tokens a response continuing this one starts with (0 for none)."""
        return self._conversations.get(response_id, 0) if response_id else 0

    def delete(self, response_id: str) -> bool:
        entry = self._entries.pop(response_id, None)
        if entry is None:
            return False
        del self._conversations[response_id]
        for item in entry[0]["output"]:
            self._items.pop(item["id"], None)
        return True


def _response_not_found(response_id: str, param: str | None = None) -> Reply:
    error = {
        "message": f"Response with id '{response_id}' not found.",
        "type": "invalid_request_error",
        "param": param,
        "code": "previous_response_not_found" if param else None,
    }
    return json_reply({"error": error}, 404)


def responses(call: Call) -> Reply:
    parsed, doc = call.parsed, call.parsed.doc or {}
    model = parsed.model
    previous = doc.get("previous_response_id")
    if previous is not None and call.sim.stored_responses.get(previous) is None:
        return _response_not_found(previous, "previous_response_id")
    seed = digest(model.encode(), orjson.dumps(doc.get("input")), orjson.dumps(doc.get("instructions")))
    effort = (doc.get("reasoning") or {}).get("effort") if isinstance(doc.get("reasoning"), dict) else None
    text, reasoning, cut = _answer(call, seed, _cap(doc, "max_output_tokens"), effort)
    items = doc.get("input")
    turns: list[Any] = [{"role": "user", "content": items}] if isinstance(items, str) else list(items or [])
    cached = call.sim.openai_cache.cached_tokens(model, turns, doc.get("tools"), parsed.input_tokens)
    stored = call.sim.stored_responses
    prompt = parsed.input_tokens + stored.conversation_tokens(previous) + stored.fetched_tokens(turns)
    usage = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": text.tokens + reasoning,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + text.tokens + reasoning,
    }
    # Unique ids, as the API's: a stored response and its items are objects of their own.
    ident = "resp_" + secrets.token_hex(24)
    message_id = "msg_" + ident[5:]
    store = doc.get("store") is not False
    part = {"type": "output_text", "text": text.text, "annotations": [], "logprobs": []}
    message = {
        "type": "message",
        "id": message_id,
        "status": "incomplete" if cut else "completed",
        "role": "assistant",
        "content": [part],
    }
    output: list[dict[str, Any]] = []
    if reasoning:
        output.append({"type": "reasoning", "id": "rs_" + ident[5:], "summary": []})
    output.append(message)
    base = {
        "id": ident,
        "object": "response",
        "created_at": int(time.time()),
        "model": model,
        "instructions": doc.get("instructions"),
        "max_output_tokens": doc.get("max_output_tokens"),
        "parallel_tool_calls": True,
        "previous_response_id": doc.get("previous_response_id"),
        "reasoning": {"effort": effort, "summary": None},
        "store": store,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "metadata": {},
        "error": None,
        "service_tier": served_tier(doc),
    }
    final = {
        **base,
        "status": "incomplete" if cut else "completed",
        "incomplete_details": {"reason": "max_output_tokens"} if cut else None,
        "output": output,
        "usage": None if call.faults.no_usage else usage,
    }
    if store:
        item_tokens = {message_id: text.tokens, **({output[0]["id"]: reasoning} if reasoning else {})}
        stored.put(final, turns, prompt + text.tokens + reasoning, item_tokens)
    if not parsed.stream:
        return json_reply(final)
    pending = {**base, "status": "in_progress", "incomplete_details": None, "output": [], "usage": None}
    events: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": pending}),
        ("response.in_progress", {"response": pending}),
    ]
    index = 0
    if reasoning:
        events.append(("response.output_item.added", {"output_index": 0, "item": output[0]}))
        events.append(("response.output_item.done", {"output_index": 0, "item": output[0]}))
        index = 1
    empty_message = {**message, "status": "in_progress", "content": []}
    empty_part = {**part, "text": ""}
    where = {"item_id": message_id, "output_index": index}
    events.append(("response.output_item.added", {"output_index": index, "item": empty_message}))
    events.append(("response.content_part.added", {**where, "content_index": 0, "part": empty_part}))
    for piece in split(text.pieces, call.faults.chunks):
        events.append(
            ("response.output_text.delta", {**where, "content_index": 0, "delta": piece, "logprobs": []})
        )
    events.append(
        ("response.output_text.done", {**where, "content_index": 0, "text": text.text, "logprobs": []})
    )
    events.append(("response.content_part.done", {**where, "content_index": 0, "part": part}))
    events.append(("response.output_item.done", {"output_index": index, "item": message}))
    events.append(("response.incomplete" if cut else "response.completed", {"response": final}))
    out = [
        named_event(kind, {"type": kind, "sequence_number": n, **data})
        for n, (kind, data) in enumerate(events)
    ]
    return Reply(events=out, content_type=SSE)


def response_get(call: Call) -> Reply:
    response_id = call.parsed.path_params["name"]
    stored = call.sim.stored_responses.get(response_id)
    return json_reply(stored[0]) if stored else _response_not_found(response_id)


def response_delete(call: Call) -> Reply:
    response_id = call.parsed.path_params["name"]
    if not call.sim.stored_responses.delete(response_id):
        return _response_not_found(response_id)
    return json_reply({"id": response_id, "object": "response.deleted", "deleted": True})


def response_input_items(call: Call) -> Reply:
    response_id = call.parsed.path_params["name"]
    stored = call.sim.stored_responses.get(response_id)
    if stored is None:
        return _response_not_found(response_id)
    data = [
        {"id": f"msg_{response_id[5:29]}{index:04d}", "status": "completed", **item}
        for index, item in enumerate(stored[1])
        if isinstance(item, dict)
    ]
    ids = [item["id"] for item in data]
    return json_reply(
        {
            "object": "list",
            "data": data,
            "first_id": ids[0] if ids else None,
            "last_id": ids[-1] if ids else None,
            "has_more": False,
        }
    )


# ---------------------------------------------------------------- embeddings

_DIMENSIONS = {"text-embedding-3-large": 3072}


@lru_cache(maxsize=4096)
def _vector(seed: bytes, dims: int) -> tuple[float, ...]:
    raw = hashlib.shake_128(seed).digest(dims * 2)
    values = [v - 32768 for v in struct.unpack(f"<{dims}H", raw)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return tuple(v / norm for v in values)


def embeddings(call: Call) -> Reply:
    from kakin.providers.openai_embeddings import inputs_of

    parsed, doc = call.parsed, call.parsed.doc or {}
    dims = (
        doc.get("dimensions")
        if isinstance(doc.get("dimensions"), int)
        else _DIMENSIONS.get(parsed.model, 1536)
    )
    as_base64 = doc.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(inputs_of(doc.get("input"))):
        vector = _vector(digest(parsed.model.encode(), orjson.dumps(item)), dims)
        encoded: Any = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode() if as_base64 else vector
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    body: dict[str, Any] = {"object": "list", "data": data, "model": parsed.model}
    if not call.faults.no_usage:
        body["usage"] = {"prompt_tokens": parsed.input_tokens, "total_tokens": parsed.input_tokens}
    return json_reply(body)


# ---------------------------------------------------------------- images

# A 1×1 PNG: real image bytes, tiny on the wire.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
PNG_B64 = base64.b64encode(PNG).decode()
# gpt-image output tokens per image, by quality and size (OpenAI's published table).
_IMAGE_TOKENS = {
    "low": {"1024x1024": 272, "1024x1536": 408, "1536x1024": 400},
    "medium": {"1024x1024": 1056, "1024x1536": 1584, "1536x1024": 1568},
    "high": {"1024x1024": 4160, "1024x1536": 6240, "1536x1024": 6208},
}


def _image_tokens(quality: str, size: str) -> int:
    """The published count for a listed size; any other size (gpt-image-2) at the 1024x1024
    figure's density, rounded down."""
    listed = _IMAGE_TOKENS[quality].get(size)
    if listed is not None:
        return listed
    width, height = image_dimensions(size)
    return _IMAGE_TOKENS[quality]["1024x1024"] * width * height // (1024 * 1024)


def images(call: Call) -> Reply:
    from kakin.providers.openai_images import resolve_size_quality

    parsed, doc = call.parsed, call.parsed.doc or {}
    model = parsed.model
    size, quality = resolve_size_quality(model, doc.get("size"), doc.get("quality"))
    kind = family(model)
    body: dict[str, Any] = {"created": int(time.time())}
    if kind.startswith("gpt-image"):
        size = "1024x1024" if size == "auto" else size
        quality = "medium" if quality == "auto" else quality
        item: dict[str, Any] = {"b64_json": PNG_B64}
        per_image = _image_tokens(quality, size)
        body.update({"background": "opaque", "output_format": "png", "quality": quality, "size": size})
        if not call.faults.no_usage:
            output = per_image * parsed.images
            body["usage"] = {
                "input_tokens": parsed.input_tokens,
                "input_tokens_details": {"text_tokens": parsed.input_tokens, "image_tokens": 0},
                "output_tokens": output,
                "total_tokens": parsed.input_tokens + output,
            }
    elif doc.get("response_format") == "b64_json":
        item = {"b64_json": PNG_B64}
    else:
        item = {"url": "data:image/png;base64," + PNG_B64}
    if kind == "dall-e-3":
        item["revised_prompt"] = doc.get("prompt")
    body["data"] = [dict(item) for _ in range(parsed.images)]
    return json_reply(body)


# ---------------------------------------------------------------- transcriptions

# Compressed uploads are assumed to be 128 kbit/s when reporting their duration.
ASSUMED_BYTES_PER_SECOND = 16_000


def transcriptions(call: Call) -> Reply:
    from kakin.providers.multipart import parse_form

    parsed = call.parsed
    fields = parsed.doc or {}
    audio = parse_form(parsed.body)["file"].data
    exact = wav_seconds(audio)
    seconds = exact if exact is not None else Decimal(len(audio)) / ASSUMED_BYTES_PER_SECOND
    words = max(1, math.ceil(seconds * Decimal("2.5")))
    text = complete(digest(audio[:65536], str(len(audio)).encode()), parsed.model, None, words)
    duration = float(seconds)
    if parsed.model.startswith("whisper"):
        usage: dict[str, Any] = {"type": "duration", "seconds": math.ceil(seconds)}
    else:
        audio_tokens = math.ceil(seconds * 10)
        usage = {
            "type": "tokens",
            "input_tokens": audio_tokens,
            "input_token_details": {"text_tokens": 0, "audio_tokens": audio_tokens},
            "output_tokens": text.tokens,
            "total_tokens": audio_tokens + text.tokens,
        }
    response_format = fields.get("response_format", "json")
    if response_format in ("text", "srt", "vtt"):
        body = _captions(text.text, duration, response_format)
        return Reply(body=body.encode(), content_type=b"text/plain; charset=utf-8")
    doc: dict[str, Any] = {"text": text.text}
    if response_format == "verbose_json":
        doc = {
            "task": "transcribe",
            "language": fields.get("language", "english"),
            "duration": duration,
            "text": text.text,
            "segments": [
                {
                    "id": 0,
                    "seek": 0,
                    "start": 0.0,
                    "end": duration,
                    "text": text.text,
                    "tokens": [],
                    "temperature": 0.0,
                    "avg_logprob": -0.2,
                    "compression_ratio": 1.0,
                    "no_speech_prob": 0.0,
                }
            ],
        }
    if not call.faults.no_usage:
        doc["usage"] = usage
    return json_reply(doc)


def _captions(text: str, seconds: float, kind: str) -> str:
    if kind == "text":
        return text + "\n"
    end = time.strftime("%H:%M:%S", time.gmtime(seconds)) + f"{(seconds % 1):.3f}"[1:]
    if kind == "srt":
        return f"1\n00:00:00,000 --> {end.replace('.', ',')}\n{text}\n\n"
    return f"WEBVTT\n\n00:00:00.000 --> {end}\n{text}\n\n"


# ---------------------------------------------------------------- models


def models(call: Call) -> Reply:
    if call.headers.get(b"anthropic-version"):
        from kakin.providers.simulator.anthropic_api import models as anthropic_models

        return anthropic_models(call)
    if call.headers.get(b"x-goog-api-key"):
        from kakin.providers.simulator.gemini_api import models as gemini_models

        return gemini_models(call)
    data = [
        {"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "kakin-simulator"} for m in MODELS
    ]
    return json_reply({"object": "list", "data": data})
