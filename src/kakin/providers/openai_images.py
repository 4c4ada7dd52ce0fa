"""OpenAI (and Azure) ``POST /v1/images/generations``.

DALL·E models are priced per image by size and quality; ``gpt-image-*`` models by tokens
(text and image input, image output) and report them in ``usage``. A response with token
usage is billed by its tokens; one without is billed per image by size and quality. ``"auto"`` size or quality is bounded at the dearest option
before the request, and replaced by what the response says was produced after it.
gpt-image-2 and later take any ``WxH`` size: the catalog bounds them by pixels up to the
model's largest size, and holds ``"auto"`` at that size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kakin.errors import InvalidInput
from kakin.pricing import Usage, image_dimensions
from kakin.providers import counting
from kakin.providers.adapter import Adapter, as_int, sub, swap_model
from kakin.providers.endpoints import Endpoint
from kakin.providers.openai_chat import resolve_model
from kakin.providers.request import (
    MAX_IMAGES_PER_REQUEST,
    ParsedRequest,
    load_json_object,
    optional_int,
    optional_str,
    require_str,
)

DEFAULT_MODEL = "dall-e-2"
# model family → (sizes, qualities, default size, default quality, most expensive size)
_FAMILIES: dict[str, tuple[tuple[str, ...], tuple[str, ...], str, str, str]] = {
    "dall-e-2": (("256x256", "512x512", "1024x1024"), ("standard",), "1024x1024", "standard", "1024x1024"),
    "dall-e-3": (
        ("1024x1024", "1792x1024", "1024x1792"),
        ("standard", "hd"),
        "1024x1024",
        "standard",
        "1792x1024",
    ),
    "gpt-image": (
        ("1024x1024", "1536x1024", "1024x1536"),
        ("low", "medium", "high"),
        "auto",
        "auto",
        "1536x1024",
    ),
    # any "WxH" (no sizes listed); "auto" is kept: the catalog knows the model's largest size
    "gpt-image-2": ((), ("low", "medium", "high"), "auto", "auto", "auto"),
}


def family(model: str) -> str:
    if model.startswith("dall-e-3"):
        return "dall-e-3"
    if model.startswith("dall-e-2"):
        return "dall-e-2"
    if model.startswith("gpt-image-2"):
        return "gpt-image-2"
    return "gpt-image"


def parse(
    endpoint: Endpoint,
    body: bytes,
    path_params: Mapping[str, str],
    query: Mapping[str, str],
    model_map: Mapping[str, str],
) -> ParsedRequest:
    doc = load_json_object(body, endpoint)
    if endpoint.api == "openai" and doc.get("model") is None:
        model, deployment = DEFAULT_MODEL, None
    else:
        model, deployment = resolve_model(endpoint, doc, path_params, model_map)
    prompt = require_str(doc, "prompt", example="a watercolor fox")
    maximum = 1 if family(model) == "dall-e-3" else MAX_IMAGES_PER_REQUEST
    n = optional_int(doc, "n", maximum=maximum) or 1
    size, quality = resolve_size_quality(model, optional_str(doc, "size"), optional_str(doc, "quality"))
    count = counting.count_text(prompt, model)
    return ParsedRequest(
        endpoint=endpoint,
        model=model,
        images=n,
        image_size=bound_size(model, size),
        image_quality=bound_quality(model, quality),
        **count.request_fields(),
        deployment=deployment,
        doc=doc,
        path_params=path_params,
        query=query,
        body=body,
    )


def resolve_size_quality(model: str, size: str | None, quality: str | None) -> tuple[str, str]:
    """Validated (size, quality) with the model's defaults; "auto" kept as "auto"."""
    sizes, qualities, default_size, default_quality, _ = _FAMILIES[family(model)]
    size = size or default_size
    quality = quality or default_quality
    if quality == "hd" and family(model) != "dall-e-3":
        raise InvalidInput(f"quality 'hd' is only offered by dall-e-3, not {model!r}")
    if quality in ("standard", "hd") and family(model).startswith("gpt-image"):
        quality = "auto" if quality == "standard" else quality
    if size != "auto" and not sizes:
        image_dimensions(size)  # any well-formed size; the catalog refuses one beyond the model's largest
    elif size != "auto" and size not in sizes:
        raise InvalidInput(f"size {size!r} is not offered by {model!r}; choose one of {', '.join(sizes)}")
    if quality != "auto" and quality not in qualities:
        raise InvalidInput(
            f"quality {quality!r} is not offered by {model!r}; choose one of {', '.join(qualities)}"
        )
    return size, quality


def bound_size(model: str, size: str) -> str:
    return _FAMILIES[family(model)][4] if size == "auto" else size


def bound_quality(model: str, quality: str) -> str:
    return _FAMILIES[family(model)][1][-1] if quality == "auto" else quality


def usage(parsed: ParsedRequest, doc: Any) -> Usage | None:
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        return None
    size = doc.get("size") if isinstance(doc.get("size"), str) else parsed.image_size
    quality = doc.get("quality") if isinstance(doc.get("quality"), str) else parsed.image_quality
    block = sub(doc, "usage")
    if not block:  # DALL·E (or an answer without usage): billed per image of its size and quality
        return Usage(images=len(doc["data"]), image_size=size, image_quality=quality)
    # GPT Image: billed by the tokens reported (the image output tokens already count every
    # image produced), so the images are not counted a second time.
    details = sub(block, "input_tokens_details")
    output_details = sub(block, "output_tokens_details")
    output = as_int(block.get("output_tokens"))
    image_out = as_int(output_details.get("image_tokens")) if output_details else output
    return Usage(
        input_tokens=as_int(block.get("input_tokens")),
        input_image_tokens=as_int(details.get("image_tokens")),
        output_tokens=output,
        output_image_tokens=image_out,
        image_size=size,
        image_quality=quality,
    )


ADAPTER = Adapter(parse=parse, rewrite=swap_model, usage=usage)
