"""Bills that depend on what the provider served: GPT Image requests priced by the tokens
the response reports (every size and quality), and requests priced at the service tier the
response says served them. Expected amounts come from the installed catalog."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import openai
import orjson
import pytest

from kakin.catalog import Catalog
from kakin.money import to_pico
from kakin.pricing import Usage, price

from . import expected
from .conftest import Tenant

CATALOG = Catalog.default()


def _image_models() -> list[str]:
    """The GPT Image models the catalog prices by tokens and lists sizes × qualities for."""
    names = []
    for model in ("gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5"):
        period = CATALOG.resolve(model, "openai").period()
        if period.images is not None and period.component("output") is not None:
            names.append(model)
    return names


def _sizes_and_qualities(model: str) -> list[tuple[str, str]]:
    table = CATALOG.resolve(model, "openai").period().images
    assert table is not None
    return sorted(table.prices)


def _image_usage(usage: Any) -> Usage:
    """An images response's ``usage``: image output tokens (all of output_tokens unless the
    response splits them), text and image input tokens."""
    details = usage.input_tokens_details
    output_details = getattr(usage, "output_tokens_details", None)
    image_out = output_details.image_tokens if output_details is not None else usage.output_tokens
    return Usage(
        input_tokens=usage.input_tokens,
        input_image_tokens=details.image_tokens,
        output_tokens=usage.output_tokens,
        output_image_tokens=image_out,
    )


def _items(record: Any) -> list[dict[str, Any]]:
    items = record.cost_items
    return orjson.loads(items) if isinstance(items, str) else items


@pytest.mark.parametrize("model", _image_models())
def test_gpt_image_billed_by_reported_tokens_for_every_size_and_quality(tenant: Tenant, model: str) -> None:
    client = tenant.openai()
    costs = {}
    for size, quality in _sizes_and_qualities(model):
        raw = client.images.with_raw_response.generate(
            model=model,
            prompt="a fox reading an invoice",
            size=size,  # type: ignore[arg-type]
            quality=quality,  # type: ignore[arg-type]
        )
        answer = raw.parse()
        assert (answer.size, answer.quality, len(answer.data or [])) == (size, quality, 1)
        assert answer.usage is not None and answer.usage.output_tokens > 0
        record = tenant.record(raw.headers["x-kakin-request-id"])
        expected.assert_billed(record, _image_usage(answer.usage), model, "openai")
        items = _items(record)
        assert not any(item["component"].startswith("image ") for item in items), "billed twice"
        assert sum(int(item["quantity"]) for item in items if item["direction"] == "output") == (
            answer.usage.output_tokens
        )
        costs[(size, quality)] = record.cost
    for size in {size for size, _ in costs}:
        assert costs[(size, "low")] < costs[(size, "medium")] < costs[(size, "high")]
    assert tenant.balance().held == 0


def test_gpt_image_several_images_and_auto_quality(tenant: Tenant) -> None:
    model = "gpt-image-1"
    raw = tenant.openai().images.with_raw_response.generate(model=model, prompt="two foxes", n=2)
    answer = raw.parse()
    assert len(answer.data or []) == 2 and answer.usage is not None
    record = tenant.record(raw.headers["x-kakin-request-id"])
    expected.assert_billed(record, _image_usage(answer.usage), model, "openai")


def test_dall_e_3_billed_per_image_for_every_size_and_quality(tenant: Tenant) -> None:
    client = tenant.openai()
    for size, quality in _sizes_and_qualities("dall-e-3"):
        raw = client.images.with_raw_response.generate(
            model="dall-e-3",
            prompt="a fox",
            size=size,  # type: ignore[arg-type]
            quality=quality,  # type: ignore[arg-type]
        )
        assert raw.parse().usage is None
        record = tenant.record(raw.headers["x-kakin-request-id"])
        expected.assert_billed(
            record, Usage(images=1, image_size=size, image_quality=quality), "dall-e-3", "openai"
        )


def _bounded_image_models() -> list[str]:
    """Images API models priced by tokens with no published tokens per size × quality: the
    gateway holds them at kakin's bound."""
    names = []
    for entry in CATALOG.models("openai"):
        if not entry.model.startswith(("gpt-image", "chatgpt-image")):
            continue
        period = entry.period()
        if period.component("output") is not None and (period.images is None or not period.images.prices):
            names.append(entry.model)
    return names


def _assert_held_and_billed(tenant: Tenant, raw: Any, model: str) -> tuple[Decimal, Decimal]:
    """The bill is the catalog price of the usage the response reports, within the hold;
    returns (reserved, charged)."""
    answer = raw.parse()
    assert answer.usage is not None and answer.usage.output_tokens > 0
    record = tenant.record(raw.headers["x-kakin-request-id"])
    expected.assert_billed(record, _image_usage(answer.usage), model, "openai")
    reserved = Decimal(raw.headers["x-kakin-reserved-usd"])
    assert reserved >= record.cost, (reserved, record.cost)
    return reserved, record.cost


def test_gpt_image_2_any_size_and_quality_held_at_a_bound_and_billed_by_reported_tokens(
    tenant: Tenant,
) -> None:
    model = "gpt-image-2"
    assert model in _bounded_image_models()
    client = tenant.openai()
    reserved: dict[tuple[str, str], Decimal] = {}
    charged: dict[tuple[str, str], Decimal] = {}
    for size in ("1024x1024", "1536x1024", "3840x2160", "auto"):
        for quality in ("low", "medium", "high", "auto"):
            raw = client.images.with_raw_response.generate(
                model=model,
                prompt="a fox reading an invoice",
                size=size,  # type: ignore[arg-type]
                quality=quality,  # type: ignore[arg-type]
            )
            answer = raw.parse()
            if size != "auto":
                assert answer.size == size
            reserved[(size, quality)], charged[(size, quality)] = _assert_held_and_billed(tenant, raw, model)
    assert charged[("3840x2160", "high")] > charged[("1024x1024", "high")] > charged[("1024x1024", "low")]
    # "auto" is held at the largest size the model accepts
    assert reserved[("auto", "auto")] == reserved[("3840x2160", "high")] > reserved[("1024x1024", "high")]
    raw = client.images.with_raw_response.generate(model=model, prompt="two foxes", n=2, size="3840x2160")  # type: ignore[arg-type]
    assert len(raw.parse().data or []) == 2
    two_reserved, two_charged = _assert_held_and_billed(tenant, raw, model)
    assert two_reserved > reserved[("3840x2160", "auto")] and two_charged > charged[("3840x2160", "auto")]
    assert tenant.balance().held == 0


@pytest.mark.parametrize("model", [m for m in _bounded_image_models() if m != "gpt-image-2"])
def test_other_bounded_image_models_go_through(tenant: Tenant, model: str) -> None:
    raw = tenant.openai().images.with_raw_response.generate(model=model, prompt="a fox", size="1024x1024")
    _assert_held_and_billed(tenant, raw, model)


@pytest.mark.parametrize(
    ("model", "size"),
    [
        ("gpt-image-2", "1024"),
        ("gpt-image-2", "1024x0"),
        ("gpt-image-2", "big"),
        ("gpt-image-2", "7680x4320"),  # beyond the model's largest
        ("gpt-image-2", "3840x3840"),
        ("chatgpt-image-latest", "3840x2160"),
    ],
)
def test_image_size_malformed_or_too_large_refused_and_nothing_billed(
    tenant: Tenant, model: str, size: str
) -> None:
    if model not in _bounded_image_models():
        pytest.skip(f"the catalog does not list {model}")
    before = (tenant.ledger.entries(tenant.org.id), tenant.balance().credit)
    with pytest.raises(openai.BadRequestError) as refused:
        tenant.openai().images.generate(model=model, prompt="a fox", size=size)  # type: ignore[arg-type]
    assert refused.value.status_code == 400
    body = refused.value.body  # OpenAI's error object
    assert isinstance(body, dict) and {"message", "type", "code"} <= set(body), body
    assert size in body["message"]
    assert tenant.usage() == []
    assert (tenant.ledger.entries(tenant.org.id), tenant.balance().credit) == before
    assert tenant.balance().held == 0


# ----------------------------------------------------------------- service tiers


def _tier_rated(model: str, mode: str) -> bool:
    """Whether the catalog has a rate of ``mode``'s own for ``model`` now."""
    return CATALOG.resolve(model, "openai").period(datetime.now(UTC), mode).variant


def _assert_billed_in(record: Any, usage: Usage, model: str, mode: str) -> None:
    at = record.occurred_at
    billed = price(usage, model, provider="openai", at=at, mode=mode)
    standard = price(usage, model, provider="openai", at=at)
    assert billed.billed_mode == mode
    assert billed.total != standard.total, "the tier's rates equal the standard ones: nothing is tested"
    assert to_pico(record.cost) == to_pico(billed.total), (record.cost, billed.total, standard.total)
    assert {item["mode"] for item in _items(record)} == {mode}


@pytest.mark.parametrize("tier", ["priority", "flex"])
def test_chat_billed_at_the_tier_served(tenant: Tenant, tier: str) -> None:
    model = "o4-mini"
    if not _tier_rated(model, tier):
        pytest.skip(f"the catalog has no {tier} rate for {model} today")
    raw = tenant.openai().chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": "how much is this month's bill?"}],
        max_completion_tokens=200,
        service_tier=tier,  # type: ignore[arg-type]
    )
    completion = raw.parse()
    assert completion.service_tier == tier
    record = tenant.record(raw.headers["x-kakin-request-id"])
    _assert_billed_in(record, expected.openai_chat(completion.usage), model, tier)


@pytest.mark.parametrize("tier", ["priority", "flex"])
def test_responses_billed_at_the_tier_served(tenant: Tenant, tier: str) -> None:
    model = "o4-mini"
    if not _tier_rated(model, tier):
        pytest.skip(f"the catalog has no {tier} rate for {model} today")
    raw = tenant.openai().responses.with_raw_response.create(
        model=model,
        input="Summarise this month's spend.",
        max_output_tokens=200,
        service_tier=tier,  # type: ignore[arg-type]
    )
    response = raw.parse()
    assert response.service_tier == tier
    record = tenant.record(raw.headers["x-kakin-request-id"])
    _assert_billed_in(record, expected.openai_responses(response.usage), model, tier)


def test_streamed_chat_billed_at_the_tier_served(tenant: Tenant) -> None:
    model = "o4-mini"
    if not _tier_rated(model, "priority"):
        pytest.skip(f"the catalog has no priority rate for {model} today")
    with tenant.openai().chat.completions.with_streaming_response.create(
        model=model,
        messages=[{"role": "user", "content": "stream the bill"}],
        max_completion_tokens=100,
        service_tier="priority",
        stream=True,
        stream_options={"include_usage": True},
    ) as raw:
        request_id = raw.headers["x-kakin-request-id"]
        chunks = list(raw.parse())
    assert {chunk.service_tier for chunk in chunks} == {"priority"}
    usage = chunks[-1].usage
    assert usage is not None
    _assert_billed_in(tenant.record(request_id), expected.openai_chat(usage), model, "priority")


def test_default_tier_billed_standard(tenant: Tenant) -> None:
    raw = tenant.openai().chat.completions.with_raw_response.create(
        model="o4-mini",
        messages=[{"role": "user", "content": "and at the default tier?"}],
        max_completion_tokens=100,
        service_tier="auto",
    )
    completion = raw.parse()
    assert completion.service_tier == "default"
    record = tenant.record(raw.headers["x-kakin-request-id"])
    expected.assert_billed(record, expected.openai_chat(completion.usage), "o4-mini", "openai")
    assert {item["mode"] for item in _items(record)} == {"standard"}


def test_tier_without_a_rate_billed_standard_with_a_note(tenant: Tenant) -> None:
    """A tier the catalog has no rate for on that date is billed at the standard rates, and
    every line of the bill says so."""
    candidates = [m for m in ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini") if not _tier_rated(m, "flex")]
    if not candidates:
        pytest.skip("every candidate model has a flex rate today")
    model = candidates[0]
    raw = tenant.openai().chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": "flex, please"}],
        max_tokens=50,
        service_tier="flex",
    )
    completion = raw.parse()
    assert completion.service_tier == "flex"
    record = tenant.record(raw.headers["x-kakin-request-id"])
    expected.assert_billed(record, expected.openai_chat(completion.usage), model, "openai")
    items = _items(record)
    assert {item["mode"] for item in items} == {"standard"}
    assert all("no flex rate" in item["note"] for item in items)


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_billed_at_the_tier_it_reports(tenant: Tenant, stream: bool) -> None:
    """Anthropic served the request at Priority Tier (the organisation has capacity): the
    bill uses priority rates where the catalog has them, else standard with a note."""
    model = "claude-sonnet-4-5"
    client = tenant.anthropic()
    request: dict[str, Any] = {
        "model": model,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "priority, please"}],
        "extra_headers": {"x-kakin-simulate": "priority-capacity"},
    }
    if stream:
        with client.messages.with_streaming_response.create(**request, stream=True) as raw:
            request_id = raw.headers["x-kakin-request-id"]
            events = list(raw.parse())
        start = next(event for event in events if event.type == "message_start")
        last = [event for event in events if event.type == "message_delta"][-1]
        assert start.message.usage.service_tier == "priority"
        usage = Usage(input_tokens=start.message.usage.input_tokens, output_tokens=last.usage.output_tokens)
    else:
        raw = client.messages.with_raw_response.create(**request)
        request_id = raw.headers["x-kakin-request-id"]
        message = raw.parse()
        assert message.usage.service_tier == "priority"
        usage = expected.anthropic_messages(message.usage)
    record = tenant.record(request_id)
    billed = price(usage, model, provider="anthropic", at=record.occurred_at, mode="priority")
    assert to_pico(record.cost) == to_pico(billed.total)
    items = _items(record)
    assert {item["mode"] for item in items} == {billed.billed_mode}
    if billed.billed_mode == "standard":  # the catalog has no Anthropic priority rate
        assert all("no priority rate" in item["note"] for item in items)


def test_anthropic_standard_only_is_served_standard(tenant: Tenant) -> None:
    raw = tenant.anthropic().messages.with_raw_response.create(
        model="claude-sonnet-4-5",
        max_tokens=32,
        messages=[{"role": "user", "content": "standard, please"}],
        service_tier="standard_only",
        extra_headers={"x-kakin-simulate": "priority-capacity"},
    )
    message = raw.parse()
    assert message.usage.service_tier == "standard"
    record = tenant.record(raw.headers["x-kakin-request-id"])
    expected.assert_billed(
        record, expected.anthropic_messages(message.usage), "claude-sonnet-4-5", "anthropic"
    )
    assert all(item["mode"] == "standard" and item["note"] is None for item in _items(record))


def test_streamed_responses_billed_at_the_tier_served(tenant: Tenant) -> None:
    model = "o4-mini"
    if not _tier_rated(model, "flex"):
        pytest.skip(f"the catalog has no flex rate for {model} today")
    with tenant.openai().responses.with_streaming_response.create(
        model=model, input="stream the spend", max_output_tokens=100, service_tier="flex", stream=True
    ) as raw:
        request_id = raw.headers["x-kakin-request-id"]
        events = list(raw.parse())
    final = next(event for event in events if event.type in ("response.completed", "response.incomplete"))
    assert final.response.service_tier == "flex"
    _assert_billed_in(
        tenant.record(request_id), expected.openai_responses(final.response.usage), model, "flex"
    )
