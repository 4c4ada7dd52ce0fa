"""OpenAI (and Azure) ``POST /v1/embeddings``: input tokens only.

``input`` is a string, an array of strings, an array of token ids or an array of such
arrays; token-id inputs are counted by their length, exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kakin.errors import InvalidInput
from kakin.pricing import Usage
from kakin.providers import counting
from kakin.providers.adapter import Adapter, as_int, sub, swap_model
from kakin.providers.endpoints import Endpoint
from kakin.providers.openai_chat import resolve_model
from kakin.providers.request import ParsedRequest, load_json_object, optional_int

MAX_INPUTS = 2048


def parse(
    endpoint: Endpoint,
    body: bytes,
    path_params: Mapping[str, str],
    query: Mapping[str, str],
    model_map: Mapping[str, str],
) -> ParsedRequest:
    doc = load_json_object(body, endpoint)
    model, deployment = resolve_model(endpoint, doc, path_params, model_map)
    optional_int(doc, "dimensions", maximum=100_000)
    tokens, bound, exact, method = count_inputs(doc.get("input"), model)
    return ParsedRequest(
        endpoint=endpoint,
        model=model,
        input_count=counting.Count.known(tokens, bound, exact, method),
        deployment=deployment,
        doc=doc,
        path_params=path_params,
        query=query,
        body=body,
    )


def inputs_of(value: Any) -> list[str | list[int]]:
    """Normalise ``input`` to a list of strings or token-id lists; InvalidInput otherwise."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return [value]
        if len(value) > MAX_INPUTS:
            raise InvalidInput(f"input has {len(value)} items; at most {MAX_INPUTS} per request")
        out: list[str | list[int]] = []
        for index, item in enumerate(value):
            if isinstance(item, str) or (
                isinstance(item, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in item)
            ):
                out.append(item)
            else:
                raise InvalidInput(f"input[{index}] must be a string or an array of token ids")
        return out
    raise InvalidInput("input is required: a non-empty string, array of strings or array of token ids")


def count_inputs(value: Any, model: str) -> tuple[int, int, bool, str]:
    tokens = bound = 0
    exact = True
    method = "token-ids"
    for item in inputs_of(value):
        if isinstance(item, list):
            tokens += len(item)
            bound += len(item)
            continue
        count = counting.count_text(item, model)
        tokens += count.tokens
        bound += count.upper_bound
        exact = exact and count.exact
        method = count.method
    return tokens, bound, exact, method


def usage(parsed: ParsedRequest, doc: Any) -> Usage | None:
    block = sub(doc, "usage")
    if not block:
        return None
    return Usage(input_tokens=as_int(block.get("prompt_tokens")))


ADAPTER = Adapter(parse=parse, rewrite=swap_model, usage=usage)
